// Package admin is the operator HTTP API for the zone's users and role
// collections (JSON, operator credentials). The `broker users` and
// `broker role-collections` subcommands are its client.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/users"
)

// API serves /admin/users and /admin/role-collections.
type API struct {
	Store store.Store
	// Changed is called after role collections changed (the token server
	// caches them); nil means nothing to tell.
	Changed func()
	// Logger records internal errors; nil discards them.
	Logger lager.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (a *API) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *API) changed() {
	if a.Changed != nil {
		a.Changed()
	}
}

func (a *API) logger() lager.Logger {
	if a.Logger == nil {
		return lager.NewLogger("admin")
	}
	return a.Logger
}

// Register adds the routes to mux, each wrapped by auth.
func (a *API) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	h := func(pattern string, f http.HandlerFunc) { mux.Handle(pattern, auth(f)) }
	h("GET /admin/users", a.listUsers)
	h("POST /admin/users", a.createUser)
	h("GET /admin/users/{username}", a.getUser)
	h("PUT /admin/users/{username}", a.updateUser)
	h("DELETE /admin/users/{username}", a.deleteUser)
	h("PUT /admin/users/{username}/password", a.setPassword)
	h("GET /admin/role-collections", a.listRoleCollections)
	h("POST /admin/role-collections", a.createRoleCollection)
	h("DELETE /admin/role-collections/{name}", a.deleteRoleCollection)
	h("PUT /admin/role-collections/{name}/users/{username}", a.assign)
	h("DELETE /admin/role-collections/{name}/users/{username}", a.unassign)
}

// User is the API's view of a user: never the password hash.
type User struct {
	ID              string              `json:"id"`
	Username        string              `json:"username"`
	Email           string              `json:"email,omitempty"`
	GivenName       string              `json:"given_name,omitempty"`
	FamilyName      string              `json:"family_name,omitempty"`
	Origin          string              `json:"origin"`
	RoleCollections []string            `json:"role_collections"`
	Attributes      map[string][]string `json:"attributes,omitempty"`
}

func view(u *store.User) User {
	rcs := u.RoleCollections
	if rcs == nil {
		rcs = []string{}
	}
	return User{ID: u.ID, Username: u.Username, Email: u.Email, GivenName: u.GivenName, FamilyName: u.FamilyName,
		Origin: u.Origin, RoleCollections: rcs, Attributes: u.Attributes}
}

// RoleCollection is the API's view of a role collection.
type RoleCollection struct {
	Name          string   `json:"name"`
	Description   string   `json:"description,omitempty"`
	RoleTemplates []string `json:"role_templates"`
	// DeclaredBy is the instance whose xs-security.json declares it;
	// empty for collections made through this API.
	DeclaredBy string   `json:"declared_by,omitempty"`
	Users      []string `json:"users"`
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, format string, args ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (a *API) respond(w http.ResponseWriter, status int, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.status
		} else {
			a.logger().Error("admin", err)
			status = http.StatusInternalServerError
			err = errors.New("internal error")
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": http.StatusText(status), "description": err.Error()})
		return
	}
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(http.StatusBadRequest, "request body: %v", err)
	}
	return nil
}

func getUserByName(tx store.Tx, name string) (*store.User, error) {
	u, err := tx.GetUserByName(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fail(http.StatusNotFound, "user %q does not exist", name)
	}
	return u, err
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	var out []User
	err := a.Store.View(r.Context(), func(tx store.Tx) error {
		all, err := tx.ListUsers()
		for _, u := range all {
			out = append(out, view(u))
		}
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	if out == nil {
		out = []User{}
	}
	a.respond(w, http.StatusOK, map[string]any{"users": out}, err)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	var out User
	err := a.Store.View(r.Context(), func(tx store.Tx) error {
		u, err := getUserByName(tx, r.PathValue("username"))
		if err == nil {
			out = view(u)
		}
		return err
	})
	a.respond(w, http.StatusOK, out, err)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var spec users.Spec
	if err := decode(r, &spec); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	if err := spec.Validate(true); err != nil {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "%v", err))
		return
	}
	if err := hashOutside(&spec); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	var out User
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		if _, err := tx.GetUserByName(spec.Username); err == nil {
			return fail(http.StatusConflict, "user %q already exists", spec.Username)
		}
		u, _, err := users.Upsert(tx, &spec, a.now())
		if err == nil {
			out = view(u)
		}
		return err
	})
	a.respond(w, http.StatusCreated, out, err)
}

// updateUser replaces the profile (email, names, origin, role collections,
// attributes); the password changes only if the body has one.
func (a *API) updateUser(w http.ResponseWriter, r *http.Request) {
	var spec users.Spec
	if err := decode(r, &spec); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	spec.Username = r.PathValue("username")
	if err := spec.Validate(false); err != nil {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "%v", err))
		return
	}
	if err := hashOutside(&spec); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	var out User
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		if _, err := getUserByName(tx, spec.Username); err != nil {
			return err
		}
		u, _, err := users.Upsert(tx, &spec, a.now())
		if err == nil {
			out = view(u)
		}
		return err
	})
	a.respond(w, http.StatusOK, out, err)
}

// hashOutside replaces the spec's password by its hash. Hash before the
// write transaction: bcrypt is slow on purpose, and the store serialises
// writers (token grants among them).
func hashOutside(spec *users.Spec) error {
	if spec.Password == "" {
		return nil
	}
	hash, err := users.HashPassword(spec.Password)
	if err != nil {
		return fail(http.StatusBadRequest, "%v", err)
	}
	spec.Password, spec.PasswordHash = "", hash
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		u, err := getUserByName(tx, r.PathValue("username"))
		if err != nil {
			return err
		}
		return tx.DeleteUser(u.ID)
	})
	a.respond(w, http.StatusNoContent, nil, err)
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Password string `json:"password"`
	}
	if err := decode(r, &body); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	// Hash outside the write transaction: bcrypt is slow on purpose.
	hash, err := users.HashPassword(body.Password)
	if err != nil {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "%v", err))
		return
	}
	err = a.Store.Update(r.Context(), func(tx store.Tx) error {
		u, err := getUserByName(tx, r.PathValue("username"))
		if err != nil {
			return err
		}
		u.PasswordHash, u.UpdatedAt = hash, a.now()
		return tx.PutUser(u)
	})
	a.respond(w, http.StatusNoContent, nil, err)
}

func (a *API) listRoleCollections(w http.ResponseWriter, r *http.Request) {
	var out []RoleCollection
	err := a.Store.View(r.Context(), func(tx store.Tx) error {
		rcs, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		all, err := tx.ListUsers()
		if err != nil {
			return err
		}
		for _, rc := range rcs {
			v := RoleCollection{Name: rc.Name, Description: rc.Description, RoleTemplates: rc.RoleTemplates, Users: []string{}}
			if rc.Owner != "" {
				v.DeclaredBy = rc.Owner
				if in, err := tx.GetInstance(rc.Owner); err == nil && in.InstanceName != "" {
					v.DeclaredBy = in.InstanceName
				}
			}
			for _, u := range all {
				if slices.Contains(u.RoleCollections, rc.Name) {
					v.Users = append(v.Users, u.Username)
				}
			}
			sort.Strings(v.Users)
			out = append(out, v)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if out == nil {
		out = []RoleCollection{}
	}
	a.respond(w, http.StatusOK, map[string]any{"role_collections": out}, err)
}

// createRoleCollection makes a collection from role templates of existing
// instances, named "<full xsappname>.<template>" (e.g. "bookshop!t1.Viewer").
func (a *API) createRoleCollection(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name          string   `json:"name"`
		Description   string   `json:"description"`
		RoleTemplates []string `json:"role_templates"`
	}
	if err := decode(r, &body); err != nil {
		a.respond(w, 0, nil, err)
		return
	}
	// Characters, not bytes, as xs-security.json's role-collections count.
	if n := utf8.RuneCountInString(body.Name); n == 0 || n > 64 || strings.TrimSpace(body.Name) == "" {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "name: 1 to 64 characters, not only spaces"))
		return
	}
	if strings.ContainsFunc(body.Name, unicode.IsControl) {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "name: %q contains a control character", body.Name))
		return
	}
	if utf8.RuneCountInString(body.Description) > 1000 {
		a.respond(w, 0, nil, fail(http.StatusBadRequest, "description: at most 1000 characters"))
		return
	}
	var out RoleCollection
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		if _, err := tx.GetRoleCollection(body.Name); err == nil {
			return fail(http.StatusConflict, "role collection %q already exists", body.Name)
		}
		for i, ref := range body.RoleTemplates {
			ok, err := templateExists(tx, ref)
			if err != nil {
				return err
			}
			if !ok {
				return fail(http.StatusBadRequest, "role_templates[%d]: %q is not a role template of an existing xsuaa instance (write <xsappname>.<template>, e.g. bookshop!t1.Viewer)", i, ref)
			}
		}
		rc := &store.RoleCollection{Name: body.Name, Description: body.Description, RoleTemplates: body.RoleTemplates}
		if rc.RoleTemplates == nil {
			rc.RoleTemplates = []string{}
		}
		out = RoleCollection{Name: rc.Name, Description: rc.Description, RoleTemplates: rc.RoleTemplates, Users: []string{}}
		return tx.PutRoleCollection(rc)
	})
	if err == nil {
		a.changed()
	}
	a.respond(w, http.StatusCreated, out, err)
}

// templateExists reports whether ref ("<full xsappname>.<template>") names
// a role template of an existing xsuaa instance. The instance is found
// through the store's xsappname index, not by reading the whole zone, at
// every split point grants.Directory.FindTemplate tries.
func templateExists(tx store.Tx, ref string) (bool, error) {
	for app := range grants.TemplateRefSplits(ref) {
		in, err := tx.GetInstanceByXSAppName(app)
		switch {
		case err == nil && in.Service == broker.ServiceXsuaa:
			a, err := broker.AppOf(in)
			if err != nil {
				return false, err
			}
			if _, _, ok := grants.NewDirectory([]grants.App{a}).FindTemplate(ref); ok {
				return true, nil
			}
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return false, err
		}
	}
	return false, nil
}

func (a *API) deleteRoleCollection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		rc, err := tx.GetRoleCollection(name)
		if errors.Is(err, store.ErrNotFound) {
			return fail(http.StatusNotFound, "role collection %q does not exist", name)
		}
		if err != nil {
			return err
		}
		if rc.Owner != "" {
			return fail(http.StatusConflict, "role collection %q is declared by an instance's xs-security.json; remove it there (cf update-service)", name)
		}
		return tx.DeleteRoleCollection(name)
	})
	if err == nil {
		a.changed()
	}
	a.respond(w, http.StatusNoContent, nil, err)
}

// assign adds a role-collection assignment. The collection must exist now
// (the seed file, unlike this call, may name collections declared later).
func (a *API) assign(w http.ResponseWriter, r *http.Request) {
	a.changeAssignment(w, r, true)
}

func (a *API) unassign(w http.ResponseWriter, r *http.Request) {
	a.changeAssignment(w, r, false)
}

func (a *API) changeAssignment(w http.ResponseWriter, r *http.Request, add bool) {
	name := r.PathValue("name")
	var out User
	err := a.Store.Update(r.Context(), func(tx store.Tx) error {
		u, err := getUserByName(tx, r.PathValue("username"))
		if err != nil {
			return err
		}
		if add {
			if _, err := tx.GetRoleCollection(name); errors.Is(err, store.ErrNotFound) {
				return fail(http.StatusNotFound, "role collection %q does not exist", name)
			} else if err != nil {
				return err
			}
			if !slices.Contains(u.RoleCollections, name) {
				u.RoleCollections = append(u.RoleCollections, name)
			}
		} else {
			i := slices.Index(u.RoleCollections, name)
			if i < 0 {
				return fail(http.StatusNotFound, "user %q is not assigned role collection %q", u.Username, name)
			}
			u.RoleCollections = slices.Delete(u.RoleCollections, i, i+1)
		}
		u.UpdatedAt = a.now()
		out = view(u)
		return tx.PutUser(u)
	})
	a.respond(w, http.StatusOK, out, err)
}

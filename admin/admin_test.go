package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/admin"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
	"github.com/ossbroker/btp-security-broker/users"
)

const (
	opUser = "operator"
	opPass = "operator-password-0123456789"
)

// fixture is the admin API on a real bbolt store behind broker.BasicAuth.
type fixture struct {
	st      store.Store
	broker  *broker.Broker
	catalog *broker.Catalog
	srv     *httptest.Server
	changed atomic.Int32
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	catalog, err := broker.ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := credentials.NewSealer(strings.Repeat("k", 40))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := credentials.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	zone, err := broker.EnsureZone(context.Background(), st, "test-zone")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("https://broker.example.com")
	f := &fixture{st: st, catalog: catalog}
	f.broker = broker.New(broker.Config{
		Store: st, Catalog: catalog, Sealer: sealer, CA: ca, Zone: zone,
		XsuaaURL: base, IdentityURL: base, Logger: lager.NewLogger("test"),
	})
	api := &admin.API{Store: st, Changed: func() { f.changed.Add(1) }, Logger: lager.NewLogger("test"), Now: time.Now}
	mux := http.NewServeMux()
	api.Register(mux, func(h http.Handler) http.Handler {
		return broker.BasicAuth(broker.Credentials{Username: opUser, Password: opPass}, h)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// provision creates an xsuaa application instance and returns its full
// xsappname.
func (f *fixture) provision(t *testing.T, name string, params map[string]any) (id, xsappname string) {
	t.Helper()
	var svc domain.Service
	for _, s := range f.catalog.Services {
		if s.Name == broker.ServiceXsuaa {
			svc = s
		}
	}
	var planID string
	for _, p := range svc.Plans {
		if p.Name == "application" {
			planID = p.ID
		}
	}
	if planID == "" {
		t.Fatal("catalog has no xsuaa application plan")
	}
	rawParams, _ := json.Marshal(params)
	rawCtx, _ := json.Marshal(map[string]any{"platform": "cloudfoundry", "instance_name": name, "space_guid": "space-1"})
	id = "instance-" + name
	_, err := f.broker.Provision(context.Background(), id, domain.ProvisionDetails{
		ServiceID: svc.ID, PlanID: planID, OrganizationGUID: "org-1", SpaceGUID: "space-1",
		RawContext: rawCtx, RawParameters: rawParams,
	}, true)
	if err != nil {
		t.Fatalf("provision %s: %v", name, err)
	}
	err = f.st.View(context.Background(), func(tx store.Tx) error {
		in, err := tx.GetInstance(id)
		if err == nil {
			xsappname = in.XSAppName
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, xsappname
}

// bookshop is an xs-security.json with two role templates and one declared
// role collection.
func bookshop() map[string]any {
	return map[string]any{
		"xsappname": "bookshop",
		"scopes": []any{
			map[string]any{"name": "$XSAPPNAME.Display"},
			map[string]any{"name": "$XSAPPNAME.Edit"},
		},
		"role-templates": []any{
			map[string]any{"name": "Viewer", "scope-references": []any{"$XSAPPNAME.Display"}},
			map[string]any{"name": "Editor", "scope-references": []any{"$XSAPPNAME.Display", "$XSAPPNAME.Edit"}},
		},
		"role-collections": []any{
			map[string]any{"name": "Bookshop Viewer", "description": "declared", "role-template-references": []any{"$XSAPPNAME.Viewer"}},
		},
	}
}

// call sends a request with the operator's credentials and fails if any
// answer leaks a password hash.
func (f *fixture) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return f.callAs(t, opUser, opPass, method, path, body)
}

func (f *fixture) callAs(t *testing.T, user, pass, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("password_hash")) || bytes.Contains(raw, []byte("$2a$")) {
		t.Fatalf("%s %s leaks a password hash: %s", method, path, raw)
	}
	return resp.StatusCode, raw
}

func expect(t *testing.T, what string, status int, body []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, status, want, body)
	}
}

// expectError requires status want and a JSON error whose description
// mentions every one of mentions.
func expectError(t *testing.T, what string, status int, body []byte, want int, mentions ...string) {
	t.Helper()
	expect(t, what, status, body, want)
	var e struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Description == "" {
		t.Fatalf("%s: not an error object: %v: %s", what, err, body)
	}
	for _, m := range mentions {
		if !strings.Contains(e.Description, m) {
			t.Fatalf("%s: description %q does not mention %q", what, e.Description, m)
		}
	}
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T: %v: %s", v, err, body)
	}
	return v
}

func TestAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	routes := []struct{ method, path string }{
		{"GET", "/admin/users"},
		{"POST", "/admin/users"},
		{"GET", "/admin/users/alice"},
		{"PUT", "/admin/users/alice"},
		{"DELETE", "/admin/users/alice"},
		{"PUT", "/admin/users/alice/password"},
		{"GET", "/admin/role-collections"},
		{"POST", "/admin/role-collections"},
		{"DELETE", "/admin/role-collections/X"},
		{"PUT", "/admin/role-collections/X/users/alice"},
		{"DELETE", "/admin/role-collections/X/users/alice"},
	}
	creds := []struct{ name, user, pass string }{
		{"none", "", ""},
		{"wrong password", opUser, opPass + "x"},
		{"wrong username", "admin", opPass},
		{"empty password", opUser, ""},
	}
	body := `{"username":"alice","password":"alice-pass","name":"X"}`
	for _, r := range routes {
		for _, c := range creds {
			status, raw := f.callAs(t, c.user, c.pass, r.method, r.path, body)
			if status != http.StatusUnauthorized {
				t.Errorf("%s %s with %s credentials: %d %s", r.method, r.path, c.name, status, raw)
			}
		}
	}
	// Nothing the refused requests carried reached the store.
	status, raw := f.call(t, "GET", "/admin/users", nil)
	expect(t, "list", status, raw, http.StatusOK)
	if got := string(bytes.TrimSpace(raw)); got != `{"users":[]}` {
		t.Fatalf("list after refused requests: %s", got)
	}
	if n := f.changed.Load(); n != 0 {
		t.Fatalf("Changed called %d times by refused requests", n)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	carol := map[string]any{
		"username": "carol", "password": "carol-pass", "email": "carol@example.com",
		"given_name": "Carol", "family_name": "Smith", "role_collections": []string{"Later"},
		"attributes": map[string][]string{"Country": {"DE"}},
	}
	status, raw := f.call(t, "POST", "/admin/users", carol)
	expect(t, "create carol", status, raw, http.StatusCreated)
	created := decode[admin.User](t, raw)
	want := admin.User{
		ID: created.ID, Username: "carol", Email: "carol@example.com", GivenName: "Carol", FamilyName: "Smith",
		Origin: users.DefaultOrigin, RoleCollections: []string{"Later"}, Attributes: map[string][]string{"Country": {"DE"}},
	}
	if created.ID == "" || !reflect.DeepEqual(created, want) {
		t.Fatalf("created %+v\nwant    %+v", created, want)
	}
	if _, ok, _ := users.Authenticate(ctx, f.st, "carol", "carol-pass"); !ok {
		t.Fatal("carol cannot authenticate with her password")
	}

	status, raw = f.call(t, "POST", "/admin/users", map[string]any{"username": "bob", "password": "bob-pass"})
	expect(t, "create bob", status, raw, http.StatusCreated)
	if u := decode[admin.User](t, raw); u.RoleCollections == nil || len(u.RoleCollections) != 0 {
		t.Fatalf("bob's role_collections %#v, want []", u.RoleCollections)
	}
	if !bytes.Contains(raw, []byte(`"role_collections":[]`)) {
		t.Fatalf("role_collections is not an empty array: %s", raw)
	}

	bad := []struct {
		name string
		body any
		want int
		says string
	}{
		{"duplicate", map[string]any{"username": "carol", "password": "other"}, http.StatusConflict, `"carol" already exists`},
		{"bad username", map[string]any{"username": "car ol", "password": "p"}, http.StatusBadRequest, "username"},
		{"empty username", map[string]any{"password": "p"}, http.StatusBadRequest, "username"},
		{"no password", map[string]any{"username": "dave"}, http.StatusBadRequest, "password is required"},
		{"long password", map[string]any{"username": "dave", "password": strings.Repeat("p", 73)}, http.StatusBadRequest, "72 bytes"},
		{"unknown field", map[string]any{"username": "dave", "password": "p", "pasword": "x"}, http.StatusBadRequest, "pasword"},
		{"hash instead of password", map[string]any{"username": "dave", "PasswordHash": "$2a$11$x"}, http.StatusBadRequest, "PasswordHash"},
		{"not JSON", "{username", http.StatusBadRequest, "request body"},
		{"no body", nil, http.StatusBadRequest, "request body"},
	}
	for _, c := range bad {
		status, raw := f.call(t, "POST", "/admin/users", c.body)
		expectError(t, "create "+c.name, status, raw, c.want, c.says)
	}
	// The duplicate did not replace carol's password.
	if _, ok, _ := users.Authenticate(ctx, f.st, "carol", "carol-pass"); !ok {
		t.Fatal("a refused duplicate changed carol's password")
	}

	t.Run("get", func(t *testing.T) {
		status, raw := f.call(t, "GET", "/admin/users/carol", nil)
		expect(t, "get carol", status, raw, http.StatusOK)
		if got := decode[admin.User](t, raw); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v", got)
		}
		status, raw = f.call(t, "GET", "/admin/users/nobody", nil)
		expectError(t, "get unknown", status, raw, http.StatusNotFound, `"nobody"`)
	})

	t.Run("list is sorted", func(t *testing.T) {
		status, raw := f.call(t, "POST", "/admin/users", map[string]any{"username": "abe", "password": "abe-pass"})
		expect(t, "create abe", status, raw, http.StatusCreated)
		status, raw = f.call(t, "GET", "/admin/users", nil)
		expect(t, "list", status, raw, http.StatusOK)
		list := decode[struct{ Users []admin.User }](t, raw)
		var names []string
		for _, u := range list.Users {
			names = append(names, u.Username)
		}
		if !slices.Equal(names, []string{"abe", "bob", "carol"}) {
			t.Fatalf("list %q", names)
		}
	})

	t.Run("update keeps the password", func(t *testing.T) {
		status, raw := f.call(t, "PUT", "/admin/users/carol", map[string]any{
			"email": "c@example.org", "family_name": "Jones", "role_collections": []string{"A", "B"},
		})
		expect(t, "update carol", status, raw, http.StatusOK)
		got := decode[admin.User](t, raw)
		want := admin.User{ID: created.ID, Username: "carol", Email: "c@example.org", FamilyName: "Jones",
			Origin: users.DefaultOrigin, RoleCollections: []string{"A", "B"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("updated %+v\nwant    %+v", got, want)
		}
		if _, ok, _ := users.Authenticate(ctx, f.st, "carol", "carol-pass"); !ok {
			t.Fatal("an update without password changed carol's password")
		}
		status, raw = f.call(t, "PUT", "/admin/users/nobody", map[string]any{"email": "x@example.com"})
		expectError(t, "update unknown", status, raw, http.StatusNotFound, `"nobody"`)
		status, raw = f.call(t, "GET", "/admin/users/nobody", nil)
		expect(t, "update did not create", status, raw, http.StatusNotFound)
		status, raw = f.call(t, "PUT", "/admin/users/carol", map[string]any{"password": strings.Repeat("p", 73)})
		expectError(t, "update long password", status, raw, http.StatusBadRequest, "72 bytes")
	})

	t.Run("set-password", func(t *testing.T) {
		status, raw := f.call(t, "PUT", "/admin/users/carol/password", map[string]string{"password": "carol-new"})
		expect(t, "set-password", status, raw, http.StatusNoContent)
		if len(raw) != 0 {
			t.Fatalf("204 with body %s", raw)
		}
		if _, ok, _ := users.Authenticate(ctx, f.st, "carol", "carol-new"); !ok {
			t.Fatal("the new password does not work")
		}
		if _, ok, _ := users.Authenticate(ctx, f.st, "carol", "carol-pass"); ok {
			t.Fatal("the old password still works")
		}
		for _, c := range []struct {
			path string
			body any
			want int
		}{
			{"/admin/users/nobody/password", map[string]string{"password": "x"}, http.StatusNotFound},
			{"/admin/users/carol/password", map[string]string{"password": ""}, http.StatusBadRequest},
			{"/admin/users/carol/password", map[string]string{"password": strings.Repeat("p", 73)}, http.StatusBadRequest},
			{"/admin/users/carol/password", map[string]string{"pw": "x"}, http.StatusBadRequest},
		} {
			status, raw := f.call(t, "PUT", c.path, c.body)
			expectError(t, "set-password "+c.path, status, raw, c.want)
		}
	})

	t.Run("delete", func(t *testing.T) {
		status, raw := f.call(t, "DELETE", "/admin/users/bob", nil)
		expect(t, "delete bob", status, raw, http.StatusNoContent)
		status, raw = f.call(t, "GET", "/admin/users/bob", nil)
		expectError(t, "get deleted", status, raw, http.StatusNotFound, `"bob"`)
		status, raw = f.call(t, "DELETE", "/admin/users/bob", nil)
		expectError(t, "delete again", status, raw, http.StatusNotFound, `"bob"`)
		if _, ok, _ := users.Authenticate(ctx, f.st, "bob", "bob-pass"); ok {
			t.Fatal("a deleted user authenticates")
		}
	})
}

// TestZeroHooks checks that an API without Changed, Logger and Now works.
func TestZeroHooks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	api := &admin.API{Store: f.st}
	mux := http.NewServeMux()
	api.Register(mux, func(h http.Handler) http.Handler { return h })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/admin/role-collections", `{"name":"X"}`, http.StatusCreated},
		{"POST", "/admin/users", `{"username":"u","password":"p"}`, http.StatusCreated},
		{"PUT", "/admin/role-collections/X/users/u", "", http.StatusOK},
		{"DELETE", "/admin/role-collections/X", "", http.StatusNoContent},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expect(t, c.method+" "+c.path, resp.StatusCode, raw, c.want)
	}
}

type rcList struct {
	RoleCollections []admin.RoleCollection `json:"role_collections"`
}

func TestRoleCollections(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, app := f.provision(t, "bookshop-uaa", bookshop())
	if !strings.HasPrefix(app, "bookshop!t") {
		t.Fatalf("xsappname %q", app)
	}
	// Provisioning is not the admin API: only its own calls count below.
	f.changed.Store(0)
	status, raw := f.call(t, "POST", "/admin/users", map[string]any{"username": "alice", "password": "alice-pass"})
	expect(t, "create alice", status, raw, http.StatusCreated)

	status, raw = f.call(t, "POST", "/admin/role-collections", map[string]any{
		"name": "Auditors", "description": "read only", "role_templates": []string{app + ".Viewer", app + ".Editor"},
	})
	expect(t, "create Auditors", status, raw, http.StatusCreated)
	got := decode[admin.RoleCollection](t, raw)
	if want := (admin.RoleCollection{Name: "Auditors", Description: "read only", RoleTemplates: []string{app + ".Viewer", app + ".Editor"}, Users: []string{}}); !reflect.DeepEqual(got, want) {
		t.Fatalf("created %+v\nwant    %+v", got, want)
	}
	if n := f.changed.Load(); n != 1 {
		t.Fatalf("Changed called %d times after create, want 1", n)
	}
	status, raw = f.call(t, "POST", "/admin/role-collections", map[string]any{"name": "Empty"})
	expect(t, "create Empty", status, raw, http.StatusCreated)
	if !bytes.Contains(raw, []byte(`"role_templates":[]`)) {
		t.Fatalf("role_templates is not an empty array: %s", raw)
	}
	// Lengths count characters, as xs-security.json's role-collections do.
	long := strings.Repeat("ä", 64)
	status, raw = f.call(t, "POST", "/admin/role-collections", map[string]any{"name": long, "description": strings.Repeat("é", 1000)})
	expect(t, "create 64 characters", status, raw, http.StatusCreated)
	status, raw = f.call(t, "DELETE", "/admin/role-collections/"+url.PathEscape(long), nil)
	expect(t, "delete 64 characters", status, raw, http.StatusNoContent)
	// Names may hold a slash; the CLI escapes it in the path.
	status, raw = f.call(t, "POST", "/admin/role-collections", map[string]any{"name": "A/B"})
	expect(t, "create A/B", status, raw, http.StatusCreated)
	status, raw = f.call(t, "DELETE", "/admin/role-collections/"+url.PathEscape("A/B"), nil)
	expect(t, "delete A/B", status, raw, http.StatusNoContent)
	f.changed.Store(0)

	bad := []struct {
		name string
		body any
		want int
		says []string
	}{
		{"unknown template", map[string]any{"name": "X", "role_templates": []string{app + ".Viewer", app + ".Admin"}}, http.StatusBadRequest, []string{"role_templates[1]", app + ".Admin"}},
		{"unknown app", map[string]any{"name": "X", "role_templates": []string{"nope!t9.Viewer"}}, http.StatusBadRequest, []string{"role_templates[0]"}},
		{"base name only", map[string]any{"name": "X", "role_templates": []string{"bookshop.Viewer"}}, http.StatusBadRequest, []string{"role_templates[0]"}},
		{"duplicate", map[string]any{"name": "Auditors"}, http.StatusConflict, []string{`"Auditors" already exists`}},
		{"declared name", map[string]any{"name": "Bookshop Viewer"}, http.StatusConflict, []string{"already exists"}},
		{"empty name", map[string]any{"role_templates": []string{app + ".Viewer"}}, http.StatusBadRequest, []string{"name"}},
		{"long name", map[string]any{"name": strings.Repeat("n", 65)}, http.StatusBadRequest, []string{"name"}},
		{"long multi-byte name", map[string]any{"name": strings.Repeat("ä", 65)}, http.StatusBadRequest, []string{"name"}},
		{"blank name", map[string]any{"name": "   "}, http.StatusBadRequest, []string{"name"}},
		{"control character", map[string]any{"name": "A\nB"}, http.StatusBadRequest, []string{"control character"}},
		{"long description", map[string]any{"name": "X", "description": strings.Repeat("d", 1001)}, http.StatusBadRequest, []string{"description"}},
		{"unknown field", map[string]any{"name": "X", "templates": []string{}}, http.StatusBadRequest, []string{"templates"}},
	}
	for _, c := range bad {
		status, raw := f.call(t, "POST", "/admin/role-collections", c.body)
		expectError(t, "create "+c.name, status, raw, c.want, c.says...)
	}
	if n := f.changed.Load(); n != 0 {
		t.Fatalf("Changed called %d times by refused creates", n)
	}

	t.Run("assign and unassign", func(t *testing.T) {
		for _, rc := range []string{"Auditors", "Bookshop Viewer", "Auditors"} {
			status, raw := f.call(t, "PUT", "/admin/role-collections/"+url.PathEscape(rc)+"/users/alice", nil)
			expect(t, "assign "+rc, status, raw, http.StatusOK)
		}
		status, raw := f.call(t, "GET", "/admin/users/alice", nil)
		expect(t, "get alice", status, raw, http.StatusOK)
		if u := decode[admin.User](t, raw); !slices.Equal(u.RoleCollections, []string{"Auditors", "Bookshop Viewer"}) {
			t.Fatalf("alice's role collections %q (assigning twice must not duplicate)", u.RoleCollections)
		}
		for _, c := range []struct {
			method, path string
			says         string
		}{
			{"PUT", "/admin/role-collections/Nope/users/alice", `"Nope"`},
			{"PUT", "/admin/role-collections/Auditors/users/nobody", `"nobody"`},
			{"DELETE", "/admin/role-collections/Empty/users/alice", "not assigned"},
			{"DELETE", "/admin/role-collections/Auditors/users/nobody", `"nobody"`},
		} {
			status, raw := f.call(t, c.method, c.path, nil)
			expectError(t, c.method+" "+c.path, status, raw, http.StatusNotFound, c.says)
		}
		status, raw = f.call(t, "DELETE", "/admin/role-collections/Auditors/users/alice", nil)
		expect(t, "unassign", status, raw, http.StatusOK)
		if u := decode[admin.User](t, raw); !slices.Equal(u.RoleCollections, []string{"Bookshop Viewer"}) {
			t.Fatalf("after unassign: %q", u.RoleCollections)
		}
		status, raw = f.call(t, "PUT", "/admin/role-collections/Auditors/users/alice", nil)
		expect(t, "assign again", status, raw, http.StatusOK)
		if n := f.changed.Load(); n != 0 {
			t.Fatalf("Changed called %d times by assignments", n)
		}
	})

	t.Run("list", func(t *testing.T) {
		status, raw := f.call(t, "POST", "/admin/users", map[string]any{"username": "abe", "password": "abe-pass", "role_collections": []string{"Auditors"}})
		expect(t, "create abe", status, raw, http.StatusCreated)
		status, raw = f.call(t, "GET", "/admin/role-collections", nil)
		expect(t, "list", status, raw, http.StatusOK)
		got := decode[rcList](t, raw).RoleCollections
		want := []admin.RoleCollection{
			{Name: "Auditors", Description: "read only", RoleTemplates: []string{app + ".Viewer", app + ".Editor"}, Users: []string{"abe", "alice"}},
			{Name: "Bookshop Viewer", Description: "declared", RoleTemplates: []string{app + ".Viewer"}, DeclaredBy: "bookshop-uaa", Users: []string{"alice"}},
			{Name: "Empty", RoleTemplates: []string{}, Users: []string{}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("list\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("delete", func(t *testing.T) {
		status, raw := f.call(t, "DELETE", "/admin/role-collections/"+url.PathEscape("Bookshop Viewer"), nil)
		expectError(t, "delete declared", status, raw, http.StatusConflict, "xs-security.json")
		status, raw = f.call(t, "DELETE", "/admin/role-collections/Nope", nil)
		expectError(t, "delete unknown", status, raw, http.StatusNotFound, `"Nope"`)
		if n := f.changed.Load(); n != 0 {
			t.Fatalf("Changed called %d times by refused deletes", n)
		}
		status, raw = f.call(t, "DELETE", "/admin/role-collections/Auditors", nil)
		expect(t, "delete Auditors", status, raw, http.StatusNoContent)
		if n := f.changed.Load(); n != 1 {
			t.Fatalf("Changed called %d times after delete, want 1", n)
		}
		status, raw = f.call(t, "GET", "/admin/role-collections", nil)
		expect(t, "list", status, raw, http.StatusOK)
		var names []string
		for _, rc := range decode[rcList](t, raw).RoleCollections {
			names = append(names, rc.Name)
		}
		if !slices.Equal(names, []string{"Bookshop Viewer", "Empty"}) {
			t.Fatalf("after delete: %q", names)
		}
		// Assignments are kept by name: a collection made again later
		// applies to the same users.
		status, raw = f.call(t, "GET", "/admin/users/abe", nil)
		expect(t, "get abe", status, raw, http.StatusOK)
		if u := decode[admin.User](t, raw); !slices.Equal(u.RoleCollections, []string{"Auditors"}) {
			t.Fatalf("abe's role collections %q", u.RoleCollections)
		}
	})
}

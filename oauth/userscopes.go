package oauth

import (
	"slices"

	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
)

// userGrant is what a user may carry in tokens of one client.
type userGrant struct {
	// Scopes are the user's scopes the client may hold (xsuaa.md §3.2):
	// (scopes of the role templates behind the user's role collections ∪
	// openid) ∩ the client's scopes.
	Scopes []string
	// Attributes is xs.user.attributes: for each attribute referenced by
	// a role template the user holds through the client's app, the user's
	// own values, else the template's default values.
	Attributes map[string][]string
	// RoleCollections are the user's existing role collections
	// (xs.system.attributes.xs.rolecollections).
	RoleCollections []string
}

// userGrantFor resolves role collections → role templates → scopes when a
// token is issued, so a collection declared after the user was created,
// or a template changed by an instance update, takes effect at once.
func (t *clientTable) userGrantFor(u *store.User, cl *client) userGrant {
	g := userGrant{Attributes: map[string][]string{}}
	userScopes := map[string]bool{grants.ScopeOpenID: true}
	for _, name := range u.RoleCollections {
		rc := t.roleCollection(name)
		if rc == nil || slices.Contains(g.RoleCollections, name) {
			continue // unknown (yet), or assigned twice
		}
		g.RoleCollections = append(g.RoleCollections, name)
		for _, ref := range rc.RoleTemplates {
			app, tmpl, ok := t.dir.FindTemplate(ref)
			if !ok {
				continue
			}
			scopes, _ := t.dir.RoleTemplateScopes(app, tmpl)
			for _, s := range scopes {
				userScopes[s] = true
			}
			if cl.App != nil && app.InstanceID == cl.App.InstanceID {
				addAttributes(g.Attributes, u, app, tmpl)
			}
		}
	}
	for _, s := range t.dir.ClientScopes(cl.App) {
		if userScopes[s] {
			g.Scopes = append(g.Scopes, s)
		}
	}
	if !slices.Contains(g.Scopes, grants.ScopeOpenID) {
		g.Scopes = append(g.Scopes, grants.ScopeOpenID)
	}
	slices.Sort(g.Scopes)
	return g
}

func addAttributes(out map[string][]string, u *store.User, app *grants.App, template string) {
	if app.Descriptor == nil {
		return
	}
	for _, rt := range app.Descriptor.RoleTemplates {
		if rt.Name != template {
			continue
		}
		for _, ar := range rt.AttributeReferences {
			vals := u.Attributes[ar.Name]
			if len(vals) == 0 {
				vals = ar.DefaultValues
			}
			for _, v := range vals {
				if !slices.Contains(out[ar.Name], v) {
					out[ar.Name] = append(out[ar.Name], v)
				}
			}
		}
	}
}

// intersect keeps the scopes of have that are in want, in have's order.
func intersect(have, want []string) []string {
	var out []string
	for _, s := range have {
		if slices.Contains(want, s) {
			out = append(out, s)
		}
	}
	return out
}

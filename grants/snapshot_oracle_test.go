package grants

// This file keeps the Directory as it was before it became incrementally
// maintainable: an immutable snapshot, built at once from all apps, with the
// grants resolved at build time. The incremental tests use it as an
// independent oracle of the intended semantics (for inputs without
// duplicate InstanceIDs), next to NewDirectory. Do not "fix" it: its value
// is that it is the old code.

import (
	"slices"
	"strings"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

func putFirstSnap[K comparable](m map[K]*App, k K, a *App) {
	if _, ok := m[k]; !ok {
		m[k] = a
	}
}

// snapshot is a snapshot of all xsuaa instances of one zone, indexed for the
// lookups the token server does on every request. The *App values it hands
// out belong to the snapshot and must not be modified.
type snapshot struct {
	byID       map[string]*App
	byPlanName map[planName]*App
	byService  map[serviceKey]*App
	byFullName map[string]*App

	// Grants precomputed from the granting side, keyed by the grantee's
	// InstanceID, so that a query costs only the size of the grantee's own
	// descriptor and of what was granted to it, not a scan of the zone.
	authorityGrants map[string][]string            // grant-as-authority-to-apps
	scopeGrants     map[string]map[string]struct{} // granted-apps
}

// newSnapshot indexes apps. When several apps share a lookup key (which the
// broker should not allow), the one with the smallest InstanceID wins, so the
// result does not depend on the order of apps.
func newSnapshot(apps []App) *snapshot {
	d := &snapshot{
		byID:            make(map[string]*App, len(apps)),
		byPlanName:      make(map[planName]*App, len(apps)),
		byService:       make(map[serviceKey]*App, len(apps)),
		byFullName:      make(map[string]*App, len(apps)),
		authorityGrants: make(map[string][]string),
		scopeGrants:     make(map[string]map[string]struct{}),
	}
	sorted := make([]*App, len(apps))
	for i := range apps {
		a := apps[i] // copy: later changes to the caller's slice must not leak in
		sorted[i] = &a
	}
	slices.SortStableFunc(sorted, func(a, b *App) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	for _, a := range sorted {
		putFirstSnap(d.byID, a.InstanceID, a)
		putFirstSnap(d.byPlanName, planName{a.Plan, a.BaseName}, a)
		putFirstSnap(d.byService, serviceKey{a.SpaceGUID, a.InstanceName}, a)
		putFirstSnap(d.byFullName, a.FullName, a)
	}
	// Only the apps that won their InstanceID take part in grants: a shadowed
	// duplicate cannot be looked up, so it must not grant anything either.
	for _, a := range d.byID {
		d.indexGrants(a)
	}
	for id, scopes := range d.authorityGrants {
		slices.Sort(scopes)
		d.authorityGrants[id] = slices.Compact(scopes)
	}
	return d
}

// indexGrants records the grants made by the scopes of granter. Only scopes
// in the granter's own namespace ($XSAPPNAME.x) can be granted: an app must
// not hand out uaa.* or another app's scopes.
func (d *snapshot) indexGrants(granter *App) {
	if granter.Descriptor == nil {
		return
	}
	for _, s := range granter.Descriptor.Scopes {
		r, err := descriptor.ParseRef(s.Name)
		if err != nil || r.Kind != descriptor.Self || r.Suffix == "" {
			continue
		}
		full := r.Expand(granter.FullName)
		for _, g := range s.GrantAsAuthorityToApps {
			if to, ok := d.resolveName(granter, g); ok {
				d.authorityGrants[to.InstanceID] = append(d.authorityGrants[to.InstanceID], full)
			}
		}
		for _, g := range s.GrantedApps {
			if to, ok := d.resolveName(granter, g); ok {
				set := d.scopeGrants[to.InstanceID]
				if set == nil {
					set = make(map[string]struct{})
					d.scopeGrants[to.InstanceID] = set
				}
				set[full] = struct{}{}
			}
		}
	}
}

// resolveName resolves an app reference written in from's descriptor
// ($XSAPPNAME, $XSAPPNAME(plan,app), $XSSERVICENAME(name)); a reference
// with a suffix names a scope, not an app, and does not resolve.
func (d *snapshot) resolveName(from *App, name string) (*App, bool) {
	r, err := descriptor.ParseRef(name)
	if err != nil || r.Suffix != "" {
		return nil, false
	}
	return d.resolve(from, r)
}

// Lookup returns the app with the given service instance id.
func (d *snapshot) lookup(instanceID string) (*App, bool) {
	a, ok := d.byID[instanceID]
	return a, ok
}

// Resolve finds the app a reference written in from's descriptor points at:
// Self is from itself, App is found by plan and original xsappname (compared
// as written; the third argument of the 3-argument form is ignored), Service
// by instance name in from's space. Literal and $ACCEPT_* references name no
// app.
func (d *snapshot) resolve(from *App, r descriptor.Ref) (*App, bool) {
	var a *App
	switch r.Kind {
	case descriptor.Self:
		a = from
	case descriptor.App:
		a = d.byPlanName[planName{r.Plan, r.App}]
		if a != nil && a.OrgGUID != from.OrgGUID {
			a = nil
		}
	case descriptor.Service:
		a = d.byService[serviceKey{from.SpaceGUID, r.Service}]
	}
	return a, a != nil
}

// Expand renders a name written in from's descriptor with the full xsappname
// of the app it points at. Literal names expand to themselves. It reports
// false for unparsable names, references to apps not in the directory and
// the $ACCEPT_* markers.
func (d *snapshot) expand(from *App, name string) (string, bool) {
	r, err := descriptor.ParseRef(name)
	if err != nil {
		return "", false
	}
	if r.Kind == descriptor.Literal {
		return r.Suffix, true
	}
	a, ok := d.resolve(from, r)
	if !ok {
		return "", false
	}
	return r.Expand(a.FullName), true
}

// Authorities returns the authorities of app's OAuth client, i.e. what a
// client_credentials token carries (xsuaa.md §2.7, §3.1): uaa.resource, the
// app's own scopes listed in its "authorities", and the scopes other apps
// grant to it through grant-as-authority-to-apps that it accepts, either
// all of them ($ACCEPT_GRANTED_AUTHORITIES) or by explicit name. The result
// is sorted and free of duplicates.
func (d *snapshot) authorities(app *App) []string {
	out := []string{ScopeResource}
	desc := descriptorOf(app)
	own := ownScopes(app)
	acceptAll := false
	accepted := make(map[string]struct{}, len(desc.Authorities))
	for _, e := range desc.Authorities {
		if e == "$ACCEPT_GRANTED_AUTHORITIES" {
			acceptAll = true
			continue
		}
		x, ok := d.expand(app, e)
		if !ok {
			continue
		}
		if _, mine := own[x]; mine {
			out = append(out, x)
		}
		accepted[x] = struct{}{}
	}
	for _, s := range d.authorityGrants[app.InstanceID] {
		if _, ok := accepted[s]; acceptAll || ok {
			out = append(out, s)
		}
	}
	return sortedUnique(out)
}

// ClientScopes returns the scopes app's client may carry in user tokens
// (xsuaa.md §2.7, §3.2): openid, its own scopes, uaa.user when it is
// declared or referenced, and the scopes other apps grant to it through
// granted-apps that it takes up, either through foreign-scope-references
// ($ACCEPT_GRANTED_SCOPES or the explicit name) or by referencing them in
// one of its role templates. The result is sorted and free of duplicates.
func (d *snapshot) clientScopes(app *App) []string {
	desc := descriptorOf(app)
	out := []string{ScopeOpenID}
	for s := range ownScopes(app) {
		out = append(out, s)
	}
	granted := d.scopeGrants[app.InstanceID]
	acceptAll := false
	take := func(name string) {
		x, ok := d.expand(app, name)
		if !ok {
			return
		}
		if x == ScopeUser {
			out = append(out, x)
		} else if _, ok := granted[x]; ok {
			out = append(out, x)
		}
	}
	for _, e := range desc.ForeignScopeReferences {
		if e == "$ACCEPT_GRANTED_SCOPES" {
			acceptAll = true
			continue
		}
		take(e)
	}
	for _, rt := range desc.RoleTemplates {
		for _, ref := range rt.ScopeReferences {
			take(ref)
		}
	}
	if acceptAll {
		for s := range granted {
			out = append(out, s)
		}
	}
	return sortedUnique(out)
}

// RoleTemplateScopes returns the expanded scopes of app's role template
// named template, which a user holds when one of their role collections
// points at it. Own scopes and uaa.user are kept; a foreign scope is kept
// only while its app grants it to app through granted-apps; anything else
// (unknown apps, scopes not granted, undeclared names) is dropped, so a
// grant withdrawn later takes effect at once. ok is false if app has no
// such template.
func (d *snapshot) roleTemplateScopes(app *App, template string) (scopes []string, ok bool) {
	desc := descriptorOf(app)
	i := slices.IndexFunc(desc.RoleTemplates, func(rt descriptor.RoleTemplate) bool { return rt.Name == template })
	if i < 0 {
		return nil, false
	}
	own := ownScopes(app)
	granted := d.scopeGrants[app.InstanceID]
	out := []string{}
	for _, ref := range desc.RoleTemplates[i].ScopeReferences {
		x, ok := d.expand(app, ref)
		if !ok {
			continue
		}
		_, mine := own[x]
		_, given := granted[x]
		if mine || given || x == ScopeUser {
			out = append(out, x)
		}
	}
	return sortedUnique(out), true
}

// FindTemplate resolves a stored role-template reference
// "<FullName>.<template>" to the app and the template name. It reports false
// when the app is unknown or has no such template.
func (d *snapshot) findTemplate(ref string) (*App, string, bool) {
	// Full xsappnames contain no '.', template names may; still, trying
	// every split point costs nothing and tolerates odd names.
	for i := strings.IndexByte(ref, '.'); i >= 0; {
		if a, ok := d.byFullName[ref[:i]]; ok {
			name := ref[i+1:]
			if slices.ContainsFunc(descriptorOf(a).RoleTemplates, func(rt descriptor.RoleTemplate) bool { return rt.Name == name }) {
				return a, name, true
			}
		}
		j := strings.IndexByte(ref[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil, "", false
}

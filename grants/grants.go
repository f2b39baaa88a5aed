// Package grants resolves scopes and authorities across the xsuaa instances
// of one identity zone: which authorities an OAuth client gets for
// client_credentials, which scopes it may carry in user tokens, which scopes
// a role template stands for, and the aud claim of a token (xsuaa.md §2.3,
// §2.7, §3). It is pure: it does no I/O. A Directory is built from the store
// and then kept up to date in place (Upsert, Remove) while the token server
// queries it; it is safe for concurrent use.
package grants

import (
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// Well-known scope names.
const (
	// ScopeResource is in every client_credentials token of real XSUAA.
	ScopeResource = "uaa.resource"
	// ScopeUser allows token exchange (user_token grant).
	ScopeUser = "uaa.user"
	// ScopeOpenID is in every real XSUAA user token.
	ScopeOpenID = "openid"
)

// App is one xsuaa instance as the token server sees it.
type App struct {
	InstanceID string
	Plan       string // "application", "broker", "apiaccess"
	BaseName   string // original xsappname from the descriptor, e.g. "bookshop"
	FullName   string // with suffix, e.g. "bookshop!t3"
	ClientID   string // "sb-" + FullName
	// OrgGUID scopes $XSAPPNAME(plan,app) references: a Cloud Foundry org
	// plays the role of the BTP subaccount, the real service's boundary
	// for such references. Without it, an app in another org that takes a
	// deleted app's name would inherit the grants made to that app.
	OrgGUID      string
	SpaceGUID    string
	InstanceName string // context.instance_name (used by $XSSERVICENAME)
	Descriptor   *descriptor.Descriptor
}

// Directory holds the xsuaa instances of one zone, indexed for the lookups
// the token server does on every request. It is updated in place by Upsert
// and Remove, at a cost that depends on the changed app and the apps sharing
// its lookup keys, never on the size of the zone; queries cost the size of
// the queried app's descriptor and of what is granted to it. It is safe for
// concurrent use. The *App values it hands out are never modified: Upsert
// stores a new one, so a caller may keep using an *App it got earlier, which
// then describes the app as it was. The zero value is an empty Directory.
type Directory struct {
	// mu guards every field below. Exported methods take it exactly once
	// and work through lock-free helpers: a read lock must not be taken
	// again by a goroutine already holding one, or a waiting writer
	// deadlocks both.
	mu sync.RWMutex

	byID       map[string]*App
	byPlanName holders[planName]
	byService  holders[serviceKey]
	byFullName holders[string]

	// Grants are filed at the granter's Upsert under the lookup key of the
	// app they name, whether or not that app exists yet, and resolved when
	// queried: a grant then reaches an app that appears later, and
	// replacing or removing either side needs no other app's grants to be
	// recomputed.
	authorityGrants map[grantKey]grantBucket // grant-as-authority-to-apps
	scopeGrants     map[grantKey]grantBucket // granted-apps
	// filed lists, per granter InstanceID, the keys under which it filed
	// grants in either map, so that Remove can withdraw them.
	filed map[string][]grantKey
}

// holders indexes apps by a lookup key that several apps may share (which
// the broker should not allow). The app with the smallest InstanceID wins
// the key, so the result does not depend on the order of updates; the
// others stand in line for when it goes away. Kept in two maps so that the
// usual unshared key costs no allocation of its own: a zone of 100,000
// apps is a large heap for the garbage collector to scan.
type holders[K comparable] struct {
	first map[K]*App   // the winner of each key
	rest  map[K][]*App // the other holders of a shared key, sorted by InstanceID
}

func newHolders[K comparable](n int) holders[K] {
	return holders[K]{first: make(map[K]*App, n), rest: make(map[K][]*App)}
}

func byInstanceID(a *App, id string) int { return strings.Compare(a.InstanceID, id) }

// winner returns the app that wins k, nil if none.
func (h *holders[K]) winner(k K) *App { return h.first[k] }

// add adds a as a holder of k.
func (h *holders[K]) add(k K, a *App) {
	w, ok := h.first[k]
	if !ok {
		h.first[k] = a
		return
	}
	if a.InstanceID < w.InstanceID {
		h.first[k], a = a, w
	}
	s := h.rest[k]
	i, _ := slices.BinarySearchFunc(s, a.InstanceID, byInstanceID)
	h.rest[k] = slices.Insert(s, i, a)
}

// drop removes the app with instanceID from the holders of k.
func (h *holders[K]) drop(k K, instanceID string) {
	w, ok := h.first[k]
	if !ok {
		return
	}
	s := h.rest[k]
	if w.InstanceID == instanceID {
		if len(s) == 0 {
			delete(h.first, k)
			return
		}
		h.first[k] = s[0]
		s = slices.Delete(s, 0, 1)
	} else {
		i, found := slices.BinarySearchFunc(s, instanceID, byInstanceID)
		if !found {
			return
		}
		s = slices.Delete(s, i, i+1)
	}
	if len(s) == 0 {
		delete(h.rest, k)
	} else {
		h.rest[k] = s
	}
}

// grantBucket holds the grants filed under one key: the full scope names
// granted, grouped by granter.
type grantBucket struct {
	groups []grantGroup
	// index locates a granter's group once the bucket is large (an app
	// that half the zone grants to), so that withdrawing one granter never
	// scans the others'. Small buckets, the usual case, do without.
	index map[string]int
}

type grantGroup struct {
	granter string // InstanceID
	scopes  []string
}

// bucketIndexMin is the number of granters from which a bucket is indexed.
const bucketIndexMin = 16

func (b *grantBucket) find(granter string) int {
	if b.index != nil {
		if i, ok := b.index[granter]; ok {
			return i
		}
		return -1
	}
	return slices.IndexFunc(b.groups, func(g grantGroup) bool { return g.granter == granter })
}

func (b *grantBucket) add(granter, scope string) {
	i := b.find(granter)
	if i < 0 {
		i = len(b.groups)
		b.groups = append(b.groups, grantGroup{granter: granter})
		switch {
		case b.index != nil:
			b.index[granter] = i
		case len(b.groups) > bucketIndexMin:
			b.index = make(map[string]int, len(b.groups))
			for j, g := range b.groups {
				b.index[g.granter] = j
			}
		}
	}
	b.groups[i].scopes = append(b.groups[i].scopes, scope)
}

// drop removes granter's group; the last group takes its place.
func (b *grantBucket) drop(granter string) {
	i := b.find(granter)
	if i < 0 {
		return
	}
	last := len(b.groups) - 1
	if i != last {
		b.groups[i] = b.groups[last]
		if b.index != nil {
			b.index[b.groups[i].granter] = i
		}
	}
	b.groups[last] = grantGroup{}
	b.groups = b.groups[:last]
	if b.index != nil {
		delete(b.index, granter)
	}
}

type planName struct{ plan, name string }

type serviceKey struct{ space, name string }

// grantKey is the lookup key an app reference resolves through, qualified by
// what the reference depends on besides its own text:
//   - $XSAPPNAME: kind Self, a = the granter's InstanceID;
//   - $XSAPPNAME(plan,app): kind App, a = plan, b = app, c = the granter's
//     org (Resolve only accepts a target in the referring app's org);
//   - $XSSERVICENAME(name): kind Service, a = the granter's space, b = name.
//
// Every grant filed under one key therefore names the same app, the one
// holderOf(key) returns.
type grantKey struct {
	kind    descriptor.RefKind
	a, b, c string
}

// refKey returns the key under which a reference written in from's
// descriptor is resolved; ok is false for references that name no app.
func refKey(from *App, r descriptor.Ref) (grantKey, bool) {
	switch r.Kind {
	case descriptor.Self:
		return grantKey{kind: descriptor.Self, a: from.InstanceID}, true
	case descriptor.App:
		return grantKey{kind: descriptor.App, a: r.Plan, b: r.App, c: from.OrgGUID}, true
	case descriptor.Service:
		return grantKey{kind: descriptor.Service, a: from.SpaceGUID, b: r.Service}, true
	}
	return grantKey{}, false
}

// ownKeys returns the keys through which references can reach app: the
// grants that name app are filed under these.
func ownKeys(app *App) [3]grantKey {
	return [3]grantKey{
		{kind: descriptor.Self, a: app.InstanceID},
		{kind: descriptor.App, a: app.Plan, b: app.BaseName, c: app.OrgGUID},
		{kind: descriptor.Service, a: app.SpaceGUID, b: app.InstanceName},
	}
}

// NewDirectory indexes apps. When several apps share a lookup key (which the
// broker should not allow), the one with the smallest InstanceID wins, so the
// result does not depend on the order of apps. When several apps share an
// InstanceID, the first one is taken and the others are ignored entirely:
// they can neither be found nor grant anything.
func NewDirectory(apps []App) *Directory {
	d := &Directory{
		byID:            make(map[string]*App, len(apps)),
		byPlanName:      newHolders[planName](len(apps)),
		byService:       newHolders[serviceKey](len(apps)),
		byFullName:      newHolders[string](len(apps)),
		authorityGrants: make(map[grantKey]grantBucket),
		scopeGrants:     make(map[grantKey]grantBucket),
		filed:           make(map[string][]grantKey),
	}
	for i := range apps {
		if _, dup := d.byID[apps[i].InstanceID]; dup {
			continue
		}
		a := apps[i] // copy: later changes to the caller's slice must not leak in
		d.insert(&a)
	}
	return d
}

// Upsert adds a, or replaces the app with a.InstanceID. The directory keeps
// its own copy of a, but shares a.Descriptor, which must not be modified
// afterwards: the grants it makes are indexed now.
func (d *Directory) Upsert(a App) {
	p := &a
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remove(a.InstanceID)
	d.insert(p)
}

// Remove removes the app with the given InstanceID, if any, together with
// the grants it made. Grants made to it stay filed: they reach whichever
// app the same reference names next.
func (d *Directory) Remove(instanceID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remove(instanceID)
}

// Len returns the number of apps in the directory.
func (d *Directory) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byID)
}

// insert adds a, whose InstanceID must not be in the directory. The caller
// holds the write lock (or is NewDirectory, which does not share d yet).
func (d *Directory) insert(a *App) {
	if d.byID == nil {
		d.byID = make(map[string]*App)
		d.byPlanName = newHolders[planName](0)
		d.byService = newHolders[serviceKey](0)
		d.byFullName = newHolders[string](0)
		d.authorityGrants = make(map[grantKey]grantBucket)
		d.scopeGrants = make(map[grantKey]grantBucket)
		d.filed = make(map[string][]grantKey)
	}
	d.byID[a.InstanceID] = a
	d.byPlanName.add(planName{a.Plan, a.BaseName}, a)
	d.byService.add(serviceKey{a.SpaceGUID, a.InstanceName}, a)
	d.byFullName.add(a.FullName, a)
	d.fileGrants(a)
}

// remove undoes insert for the app with instanceID, if any. The caller holds
// the write lock.
func (d *Directory) remove(instanceID string) {
	a, ok := d.byID[instanceID]
	if !ok {
		return
	}
	delete(d.byID, instanceID)
	d.byPlanName.drop(planName{a.Plan, a.BaseName}, instanceID)
	d.byService.drop(serviceKey{a.SpaceGUID, a.InstanceName}, instanceID)
	d.byFullName.drop(a.FullName, instanceID)
	for _, k := range d.filed[instanceID] {
		withdraw(d.authorityGrants, k, instanceID)
		withdraw(d.scopeGrants, k, instanceID)
	}
	delete(d.filed, instanceID)
}

func withdraw(m map[grantKey]grantBucket, k grantKey, granterID string) {
	b, ok := m[k]
	if !ok {
		return
	}
	b.drop(granterID)
	if len(b.groups) == 0 {
		delete(m, k)
	} else {
		m[k] = b
	}
}

// fileGrants files the grants made by the scopes of granter under the keys
// of the apps they name. Only scopes in the granter's own namespace
// ($XSAPPNAME.x) can be granted: an app must not hand out uaa.* or another
// app's scopes. The caller holds the write lock.
func (d *Directory) fileGrants(granter *App) {
	if granter.Descriptor == nil {
		return
	}
	var keys []grantKey
	for _, s := range granter.Descriptor.Scopes {
		r, err := descriptor.ParseRef(s.Name)
		if err != nil || r.Kind != descriptor.Self || r.Suffix == "" {
			continue
		}
		full := r.Expand(granter.FullName)
		keys = fileGrant(d.authorityGrants, granter, full, s.GrantAsAuthorityToApps, keys)
		keys = fileGrant(d.scopeGrants, granter, full, s.GrantedApps, keys)
	}
	if len(keys) > 0 {
		d.filed[granter.InstanceID] = keys
	}
}

// fileGrant files scope, granted by granter to each app reference in to,
// in m, and returns keys with the keys used appended. A reference with a
// suffix names a scope, not an app, and is ignored, like one that cannot be
// parsed or names no app.
func fileGrant(m map[grantKey]grantBucket, granter *App, scope string, to []string, keys []grantKey) []grantKey {
	for _, name := range to {
		r, err := descriptor.ParseRef(name)
		if err != nil || r.Suffix != "" {
			continue
		}
		k, ok := refKey(granter, r)
		if !ok {
			continue
		}
		b := m[k]
		b.add(granter.InstanceID, scope)
		m[k] = b
		// Duplicates in keys are harmless (withdrawing twice is a no-op)
		// and cost no more than the descriptor that made them.
		keys = append(keys, k)
	}
	return keys
}

// holderOf returns the app that a reference resolving through k names today,
// nil if none: the same as resolve(granter, ref) for every grant filed under
// k.
func (d *Directory) holderOf(k grantKey) *App {
	switch k.kind {
	case descriptor.Self:
		return d.byID[k.a]
	case descriptor.App:
		if a := d.byPlanName.winner(planName{k.a, k.b}); a != nil && a.OrgGUID == k.c {
			return a
		}
	case descriptor.Service:
		return d.byService.winner(serviceKey{k.a, k.b})
	}
	return nil
}

// grantsTo returns the grants of m that name app today, grouped by granter. A grant filed under one of app's keys may name another
// app that wins the key (app is then a shadowed duplicate and gets nothing)
// or no app (the key's winner is in another org).
func (d *Directory) grantsTo(m map[grantKey]grantBucket, app *App) [3][]grantGroup {
	var out [3][]grantGroup
	for i, k := range ownKeys(app) {
		b, ok := m[k]
		if !ok {
			continue
		}
		if h := d.holderOf(k); h != nil && h.InstanceID == app.InstanceID {
			out[i] = b.groups
		}
	}
	return out
}

// grantedScopes returns the scope names m grants to app, sorted and free of
// duplicates, for lookups with slices.BinarySearch.
func (d *Directory) grantedScopes(m map[grantKey]grantBucket, app *App) []string {
	buckets := d.grantsTo(m, app)
	n := 0
	for _, groups := range buckets {
		for _, g := range groups {
			n += len(g.scopes)
		}
	}
	if n == 0 {
		return nil
	}
	// Sized in advance: this is on the path of every user token.
	out := make([]string, 0, n)
	for _, groups := range buckets {
		for _, g := range groups {
			out = append(out, g.scopes...)
		}
	}
	return sortedUnique(out)
}

// Lookup returns the app with the given service instance id.
func (d *Directory) Lookup(instanceID string) (*App, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.byID[instanceID]
	return a, ok
}

// Resolve finds the app a reference written in from's descriptor points at:
// Self is from itself, App is found by plan and original xsappname (compared
// as written; the third argument of the 3-argument form is ignored), Service
// by instance name in from's space. Literal and $ACCEPT_* references name no
// app.
func (d *Directory) Resolve(from *App, r descriptor.Ref) (*App, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.resolve(from, r)
}

func (d *Directory) resolve(from *App, r descriptor.Ref) (*App, bool) {
	var a *App
	switch r.Kind {
	case descriptor.Self:
		a = from
	case descriptor.App:
		a = d.byPlanName.winner(planName{r.Plan, r.App})
		if a != nil && a.OrgGUID != from.OrgGUID {
			a = nil
		}
	case descriptor.Service:
		a = d.byService.winner(serviceKey{from.SpaceGUID, r.Service})
	}
	return a, a != nil
}

// Expand renders a name written in from's descriptor with the full xsappname
// of the app it points at. Literal names expand to themselves. It reports
// false for unparsable names, references to apps not in the directory and
// the $ACCEPT_* markers.
func (d *Directory) Expand(from *App, name string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.expand(from, name)
}

func (d *Directory) expand(from *App, name string) (string, bool) {
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
func (d *Directory) Authorities(app *App) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
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
	for _, groups := range d.grantsTo(d.authorityGrants, app) {
		for _, g := range groups {
			for _, s := range g.scopes {
				if _, ok := accepted[s]; acceptAll || ok {
					out = append(out, s)
				}
			}
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
func (d *Directory) ClientScopes(app *App) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	desc := descriptorOf(app)
	out := []string{ScopeOpenID}
	for s := range ownScopes(app) {
		out = append(out, s)
	}
	granted := d.grantedScopes(d.scopeGrants, app)
	acceptAll := false
	take := func(name string) {
		x, ok := d.expand(app, name)
		if !ok {
			return
		}
		if x == ScopeUser {
			out = append(out, x)
		} else if _, ok := slices.BinarySearch(granted, x); ok {
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
		out = append(out, granted...)
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
func (d *Directory) RoleTemplateScopes(app *App, template string) (scopes []string, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	desc := descriptorOf(app)
	i := slices.IndexFunc(desc.RoleTemplates, func(rt descriptor.RoleTemplate) bool { return rt.Name == template })
	if i < 0 {
		return nil, false
	}
	own := ownScopes(app)
	granted := d.grantedScopes(d.scopeGrants, app)
	out := []string{}
	for _, ref := range desc.RoleTemplates[i].ScopeReferences {
		x, ok := d.expand(app, ref)
		if !ok {
			continue
		}
		_, mine := own[x]
		_, given := slices.BinarySearch(granted, x)
		if mine || given || x == ScopeUser {
			out = append(out, x)
		}
	}
	return sortedUnique(out), true
}

// FindTemplate resolves a stored role-template reference
// "<FullName>.<template>" to the app and the template name. It reports false
// when the app is unknown or has no such template.
func (d *Directory) FindTemplate(ref string) (*App, string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for app, name := range TemplateRefSplits(ref) {
		if a := d.byFullName.winner(app); a != nil {
			if slices.ContainsFunc(descriptorOf(a).RoleTemplates, func(rt descriptor.RoleTemplate) bool { return rt.Name == name }) {
				return a, name, true
			}
		}
	}
	return nil, "", false
}

// TemplateRefSplits yields the ways a role-template reference
// "<full xsappname>.<template>" divides into an app name and a template
// name, at each '.' from the first. Full xsappnames contain no '.',
// template names may; trying every split point costs nothing and
// tolerates odd names.
func TemplateRefSplits(ref string) iter.Seq2[string, string] {
	return func(yield func(app, template string) bool) {
		for i := 0; i < len(ref); i++ {
			if ref[i] == '.' && !yield(ref[:i], ref[i+1:]) {
				return
			}
		}
	}
}

var emptyDescriptor descriptor.Descriptor

func descriptorOf(a *App) *descriptor.Descriptor {
	if a.Descriptor == nil {
		return &emptyDescriptor
	}
	return a.Descriptor
}

// ownScopes returns the expanded names of the scopes app declares in its
// own namespace, plus declared literal names that cannot pass for somebody
// else's scope (see ownLiteral).
func ownScopes(app *App) map[string]struct{} {
	desc := descriptorOf(app)
	own := make(map[string]struct{}, len(desc.Scopes))
	for _, s := range desc.Scopes {
		r, err := descriptor.ParseRef(s.Name)
		if err != nil {
			continue
		}
		switch {
		case r.Kind == descriptor.Self && r.Suffix != "":
			own[r.Expand(app.FullName)] = struct{}{}
		case r.Kind == descriptor.Literal && ownLiteral(r.Suffix):
			own[r.Suffix] = struct{}{}
		}
	}
	return own
}

// ownLiteral reports whether a literal scope name declared by an app may be
// given to that app. Every full xsappname contains '!' (!t, !b, !a), so a
// name without '!' cannot impersonate another app's scope; names of UAA
// itself (uaa.admin, ...) are reserved, except uaa.user which apps declare
// for token exchange.
func ownLiteral(name string) bool {
	if name == ScopeUser {
		return true
	}
	return !strings.Contains(name, "!") && !strings.HasPrefix(name, "uaa.")
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// Apps returns every app of the directory, in no particular order. The
// slice is the caller's: later updates of the directory do not change it.
func (d *Directory) Apps() []*App {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*App, 0, len(d.byID))
	for _, a := range d.byID {
		out = append(out, a)
	}
	return out
}

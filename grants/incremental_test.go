package grants

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// The tests in this file check that a Directory maintained by Upsert and
// Remove answers every query exactly as one built from scratch from the
// same apps: NewDirectory, and the snapshot implementation the package had
// before (snapshot_oracle_test.go), which resolves all grants at build time
// and so shares no grant-handling code with the incremental one.

// probes are the questions asked of every pair of directories compared:
// every instance id, reference and template name the apps of a test may
// use, including ones that name nothing.
type probes struct {
	ids       []string
	refs      []string // app references and scope names, parsable or not
	templates []string
	fullNames []string
}

// probesFor collects the probes for a universe of apps: everything their
// descriptors mention, plus a reference to each of their lookup keys.
func probesFor(universe []App) probes {
	var p probes
	add := func(s *[]string, v ...string) {
		for _, x := range v {
			if !slices.Contains(*s, x) {
				*s = append(*s, x)
			}
		}
	}
	add(&p.refs, "$XSAPPNAME", "$XSAPPNAME.S0", "uaa.user", "$ACCEPT_GRANTED_AUTHORITIES", "$BROKEN(")
	add(&p.templates, "Missing")
	add(&p.ids, "id-never-there")
	for _, a := range universe {
		add(&p.ids, a.InstanceID)
		add(&p.fullNames, a.FullName)
		add(&p.refs, "$XSAPPNAME("+a.Plan+","+a.BaseName+")", "$XSAPPNAME("+a.Plan+","+a.BaseName+").S1", "$XSSERVICENAME("+a.InstanceName+")")
		if a.Descriptor == nil {
			continue
		}
		d := a.Descriptor
		for _, s := range d.Scopes {
			add(&p.refs, s.Name)
			add(&p.refs, s.GrantAsAuthorityToApps...)
			add(&p.refs, s.GrantedApps...)
		}
		add(&p.refs, d.Authorities...)
		add(&p.refs, d.ForeignScopeReferences...)
		for _, rt := range d.RoleTemplates {
			add(&p.templates, rt.Name)
			add(&p.refs, rt.ScopeReferences...)
		}
	}
	return p
}

// idOf returns the InstanceID of a, "" for nil, so that apps of different
// directories can be compared.
func idOf(a *App) string {
	if a == nil {
		return ""
	}
	return a.InstanceID
}

// sameApp reports whether two directories handed out the same app.
func sameApp(a, b *App) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(*a, *b)
}

// compareDirs fails t at the first query on which got differs from want
// (built from scratch from apps) or from the old snapshot implementation.
// step says how got came about.
func compareDirs(t *testing.T, step string, got *Directory, apps []App, p probes) {
	t.Helper()
	want := NewDirectory(apps)
	snap := newSnapshot(apps)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s: %s", step, fmt.Sprintf(format, args...))
	}

	if got.Len() != len(apps) || want.Len() != len(apps) {
		fail("Len = %d, from scratch %d; want %d", got.Len(), want.Len(), len(apps))
	}
	var gotIDs, wantIDs []string
	for _, a := range got.Apps() {
		gotIDs = append(gotIDs, a.InstanceID)
	}
	for _, a := range apps {
		wantIDs = append(wantIDs, a.InstanceID)
	}
	slices.Sort(gotIDs)
	slices.Sort(wantIDs)
	if !slices.Equal(gotIDs, wantIDs) {
		fail("Apps = %q; want %q", gotIDs, wantIDs)
	}

	for _, id := range p.ids {
		g, gok := got.Lookup(id)
		w, wok := want.Lookup(id)
		s, sok := snap.lookup(id)
		if gok != wok || gok != sok || !sameApp(g, w) || !sameApp(g, s) {
			fail("Lookup(%q) = %+v, %v; from scratch %+v, %v; snapshot %+v, %v", id, g, gok, w, wok, s, sok)
		}
		if !gok {
			continue
		}
		// Each directory is asked about its own *App, as callers do.
		if g, w, s := got.Authorities(g), want.Authorities(w), snap.authorities(s); !equal(g, w) || !equal(g, s) {
			fail("Authorities(%s) = %q; from scratch %q; snapshot %q", id, g, w, s)
		}
		if g, w, s := got.ClientScopes(g), want.ClientScopes(w), snap.clientScopes(s); !equal(g, w) || !equal(g, s) {
			fail("ClientScopes(%s) = %q; from scratch %q; snapshot %q", id, g, w, s)
		}
		for _, tpl := range p.templates {
			gs, gok := got.RoleTemplateScopes(g, tpl)
			ws, wok := want.RoleTemplateScopes(w, tpl)
			ss, sok := snap.roleTemplateScopes(s, tpl)
			if gok != wok || gok != sok || !equal(gs, ws) || !equal(gs, ss) {
				fail("RoleTemplateScopes(%s, %q) = %q, %v; from scratch %q, %v; snapshot %q, %v", id, tpl, gs, gok, ws, wok, ss, sok)
			}
		}
		for _, name := range p.refs {
			ge, gok := got.Expand(g, name)
			we, wok := want.Expand(w, name)
			se, sok := snap.expand(s, name)
			if ge != we || ge != se || gok != wok || gok != sok {
				fail("Expand(%s, %q) = %q, %v; from scratch %q, %v; snapshot %q, %v", id, name, ge, gok, we, wok, se, sok)
			}
			r, err := descriptor.ParseRef(name)
			if err != nil {
				continue
			}
			gr, gok := got.Resolve(g, r)
			wr, wok := want.Resolve(w, r)
			sr, sok := snap.resolve(s, r)
			if gok != wok || gok != sok || !sameApp(gr, wr) || !sameApp(gr, sr) {
				fail("Resolve(%s, %q) = %q, %v; from scratch %q, %v; snapshot %q, %v", id, name, idOf(gr), gok, idOf(wr), wok, idOf(sr), sok)
			}
		}
	}

	for _, fn := range p.fullNames {
		for _, tpl := range p.templates {
			ref := fn + "." + tpl
			ga, gn, gok := got.FindTemplate(ref)
			wa, wn, wok := want.FindTemplate(ref)
			sa, sn, sok := snap.findTemplate(ref)
			if gok != wok || gok != sok || gn != wn || gn != sn || !sameApp(ga, wa) || !sameApp(ga, sa) {
				fail("FindTemplate(%q) = %q, %q, %v; from scratch %q, %q, %v; snapshot %q, %q, %v",
					ref, idOf(ga), gn, gok, idOf(wa), wn, wok, idOf(sa), sn, sok)
			}
		}
	}
}

// appSet is the current content of a Directory under test, in the order
// the apps were last upserted.
type appSet []App

func (s appSet) upsert(a App) appSet {
	s = s.remove(a.InstanceID)
	return append(s, a)
}

func (s appSet) remove(id string) appSet {
	return slices.DeleteFunc(slices.Clone(s), func(a App) bool { return a.InstanceID == id })
}

// grantFixtures are the zones of the table tests of grants_test.go (and a
// few more) that involve more than one app: grants by every kind of
// reference, shadowed duplicates, other spaces and orgs.
func grantFixtures() map[string][]App {
	accept := []string{"$ACCEPT_GRANTED_AUTHORITIES"}
	grantRead := app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
		userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)"),
		userGrant("$XSAPPNAME.Write", "$XSSERVICENAME(a-uaa)"),
		userGrant("$XSAPPNAME.NotForA", "$XSAPPNAME(application,c)"),
		scope("$XSAPPNAME.Plain"),
	}})
	broker := App{InstanceID: "id-broker", Plan: "broker", BaseName: "xsuaa-broker", FullName: "xsuaa-broker!b8", ClientID: "sb-xsuaa-broker!b8",
		SpaceGUID: space1, InstanceName: "reuse", Descriptor: &descriptor.Descriptor{XSAppName: "xsuaa-broker", Authorities: accept}}
	dupX1 := app("x", descriptor.Descriptor{Authorities: accept, RoleTemplates: []descriptor.RoleTemplate{{Name: "V"}}})
	dupX2 := app("x", descriptor.Descriptor{Authorities: accept, RoleTemplates: []descriptor.RoleTemplate{{Name: "V"}}})
	dupX1.InstanceID, dupX2.InstanceID = "id-1", "id-2"
	dupX2.OrgGUID = "org-2"
	payroll := App{InstanceID: "p", Plan: "application", BaseName: "payroll", FullName: "payroll!t1", ClientID: "sb-payroll!t1", OrgGUID: "org-a", SpaceGUID: "s1",
		Descriptor: &descriptor.Descriptor{XSAppName: "payroll", Scopes: []descriptor.Scope{{Name: "$XSAPPNAME.Callback", GrantAsAuthorityToApps: []string{"$XSAPPNAME(application,reporting)"}}}}}
	squatter := App{InstanceID: "r", Plan: "application", BaseName: "reporting", FullName: "reporting!t9", ClientID: "sb-reporting!t9", OrgGUID: "org-b", SpaceGUID: "s9",
		Descriptor: &descriptor.Descriptor{XSAppName: "reporting", Authorities: accept}}
	sameOrg := squatter
	sameOrg.InstanceID, sameOrg.OrgGUID = "r2", "org-a"
	return map[string][]App{
		"accept all from two granters": {
			app("a", descriptor.Descriptor{Authorities: accept}),
			app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)"),
				authGrant("$XSAPPNAME.Other", "$XSAPPNAME(application,a)"),
				authGrant("$XSAPPNAME.NotForA", "$XSAPPNAME(application,c)"),
			}}),
			app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Trigger", "$XSAPPNAME(application,a)")}}),
		},
		"explicit acceptance": {
			app("a", descriptor.Descriptor{Authorities: []string{"$XSAPPNAME(application,b).Callback", "c!t3.Trigger"}}),
			app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)"),
				authGrant("$XSAPPNAME.Other", "$XSAPPNAME(application,a)"),
			}}),
			app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Trigger", "$XSAPPNAME(application,a)")}}),
		},
		"$XSSERVICENAME across spaces": {
			app("a", descriptor.Descriptor{Authorities: accept}),
			inSpace(app("a2", descriptor.Descriptor{Authorities: accept}), space2),
			inSpace(app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSSERVICENAME(a-uaa)")}}), space2),
			app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSSERVICENAME(a-uaa)")}}),
		},
		"broker plan": {
			broker,
			app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(broker,xsuaa-broker)"),
				authGrant("$XSAPPNAME.WrongPlan", "$XSAPPNAME(application,xsuaa-broker)"),
			}}),
		},
		"namespace and malformed grants": {
			app("a", descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES", "$XSAPPNAME(application,ghost).x", "$BROKEN(", "$XSSERVICENAME(ghost).y"}}),
			app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,ghost)", "$XSAPPNAME(application,a"),
				authGrant("$XSAPPNAME.Ok", "$XSAPPNAME(application,ghost)", "$XSAPPNAME(application,a)"),
				authGrant("uaa.admin", "$XSAPPNAME(application,a)"),
				authGrant("$XSAPPNAME(application,c).Admin", "$XSAPPNAME(application,a)"),
				authGrant("$XSAPPNAME.Suffix", "$XSAPPNAME(application,a).x"),
				userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)"),
			}}),
			app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Admin")}}),
		},
		"self grants": {
			app("a", descriptor.Descriptor{
				Scopes:                 []descriptor.Scope{{Name: "$XSAPPNAME.Mine", GrantAsAuthorityToApps: []string{"$XSAPPNAME"}, GrantedApps: []string{"$XSAPPNAME"}}},
				Authorities:            accept,
				ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
			}),
		},
		"client scopes": {
			app("a", descriptor.Descriptor{
				ForeignScopeReferences: []string{"$XSAPPNAME(application,b).Read", "$XSAPPNAME(application,b).Plain"},
				RoleTemplates: []descriptor.RoleTemplate{
					{Name: "V", ScopeReferences: []string{"$XSAPPNAME(application,b).Write", "$XSAPPNAME(application,ghost).x", "uaa.user"}},
				},
			}),
			grantRead,
			app("c", descriptor.Descriptor{ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"}}),
			inSpace(app("d", descriptor.Descriptor{ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"}}), space2),
		},
		"role templates": {
			app("a", descriptor.Descriptor{
				Scopes: []descriptor.Scope{scope("$XSAPPNAME.Display"), scope("$XSAPPNAME.Admin")},
				RoleTemplates: []descriptor.RoleTemplate{
					{Name: "Viewer", ScopeReferences: []string{"$XSAPPNAME.Display", "$XSAPPNAME(application,b).Read", "$XSAPPNAME(application,b).Secret", "c!t3.Hack"}},
					{Name: "Token_Exchange", ScopeReferences: []string{"uaa.user"}},
				},
			}),
			app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)"), scope("$XSAPPNAME.Secret")}}),
			app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Hack")}}),
		},
		"duplicate lookup keys": {
			dupX1, dupX2,
			app("g", descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.G", "$XSAPPNAME(application,x)", "$XSSERVICENAME(x-uaa)"),
			}}),
		},
		"other org": {payroll, squatter, sameOrg},
	}
}

// permutations returns every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// TestIncrementalFixtures builds each fixture zone by Upsert in every order
// (so grants are filed before and after their targets appear), then takes
// it apart again by Remove in the reverse order, comparing with a
// directory built from scratch after every step.
func TestIncrementalFixtures(t *testing.T) {
	for name, apps := range grantFixtures() {
		t.Run(name, func(t *testing.T) {
			p := probesFor(apps)
			for _, order := range permutations(len(apps)) {
				d := NewDirectory(nil)
				var cur appSet
				var log []string
				for _, i := range order {
					d.Upsert(apps[i])
					cur = cur.upsert(apps[i])
					log = append(log, "+"+apps[i].InstanceID)
					compareDirs(t, strings.Join(log, " "), d, cur, p)
				}
				for _, i := range slices.Backward(order) {
					d.Remove(apps[i].InstanceID)
					cur = cur.remove(apps[i].InstanceID)
					log = append(log, "-"+apps[i].InstanceID)
					compareDirs(t, strings.Join(log, " "), d, cur, p)
				}
			}
		})
	}
}

// randomZone draws apps from a small world, so that lookup keys collide,
// references name present, absent and shadowed apps, and an InstanceID
// comes back with different keys and grants.
type randomZone struct {
	rng *rand.Rand
}

var (
	rzIDs       = []string{"id0", "id1", "id2", "id3", "id4", "id5", "id6"}
	rzPlans     = []string{"application", "broker"}
	rzBases     = []string{"a", "b", "c"}
	rzOrgs      = []string{"o1", "o2"}
	rzSpaces    = []string{"s1", "s2"}
	rzInstances = []string{"a-uaa", "b-uaa", "c-uaa"}
	// App references, as found in grant lists.
	rzAppRefs = []string{
		"$XSAPPNAME", "$XSAPPNAME(application,a)", "$XSAPPNAME(application,b)", "$XSAPPNAME(broker,b)",
		"$XSAPPNAME(application,c,extra)", "$XSAPPNAME( broker , c )", "$XSSERVICENAME(a-uaa)", "$XSSERVICENAME(b-uaa)",
		"$XSSERVICENAME(c-uaa)", "$XSAPPNAME(application,a).x", "$XSAPPNAME(application,a", "b!t1", "$ACCEPT_GRANTED_AUTHORITIES",
	}
	// Scope names, as found in authorities, foreign-scope-references and
	// role templates.
	rzScopeRefs = []string{
		"$XSAPPNAME.S0", "$XSAPPNAME.S1", "$XSAPPNAME(application,a).S0", "$XSAPPNAME(application,b).S1",
		"$XSAPPNAME(broker,b).S0", "$XSAPPNAME(broker,c).S2", "$XSSERVICENAME(a-uaa).S1", "$XSSERVICENAME(c-uaa).S0",
		"a!t1.S0", "b!t2.S1", "uaa.user", "lit", "$XSAPPNAME(application,ghost).S0", "$BROKEN(",
	}
	rzScopeNames = []string{"$XSAPPNAME.S0", "$XSAPPNAME.S1", "$XSAPPNAME.S2", "$XSAPPNAME", "uaa.user", "lit", "uaa.admin", "a!t1.S0"}
	rzTemplates  = []string{"R0", "R1", "v1.R"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func picks[T any](r *rand.Rand, s []T, max int) []T {
	var out []T
	for range r.IntN(max + 1) {
		out = append(out, pick(r, s))
	}
	return out
}

func (z randomZone) app(id string) App {
	r := z.rng
	base := pick(r, rzBases)
	a := App{
		InstanceID:   id,
		Plan:         pick(r, rzPlans),
		BaseName:     base,
		FullName:     fmt.Sprintf("%s!t%d", base, 1+r.IntN(2)),
		OrgGUID:      pick(r, rzOrgs),
		SpaceGUID:    pick(r, rzSpaces),
		InstanceName: pick(r, rzInstances),
	}
	a.ClientID = "sb-" + a.FullName
	if r.IntN(10) == 0 {
		return a // no descriptor
	}
	d := &descriptor.Descriptor{XSAppName: base}
	for range r.IntN(5) {
		d.Scopes = append(d.Scopes, descriptor.Scope{
			Name:                   pick(r, rzScopeNames),
			GrantAsAuthorityToApps: picks(r, rzAppRefs, 2),
			GrantedApps:            picks(r, rzAppRefs, 2),
		})
	}
	d.Authorities = picks(r, append([]string{"$ACCEPT_GRANTED_AUTHORITIES"}, rzScopeRefs...), 3)
	d.ForeignScopeReferences = picks(r, append([]string{"$ACCEPT_GRANTED_SCOPES"}, rzScopeRefs...), 3)
	for range r.IntN(3) {
		d.RoleTemplates = append(d.RoleTemplates, descriptor.RoleTemplate{Name: pick(r, rzTemplates), ScopeReferences: picks(r, rzScopeRefs, 4)})
	}
	a.Descriptor = d
	return a
}

// TestIncrementalRandom applies random sequences of Upsert and Remove and
// compares with a directory built from scratch after every step. The
// sequences are seeded, so a failure can be replayed; the step log in the
// message says how the directory came about.
func TestIncrementalRandom(t *testing.T) {
	const sequences, steps = 200, 40
	// Every app the world can produce is described by these probes.
	universe := randomUniverse()
	p := probesFor(universe)
	for seed := range uint64(sequences) {
		z := randomZone{rng: rand.New(rand.NewPCG(seed, 7))}
		d := NewDirectory(nil)
		var cur appSet
		var log []string
		for range steps {
			id := pick(z.rng, rzIDs)
			switch n := z.rng.IntN(10); {
			case n < 6:
				a := z.app(id)
				d.Upsert(a)
				cur = cur.upsert(a)
				log = append(log, "+"+id)
			case n < 8:
				// The same app changed in its grants only, or moved to
				// another key, as an update of the instance would.
				old := slices.IndexFunc(cur, func(a App) bool { return a.InstanceID == id })
				if old < 0 {
					continue
				}
				a := z.app(id)
				if n == 6 {
					a.Plan, a.BaseName, a.FullName, a.OrgGUID, a.SpaceGUID, a.InstanceName =
						cur[old].Plan, cur[old].BaseName, cur[old].FullName, cur[old].OrgGUID, cur[old].SpaceGUID, cur[old].InstanceName
				} else {
					a.Descriptor = cur[old].Descriptor
				}
				d.Upsert(a)
				cur = cur.upsert(a)
				log = append(log, "~"+id)
			default:
				d.Remove(id)
				cur = cur.remove(id)
				log = append(log, "-"+id)
			}
			compareDirs(t, fmt.Sprintf("seed %d: %s", seed, strings.Join(log, " ")), d, cur, p)
		}
	}
}

// randomUniverse returns one app per combination of keys of the random
// world, so that probesFor covers every name the world can produce.
func randomUniverse() []App {
	var out []App
	for _, plan := range rzPlans {
		for _, base := range rzBases {
			for _, inst := range rzInstances {
				for t := 1; t <= 2; t++ {
					out = append(out, App{
						InstanceID: rzIDs[len(out)%len(rzIDs)], Plan: plan, BaseName: base, InstanceName: inst,
						FullName: fmt.Sprintf("%s!t%d", base, t),
						Descriptor: &descriptor.Descriptor{
							Scopes:                 []descriptor.Scope{{Name: "x", GrantAsAuthorityToApps: rzAppRefs}},
							ForeignScopeReferences: rzScopeRefs,
							RoleTemplates:          []descriptor.RoleTemplate{{Name: rzTemplates[0]}, {Name: rzTemplates[1]}, {Name: rzTemplates[2]}},
						},
					})
				}
			}
		}
	}
	return out
}

// TestNewDirectoryDuplicateInstanceIDs: of apps sharing an InstanceID the
// first one is taken, whatever the order of the others, and the others are
// not there at all: no lookup key finds them and their grants do not count.
func TestNewDirectoryDuplicateInstanceIDs(t *testing.T) {
	first := app("a", descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES"}})
	second := app("other", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Sneaky", "$XSAPPNAME(application,a)")}})
	second.InstanceID = first.InstanceID
	granter := app("g", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Ok", "$XSAPPNAME(application,a)")}})

	d := NewDirectory([]App{first, granter, second})
	compareDirs(t, "first, granter, duplicate", d, []App{first, granter}, probesFor([]App{first, second, granter}))
	got := mustLookup(t, d, first.InstanceID)
	if got.BaseName != "a" {
		t.Errorf("Lookup = %q; want the first app", got.BaseName)
	}
	if a, ok := d.Resolve(got, descriptor.Ref{Kind: descriptor.App, Plan: "application", App: "other"}); ok {
		t.Errorf("the shadowed duplicate is found by its xsappname: %+v", a)
	}
	if want := []string{"g!t3.Ok", "uaa.resource"}; !equal(d.Authorities(got), want) {
		t.Errorf("Authorities = %q; want %q", d.Authorities(got), want)
	}
}

// TestUpsertKeepsHandedOutApps: an *App handed out before an update keeps
// describing the app as it was; Apps returns a slice of its own.
func TestUpsertKeepsHandedOutApps(t *testing.T) {
	d := NewDirectory([]App{app("a", descriptor.Descriptor{}), app("b", descriptor.Descriptor{})})
	before := mustLookup(t, d, "id-a")
	all := d.Apps()

	changed := app("a", descriptor.Descriptor{})
	changed.FullName = "a!t9"
	d.Upsert(changed)
	d.Remove("id-b")
	d.Upsert(app("c", descriptor.Descriptor{}))

	if before.FullName != "a!t3" {
		t.Errorf("handed-out app modified: FullName = %q", before.FullName)
	}
	if after := mustLookup(t, d, "id-a"); after.FullName != "a!t9" || after == before {
		t.Errorf("Lookup after Upsert = %p %q; want a new app a!t9", after, after.FullName)
	}
	if len(all) != 2 || idOf(all[0]) == "id-c" || idOf(all[1]) == "id-c" {
		t.Errorf("Apps slice changed by later updates: %v", all)
	}
	changed.FullName = "changed by the caller"
	if got := mustLookup(t, d, "id-a"); got.FullName != "a!t9" {
		t.Errorf("directory shares the caller's App: FullName = %q", got.FullName)
	}
	if _, _, ok := d.FindTemplate("a!t3.X"); ok {
		t.Error("old full name still found")
	}
	if d.Len() != 2 {
		t.Errorf("Len = %d; want 2", d.Len())
	}
}

// TestZeroDirectory: the zero Directory is empty and can be updated.
func TestZeroDirectory(t *testing.T) {
	var d Directory
	if d.Len() != 0 || len(d.Apps()) != 0 {
		t.Fatal("zero Directory not empty")
	}
	d.Remove("id-a")
	if _, ok := d.Lookup("id-a"); ok {
		t.Fatal("Lookup in the zero Directory succeeded")
	}
	a := app("a", descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES"}})
	g := app("g", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.X", "$XSAPPNAME(application,a)")}})
	d.Upsert(g)
	d.Upsert(a)
	compareDirs(t, "zero value + g + a", &d, []App{g, a}, probesFor([]App{g, a}))
}

// TestRemoveWithdrawsOnlyTheGranter: removing one of several granters of
// the same app, or changing its descriptor, leaves the other grants.
func TestRemoveWithdrawsOnlyTheGranter(t *testing.T) {
	target := app("t", descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES"}})
	g := func(name, s string) App {
		return app(name, descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME."+s, "$XSAPPNAME(application,t)")}})
	}
	d := NewDirectory([]App{g("g1", "A"), g("g2", "B"), target})
	tp := mustLookup(t, d, "id-t")
	steps := []struct {
		do   func()
		want []string
	}{
		{func() {}, []string{"g1!t3.A", "g2!t3.B", "uaa.resource"}},
		{func() { d.Remove("id-g1") }, []string{"g2!t3.B", "uaa.resource"}},
		{func() { d.Upsert(g("g2", "C")) }, []string{"g2!t3.C", "uaa.resource"}},
		{func() { d.Upsert(g("g1", "A")) }, []string{"g1!t3.A", "g2!t3.C", "uaa.resource"}},
		{func() { d.Remove("id-t") }, nil},
		{func() { d.Upsert(target) }, []string{"g1!t3.A", "g2!t3.C", "uaa.resource"}},
	}
	for i, s := range steps {
		s.do()
		if s.want == nil {
			if _, ok := d.Lookup("id-t"); ok {
				t.Fatalf("step %d: target still there", i)
			}
			continue
		}
		tp = mustLookup(t, d, "id-t")
		if got := d.Authorities(tp); !equal(got, s.want) {
			t.Errorf("step %d: Authorities = %q; want %q", i, got, s.want)
		}
	}
}

// TestManyGranters covers buckets large enough to be indexed: granters of
// one app are removed, changed and added back in a random order, crossing
// the index threshold both ways.
func TestManyGranters(t *testing.T) {
	const granters = 3 * bucketIndexMin
	target := app("t", descriptor.Descriptor{
		Authorities:            []string{"$ACCEPT_GRANTED_AUTHORITIES"},
		ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
	})
	granter := func(i, v int) App {
		return app(fmt.Sprintf("g%d", i), descriptor.Descriptor{Scopes: []descriptor.Scope{
			authGrant(fmt.Sprintf("$XSAPPNAME.A%d", v), "$XSAPPNAME(application,t)", "$XSSERVICENAME(t-uaa)"),
			userGrant(fmt.Sprintf("$XSAPPNAME.U%d", v), "$XSAPPNAME(application,t)"),
		}})
	}
	d := NewDirectory([]App{target})
	cur := appSet{target}
	r := rand.New(rand.NewPCG(3, 4))
	universe := []App{target}
	for i := range granters {
		universe = append(universe, granter(i, 0))
	}
	p := probesFor(universe)
	var log []string
	for step := range 6 * granters {
		i := r.IntN(granters)
		id := fmt.Sprintf("id-g%d", i)
		if r.IntN(3) == 0 {
			d.Remove(id)
			cur = cur.remove(id)
			log = append(log, "-"+id)
		} else {
			a := granter(i, step)
			d.Upsert(a)
			cur = cur.upsert(a)
			log = append(log, "+"+id)
		}
		// Comparing every app at every step costs too much here; the
		// target is the one whose buckets change.
		if step%8 == 7 || step == 6*granters-1 {
			compareDirs(t, strings.Join(log, " "), d, cur, p)
		}
		got, want := d.Authorities(mustLookup(t, d, "id-t")), NewDirectory(cur).Authorities(&target)
		if !equal(got, want) {
			t.Fatalf("%s: Authorities(t) = %q; want %q", strings.Join(log, " "), got, want)
		}
	}
}

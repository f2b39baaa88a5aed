package grants

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

const space1, space2 = "space-1", "space-2"

// app builds an application-plan App named base!t3 in space1.
func app(base string, d descriptor.Descriptor) App {
	d.XSAppName = base
	return App{
		InstanceID:   "id-" + base,
		Plan:         "application",
		BaseName:     base,
		FullName:     base + "!t3",
		ClientID:     "sb-" + base + "!t3",
		SpaceGUID:    space1,
		InstanceName: base + "-uaa",
		Descriptor:   &d,
	}
}

func inSpace(a App, space string) App { a.SpaceGUID = space; return a }

func scope(name string) descriptor.Scope { return descriptor.Scope{Name: name} }

func authGrant(name string, to ...string) descriptor.Scope {
	return descriptor.Scope{Name: name, GrantAsAuthorityToApps: to}
}

func userGrant(name string, to ...string) descriptor.Scope {
	return descriptor.Scope{Name: name, GrantedApps: to}
}

func mustLookup(t *testing.T, d *Directory, id string) *App {
	t.Helper()
	a, ok := d.Lookup(id)
	if !ok {
		t.Fatalf("Lookup(%q): not found", id)
	}
	return a
}

func equal(got, want []string) bool {
	if len(got) == 0 && len(want) == 0 {
		return true
	}
	return reflect.DeepEqual(got, want)
}

func TestResolveAndExpand(t *testing.T) {
	broker := App{InstanceID: "id-broker", Plan: "broker", BaseName: "xsuaa-broker", FullName: "xsuaa-broker!b8",
		ClientID: "sb-xsuaa-broker!b8", SpaceGUID: space1, InstanceName: "reuse"}
	d := NewDirectory([]App{
		app("a", descriptor.Descriptor{}),
		app("b", descriptor.Descriptor{}),
		inSpace(app("far", descriptor.Descriptor{}), space2),
		broker,
	})
	a := mustLookup(t, d, "id-a")
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"self", "$XSAPPNAME", "a!t3", true},
		{"self scope", "$XSAPPNAME.Display", "a!t3.Display", true},
		{"other app", "$XSAPPNAME(application,b).Read", "b!t3.Read", true},
		{"other app, spaces around args", "$XSAPPNAME( application , b ).Read", "b!t3.Read", true},
		{"three-argument form ignores the third", "$XSAPPNAME(application,b,tenant-onboarding)", "b!t3", true},
		{"other space is fine for $XSAPPNAME(plan,app)", "$XSAPPNAME(application,far)", "far!t3", true},
		{"broker plan", "$XSAPPNAME(broker,xsuaa-broker).x", "xsuaa-broker!b8.x", true},
		{"wrong plan", "$XSAPPNAME(broker,b)", "", false},
		{"plan compared as given", "$XSAPPNAME(Application,b)", "", false},
		{"unknown app", "$XSAPPNAME(application,nope).x", "", false},
		{"service same space", "$XSSERVICENAME(b-uaa).Read", "b!t3.Read", true},
		{"service broker instance", "$XSSERVICENAME(reuse)", "xsuaa-broker!b8", true},
		{"service other space", "$XSSERVICENAME(far-uaa)", "", false},
		{"literal", "uaa.user", "uaa.user", true},
		{"accept authorities", "$ACCEPT_GRANTED_AUTHORITIES", "", false},
		{"accept scopes", "$ACCEPT_GRANTED_SCOPES", "", false},
		{"malformed", "$XSAPPNAME(application,b", "", false},
		{"unknown $ word", "$FOO.x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := d.Expand(a, tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Expand(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestDuplicateKeysDeterministic(t *testing.T) {
	x1 := app("x", descriptor.Descriptor{})
	x2 := app("x", descriptor.Descriptor{})
	x1.InstanceID, x2.InstanceID = "id-1", "id-2"
	x2.FullName = "x!t4"
	for _, order := range [][]App{{x1, x2}, {x2, x1}} {
		d := NewDirectory(order)
		r, _ := descriptor.ParseRef("$XSAPPNAME(application,x)")
		got, ok := d.Resolve(&x1, r)
		if !ok || got.InstanceID != "id-1" {
			t.Errorf("Resolve = %+v, %v; want id-1", got, ok)
		}
	}
}

func TestLookupCopiesInput(t *testing.T) {
	apps := []App{app("a", descriptor.Descriptor{})}
	d := NewDirectory(apps)
	apps[0].FullName = "changed"
	if a := mustLookup(t, d, "id-a"); a.FullName != "a!t3" {
		t.Errorf("directory shares the caller's slice: FullName = %q", a.FullName)
	}
	if _, ok := d.Lookup("id-nope"); ok {
		t.Error("Lookup of unknown id succeeded")
	}
}

func TestAuthorities(t *testing.T) {
	accept := []string{"$ACCEPT_GRANTED_AUTHORITIES"}
	tests := []struct {
		name   string
		apps   []App
		target string
		want   []string
	}{
		{
			name:   "nothing declared",
			apps:   []App{app("a", descriptor.Descriptor{})},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name:   "nil descriptor",
			apps:   []App{{InstanceID: "id-a", Plan: "application", BaseName: "a", FullName: "a!t3"}},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "own authorities: listed local scopes only",
			apps: []App{app("a", descriptor.Descriptor{
				Scopes:      []descriptor.Scope{scope("$XSAPPNAME.Callback"), scope("$XSAPPNAME.cds.Subscriber"), scope("$XSAPPNAME.Display")},
				Authorities: []string{"$XSAPPNAME.Callback", "$XSAPPNAME.cds.Subscriber", "$XSAPPNAME.Callback"},
			})},
			target: "id-a",
			want:   []string{"a!t3.Callback", "a!t3.cds.Subscriber", "uaa.resource"},
		},
		{
			name: "own authority in literal form",
			apps: []App{app("a", descriptor.Descriptor{
				Scopes:      []descriptor.Scope{scope("$XSAPPNAME.Callback")},
				Authorities: []string{"a!t3.Callback"},
			})},
			target: "id-a",
			want:   []string{"a!t3.Callback", "uaa.resource"},
		},
		{
			name: "undeclared own name and $XSAPPNAME alone are ignored",
			apps: []App{app("a", descriptor.Descriptor{
				Scopes:      []descriptor.Scope{scope("$XSAPPNAME.Callback")},
				Authorities: []string{"$XSAPPNAME.Ghost", "$XSAPPNAME"},
			})},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "reserved or foreign-looking literals are never own",
			apps: []App{app("a", descriptor.Descriptor{
				Scopes:      []descriptor.Scope{scope("uaa.admin"), scope("b!t3.Admin")},
				Authorities: []string{"uaa.admin", "b!t3.Admin"},
			})},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "$ACCEPT_GRANTED_AUTHORITIES takes every grant",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)"),
					authGrant("$XSAPPNAME.Other", "$XSAPPNAME(application,a)"),
					authGrant("$XSAPPNAME.NotForA", "$XSAPPNAME(application,c)"),
				}}),
				app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Trigger", "$XSAPPNAME(application,a)"),
				}}),
			},
			target: "id-a",
			want:   []string{"b!t3.Callback", "b!t3.Other", "c!t3.Trigger", "uaa.resource"},
		},
		{
			name: "explicit acceptance by reference and by literal name",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: []string{"$XSAPPNAME(application,b).Callback", "c!t3.Trigger"}}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)"),
					authGrant("$XSAPPNAME.Other", "$XSAPPNAME(application,a)"),
				}}),
				app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Trigger", "$XSAPPNAME(application,a)"),
				}}),
			},
			target: "id-a",
			want:   []string{"b!t3.Callback", "c!t3.Trigger", "uaa.resource"},
		},
		{
			name: "grant not accepted",
			apps: []App{
				app("a", descriptor.Descriptor{}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)")}}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "accepted by name but not granted",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: []string{"$XSAPPNAME(application,b).Callback"}}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Callback")}}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "granting app deleted",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: append([]string{"$XSAPPNAME(application,b).Callback"}, accept...)}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "grant via $XSSERVICENAME in the same space",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSSERVICENAME(a-uaa)")}}),
			},
			target: "id-a",
			want:   []string{"b!t3.Callback", "uaa.resource"},
		},
		{
			name: "grant via $XSSERVICENAME from another space does not reach",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				inSpace(app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSSERVICENAME(a-uaa)")}}), space2),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "$XSSERVICENAME resolves in the granter's space, not the grantee's",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				inSpace(app("a2", descriptor.Descriptor{Authorities: accept}), space2),
				inSpace(app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSSERVICENAME(a-uaa)")}}), space2),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "grant to the broker plan",
			apps: []App{
				{InstanceID: "id-broker", Plan: "broker", BaseName: "xsuaa-broker", FullName: "xsuaa-broker!b8", ClientID: "sb-xsuaa-broker!b8",
					SpaceGUID: space1, InstanceName: "reuse", Descriptor: &descriptor.Descriptor{XSAppName: "xsuaa-broker", Authorities: accept}},
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(broker,xsuaa-broker)"),
					authGrant("$XSAPPNAME.WrongPlan", "$XSAPPNAME(application,xsuaa-broker)"),
				}}),
			},
			target: "id-broker",
			want:   []string{"b!t3.Callback", "uaa.resource"},
		},
		{
			name: "unresolvable and malformed references are ignored",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES", "$XSAPPNAME(application,ghost).x", "$BROKEN(", "$XSSERVICENAME(ghost).y"}}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,ghost)", "$XSAPPNAME(application,a"),
					authGrant("$XSAPPNAME.Ok", "$XSAPPNAME(application,ghost)", "$XSAPPNAME(application,a)"),
				}}),
			},
			target: "id-a",
			want:   []string{"b!t3.Ok", "uaa.resource"},
		},
		{
			name: "a granter cannot hand out scopes outside its namespace",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
					authGrant("uaa.admin", "$XSAPPNAME(application,a)"),
					authGrant("c!t3.Admin", "$XSAPPNAME(application,a)"),
					authGrant("$XSAPPNAME(application,c).Admin", "$XSAPPNAME(application,a)"),
				}}),
				app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Admin")}}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "a grant entry with a suffix names a scope, not an app",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a).x")}}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			name: "granted-apps does not make an authority",
			apps: []App{
				app("a", descriptor.Descriptor{Authorities: accept}),
				app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)")}}),
			},
			target: "id-a",
			want:   []string{"uaa.resource"},
		},
		{
			// §4.3: bookshop lists its own Callback and accepts jobs' Trigger.
			name: "xsuaa.md §4.3 example",
			apps: []App{
				{InstanceID: "bs", Plan: "application", BaseName: "bookshop", FullName: "bookshop!t41872", ClientID: "sb-bookshop!t41872",
					Descriptor: &descriptor.Descriptor{XSAppName: "bookshop",
						Scopes:      []descriptor.Scope{scope("$XSAPPNAME.Callback")},
						Authorities: []string{"$XSAPPNAME.Callback", "$ACCEPT_GRANTED_AUTHORITIES"}}},
				{InstanceID: "jobs", Plan: "application", BaseName: "jobs", FullName: "jobs!t41872", ClientID: "sb-jobs!t41872",
					Descriptor: &descriptor.Descriptor{XSAppName: "jobs",
						Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Trigger", "$XSAPPNAME(application,bookshop)")}}},
			},
			target: "bs",
			want:   []string{"bookshop!t41872.Callback", "jobs!t41872.Trigger", "uaa.resource"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDirectory(tt.apps)
			got := d.Authorities(mustLookup(t, d, tt.target))
			if !equal(got, tt.want) {
				t.Errorf("Authorities = %q; want %q", got, tt.want)
			}
		})
	}
}

// TestCheck9 is acceptance check 9 of xsuaa.md §10 in both directions: the
// grant reaches the grantee's token and the token's aud names the granter,
// which is what makes the granter's xssec accept it.
func TestCheck9(t *testing.T) {
	mk := func(granter, grantee string) []App {
		return []App{
			app(granter, descriptor.Descriptor{Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,"+grantee+")"),
			}}),
			app(grantee, descriptor.Descriptor{Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES"}}),
		}
	}
	for _, dir := range [][2]string{{"b", "a"}, {"a", "b"}} {
		granter, grantee := dir[0], dir[1]
		t.Run(granter+" grants to "+grantee, func(t *testing.T) {
			d := NewDirectory(mk(granter, grantee))
			to := mustLookup(t, d, "id-"+grantee)
			from := mustLookup(t, d, "id-"+granter)
			got := d.Authorities(to)
			want := []string{granter + "!t3.Callback", "uaa.resource"}
			if !equal(got, want) {
				t.Fatalf("grantee authorities = %q; want %q", got, want)
			}
			aud := Audience(to.ClientID, got)
			wantAud := []string{to.ClientID, granter + "!t3", "uaa"}
			if !equal(aud, wantAud) {
				t.Errorf("aud = %q; want %q", aud, wantAud)
			}
			if got := d.Authorities(from); !equal(got, []string{"uaa.resource"}) {
				t.Errorf("granter authorities = %q; the grant must not flow back", got)
			}
		})
	}
}

func TestClientScopes(t *testing.T) {
	grantRead := app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
		userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)"),
		userGrant("$XSAPPNAME.Write", "$XSSERVICENAME(a-uaa)"),
		userGrant("$XSAPPNAME.NotForA", "$XSAPPNAME(application,c)"),
		scope("$XSAPPNAME.Plain"),
	}})
	tests := []struct {
		name string
		a    descriptor.Descriptor
		more []App
		want []string
	}{
		{
			name: "own scopes and openid",
			a:    descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Display"), scope("$XSAPPNAME.Admin")}},
			want: []string{"a!t3.Admin", "a!t3.Display", "openid"},
		},
		{
			name: "uaa.user declared",
			a:    descriptor.Descriptor{Scopes: []descriptor.Scope{scope("uaa.user")}},
			want: []string{"openid", "uaa.user"},
		},
		{
			name: "uaa.user referenced by a role template",
			a:    descriptor.Descriptor{RoleTemplates: []descriptor.RoleTemplate{{Name: "TE", ScopeReferences: []string{"uaa.user"}}}},
			want: []string{"openid", "uaa.user"},
		},
		{
			name: "uaa.user in foreign-scope-references",
			a:    descriptor.Descriptor{ForeignScopeReferences: []string{"uaa.user"}},
			want: []string{"openid", "uaa.user"},
		},
		{
			name: "granted but not taken up",
			a:    descriptor.Descriptor{},
			more: []App{grantRead},
			want: []string{"openid"},
		},
		{
			name: "foreign-scope-references explicit",
			a:    descriptor.Descriptor{ForeignScopeReferences: []string{"$XSAPPNAME(application,b).Read", "$XSAPPNAME(application,b).Plain", "$XSAPPNAME(application,b).NotForA"}},
			more: []App{grantRead},
			want: []string{"b!t3.Read", "openid"},
		},
		{
			name: "$ACCEPT_GRANTED_SCOPES",
			a:    descriptor.Descriptor{ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"}},
			more: []App{grantRead},
			want: []string{"b!t3.Read", "b!t3.Write", "openid"},
		},
		{
			name: "referenced in a role template",
			a: descriptor.Descriptor{RoleTemplates: []descriptor.RoleTemplate{
				{Name: "V", ScopeReferences: []string{"$XSAPPNAME(application,b).Write", "$XSAPPNAME(application,b).Plain", "$XSAPPNAME(application,ghost).x"}},
			}},
			more: []App{grantRead},
			want: []string{"b!t3.Write", "openid"},
		},
		{
			name: "granted via $XSSERVICENAME from another space does not reach",
			a:    descriptor.Descriptor{ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"}},
			more: []App{inSpace(grantRead, space2)},
			want: []string{"b!t3.Read", "openid"},
		},
		{
			name: "grant-as-authority-to-apps does not make a client scope",
			a:    descriptor.Descriptor{ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"}},
			more: []App{app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,a)")}})},
			want: []string{"openid"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDirectory(append([]App{app("a", tt.a)}, tt.more...))
			got := d.ClientScopes(mustLookup(t, d, "id-a"))
			if !equal(got, tt.want) {
				t.Errorf("ClientScopes = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestRoleTemplateScopes(t *testing.T) {
	a := app("a", descriptor.Descriptor{
		Scopes: []descriptor.Scope{scope("$XSAPPNAME.Display"), scope("$XSAPPNAME.Admin")},
		RoleTemplates: []descriptor.RoleTemplate{
			{Name: "Viewer", ScopeReferences: []string{
				"$XSAPPNAME.Display",
				"$XSAPPNAME(application,b).Read",    // granted
				"$XSAPPNAME(application,b).Secret",  // exists, not granted
				"$XSAPPNAME(application,ghost).Any", // no such app
				"$XSAPPNAME.Undeclared",
				"c!t3.Hack", // literal foreign name, never granted
				"$XSAPPNAME.Display",
			}},
			{Name: "Token_Exchange", ScopeReferences: []string{"uaa.user"}},
			{Name: "Empty"},
		},
	})
	b := app("b", descriptor.Descriptor{Scopes: []descriptor.Scope{
		userGrant("$XSAPPNAME.Read", "$XSAPPNAME(application,a)"),
		scope("$XSAPPNAME.Secret"),
	}})
	d := NewDirectory([]App{a, b, app("c", descriptor.Descriptor{Scopes: []descriptor.Scope{scope("$XSAPPNAME.Hack")}})})
	pa := mustLookup(t, d, "id-a")
	tests := []struct {
		template string
		want     []string
		ok       bool
	}{
		{"Viewer", []string{"a!t3.Display", "b!t3.Read"}, true},
		{"Token_Exchange", []string{"uaa.user"}, true},
		{"Empty", nil, true},
		{"viewer", nil, false},
		{"Missing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			got, ok := d.RoleTemplateScopes(pa, tt.template)
			if ok != tt.ok || !equal(got, tt.want) {
				t.Errorf("RoleTemplateScopes(%q) = %q, %v; want %q, %v", tt.template, got, ok, tt.want, tt.ok)
			}
		})
	}

	// Check 10: A's user token carries B's Read; its aud names B.
	scopes, _ := d.RoleTemplateScopes(pa, "Viewer")
	if aud := Audience(pa.ClientID, append([]string{"openid"}, scopes...)); !equal(aud, []string{"sb-a!t3", "openid", "a!t3", "b!t3"}) {
		t.Errorf("aud = %q", aud)
	}
}

func TestFindTemplate(t *testing.T) {
	d := NewDirectory([]App{
		app("a", descriptor.Descriptor{RoleTemplates: []descriptor.RoleTemplate{{Name: "Viewer"}, {Name: "v1.Admin"}}}),
		{InstanceID: "id-clone", Plan: "broker", BaseName: "x", FullName: "c1!b2|x!b8",
			Descriptor: &descriptor.Descriptor{RoleTemplates: []descriptor.RoleTemplate{{Name: "Op"}}}},
	})
	tests := []struct {
		ref      string
		id, name string
		ok       bool
	}{
		{"a!t3.Viewer", "id-a", "Viewer", true},
		{"a!t3.v1.Admin", "id-a", "v1.Admin", true},
		{"c1!b2|x!b8.Op", "id-clone", "Op", true},
		{"a!t3.Missing", "", "", false},
		{"b!t3.Viewer", "", "", false},
		{"a!t3", "", "", false},
		{"a!t3.", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			a, name, ok := d.FindTemplate(tt.ref)
			var id string
			if a != nil {
				id = a.InstanceID
			}
			if id != tt.id || name != tt.name || ok != tt.ok {
				t.Errorf("FindTemplate(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, id, name, ok, tt.id, tt.name, tt.ok)
			}
		})
	}
}

func TestAudience(t *testing.T) {
	tests := []struct {
		name   string
		client string
		scopes []string
		want   []string
	}{
		{"uaa.resource", "sb-x!t1", []string{"uaa.resource"}, []string{"sb-x!t1", "uaa"}},
		{"app scope", "sb-x!t1", []string{"bookshop!t41872.Admin"}, []string{"sb-x!t1", "bookshop!t41872"}},
		{"last dot", "sb-x!t1", []string{"cis-central!b14.global-account.read"}, []string{"sb-x!t1", "cis-central!b14.global-account"}},
		{"openid", "sb-x!t1", []string{"openid"}, []string{"sb-x!t1", "openid"}},
		{"uaa.none adds nothing", "sb-x!t1", []string{"uaa.none"}, []string{"sb-x!t1"}},
		{"trailing dot adds nothing", "sb-x!t1", []string{"foo."}, []string{"sb-x!t1"}},
		{"no dot adds nothing", "sb-x!t1", []string{"Display"}, []string{"sb-x!t1"}},
		{"duplicates", "sb-x!t1", []string{"a!t1.X", "a!t1.Y", "uaa.user", "uaa.resource"}, []string{"sb-x!t1", "a!t1", "uaa"}},
		{"client id only once", "x", []string{"x.y"}, []string{"x"}},
		{
			"§4.3 example", "sb-bookshop!t41872",
			[]string{"uaa.resource", "bookshop!t41872.Callback", "jobs!t41872.Trigger"},
			[]string{"sb-bookshop!t41872", "uaa", "bookshop!t41872", "jobs!t41872"},
		},
		{
			"§4.4 example", "sb-bookshop!t41872",
			[]string{"openid", "bookshop!t41872.Display", "catalog!t41872.Read", "uaa.user"},
			[]string{"sb-bookshop!t41872", "openid", "bookshop!t41872", "catalog!t41872", "uaa"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Audience(tt.client, tt.scopes); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Audience = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestNarrow(t *testing.T) {
	allowed := []string{"a!t1.Read", "a!t1.Write", "b!t1.*", "c!t1.*.read", "uaa.resource", `d\x!t1.Do`}
	tests := []struct {
		name      string
		requested string
		want      []string
		bad       string // expected InvalidScopeError.Scope
	}{
		{"empty means all", "", allowed, ""},
		{"only separators means all", " ,\t, ", allowed, ""},
		{"subset", "a!t1.Read", []string{"a!t1.Read"}, ""},
		{"space separated, sorted, deduplicated", "uaa.resource a!t1.Read  a!t1.Read", []string{"a!t1.Read", "uaa.resource"}, ""},
		{"comma separated", "a!t1.Write,a!t1.Read", []string{"a!t1.Read", "a!t1.Write"}, ""},
		{"mixed separators", "a!t1.Write, uaa.resource", []string{"a!t1.Write", "uaa.resource"}, ""},
		{"backslash is literal", `d\x!t1.Do`, []string{`d\x!t1.Do`}, ""},
		{"wildcard", "b!t1.Anything", []string{"b!t1.Anything"}, ""},
		{"wildcard does not cross dots", "b!t1.x.y", nil, "b!t1.x.y"},
		{"wildcard needs a character", "b!t1.", nil, "b!t1."},
		{"wildcard in the middle", "c!t1.orders.read", []string{"c!t1.orders.read"}, ""},
		{"wildcard in the middle, wrong tail", "c!t1.orders.write", nil, "c!t1.orders.write"},
		{"requested star is no wildcard", "a!t1.*", nil, "a!t1.*"},
		{"invalid", "a!t1.Read x!t1.Admin", nil, "x!t1.Admin"},
		{"first invalid in sorted order", "z.z a!t1.Nope", nil, "a!t1.Nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Narrow(allowed, tt.requested)
			if tt.bad == "" {
				if err != nil || !equal(got, tt.want) {
					t.Errorf("Narrow(%q) = %q, %v; want %q", tt.requested, got, err, tt.want)
				}
				return
			}
			var ise *InvalidScopeError
			if !errors.As(err, &ise) {
				t.Fatalf("Narrow(%q) = %q, %v; want InvalidScopeError", tt.requested, got, err)
			}
			if ise.Scope != tt.bad || !equal(ise.Valid, allowed) {
				t.Errorf("error = %+v; want Scope %q, Valid %q", ise, tt.bad, allowed)
			}
			want := "Invalid scope: " + tt.bad + ". Did you know that you can get default requested scopes by simply sending no value?"
			if err.Error() != want {
				t.Errorf("Error() = %q; want %q", err.Error(), want)
			}
		})
	}

	// The result must not alias allowed.
	got, _ := Narrow(allowed, "")
	got[0] = "changed"
	if allowed[0] != "a!t1.Read" {
		t.Error("Narrow returned the caller's slice")
	}
}

// BenchmarkAuthorities queries one app in a zone of 10,000 apps, a few of
// which grant it authorities. The cost must not grow with the zone.
func BenchmarkAuthorities(b *testing.B) {
	const n = 10000
	apps := make([]App, 0, n)
	apps = append(apps, app("target", descriptor.Descriptor{
		Scopes:      []descriptor.Scope{scope("$XSAPPNAME.Own")},
		Authorities: []string{"$XSAPPNAME.Own", "$ACCEPT_GRANTED_AUTHORITIES"},
	}))
	for i := 1; i < n; i++ {
		var scopes []descriptor.Scope
		for j := range 5 {
			s := descriptor.Scope{Name: fmt.Sprintf("$XSAPPNAME.S%d", j)}
			switch {
			case i%2000 == 0 && j == 0:
				s.GrantAsAuthorityToApps = []string{"$XSAPPNAME(application,target)"}
			case j == 1:
				// Busy zone: every app grants something to its neighbour.
				s.GrantAsAuthorityToApps = []string{fmt.Sprintf("$XSAPPNAME(application,app%d)", (i+1)%n)}
			}
			scopes = append(scopes, s)
		}
		apps = append(apps, app(fmt.Sprintf("app%d", i), descriptor.Descriptor{Scopes: scopes}))
	}
	d := NewDirectory(apps)
	target := mustLookupB(b, d, "id-target")
	if got := len(d.Authorities(target)); got != 2+n/2000-1 {
		b.Fatalf("target has %d authorities", got)
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Authorities(target)
	}
}

func mustLookupB(b *testing.B, d *Directory, id string) *App {
	a, ok := d.Lookup(id)
	if !ok {
		b.Fatalf("Lookup(%q): not found", id)
	}
	return a
}

// TestResolveStaysInTheOrg: $XSAPPNAME(plan,app) finds an app only in the
// referring app's org, so an app in another org that takes a deleted app's
// name does not inherit the grants made to it.
func TestResolveStaysInTheOrg(t *testing.T) {
	payroll := App{InstanceID: "p", Plan: "application", BaseName: "payroll", FullName: "payroll!t1", ClientID: "sb-payroll!t1", OrgGUID: "org-a", SpaceGUID: "s1",
		Descriptor: &descriptor.Descriptor{XSAppName: "payroll", Scopes: []descriptor.Scope{{Name: "$XSAPPNAME.Callback", GrantAsAuthorityToApps: []string{"$XSAPPNAME(application,reporting)"}}}}}
	squatter := App{InstanceID: "r", Plan: "application", BaseName: "reporting", FullName: "reporting!t9", ClientID: "sb-reporting!t9", OrgGUID: "org-b", SpaceGUID: "s9",
		Descriptor: &descriptor.Descriptor{XSAppName: "reporting", Authorities: []string{"$ACCEPT_GRANTED_AUTHORITIES"}}}
	d := NewDirectory([]App{payroll, squatter})
	p, _ := d.Lookup("p")
	if _, ok := d.Resolve(p, descriptor.Ref{Kind: descriptor.App, Plan: "application", App: "reporting"}); ok {
		t.Fatal("a reference resolved to an app of another org")
	}
	r, _ := d.Lookup("r")
	for _, a := range d.Authorities(r) {
		if a == "payroll!t1.Callback" {
			t.Fatal("an app of another org received the grant")
		}
	}
	// The same app in payroll's org does receive it.
	squatter.OrgGUID = "org-a"
	d = NewDirectory([]App{payroll, squatter})
	r, _ = d.Lookup("r")
	found := false
	for _, a := range d.Authorities(r) {
		found = found || a == "payroll!t1.Callback"
	}
	if !found {
		t.Fatalf("same-org grant missing: %v", d.Authorities(r))
	}
}

func TestTemplateRefSplits(t *testing.T) {
	for ref, want := range map[string][][2]string{
		"app!t1.Viewer":     {{"app!t1", "Viewer"}},
		"app!t1.Team.Admin": {{"app!t1", "Team.Admin"}, {"app!t1.Team", "Admin"}},
		"noDot":             nil,
		".x":                {{"", "x"}},
	} {
		var got [][2]string
		for app, tmpl := range TemplateRefSplits(ref) {
			got = append(got, [2]string{app, tmpl})
		}
		if !slices.Equal(got, want) {
			t.Errorf("TemplateRefSplits(%q) = %v, want %v", ref, got, want)
		}
	}
	for app := range TemplateRefSplits("a.b.c") {
		if app != "a" {
			t.Fatalf("iteration went on after break: %q", app)
		}
		break
	}
}

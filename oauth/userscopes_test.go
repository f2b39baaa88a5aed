package oauth

import (
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
)

// scopeTable is a client table without a store: bookshop grants its
// Export scope to reports, which accepts granted scopes and references
// Export in its Reporter template.
func scopeTable(t *testing.T) (*clientTable, *client, *client) {
	t.Helper()
	bookshop := &descriptor.Descriptor{
		XSAppName: "bookshop",
		Scopes: []descriptor.Scope{
			{Name: "$XSAPPNAME.Read"}, {Name: "$XSAPPNAME.Write"},
			{Name: "$XSAPPNAME.Export", GrantedApps: []string{"$XSAPPNAME(application,reports)"}},
		},
		Attributes: []descriptor.Attribute{{Name: "Country"}, {Name: "Level"}},
		RoleTemplates: []descriptor.RoleTemplate{
			{Name: "Viewer", ScopeReferences: []string{"$XSAPPNAME.Read", "uaa.user"},
				AttributeReferences: []descriptor.AttributeRef{{Name: "Country", DefaultValues: []string{"DE"}}}},
			{Name: "Editor", ScopeReferences: []string{"$XSAPPNAME.Write", "$XSAPPNAME.Undeclared"},
				AttributeReferences: []descriptor.AttributeRef{{Name: "Country", DefaultValues: []string{"FR", "DE"}}, {Name: "Level"}}},
		},
	}
	reports := &descriptor.Descriptor{
		XSAppName:              "reports",
		Scopes:                 []descriptor.Scope{{Name: "$XSAPPNAME.Show"}},
		ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
		RoleTemplates: []descriptor.RoleTemplate{
			{Name: "Reporter", ScopeReferences: []string{"$XSAPPNAME.Show", "$XSAPPNAME(application,bookshop).Export"}},
		},
		OAuth2Configuration: &descriptor.OAuth2Configuration{AllowedProviders: []string{"corp"}},
	}
	apps := []grants.App{
		{InstanceID: "i1", Plan: "application", BaseName: "bookshop", FullName: "bookshop!t1", ClientID: "sb-bookshop!t1", SpaceGUID: "s", Descriptor: bookshop},
		{InstanceID: "i2", Plan: "application", BaseName: "reports", FullName: "reports!t2", ClientID: "sb-reports!t2", SpaceGUID: "s", Descriptor: reports},
	}
	t.Helper()
	tbl := &clientTable{byID: map[string]*client{}, dir: grants.NewDirectory(apps), roleCollections: map[string]*store.RoleCollection{}}
	for name, refs := range map[string][]string{
		"Viewer":   {"bookshop!t1.Viewer"},
		"Editor":   {"bookshop!t1.Editor"},
		"Reporter": {"reports!t2.Reporter"},
		"Mixed":    {"bookshop!t1.Viewer", "reports!t2.Reporter"},
		"Broken":   {"gone!t9.Viewer", "bookshop!t1.NoSuchTemplate"},
	} {
		tbl.roleCollections[name] = &store.RoleCollection{Name: name, RoleTemplates: refs}
	}
	var cls []*client
	for i := range apps {
		app, _ := tbl.dir.Lookup(apps[i].InstanceID)
		cl := &client{ID: app.ClientID, App: app, Descriptor: app.Descriptor}
		tbl.byID[cl.ID] = cl
		cls = append(cls, cl)
	}
	return tbl, cls[0], cls[1]
}

func TestUserGrantFor(t *testing.T) {
	tbl, bookshop, reports := scopeTable(t)
	for _, tc := range []struct {
		name       string
		client     *client
		rcs        []string
		attrs      map[string][]string
		wantScopes []string
		wantAttrs  map[string][]string
		wantRCs    []string
	}{
		{"no role collections", bookshop, nil, nil, []string{"openid"}, map[string][]string{}, nil},
		{"viewer: template default", bookshop, []string{"Viewer"}, nil,
			[]string{"bookshop!t1.Read", "openid", "uaa.user"}, map[string][]string{"Country": {"DE"}}, []string{"Viewer"}},
		{"user values win over defaults", bookshop, []string{"Viewer", "Editor"}, map[string][]string{"Country": {"US"}, "Level": {"1", "2"}},
			[]string{"bookshop!t1.Read", "bookshop!t1.Write", "openid", "uaa.user"},
			map[string][]string{"Country": {"US"}, "Level": {"1", "2"}}, []string{"Viewer", "Editor"}},
		{"defaults of several templates merge without repeats", bookshop, []string{"Viewer", "Editor"}, nil,
			[]string{"bookshop!t1.Read", "bookshop!t1.Write", "openid", "uaa.user"},
			map[string][]string{"Country": {"DE", "FR"}}, []string{"Viewer", "Editor"}},
		{"attributes the templates do not reference stay out", bookshop, []string{"Viewer"}, map[string][]string{"Level": {"9"}, "Other": {"x"}},
			[]string{"bookshop!t1.Read", "openid", "uaa.user"}, map[string][]string{"Country": {"DE"}}, []string{"Viewer"}},
		{"another app's template may hold this client's scope", bookshop, []string{"Reporter"}, nil,
			[]string{"bookshop!t1.Export", "openid"}, map[string][]string{}, []string{"Reporter"}},
		{"granted foreign scope", reports, []string{"Reporter"}, nil,
			[]string{"bookshop!t1.Export", "openid", "reports!t2.Show"}, map[string][]string{}, []string{"Reporter"}},
		{"scopes of another app's template stay out, and so do its attributes", reports, []string{"Viewer"}, map[string][]string{"Country": {"US"}},
			[]string{"openid"}, map[string][]string{}, []string{"Viewer"}},
		{"overlapping collections", bookshop, []string{"Viewer", "Mixed", "Viewer"}, nil,
			[]string{"bookshop!t1.Export", "bookshop!t1.Read", "openid", "uaa.user"}, map[string][]string{"Country": {"DE"}}, []string{"Viewer", "Mixed"}},
		{"unknown collections and dangling templates", bookshop, []string{"Nonexistent", "Broken"}, nil,
			[]string{"openid"}, map[string][]string{}, []string{"Broken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &store.User{ID: "u1", Username: "alice", RoleCollections: tc.rcs, Attributes: tc.attrs}
			g := tbl.userGrantFor(u, tc.client)
			if !slices.Equal(g.Scopes, tc.wantScopes) {
				t.Errorf("scopes %v, want %v", g.Scopes, tc.wantScopes)
			}
			if !reflect.DeepEqual(g.Attributes, tc.wantAttrs) {
				t.Errorf("attributes %v, want %v", g.Attributes, tc.wantAttrs)
			}
			if !slices.Equal(g.RoleCollections, tc.wantRCs) {
				t.Errorf("role collections %v, want %v", g.RoleCollections, tc.wantRCs)
			}
		})
	}
}

func TestGrantScopes(t *testing.T) {
	tbl, bookshop, reports := scopeTable(t)
	alice := &store.User{ID: "u1", Username: "alice", Origin: "sap.default", RoleCollections: []string{"Viewer", "Editor"}}
	for _, tc := range []struct {
		name      string
		client    *client
		user      *store.User
		requested string
		ceiling   []string
		want      []string
		wantErr   string // OAuth error code
	}{
		{"all the user may have", bookshop, alice, "", nil, []string{"bookshop!t1.Read", "bookshop!t1.Write", "openid", "uaa.user"}, ""},
		{"requested subset", bookshop, alice, "openid bookshop!t1.Write", nil, []string{"bookshop!t1.Write", "openid"}, ""},
		{"comma separated", bookshop, alice, "openid,bookshop!t1.Write", nil, []string{"bookshop!t1.Write", "openid"}, ""},
		{"requested client scope the user lacks is dropped", bookshop, alice, "openid bookshop!t1.Export", nil, []string{"openid"}, ""},
		{"only scopes the user lacks", bookshop, alice, "bookshop!t1.Export", nil, nil, "invalid_scope"},
		{"not a client scope", bookshop, alice, "openid reports!t2.Show", nil, nil, "invalid_scope"},
		{"ceiling caps", bookshop, alice, "", []string{"openid", "bookshop!t1.Read"}, []string{"bookshop!t1.Read", "openid"}, ""},
		{"ceiling and request", bookshop, alice, "bookshop!t1.Read bookshop!t1.Write", []string{"openid", "bookshop!t1.Read"}, []string{"bookshop!t1.Read"}, ""},
		{"request outside the ceiling", bookshop, alice, "bookshop!t1.Write", []string{"openid", "bookshop!t1.Read"}, nil, "invalid_scope"},
		{"ceiling the user no longer holds", bookshop, &store.User{ID: "u2", Origin: "sap.default"}, "", []string{"bookshop!t1.Read"}, nil, "invalid_scope"},
		{"empty ceiling", bookshop, alice, "", []string{}, nil, "invalid_scope"},
		{"allowedproviders refuses the origin", reports, alice, "", nil, nil, "unauthorized_client"},
		{"allowedproviders admits the origin", reports, &store.User{ID: "u3", Origin: "corp", RoleCollections: []string{"Reporter"}}, "", nil,
			[]string{"bookshop!t1.Export", "openid", "reports!t2.Show"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, oerr := tbl.grantScopes(tc.client, tc.user, tc.requested, tc.ceiling)
			switch {
			case tc.wantErr != "":
				if oerr == nil || oerr.Code != tc.wantErr {
					t.Errorf("got %v %v, want %s", got, oerr, tc.wantErr)
				}
				if oerr != nil && oerr.Code == "unauthorized_client" && oerr.Status != http.StatusUnauthorized {
					t.Errorf("status %d", oerr.Status)
				}
			case oerr != nil:
				t.Errorf("error %v", oerr)
			case !sameSet(got, tc.want) || len(got) != len(tc.want):
				t.Errorf("scopes %v, want %v", got, tc.want)
			}
			if oerr == nil && got == nil {
				t.Error("nil scopes: the claim would be null, not []")
			}
		})
	}
}

func TestSystemAttributes(t *testing.T) {
	g := userGrant{RoleCollections: []string{"A", "B"}}
	for _, tc := range []struct {
		name    string
		setting []string
		grant   userGrant
		want    map[string][]string
	}{
		{"absent: both", nil, g, map[string][]string{"xs.rolecollections": {"A", "B"}, "xs.saml.groups": {}}},
		{"empty: none", []string{}, g, map[string][]string{}},
		{"rolecollections", []string{"rolecollections"}, g, map[string][]string{"xs.rolecollections": {"A", "B"}}},
		{"groups", []string{"groups"}, g, map[string][]string{"xs.saml.groups": {}}},
		{"no role collections is an empty list", []string{"rolecollections"}, userGrant{}, map[string][]string{"xs.rolecollections": {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &client{Descriptor: &descriptor.Descriptor{OAuth2Configuration: &descriptor.OAuth2Configuration{SystemAttributes: tc.setting}}}
			got := systemAttributes(cl, tc.grant)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			for k, v := range got {
				if v == nil {
					t.Errorf("%s is nil: it would be null in the token", k)
				}
			}
		})
	}
	if got := systemAttributes(&client{Descriptor: &descriptor.Descriptor{}}, g); len(got) != 2 {
		t.Errorf("no oauth2-configuration: %v, want both", got)
	}
}

func TestSplitScopesAndIntersect(t *testing.T) {
	for in, want := range map[string][]string{
		"":                 nil,
		"openid":           {"openid"},
		"a b\tc\nd":        {"a", "b", "c", "d"},
		"a,b, c":           {"a", "b", "c"},
		"  a  ":            {"a"},
		"x!t1.Read,openid": {"x!t1.Read", "openid"},
	} {
		if got := splitScopes(in); !slices.Equal(got, want) {
			t.Errorf("splitScopes(%q) = %q, want %q", in, got, want)
		}
	}
	if got := intersect([]string{"c", "a", "b"}, []string{"b", "c", "z"}); !slices.Equal(got, []string{"c", "b"}) {
		t.Errorf("intersect keeps have's order: %v", got)
	}
	if got := intersect([]string{"a"}, nil); got != nil {
		t.Errorf("intersect with nothing: %v", got)
	}
}

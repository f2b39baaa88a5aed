package oauth

import (
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ossbroker/btp-security-broker/users"
)

var refreshTokenRE = regexp.MustCompile(`^[0-9a-f]{32}-r$`)

// wantScopes asserts the scope claim and the reply's scope string.
func wantScopes(t *testing.T, body, claims map[string]any, want ...string) {
	t.Helper()
	got := strs(t, claims, "scope")
	if !sameSet(got, want) || !unique(got) {
		t.Errorf("scope claim %v, want %v", got, want)
	}
	if s, _ := body["scope"].(string); !sameSet(strings.Fields(s), want) {
		t.Errorf("reply scope %q, want %v", s, want)
	}
}

func TestPasswordGrantAlice(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	body, claims := w.aliceToken()

	wantScopes(t, body, claims, "openid", "uaa.user", w.scope("Read"), w.scope("Write"))
	if aud := strs(t, claims, "aud"); !sameSet(aud, []string{cid, "openid", w.xsapp, "uaa"}) || !unique(aud) {
		t.Errorf("aud %v, want %s, openid, %s, uaa (xsuaa.md §3.7)", aud, cid, w.xsapp)
	}
	for k, want := range map[string]any{
		"sub": w.alice.ID, "user_id": w.alice.ID, "user_name": "alice", "origin": users.DefaultOrigin,
		"email": "alice@example.com", "given_name": "Alice", "family_name": "Doe", "grant_type": "password",
		"client_id": cid, "cid": cid, "azp": cid, "zid": f.zone.ID, "iss": testXsuaaURL + "/oauth/token",
		"jti": body["jti"],
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %#v, want %#v", k, claims[k], want)
		}
	}
	if _, ok := claims["authorities"]; ok {
		t.Errorf("user token carries authorities: %v", claims["authorities"])
	}
	if at, iat := num(t, claims, "auth_time"), num(t, claims, "iat"); at == 0 || at > iat {
		t.Errorf("auth_time %d, iat %d", at, iat)
	}
	if d := num(t, claims, "exp") - num(t, claims, "iat"); d != 900 {
		t.Errorf("exp - iat = %d, want the token-validity 900", d)
	}
	ua, _ := claims["xs.user.attributes"].(map[string]any)
	if !reflect.DeepEqual(ua, map[string]any{"Country": []any{"DE"}, "Level": []any{"3"}}) {
		t.Errorf("xs.user.attributes %v, want Country [DE] (template default) and Level [3] (alice's own)", claims["xs.user.attributes"])
	}
	sa, _ := claims["xs.system.attributes"].(map[string]any)
	rcs, _ := sa["xs.rolecollections"].([]any)
	if !sameSet(anyStrings(rcs), []string{"Bookshop Viewer", "Bookshop Editor"}) {
		t.Errorf("xs.system.attributes %v, want both role collections", claims["xs.system.attributes"])
	}

	if body["token_type"] != "bearer" || body["expires_in"] == nil {
		t.Errorf("reply %v", body)
	}
	if rt, _ := body["refresh_token"].(string); !refreshTokenRE.MatchString(rt) {
		t.Errorf("refresh_token %q, want <32 hex>-r", rt)
	}
	idt, _ := body["id_token"].(string)
	if idt == "" {
		t.Fatalf("no id_token although openid was granted: %v", body)
	}
	_, id := f.parseJWT(idt)
	if aud := strs(t, id, "aud"); !slices.Equal(aud, []string{cid}) {
		t.Errorf("id_token aud %v, want [%s]", aud, cid)
	}
	if id["sub"] != w.alice.ID || id["user_name"] != "alice" || id["email"] != "alice@example.com" || id["azp"] != cid || id["grant_type"] != "password" {
		t.Errorf("id_token claims %v", id)
	}
	if _, ok := id["nonce"]; ok {
		t.Errorf("id_token of a password grant has a nonce: %v", id["nonce"])
	}
}

func anyStrings(in []any) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func TestPasswordGrant(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")

	t.Run("user without role collections gets openid only", func(t *testing.T) {
		body, _, claims := f.mustToken(passwordForm(w.app, "bob", bobPass))
		wantScopes(t, body, claims, "openid")
		if aud := strs(t, claims, "aud"); !sameSet(aud, []string{cid, "openid"}) {
			t.Errorf("aud %v", aud)
		}
		sa, _ := claims["xs.system.attributes"].(map[string]any)
		if rcs, ok := sa["xs.rolecollections"].([]any); !ok || len(rcs) != 0 {
			t.Errorf("xs.system.attributes %v, want empty xs.rolecollections", claims["xs.system.attributes"])
		}
		if ua, ok := claims["xs.user.attributes"].(map[string]any); !ok || len(ua) != 0 {
			t.Errorf("xs.user.attributes %#v, want {}", claims["xs.user.attributes"])
		}
		if claims["user_name"] != "bob" || body["id_token"] == nil {
			t.Errorf("claims %v, reply %v", claims, body)
		}
	})

	t.Run("Basic client authentication and ignored parameters", func(t *testing.T) {
		form := passwordForm(w.app, "bob", bobPass, "app_tid", "", "token_format", "jwt")
		form.Del("client_id")
		form.Del("client_secret")
		body, _, claims := f.mustToken(form, withBasic(cid, w.app.cred("clientsecret")))
		wantScopes(t, body, claims, "openid")
	})

	t.Run("scope narrowing", func(t *testing.T) {
		for _, tc := range []struct {
			scope string
			want  []string
		}{
			{"openid", []string{"openid"}},
			{w.scope("Read"), []string{w.scope("Read")}},
			{"openid " + w.scope("Write"), []string{"openid", w.scope("Write")}},
			{"openid," + w.scope("Read"), []string{"openid", w.scope("Read")}}, // xssec joins with commas
			{w.scope("Read") + " " + w.scope("Admin"), []string{w.scope("Read")}},
		} {
			body, claims := w.aliceToken("scope", tc.scope)
			wantScopes(t, body, claims, tc.want...)
			if (body["id_token"] != nil) != slices.Contains(tc.want, "openid") {
				t.Errorf("scope %q: id_token present %v", tc.scope, body["id_token"] != nil)
			}
		}
	})

	badCreds := map[string]any{"error": "unauthorized", "error_description": "Bad credentials"}
	for _, tc := range []struct {
		name       string
		form       func() (form url.Values)
		wantStatus int
		wantCode   string
		wantBody   map[string]any
	}{
		{"wrong password", func() url.Values { return passwordForm(w.app, "alice", "alice-pass-2") }, 401, "unauthorized", badCreds},
		{"unknown user, same answer", func() url.Values { return passwordForm(w.app, "mallory", alicePass) }, 401, "unauthorized", badCreds},
		{"username case matters", func() url.Values { return passwordForm(w.app, "Alice", alicePass) }, 401, "unauthorized", badCreds},
		{"missing password", func() url.Values { return passwordForm(w.app, "alice", "") }, 400, "invalid_request", nil},
		{"unknown scope", func() url.Values { return passwordForm(w.app, "alice", alicePass, "scope", "other!t9.Read") }, 400, "invalid_scope", nil},
		{"client scope the user lacks", func() url.Values {
			return passwordForm(w.app, "alice", alicePass, "scope", w.scope("Admin"))
		}, 400, "invalid_scope", nil},
		{"wrong client secret", func() url.Values {
			fm := passwordForm(w.app, "alice", alicePass)
			fm["client_secret"] = []string{tweak(w.app.cred("clientsecret"))}
			return fm
		}, 401, "invalid_client", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.token(tc.form())
			wantOAuthError(t, status, body, tc.wantStatus, tc.wantCode)
			if tc.wantBody != nil && !reflect.DeepEqual(body, tc.wantBody) {
				t.Errorf("body %v, want %v", body, tc.wantBody)
			}
		})
	}
	t.Run("invalid scope lists the client's scopes", func(t *testing.T) {
		_, body := f.token(passwordForm(w.app, "alice", alicePass, "scope", "other!t9.Read"))
		if s, _ := body["scope"].(string); !sameSet(strings.Fields(s), []string{"openid", "uaa.user", w.scope("Read"), w.scope("Write"), w.scope("Admin")}) {
			t.Errorf("scope field %q", s)
		}
	})
}

func TestPasswordGrantClientSettings(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	carol := f.addUser(users.Spec{Username: "carol", Password: "carol-pass", Origin: "corp-idp"})

	t.Run("client without the password grant", func(t *testing.T) {
		b := f.bind(f.provisionXsuaa(`{"xsappname":"nopw","oauth2-configuration":{"grant-types":["client_credentials","authorization_code"]}}`), "")
		status, body := f.token(passwordForm(b, "alice", alicePass))
		wantOAuthError(t, status, body, http.StatusBadRequest, "unauthorized_client")
	})

	t.Run("allowedproviders", func(t *testing.T) {
		b := f.bind(f.provisionXsuaa(`{"xsappname":"corp","oauth2-configuration":{"allowedproviders":["corp-idp"]}}`), "")
		status, body := f.token(passwordForm(b, "alice", alicePass))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "unauthorized_client")
		_, _, claims := f.mustToken(passwordForm(b, "carol", "carol-pass"))
		if claims["origin"] != "corp-idp" || claims["user_id"] != carol.ID {
			t.Errorf("carol's token: origin %v user_id %v", claims["origin"], claims["user_id"])
		}
	})

	t.Run("system-attributes", func(t *testing.T) {
		f.addUser(users.Spec{Username: "alice", Password: alicePass, Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe",
			RoleCollections: []string{"Bookshop Viewer"}})
		for _, tc := range []struct {
			setting string
			want    map[string]any
		}{
			{`[]`, map[string]any{}},
			{`["rolecollections"]`, map[string]any{"xs.rolecollections": []any{"Bookshop Viewer"}}},
			{`["groups"]`, map[string]any{"xs.saml.groups": []any{}}},
		} {
			inst := f.provisionXsuaa(`{"xsappname":"sysattr","scopes":[{"name":"$XSAPPNAME.x"}],
				"oauth2-configuration":{"system-attributes":` + tc.setting + `}}`)
			b := f.bind(inst, "")
			_, _, claims := f.mustToken(passwordForm(b, "alice", alicePass))
			if sa, _ := claims["xs.system.attributes"].(map[string]any); !reflect.DeepEqual(sa, tc.want) {
				t.Errorf("system-attributes %s: claim %#v, want %#v", tc.setting, claims["xs.system.attributes"], tc.want)
			}
			f.deprovision(inst)
		}
	})
}

// Role collections are resolved when a token is issued: a collection
// declared after the user was seeded, and a role template changed by an
// instance update, count in the very next token.
func TestPasswordGrantResolvesRolesAtIssue(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	f.addUser(users.Spec{Username: "dave", Password: "dave-pass", RoleCollections: []string{"Bookshop Admin"}})

	_, _, claims := f.mustToken(passwordForm(w.app, "dave", "dave-pass"))
	if got := strs(t, claims, "scope"); !slices.Equal(got, []string{"openid"}) {
		t.Fatalf("before the collection exists: scopes %v", got)
	}

	withAdmin := strings.Replace(bookshopUsers, `"role-collections": [`,
		`"role-collections": [{"name": "Bookshop Admin", "role-template-references": ["$XSAPPNAME.Admin"]},`, 1)
	f.update(w.inst, withAdmin)
	body, _, claims := f.mustToken(passwordForm(w.app, "dave", "dave-pass"))
	wantScopes(t, body, claims, "openid", w.scope("Admin"))
	sa, _ := claims["xs.system.attributes"].(map[string]any)
	if rcs, _ := sa["xs.rolecollections"].([]any); !slices.Equal(anyStrings(rcs), []string{"Bookshop Admin"}) {
		t.Errorf("xs.rolecollections %v", sa)
	}

	// The Admin template now also grants Write.
	f.update(w.inst, strings.Replace(withAdmin, `{"name": "Admin", "scope-references": ["$XSAPPNAME.Admin"]}`,
		`{"name": "Admin", "scope-references": ["$XSAPPNAME.Admin", "$XSAPPNAME.Write"]}`, 1))
	body, _, claims = f.mustToken(passwordForm(w.app, "dave", "dave-pass"))
	wantScopes(t, body, claims, "openid", w.scope("Admin"), w.scope("Write"))

	// Dropping the collection again withdraws the scopes.
	f.update(w.inst, bookshopUsers)
	body, _, claims = f.mustToken(passwordForm(w.app, "dave", "dave-pass"))
	wantScopes(t, body, claims, "openid")
}

package oauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hex8  = regexp.MustCompile(`^[0-9a-f]{8}$`)
)

// strs returns a claim that must be a JSON array of strings.
func strs(t *testing.T, claims map[string]any, name string) []string {
	t.Helper()
	arr, ok := claims[name].([]any)
	if !ok {
		t.Errorf("claim %s = %#v, want an array", name, claims[name])
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		s, ok := v.(string)
		if !ok {
			t.Errorf("claim %s holds %#v, want strings", name, v)
		}
		out = append(out, s)
	}
	return out
}

// num returns a numeric claim (parsed with json.Number).
func num(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	if !ok {
		t.Errorf("claim %s = %#v, want a number", name, claims[name])
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		t.Errorf("claim %s = %s, want an integer", name, n)
	}
	return i
}

// sameSet reports whether a and b hold the same strings, ignoring order and
// repetition.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// unique reports whether s has no repeated entries.
func unique(s []string) bool {
	c := slices.Clone(s)
	slices.Sort(c)
	return len(slices.Compact(c)) == len(s)
}

const bookshop = `{
	"xsappname": "bookshop",
	"scopes": [
		{"name": "$XSAPPNAME.Read", "description": "read"},
		{"name": "$XSAPPNAME.Write", "description": "write"},
		{"name": "$XSAPPNAME.Admin", "description": "admin"}
	],
	"authorities": ["$XSAPPNAME.Read", "$XSAPPNAME.Write"],
	"oauth2-configuration": {"token-validity": 600}
}`

func TestClientCredentialsToken(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(bookshop)
	b := f.bind(inst, "")
	cid, app := b.cred("clientid"), b.cred("xsappname")
	if !strings.HasPrefix(app, "bookshop!t") || cid != "sb-"+app {
		t.Fatalf("clientid %q xsappname %q", cid, app)
	}
	wantScopes := []string{app + ".Read", app + ".Write", "uaa.resource"}

	status, h, raw := f.do(http.MethodPost, "/oauth/token", b.secretForm().Encode())
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, raw)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	body := decodeJSON(t, raw)
	tok, _ := body["access_token"].(string)
	header, claims := f.parseJWT(tok)

	t.Run("header", func(t *testing.T) {
		if header["alg"] != "RS256" || header["typ"] != "JWT" {
			t.Errorf("alg %v typ %v", header["alg"], header["typ"])
		}
		kid, _ := header["kid"].(string)
		if _, ok := f.jwks()[kid]; !ok || kid != f.keys.Current().ID {
			t.Errorf("kid %q: in JWKS %v, current %q", kid, ok, f.keys.Current().ID)
		}
		if header["jku"] != testXsuaaURL+"/token_keys" {
			t.Errorf("jku %v", header["jku"])
		}
	})

	t.Run("claims", func(t *testing.T) {
		jti, _ := claims["jti"].(string)
		if !hex32.MatchString(jti) {
			t.Errorf("jti %q, want 32 hex", jti)
		}
		for _, c := range []string{"sub", "client_id", "cid", "azp"} {
			if claims[c] != cid {
				t.Errorf("%s = %v, want %s", c, claims[c], cid)
			}
		}
		if claims["grant_type"] != ccGrant {
			t.Errorf("grant_type %v", claims["grant_type"])
		}
		if got := strs(t, claims, "scope"); !sameSet(got, wantScopes) {
			t.Errorf("scope %v, want %v", got, wantScopes)
		}
		if got := strs(t, claims, "authorities"); !sameSet(got, wantScopes) {
			t.Errorf("authorities %v, want %v", got, wantScopes)
		}
		if got, want := strs(t, claims, "aud"), []string{cid, app, "uaa"}; !sameSet(got, want) || !unique(got) {
			t.Errorf("aud %v, want %v", got, want)
		}
		if got := strs(t, claims, "scope"); !unique(got) {
			t.Errorf("scope %v has repeated entries", got)
		}
		if claims["zid"] != f.zone.ID || claims["zid"] != b.cred("identityzoneid") {
			t.Errorf("zid %v, zone %s, binding %s", claims["zid"], f.zone.ID, b.cred("identityzoneid"))
		}
		ext, _ := claims["ext_attr"].(map[string]any)
		wantExt := map[string]any{"enhancer": "XSUAA", "zdn": testZoneName, "subaccountid": f.zone.ID, "serviceinstanceid": inst}
		for k, v := range wantExt {
			if ext[k] != v {
				t.Errorf("ext_attr.%s = %v, want %v", k, ext[k], v)
			}
		}
		if ext["zdn"] != b.cred("identityzone") {
			t.Errorf("ext_attr.zdn %v, binding identityzone %s", ext["zdn"], b.cred("identityzone"))
		}
		if claims["iss"] != testXsuaaURL+"/oauth/token" {
			t.Errorf("iss %v", claims["iss"])
		}
		iat, exp := num(t, claims, "iat"), num(t, claims, "exp")
		if exp-iat != 600 {
			t.Errorf("exp - iat = %d, want the token-validity 600", exp-iat)
		}
		// Not a timing assertion: only that iat is today's clock, not 0 or
		// milliseconds.
		if d := time.Since(time.Unix(iat, 0)); d < -time.Hour || d > time.Hour {
			t.Errorf("iat %d is %v away from now", iat, d)
		}
		if rs, _ := claims["rev_sig"].(string); !hex8.MatchString(rs) {
			t.Errorf("rev_sig %q, want 8 hex", rs)
		}
		for _, c := range []string{"user_id", "user_name", "origin", "email", "auth_time", "az_attr", "cnf"} {
			if v, ok := claims[c]; ok {
				t.Errorf("client_credentials token has %s = %v", c, v)
			}
		}
	})

	t.Run("response", func(t *testing.T) {
		if body["token_type"] != "bearer" {
			t.Errorf("token_type %v", body["token_type"])
		}
		if ei, _ := body["expires_in"].(float64); ei != 599 {
			t.Errorf("expires_in %v, want 599 (validity - 1, like XSUAA)", body["expires_in"])
		}
		scope, _ := body["scope"].(string)
		if !sameSet(strings.Split(scope, " "), wantScopes) {
			t.Errorf("scope %q, want the space-separated %v", scope, wantScopes)
		}
		if body["jti"] != claims["jti"] {
			t.Errorf("jti %v, claim %v", body["jti"], claims["jti"])
		}
		for _, k := range []string{"refresh_token", "id_token"} {
			if _, ok := body[k]; ok {
				t.Errorf("client_credentials reply has %s", k)
			}
		}
	})

	t.Run("fresh per request", func(t *testing.T) {
		body2, _, claims2 := f.mustToken(b.secretForm())
		if body2["access_token"] == body["access_token"] || claims2["jti"] == claims["jti"] {
			t.Errorf("two requests gave the same token or jti %v", claims["jti"])
		}
	})

	t.Run("default validity", func(t *testing.T) {
		d := f.bind(f.provisionXsuaa(`{"xsappname":"defaults"}`), "")
		body, _, claims := f.mustToken(d.secretForm())
		if v := num(t, claims, "exp") - num(t, claims, "iat"); v != 43200 {
			t.Errorf("default exp - iat = %d, want 43200", v)
		}
		if ei, _ := body["expires_in"].(float64); ei != 43199 {
			t.Errorf("expires_in %v", body["expires_in"])
		}
		if got := strs(t, claims, "scope"); !slices.Equal(got, []string{"uaa.resource"}) {
			t.Errorf("scope of a descriptor without authorities %v, want only uaa.resource", got)
		}
		if got, want := strs(t, claims, "aud"), []string{d.cred("clientid"), "uaa"}; !sameSet(got, want) {
			t.Errorf("aud %v, want %v", got, want)
		}
	})
}

func TestTokenParameters(t *testing.T) {
	f := newFixture(t)
	b := f.bind(f.provisionXsuaa(bookshop), "")
	cid, app := b.cred("clientid"), b.cred("xsappname")
	all := []string{app + ".Read", app + ".Write", "uaa.resource"}
	with := func(kv ...string) url.Values {
		v := b.secretForm()
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}

	okCases := []struct {
		name      string
		form      url.Values
		opts      []reqOpt
		wantScope []string
		check     func(t *testing.T, claims map[string]any)
	}{
		{name: "no scope", form: with(), wantScope: all},
		{name: "scope space separated", form: with("scope", app+".Read uaa.resource"), wantScope: []string{app + ".Read", "uaa.resource"}},
		{name: "scope comma separated", form: with("scope", app+".Read,"+app+".Write"), wantScope: []string{app + ".Read", app + ".Write"}},
		{name: "scope repeated entries", form: with("scope", app+".Write "+app+".Write"), wantScope: []string{app + ".Write"}},
		{name: "empty scope", form: with("scope", ""), wantScope: all},
		{name: "authorities az_attr", form: with("authorities", `{"az_attr":{"k":"v","n":"2"}}`), wantScope: all,
			check: func(t *testing.T, claims map[string]any) {
				az, _ := claims["az_attr"].(map[string]any)
				if az["k"] != "v" || az["n"] != "2" || len(az) != 2 {
					t.Errorf("az_attr %v", claims["az_attr"])
				}
				if got := strs(t, claims, "authorities"); !sameSet(got, all) {
					t.Errorf("authorities %v", got)
				}
			}},
		{name: "token_format jwt and empty app_tid", form: with("token_format", "jwt", "app_tid", ""), wantScope: all},
		{name: "x-zid of the zone", form: with(), opts: []reqOpt{withHeader("x-zid", f.zone.ID)}, wantScope: all,
			check: func(t *testing.T, claims map[string]any) {
				if claims["zid"] != f.zone.ID {
					t.Errorf("zid %v", claims["zid"])
				}
			}},
		{name: "content type without charset", form: with(), opts: []reqOpt{withContentType("application/x-www-form-urlencoded")}, wantScope: all},
	}
	for _, c := range okCases {
		t.Run(c.name, func(t *testing.T) {
			body, _, claims := f.mustToken(c.form, c.opts...)
			got := strs(t, claims, "scope")
			if !sameSet(got, c.wantScope) || !unique(got) {
				t.Errorf("scope %v, want %v", got, c.wantScope)
			}
			if s, _ := body["scope"].(string); !sameSet(strings.Fields(s), c.wantScope) {
				t.Errorf("reply scope %q, want %v", s, c.wantScope)
			}
			wantAud := []string{cid}
			for _, s := range c.wantScope {
				wantAud = append(wantAud, s[:strings.LastIndexByte(s, '.')])
			}
			if aud := strs(t, claims, "aud"); !sameSet(aud, wantAud) {
				t.Errorf("aud %v, want %v", aud, wantAud)
			}
			if c.check != nil {
				c.check(t, claims)
			}
		})
	}

	errCases := []struct {
		name       string
		body       string
		opts       []reqOpt
		wantStatus int
		wantCode   string
		wantDesc   string
	}{
		{name: "scope the client lacks", body: with("scope", app+".Admin").Encode(), wantStatus: 400, wantCode: "invalid_scope",
			wantDesc: "Invalid scope: " + app + ".Admin. Did you know that you can get default requested scopes by simply sending no value?"},
		{name: "one of several scopes invalid", body: with("scope", app+".Read other!t1.Read").Encode(), wantStatus: 400, wantCode: "invalid_scope",
			wantDesc: "Invalid scope: other!t1.Read. Did you know that you can get default requested scopes by simply sending no value?"},
		{name: "malformed authorities", body: with("authorities", `{"az_attr":`).Encode(), wantStatus: 400, wantCode: "invalid_request"},
		{name: "authorities not an object", body: with("authorities", `["a"]`).Encode(), wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown x-zid", body: with().Encode(), opts: []reqOpt{withHeader("x-zid", "00000000-0000-4000-8000-000000000000")}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unsupported grant_type", body: with("grant_type", "urn:example:unknown").Encode(), wantStatus: 400, wantCode: "unsupported_grant_type"},
		{name: "missing grant_type", body: with("grant_type", "").Encode(), wantStatus: 400, wantCode: "invalid_request"},
		{name: "JSON body", body: `{"grant_type":"client_credentials"}`, opts: []reqOpt{withContentType("application/json")}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "no content type", body: with().Encode(), opts: []reqOpt{withContentType("")}, wantStatus: 400, wantCode: "invalid_request"},
		{name: "parameter twice", body: with().Encode() + "&client_id=" + "sb-other", wantStatus: 400, wantCode: "invalid_request"},
		{name: "body over the limit", body: with().Encode() + "&pad=" + strings.Repeat("a", MaxFormBytes), wantStatus: 400, wantCode: "invalid_request"},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			status, _, raw := f.do(http.MethodPost, "/oauth/token", c.body, c.opts...)
			body := decodeJSON(t, raw)
			wantOAuthError(t, status, body, c.wantStatus, c.wantCode)
			if c.wantDesc != "" && body["error_description"] != c.wantDesc {
				t.Errorf("error_description %q, want %q", body["error_description"], c.wantDesc)
			}
			if c.wantCode == "invalid_scope" {
				if s, _ := body["scope"].(string); !sameSet(strings.Fields(s), all) {
					t.Errorf("invalid_scope reply lists %q, want the valid scopes %v", s, all)
				}
			}
		})
	}

	t.Run("grant type not allowed by the descriptor", func(t *testing.T) {
		nb := f.bind(f.provisionXsuaa(`{"xsappname":"usersonly","oauth2-configuration":{"grant-types":["authorization_code","refresh_token"]}}`), "")
		status, body := f.token(nb.secretForm())
		wantOAuthError(t, status, body, 400, "unauthorized_client")
		// Authentication still comes first: a wrong secret is 401.
		form := nb.secretForm()
		form.Set("client_secret", "wrong")
		status, body = f.token(form)
		wantInvalidClient(t, status, body)
	})
}

func TestCrossInstanceAuthorities(t *testing.T) {
	f := newFixture(t)
	// A accepts every granted authority, C accepts none; B (provisioned
	// after them, since its grant must resolve) grants Callback to both.
	a := f.bind(f.provisionXsuaa(`{"xsappname":"consumer","authorities":["$ACCEPT_GRANTED_AUTHORITIES"]}`), "")
	c := f.bind(f.provisionXsuaa(`{"xsappname":"bystander"}`), "")
	withGrant := `{"xsappname":"provider","scopes":[
		{"name":"$XSAPPNAME.Callback","grant-as-authority-to-apps":["$XSAPPNAME(application,consumer)","$XSAPPNAME(application,bystander)"]},
		{"name":"$XSAPPNAME.Internal"}]}`
	withoutGrant := `{"xsappname":"provider","scopes":[{"name":"$XSAPPNAME.Callback"},{"name":"$XSAPPNAME.Internal"}]}`
	bInst := f.provisionXsuaa(withGrant)
	bb := f.bind(bInst, "")
	bApp := bb.cred("xsappname")
	callback := bApp + ".Callback"

	check := func(t *testing.T, who binding, want bool) {
		t.Helper()
		body, _, claims := f.mustToken(who.secretForm())
		scope, auth, aud := strs(t, claims, "scope"), strs(t, claims, "authorities"), strs(t, claims, "aud")
		replyScope, _ := body["scope"].(string)
		has := slices.Contains(scope, callback)
		if has != want || slices.Contains(auth, callback) != want || slices.Contains(aud, bApp) != want ||
			slices.Contains(strings.Fields(replyScope), callback) != want {
			t.Errorf("%s: scope %v authorities %v aud %v reply %q; want %s present: %v", who.cred("clientid"), scope, auth, aud, replyScope, callback, want)
		}
		if slices.Contains(scope, bApp+".Internal") {
			t.Errorf("%s got the ungranted %s.Internal", who.cred("clientid"), bApp)
		}
	}

	t.Run("granted and accepted", func(t *testing.T) { check(t, a, true) })
	t.Run("granted, not accepted", func(t *testing.T) { check(t, c, false) })
	t.Run("no grant, no audience", func(t *testing.T) {
		// §10 check 6: another instance's token must not carry this
		// instance's client id or xsappname in any audience candidate.
		_, _, claims := f.mustToken(c.secretForm())
		for _, v := range append(strs(t, claims, "aud"), strs(t, claims, "scope")...) {
			for _, other := range []string{a.cred("clientid"), a.cred("xsappname"), bb.cred("clientid"), bApp} {
				if v == other || strings.HasPrefix(v, other+".") {
					t.Errorf("%s's token names %s in aud/scope: %v", c.cred("clientid"), other, v)
				}
			}
		}
	})
	t.Run("granter's own token lacks its granted scope", func(t *testing.T) { check(t, bb, false) })
	t.Run("narrowed to the granted scope", func(t *testing.T) {
		form := a.secretForm()
		form.Set("scope", callback)
		_, _, claims := f.mustToken(form)
		if got := strs(t, claims, "scope"); !slices.Equal(got, []string{callback}) {
			t.Errorf("scope %v", got)
		}
		if got, want := strs(t, claims, "aud"), []string{a.cred("clientid"), bApp}; !sameSet(got, want) {
			t.Errorf("aud %v, want %v", got, want)
		}
	})
	t.Run("update removes the grant", func(t *testing.T) {
		f.update(bInst, withoutGrant)
		check(t, a, false)
	})
	t.Run("update restores the grant", func(t *testing.T) {
		f.update(bInst, withGrant)
		check(t, a, true)
	})
	t.Run("granter deprovisioned", func(t *testing.T) {
		f.deprovision(bInst)
		check(t, a, false)
	})
}

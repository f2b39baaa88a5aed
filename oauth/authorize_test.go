package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/users"
)

// wantPage asserts an HTML page answer that redirects nowhere.
func wantPage(t *testing.T, p page, status int, text string) {
	t.Helper()
	if p.Status != status {
		t.Errorf("status %d, want %d; body %.300s", p.Status, status, p.Body)
	}
	if loc := p.Header.Get("Location"); loc != "" {
		t.Errorf("redirects to %s, want no redirect", loc)
	}
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want HTML", ct)
	}
	if !strings.Contains(p.Body, text) {
		t.Errorf("page lacks %q: %.500s", text, p.Body)
	}
}

// wantErrorRedirect asserts a redirect to the client carrying an OAuth
// error and the state.
func wantErrorRedirect(t *testing.T, p page, base, code, state string) {
	t.Helper()
	if p.Status != http.StatusFound {
		t.Fatalf("status %d, want 302; body %.300s", p.Status, p.Body)
	}
	loc := p.location(t)
	q := loc.Query()
	loc.RawQuery = ""
	if loc.String() != base || q.Get("error") != code || q.Get("state") != state || q.Get("code") != "" {
		t.Errorf("redirect %s?%s, want %s?error=%s&state=%s", loc, q.Encode(), base, code, state)
	}
}

func TestAuthorizeRefusedWithoutRedirect(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	ias := f.bind(f.provisionIdentity("ias-app", `{"oauth2-configuration":{"redirect-uris":["https://app.example.com/**"]}}`), "")
	br := f.browser()
	for _, tc := range []struct {
		name string
		path string
		q    url.Values
		text string
	}{
		{"unknown client", "/oauth/authorize", authorizeQuery("sb-nobody!t1", callback, "s"), "not registered"},
		{"missing client_id", "/oauth/authorize", url.Values{"response_type": {"code"}, "redirect_uri": {callback}}, "not registered"},
		{"redirect_uri not registered", "/oauth/authorize", authorizeQuery(cid, "https://evil.example.com/cb", "s"), "did not match"},
		{"redirect_uri on a registered host but another path", "/oauth/authorize", authorizeQuery(cid, "https://app.example.com/other", "s"), "did not match"},
		{"redirect_uri with userinfo", "/oauth/authorize", authorizeQuery(cid, "https://x@app.example.com/login/callback", "s"), "did not match"},
		{"missing redirect_uri with several registered", "/oauth/authorize", url.Values{"response_type": {"code"}, "client_id": {cid}}, "redirect_uri"},
		{"identity client on the xsuaa endpoint", "/oauth/authorize", authorizeQuery(ias.cred("clientid"), "https://app.example.com/cb", "s"), "not registered"},
		{"xsuaa client on the identity endpoint", "/oauth2/authorize", authorizeQuery(cid, callback, "s"), "not registered"},
		{"bad response_type with a bad redirect_uri", "/oauth/authorize", authorizeQuery(cid, "https://evil.example.com/cb", "s", "response_type", "token"), "did not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := br.get(tc.path + "?" + tc.q.Encode())
			wantPage(t, p, http.StatusBadRequest, tc.text)
			if strings.Contains(p.Body, "<script") {
				t.Errorf("page contains a script: %s", p.Body)
			}
		})
	}
	t.Run("the page escapes the redirect_uri", func(t *testing.T) {
		p := br.get("/oauth/authorize?" + authorizeQuery(cid, `https://evil.example.com/"><script>alert(1)</script>`, "s").Encode())
		wantPage(t, p, http.StatusBadRequest, "did not match")
		if strings.Contains(p.Body, "<script>") {
			t.Errorf("redirect_uri reflected unescaped: %s", p.Body)
		}
	})
}

func TestAuthorizeErrorsGoBackToTheClient(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	nocode := f.bind(f.provisionXsuaa(`{"xsappname":"nocode","oauth2-configuration":{"grant-types":["password"],"redirect-uris":["https://app.example.com/**"]}}`), "")
	br := f.browser()
	for _, tc := range []struct {
		name string
		q    url.Values
		code string
	}{
		{"response_type token", authorizeQuery(cid, callback, "st 1", "response_type", "token"), "unsupported_response_type"},
		{"response_type missing", url.Values{"client_id": {cid}, "redirect_uri": {callback}, "state": {"st 1"}}, "unsupported_response_type"},
		{"prompt none without session", authorizeQuery(cid, callback, "st 1", "prompt", "none"), "login_required"},
		{"client without the authorization_code grant", authorizeQuery(nocode.cred("clientid"), callback, "st 1"), "unauthorized_client"},
		{"unknown code_challenge_method", authorizeQuery(cid, callback, "st 1", "code_challenge", "abc", "code_challenge_method", "S512"), "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorRedirect(t, br.get("/oauth/authorize?"+tc.q.Encode()), callback, tc.code, "st 1")
		})
	}
}

func TestAuthorizeLocalhostAlwaysAllowed(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	// No redirect-uris at all.
	b := f.bind(f.provisionXsuaa(`{"xsappname":"local"}`), "")
	br := f.browser()
	for _, uri := range []string{"http://localhost:5000/login/callback", "http://127.0.0.1:5000/login/callback", "https://localhost/cb", "http://[::1]:8080/cb"} {
		t.Run(uri, func(t *testing.T) {
			loc := br.authorizeCode("/oauth/authorize", authorizeQuery(b.cred("clientid"), uri, "s"), "alice", alicePass)
			code := codeOf(t, loc, uri, "s")
			f.mustToken(codeForm(b, code, uri, ""))
		})
	}
	t.Run("localhost look-alike", func(t *testing.T) {
		p := br.get("/oauth/authorize?" + authorizeQuery(b.cred("clientid"), "https://localhost.evil.example.com/cb", "s").Encode())
		wantPage(t, p, http.StatusBadRequest, "did not match")
	})
}

func TestLoginForm(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	q := authorizeQuery(cid, callback, "s")
	form := func(br *browser) page {
		t.Helper()
		p := br.get("/oauth/authorize?" + q.Encode())
		if p.Status != http.StatusOK || !p.isLoginForm() {
			t.Fatalf("no login form: %d %.300s", p.Status, p.Body)
		}
		return p
	}
	noSession := func(t *testing.T, br *browser) {
		t.Helper()
		if br.cookie(sessionCookie) != "" {
			t.Errorf("a session cookie was set")
		}
	}

	t.Run("page headers", func(t *testing.T) {
		p := form(f.browser())
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
			if got := p.Header.Get(k); got != want {
				t.Errorf("%s %q, want %q", k, got, want)
			}
		}
		// No form-action: Chromium applies it to the redirects after the
		// POST, which leave the broker's origin for the app's callback.
		if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		if !strings.Contains(p.Body, `type="password"`) || !strings.Contains(p.Body, `<button type="submit"`) {
			t.Errorf("form lacks a password input or submit button")
		}
		if cont, _ := url.Parse(p.field("continue")); cont == nil || cont.Path != "/oauth/authorize" || cont.Query().Get("state") != "s" {
			t.Errorf("continue %q does not carry the authorize request", p.field("continue"))
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		br := f.browser()
		p := br.submitLogin(form(br), "alice", "wrong")
		wantPage(t, p, http.StatusUnauthorized, "Wrong user name or password")
		if !p.isLoginForm() || p.field("username") != "alice" {
			t.Errorf("want the form again with the username kept: %.500s", p.Body)
		}
		noSession(t, br)
		// The new form works.
		p = br.submitLogin(p, "alice", alicePass)
		if p.Status != http.StatusSeeOther {
			t.Errorf("second attempt: %d", p.Status)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		br := f.browser()
		p := br.submitLogin(form(br), "mallory", alicePass)
		wantPage(t, p, http.StatusUnauthorized, "Wrong user name or password")
		noSession(t, br)
	})

	t.Run("username is escaped", func(t *testing.T) {
		br := f.browser()
		p := br.submitLogin(form(br), `"><script>alert(1)</script>`, "x")
		if p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "<script>") {
			t.Errorf("status %d; username reflected unescaped: %s", p.Status, p.Body)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mangle func(br *browser, v url.Values) *browser
		}{
			{"wrong csrf field", func(br *browser, v url.Values) *browser { v.Set("csrf", v.Get("csrf")+"x"); return br }},
			{"missing csrf field", func(br *browser, v url.Values) *browser { v.Del("csrf"); return br }},
			{"missing csrf cookie", func(_ *browser, _ url.Values) *browser { return f.browser() }},
			{"csrf of another browser", func(_ *browser, v url.Values) *browser {
				other := f.browser()
				v.Set("csrf", form(other).field("csrf"))
				return f.browser()
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				br := f.browser()
				p := form(br)
				v := url.Values{"csrf": {p.field("csrf")}, "continue": {p.field("continue")}, "username": {"alice"}, "password": {alicePass}}
				sender := tc.mangle(br, v)
				p = sender.post("/login.do", v)
				wantPage(t, p, http.StatusForbidden, "sign in again")
				if !p.isLoginForm() {
					t.Errorf("want the form again")
				}
				noSession(t, sender)
			})
		}
	})

	t.Run("continue", func(t *testing.T) {
		for _, cont := range []string{
			"https://evil.example.com/oauth/authorize?" + q.Encode(),
			"//evil.example.com/oauth/authorize?" + q.Encode(),
			"/admin/users",
			"/oauth/authorize/../../admin?" + q.Encode(),
			"",
			"/oauth/authorize?" + authorizeQuery("sb-nobody!t1", callback, "s").Encode(),
		} {
			t.Run(cont, func(t *testing.T) {
				br := f.browser()
				p := form(br)
				p = br.post("/login.do", url.Values{"csrf": {p.field("csrf")}, "continue": {cont}, "username": {"alice"}, "password": {alicePass}})
				wantPage(t, p, http.StatusBadRequest, "")
				noSession(t, br)
			})
		}
	})

	t.Run("session skips the form", func(t *testing.T) {
		br := f.browser()
		codeOf(t, br.authorizeCode("/oauth/authorize", q, "alice", alicePass), callback, "s")
		p := br.get("/oauth/authorize?" + q.Encode())
		codeOf(t, p.location(t), callback, "s")
		// prompt=none succeeds with a session; prompt=login shows the form.
		p = br.get("/oauth/authorize?" + authorizeQuery(cid, callback, "s", "prompt", "none").Encode())
		codeOf(t, p.location(t), callback, "s")
		p = br.get("/oauth/authorize?" + authorizeQuery(cid, callback, "s", "prompt", "login").Encode())
		if p.Status != http.StatusOK || !p.isLoginForm() {
			t.Errorf("prompt=login with a session: %d", p.Status)
		}
		if strings.Contains(p.field("continue"), "prompt") {
			t.Errorf("continue %q keeps prompt=login: the login would loop", p.field("continue"))
		}
	})

	t.Run("session cookie attributes", func(t *testing.T) {
		br := f.browser()
		p := br.submitLogin(form(br), "alice", alicePass)
		var sc *http.Cookie
		for _, c := range (&http.Response{Header: p.Header}).Cookies() {
			if c.Name == sessionCookie {
				sc = c
			}
		}
		if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" {
			t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Lax, Path=/", sc)
		}
	})

	t.Run("forged session cookie", func(t *testing.T) {
		br := f.browser()
		u, _ := url.Parse(f.ts.URL)
		br.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "eyJ1aWQiOiJ4In0"}})
		if p := br.get("/oauth/authorize?" + q.Encode()); !p.isLoginForm() {
			t.Errorf("forged session accepted: %d", p.Status)
		}
	})

	t.Run("deleted user's session", func(t *testing.T) {
		frank := f.addUser(users.Spec{Username: "frank", Password: "frank-pass"})
		br := f.browser()
		codeOf(t, br.authorizeCode("/oauth/authorize", q, "frank", "frank-pass"), callback, "s")
		f.deleteUser(frank.ID)
		if p := br.get("/oauth/authorize?" + q.Encode()); p.Status != http.StatusOK || !p.isLoginForm() {
			t.Errorf("session of a deleted user: %d, want the form", p.Status)
		}
	})

	t.Run("expired session", func(t *testing.T) {
		br := f.browser()
		codeOf(t, br.authorizeCode("/oauth/authorize", q, "alice", alicePass), callback, "s")
		f.advance(SessionLifetime + time.Minute)
		if p := br.get("/oauth/authorize?" + q.Encode()); p.Status != http.StatusOK || !p.isLoginForm() {
			t.Errorf("expired session: %d, want the form", p.Status)
		}
	})
}

func TestLogout(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	q := authorizeQuery(cid, callback, "s")
	for _, tc := range []struct {
		name   string
		params url.Values
		target string // "" = the "Signed out" page
	}{
		{"registered pattern", url.Values{"redirect": {"https://x.apps.example.com/logout.html"}, "client_id": {cid}}, "https://x.apps.example.com/logout.html"},
		{"exact registered URI", url.Values{"redirect": {callback}, "client_id": {cid}}, callback},
		{"localhost", url.Values{"redirect": {"http://localhost:5000/logout-page.html"}, "client_id": {cid}}, "http://localhost:5000/logout-page.html"},
		{"post_logout_redirect_uri", url.Values{"post_logout_redirect_uri": {"http://127.0.0.1:5000/bye"}, "client_id": {cid}}, "http://127.0.0.1:5000/bye"},
		{"unregistered target", url.Values{"redirect": {"https://evil.example.com/"}, "client_id": {cid}}, ""},
		{"registered target without client_id", url.Values{"redirect": {callback}}, ""},
		{"registered target of an unknown client", url.Values{"redirect": {callback}, "client_id": {"sb-nobody!t1"}}, ""},
		{"no target", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := f.browser()
			codeOf(t, br.authorizeCode("/oauth/authorize", q, "alice", alicePass), callback, "s")
			p := br.get("/logout.do?" + tc.params.Encode())
			if tc.target == "" {
				wantPage(t, p, http.StatusOK, "Signed out")
			} else if p.Status != http.StatusFound || p.Header.Get("Location") != tc.target {
				t.Errorf("logout: %d to %q, want 302 to %s", p.Status, p.Header.Get("Location"), tc.target)
			}
			if br.cookie(sessionCookie) != "" {
				t.Errorf("session cookie survives logout")
			}
			if p := br.get("/oauth/authorize?" + q.Encode()); p.Status != http.StatusOK || !p.isLoginForm() {
				t.Errorf("authorize after logout: %d, want the form", p.Status)
			}
		})
	}
}

// The OIDC form of logout on the xsuaa host: id_token_hint names the
// client, even after the id token expired.
func TestLogoutIDTokenHint(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	body, _ := w.aliceToken()
	hint := body["id_token"].(string)
	target := "https://x.apps.example.com/bye"
	for _, advance := range []time.Duration{0, 2 * time.Hour} {
		f.advance(advance)
		p := f.browser().get("/logout.do?" + url.Values{"post_logout_redirect_uri": {target}, "id_token_hint": {hint}}.Encode())
		if p.Status != http.StatusFound || p.Header.Get("Location") != target {
			t.Errorf("after %v: %d to %q, want 302 to %s", advance, p.Status, p.Header.Get("Location"), target)
		}
	}
	p := f.browser().get("/logout.do?" + url.Values{"post_logout_redirect_uri": {target}, "id_token_hint": {"garbage"}}.Encode())
	wantPage(t, p, http.StatusOK, "Signed out")
}

func TestUserinfo(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	body, _ := w.aliceToken()
	access := body["access_token"].(string)
	cc, _, _ := f.mustToken(w.app.secretForm())
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		status, _, raw := f.do(method, "/userinfo", "", withBearer(access))
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", method, status, raw)
		}
		info := decodeJSON(t, raw)
		for k, want := range map[string]any{
			"sub": w.alice.ID, "user_id": w.alice.ID, "user_name": "alice", "email": "alice@example.com",
			"given_name": "Alice", "family_name": "Doe", "name": "Alice Doe", "email_verified": true, "zid": f.zone.ID,
		} {
			if info[k] != want {
				t.Errorf("%s %s = %#v, want %#v", method, k, info[k], want)
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts []reqOpt
	}{
		{"no token", nil},
		{"client_credentials token", []reqOpt{withBearer(cc["access_token"].(string))}},
		{"garbage", []reqOpt{withBearer("not.a.jwt")}},
		{"Basic instead of Bearer", []reqOpt{withBasic(w.app.cred("clientid"), w.app.cred("clientsecret"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, raw := f.do(http.MethodGet, "/userinfo", "", tc.opts...)
			wantOAuthError(t, status, decodeJSON(t, raw), http.StatusUnauthorized, "invalid_token")
		})
	}
	t.Run("deleted user", func(t *testing.T) {
		f.deleteUser(w.alice.ID)
		status, _, raw := f.do(http.MethodGet, "/userinfo", "", withBearer(access))
		wantOAuthError(t, status, decodeJSON(t, raw), http.StatusUnauthorized, "invalid_token")
	})
}

package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/users"
)

const callback = "https://app.example.com/login/callback"

// codeForm is an authorization_code token request of b, authenticated in
// the body, as approuter sends it.
func codeForm(b binding, code, redirectURI, verifier string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}}
	if verifier != "" {
		v.Set("code_verifier", verifier)
	}
	return v
}

// authorizeQuery is the query approuter sends to /oauth/authorize.
func authorizeQuery(clientID, redirectURI, state string, kv ...string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {state}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// codeOf checks a redirect to the client and returns its code.
func codeOf(t *testing.T, loc *url.URL, wantBase, wantState string) string {
	t.Helper()
	base := *loc
	base.RawQuery = ""
	if base.String() != wantBase {
		t.Fatalf("redirected to %s, want %s", loc, wantBase)
	}
	if got := loc.Query().Get("state"); got != wantState {
		t.Errorf("state %q, want %q verbatim", got, wantState)
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("error") != "" {
		t.Fatalf("redirect without code: %s", loc)
	}
	return code
}

func TestAuthorizationCodeFlow(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	br := f.browser()
	verifier, challenge := pkce()
	state := "st/1 +&=ä"
	q := authorizeQuery(cid, callback, state, "code_challenge", challenge, "code_challenge_method", "S256", "nonce", "n-0S6")

	p := br.get("/oauth/authorize?" + q.Encode())
	if p.Status != http.StatusOK || !p.isLoginForm() {
		t.Fatalf("authorize without session: %d, want the login form; body %.300s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, "name-"+w.inst) {
		t.Errorf("login page does not name the instance %q", "name-"+w.inst)
	}
	if br.cookie(csrfCookie) == "" || br.cookie(csrfCookie) != p.field("csrf") {
		t.Errorf("CSRF cookie %q and field %q differ", br.cookie(csrfCookie), p.field("csrf"))
	}
	loginAt := f.now().Unix()
	p = br.submitLogin(p, "alice", alicePass)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("login: %d, want 303; %.300s", p.Status, p.Body)
	}
	back := p.location(t)
	if back.Host != "" || back.Path != "/oauth/authorize" || back.Query().Get("state") != state {
		t.Fatalf("login redirects to %s, want the pending /oauth/authorize", back)
	}
	p = br.get(back.RequestURI())
	if p.Status != http.StatusFound {
		t.Fatalf("authorize after login: %d; %.300s", p.Status, p.Body)
	}
	code := codeOf(t, p.location(t), callback, state)

	body, _, claims := f.mustToken(codeForm(w.app, code, callback, verifier))
	wantScopes(t, body, claims, "openid", "uaa.user", w.scope("Read"), w.scope("Write"))
	if claims["grant_type"] != "authorization_code" || claims["user_id"] != w.alice.ID || claims["azp"] != cid {
		t.Errorf("claims grant_type %v user_id %v azp %v", claims["grant_type"], claims["user_id"], claims["azp"])
	}
	if at := num(t, claims, "auth_time"); at < loginAt-1 || at > loginAt+5 {
		t.Errorf("auth_time %d, login at %d", at, loginAt)
	}
	if rt, _ := body["refresh_token"].(string); !refreshTokenRE.MatchString(rt) {
		t.Errorf("refresh_token %q", rt)
	}
	idt, _ := body["id_token"].(string)
	if idt == "" {
		t.Fatal("no id_token")
	}
	if _, id := f.parseJWT(idt); id["nonce"] != "n-0S6" || id["grant_type"] != "authorization_code" {
		t.Errorf("id_token nonce %v grant_type %v", id["nonce"], id["grant_type"])
	}

	status, body := f.token(codeForm(w.app, code, callback, verifier))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
}

func TestAuthorizationCodeRefusals(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	other := f.bind(f.provisionXsuaa(`{"xsappname":"other","oauth2-configuration":{"redirect-uris":["https://app.example.com/**"]}}`), "")
	second := f.bind(w.inst, "") // another binding of the same client
	br := f.browser()
	verifier, challenge := pkce()
	s256 := []string{"code_challenge", challenge, "code_challenge_method", "S256"}
	// The first code needs the form; later ones reuse the session.
	codeFor := func(t *testing.T, kv ...string) string {
		t.Helper()
		return codeOf(t, br.authorizeCode("/oauth/authorize", authorizeQuery(cid, callback, "s", kv...), "alice", alicePass), callback, "s")
	}

	for _, tc := range []struct {
		name      string
		authorize []string
		form      func(code string) url.Values
		opts      []reqOpt
		ok        bool
	}{
		{"S256", s256, func(c string) url.Values { return codeForm(w.app, c, callback, verifier) }, nil, true},
		{"S256, Basic authentication and app_tid", s256, func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {callback}, "code_verifier": {verifier}, "app_tid": {""}}
		}, []reqOpt{withBasic(cid, w.app.cred("clientsecret"))}, true},
		{"another binding of the same client", s256, func(c string) url.Values { return codeForm(second, c, callback, verifier) }, nil, true},
		{"plain PKCE", []string{"code_challenge", "plain-verifier-0123456789-0123456789-0123", "code_challenge_method", "plain"},
			func(c string) url.Values {
				return codeForm(w.app, c, callback, "plain-verifier-0123456789-0123456789-0123")
			}, nil, true},
		{"plain PKCE by default", []string{"code_challenge", "plain-verifier-0123456789-0123456789-0123"},
			func(c string) url.Values {
				return codeForm(w.app, c, callback, "plain-verifier-0123456789-0123456789-0123")
			}, nil, true},
		{"no PKCE", nil, func(c string) url.Values { return codeForm(w.app, c, callback, "") }, nil, true},
		{"wrong code_verifier", s256, func(c string) url.Values { return codeForm(w.app, c, callback, verifier+"x") }, nil, false},
		{"S256 challenge sent as plain verifier", s256, func(c string) url.Values { return codeForm(w.app, c, callback, challenge) }, nil, false},
		{"missing code_verifier", s256, func(c string) url.Values { return codeForm(w.app, c, callback, "") }, nil, false},
		{"mismatched redirect_uri", s256, func(c string) url.Values {
			return codeForm(w.app, c, "https://app.example.com/login/callback2", verifier)
		}, nil, false},
		{"missing redirect_uri", s256, func(c string) url.Values { return codeForm(w.app, c, "", verifier) }, nil, false},
		{"code of another client", s256, func(c string) url.Values { return codeForm(other, c, callback, verifier) }, nil, false},
		{"unknown code", s256, func(c string) url.Values { return codeForm(w.app, c+"x", callback, verifier) }, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := codeFor(t, tc.authorize...)
			status, body := f.token(tc.form(code), tc.opts...)
			if !tc.ok {
				wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
				return
			}
			if status != http.StatusOK {
				t.Fatalf("got %d %v", status, body)
			}
			_, claims := f.parseJWT(body["access_token"].(string))
			if claims["grant_type"] != "authorization_code" || claims["user_id"] != w.alice.ID {
				t.Errorf("claims %v", claims)
			}
			// Single use, whatever the first redemption looked like.
			status, body = f.token(tc.form(code), tc.opts...)
			wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
		})
	}

	t.Run("a failed redemption consumes the code", func(t *testing.T) {
		code := codeFor(t, s256...)
		status, body := f.token(codeForm(w.app, code, callback, "wrong"))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
		status, body = f.token(codeForm(w.app, code, callback, verifier))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	})

	t.Run("wrong client secret leaves the code", func(t *testing.T) {
		code := codeFor(t, s256...)
		bad := codeForm(w.app, code, callback, verifier)
		bad.Set("client_secret", tweak(w.app.cred("clientsecret")))
		status, body := f.token(bad)
		wantInvalidClient(t, status, body)
		f.mustToken(codeForm(w.app, code, callback, verifier))
	})

	t.Run("client without the authorization_code grant", func(t *testing.T) {
		code := codeFor(t, s256...)
		nc := f.bind(f.provisionXsuaa(`{"xsappname":"nocode","oauth2-configuration":{"grant-types":["password"]}}`), "")
		status, body := f.token(codeForm(nc, code, callback, verifier))
		wantOAuthError(t, status, body, http.StatusBadRequest, "unauthorized_client")
	})

	t.Run("deleted user", func(t *testing.T) {
		erin := f.addUser(users.Spec{Username: "erin", Password: "erin-pass"})
		eb := f.browser()
		code := codeOf(t, eb.authorizeCode("/oauth/authorize", authorizeQuery(cid, callback, "s"), "erin", "erin-pass"), callback, "s")
		f.deleteUser(erin.ID)
		status, body := f.token(codeForm(w.app, code, callback, ""))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	})

	t.Run("expired code", func(t *testing.T) {
		code := codeFor(t, s256...)
		f.advance(CodeLifetime + time.Second)
		status, body := f.token(codeForm(w.app, code, callback, verifier))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	})
}

// A redirect_uri left out of the authorize request (allowed when exactly
// one URI is registered) may be left out of the token request too (RFC 6749
// §4.1.3); if the token request names one, it must be the registered one.
func TestAuthorizationCodeImplicitRedirect(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	b := f.bind(f.provisionXsuaa(`{"xsappname":"single","oauth2-configuration":{"redirect-uris":["https://single.example.com/cb"]}}`), "")
	br := f.browser()
	q := url.Values{"response_type": {"code"}, "client_id": {b.cred("clientid")}, "state": {"s"}}
	for _, tc := range []struct {
		name        string
		redirectURI string
		ok          bool
	}{
		{"token request without redirect_uri", "", true},
		{"token request with the registered redirect_uri", "https://single.example.com/cb", true},
		{"token request with another redirect_uri", "https://single.example.com/other", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := codeOf(t, br.authorizeCode("/oauth/authorize", q, "alice", alicePass), "https://single.example.com/cb", "s")
			status, body := f.token(codeForm(b, code, tc.redirectURI, ""))
			if tc.ok && status != http.StatusOK {
				t.Errorf("got %d %v, want 200", status, body)
			}
			if !tc.ok {
				wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
			}
		})
	}
}

package oauth

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/users"
)

// refreshForm is a refresh_token request of b, authenticated in the body.
func refreshForm(b binding, rt string, kv ...string) url.Values {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// approuterRefresh is the request approuter's background refresh sends:
// Basic authentication and an empty app_tid.
func (f *fixture) approuterRefresh(b binding, rt string) (int, map[string]any) {
	f.tb.Helper()
	return f.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "app_tid": {""}},
		withBasic(b.cred("clientid"), b.cred("clientsecret")))
}

// refreshed returns a check of a successful refresh reply, which returns
// the new access token's claims. It takes (status, body) so that it can wrap
// f.token directly.
func refreshed(t *testing.T, f *fixture) func(status int, body map[string]any) map[string]any {
	return func(status int, body map[string]any) map[string]any {
		t.Helper()
		return refreshOK(t, f, status, body)
	}
}

func refreshOK(t *testing.T, f *fixture, status int, body map[string]any) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, body)
	}
	if body["expires_in"] == nil {
		t.Errorf("reply without expires_in: %v", body)
	}
	if rt, _ := body["refresh_token"].(string); !refreshTokenRE.MatchString(rt) {
		t.Errorf("reply refresh_token %q", rt)
	}
	_, claims := f.parseJWT(body["access_token"].(string))
	return claims
}

func TestRefreshTokenRotation(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	body, first := w.aliceToken()
	rt1 := body["refresh_token"].(string)

	status, body := f.approuterRefresh(w.app, rt1)
	claims := refreshOK(t, f, status, body)
	rt2 := body["refresh_token"].(string)
	if rt2 == rt1 {
		t.Fatal("refresh token not rotated")
	}
	for _, k := range []string{"grant_type", "user_id", "user_name", "auth_time", "azp"} {
		if claims[k] != first[k] {
			t.Errorf("%s %v, the original token had %v", k, claims[k], first[k])
		}
	}
	if claims["jti"] == first["jti"] {
		t.Error("refreshed token reuses the jti")
	}
	if !sameSet(strs(t, claims, "aud"), strs(t, first, "aud")) || !sameSet(strs(t, claims, "scope"), strs(t, first, "scope")) {
		t.Errorf("aud/scope changed: %v %v -> %v %v", first["aud"], first["scope"], claims["aud"], claims["scope"])
	}
	if body["id_token"] == nil {
		t.Error("no id_token on refresh although openid is granted")
	}

	status, body = f.approuterRefresh(w.app, rt1)
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
	// The rotated one still works, in the body too.
	refreshed(t, f)(f.token(refreshForm(w.app, rt2)))
}

func TestRefreshTokenRefusals(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	second := f.bind(w.inst, "")
	other := f.bind(f.provisionXsuaa(`{"xsappname":"other"}`), "")
	rt := func() string {
		t.Helper()
		body, _ := w.aliceToken()
		return body["refresh_token"].(string)
	}

	t.Run("another client, token not consumed", func(t *testing.T) {
		tok := rt()
		status, body := f.approuterRefresh(other, tok)
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_grant")
		refreshed(t, f)(f.approuterRefresh(w.app, tok))
	})

	t.Run("another binding of the same client", func(t *testing.T) {
		refreshed(t, f)(f.approuterRefresh(second, rt()))
	})

	t.Run("wrong client secret, token not consumed", func(t *testing.T) {
		tok := rt()
		bad := refreshForm(w.app, tok)
		bad.Set("client_secret", tweak(w.app.cred("clientsecret")))
		status, body := f.token(bad)
		wantInvalidClient(t, status, body)
		refreshed(t, f)(f.token(refreshForm(w.app, tok)))
	})

	for _, tc := range []struct {
		name       string
		form       url.Values
		wantStatus int
		wantCode   string
	}{
		{"missing refresh_token", refreshForm(w.app, ""), http.StatusBadRequest, "invalid_request"},
		{"unknown refresh_token", refreshForm(w.app, "0123456789abcdef0123456789abcdef-r"), http.StatusUnauthorized, "invalid_token"},
		{"an access token as refresh token", refreshForm(w.app, "eyJhbGciOiJSUzI1NiJ9.e30.x"), http.StatusUnauthorized, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.token(tc.form)
			wantOAuthError(t, status, body, tc.wantStatus, tc.wantCode)
		})
	}

	t.Run("deleted user", func(t *testing.T) {
		gina := f.addUser(users.Spec{Username: "gina", Password: "gina-pass"})
		body, _, _ := f.mustToken(passwordForm(w.app, "gina", "gina-pass"))
		f.deleteUser(gina.ID)
		status, body := f.token(refreshForm(w.app, body["refresh_token"].(string)))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
	})

	t.Run("client without the refresh_token grant", func(t *testing.T) {
		b := f.bind(f.provisionXsuaa(`{"xsappname":"norefresh","oauth2-configuration":{"grant-types":["password"]}}`), "")
		body, _, _ := f.mustToken(passwordForm(b, "alice", alicePass))
		if _, ok := body["refresh_token"]; ok {
			t.Errorf("refresh_token issued to a client without the grant: %v", body)
		}
		status, body := f.token(refreshForm(b, rt()))
		wantOAuthError(t, status, body, http.StatusBadRequest, "unauthorized_client")
	})
}

// A refresh token dies with the binding that obtained it, even though
// another binding of the same client still authenticates.
func TestRefreshTokenAfterUnbind(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	b1, b2 := f.bind(w.inst, ""), f.bind(w.inst, "")
	body1, _, _ := f.mustToken(passwordForm(b1, "alice", alicePass))
	body2, _, _ := f.mustToken(passwordForm(b2, "alice", alicePass))
	f.unbind(b1)

	status, body := f.approuterRefresh(b2, body1["refresh_token"].(string))
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
	status, body = f.approuterRefresh(w.app, body1["refresh_token"].(string))
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
	// The token of the surviving binding lives on, and so does its
	// rotated successor.
	status, body = f.approuterRefresh(b2, body2["refresh_token"].(string))
	refreshOK(t, f, status, body)
	refreshed(t, f)(f.approuterRefresh(w.app, body["refresh_token"].(string)))
}

func TestRefreshTokenExpiry(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	short := f.bind(f.provisionXsuaa(`{"xsappname":"short","oauth2-configuration":{"refresh-token-validity":3600}}`), "")
	bodyShort, _, _ := f.mustToken(passwordForm(short, "alice", alicePass))
	bodyDefault, _ := w.aliceToken()

	f.advance(time.Hour - time.Minute)
	status, body := f.approuterRefresh(short, bodyShort["refresh_token"].(string))
	refreshOK(t, f, status, body)
	rotated := body["refresh_token"].(string)

	f.advance(time.Hour) // 1 h 59 min after the login, 1 h after the rotation
	status, body = f.approuterRefresh(short, rotated)
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")

	f.advance(time.Duration(descriptor.DefaultRefreshTokenValidity)*time.Second - 2*time.Hour + 2*time.Minute)
	status, body = f.approuterRefresh(w.app, bodyDefault["refresh_token"].(string))
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
}

func TestRefreshTokenScopes(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	read, write := w.scope("Read"), w.scope("Write")
	body, _ := w.aliceToken("scope", "openid "+read)
	rt := body["refresh_token"].(string)

	next := func(t *testing.T, kv ...string) (int, map[string]any) {
		t.Helper()
		status, body := f.token(refreshForm(w.app, rt, kv...))
		if status == http.StatusOK {
			rt = body["refresh_token"].(string)
		}
		return status, body
	}

	t.Run("no scope: the original grant", func(t *testing.T) {
		status, body := next(t)
		claims := refreshOK(t, f, status, body)
		wantScopes(t, body, claims, "openid", read)
	})
	t.Run("a scope outside the original grant is refused, the token survives", func(t *testing.T) {
		status, body := next(t, "scope", write)
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_scope")
		status, body = next(t, "scope", "other!t9.Read")
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_scope")
	})
	t.Run("never widens", func(t *testing.T) {
		status, body := next(t, "scope", "openid "+read+" "+write)
		claims := refreshOK(t, f, status, body)
		wantScopes(t, body, claims, "openid", read)
	})
	t.Run("narrowing", func(t *testing.T) {
		status, body := next(t, "scope", read)
		claims := refreshOK(t, f, status, body)
		wantScopes(t, body, claims, read)
		if body["id_token"] != nil {
			t.Error("id_token without openid")
		}
	})
	t.Run("narrowing sticks", func(t *testing.T) {
		status, body := next(t)
		claims := refreshOK(t, f, status, body)
		wantScopes(t, body, claims, read)
	})
	t.Run("current authorizations are re-evaluated", func(t *testing.T) {
		f.addUser(users.Spec{Username: "alice", Password: alicePass, Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe"})
		status, body := next(t)
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_scope")
	})
}

// The refreshed token keeps the grant type of the original login.
func TestRefreshTokenKeepsGrantType(t *testing.T) {
	w := newUserWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	br := f.browser()
	code := codeOf(t, br.authorizeCode("/oauth/authorize", authorizeQuery(cid, callback, "s", "nonce", "n1"), "alice", alicePass), callback, "s")
	codeBody, _, _ := f.mustToken(codeForm(w.app, code, callback, ""))
	pwBody, _ := w.aliceToken()
	for grant, body := range map[string]map[string]any{"authorization_code": codeBody, "password": pwBody} {
		rt := body["refresh_token"].(string)
		for i := range 2 {
			status, reply := f.approuterRefresh(w.app, rt)
			claims := refreshOK(t, f, status, reply)
			if claims["grant_type"] != grant {
				t.Errorf("refresh %d of a %s token: grant_type %v", i+1, grant, claims["grant_type"])
			}
			_, id := f.parseJWT(reply["id_token"].(string))
			if id["grant_type"] != grant || id["nonce"] != nil {
				t.Errorf("refreshed id_token grant_type %v nonce %v", id["grant_type"], id["nonce"])
			}
			rt = reply["refresh_token"].(string)
		}
	}
}

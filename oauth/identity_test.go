package oauth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/users"
)

// identityWorld is a fixture with identity instances: "app" (redirect URIs
// for the browser flow), "provider" (provides an API) and "consumer"
// (consumes provider), each with a SECRET binding, and the user alice.
type identityWorld struct {
	f                       *fixture
	app, provider, consumer binding
	alice                   *users.Spec
	aliceID                 string
}

func newIdentityWorld(t *testing.T) *identityWorld {
	t.Helper()
	f := newFixture(t)
	w := &identityWorld{f: f}
	w.app = f.bind(f.provisionIdentity("app", `{"oauth2-configuration":{
		"redirect-uris":["https://app.example.com/**"],
		"post-logout-redirect-uris":["https://app.example.com/bye"]}}`), "")
	w.provider = f.bind(f.provisionIdentity("provider", `{"provided-apis":[{"name":"read-api","description":"r"},{"name":"write-api","description":"w"}]}`), "")
	w.consumer = f.bind(f.provisionIdentity("consumer", `{"consumed-services":[{"service-instance-name":"provider"}]}`), "")
	w.alice = &users.Spec{Username: "alice", Password: alicePass, Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe"}
	w.aliceID = f.addUser(*w.alice).ID
	return w
}

// iasForm is a request of the identity binding b, secret in the body, as
// xssec sends it (with the binding's app_tid). kv replaces fields, except
// resource, which repeats.
func iasForm(b binding, grant string, kv ...string) url.Values {
	v := url.Values{"grant_type": {grant}, "client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}, "app_tid": {b.cred("app_tid")}}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "resource" {
			v.Add(kv[i], kv[i+1])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v
}

// iasOK asserts a 200 identity token reply and returns the verified
// access token claims.
func iasOK(t *testing.T, f *fixture, status int, body map[string]any) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("identity token: %d %v", status, body)
	}
	if body["token_type"] != "Bearer" || body["expires_in"] == nil {
		t.Errorf("reply %v", body)
	}
	header, claims := f.parseJWT(body["access_token"].(string))
	if header["kid"] != sharedKID || header["jku"] != nil {
		t.Errorf("header %v: want kid and no jku", header)
	}
	if claims["iss"] != testIdentityURL {
		t.Errorf("iss %v, want %s", claims["iss"], testIdentityURL)
	}
	return claims
}

func TestIdentityDiscovery(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		host   string
		issuer string
	}{
		{"identity host", "acme.accounts.test.local", testIdentityURL},
		{"identity host, other case", "ACME.Accounts.test.local", testIdentityURL},
		{"xsuaa host", "acme.authentication.test.local", testXsuaaURL + "/oauth/token"},
		{"listener address", "", testXsuaaURL + "/oauth/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, raw := f.do(http.MethodGet, "/.well-known/openid-configuration", "", withHost(tc.host))
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, raw)
			}
			doc := decodeJSON(t, raw)
			if doc["issuer"] != tc.issuer {
				t.Errorf("issuer %v, want %s", doc["issuer"], tc.issuer)
			}
			if tc.issuer != testIdentityURL {
				if doc["jwks_uri"] != testXsuaaURL+"/token_keys" {
					t.Errorf("xsuaa jwks_uri %v", doc["jwks_uri"])
				}
				return
			}
			for k, path := range map[string]string{
				"jwks_uri": "/oauth2/certs", "token_endpoint": "/oauth2/token", "authorization_endpoint": "/oauth2/authorize",
				"end_session_endpoint": "/oauth2/logout", "userinfo_endpoint": "/oauth2/userinfo",
			} {
				if doc[k] != testIdentityURL+path {
					t.Errorf("%s %v, want %s", k, doc[k], testIdentityURL+path)
				}
			}
			grants := strs(t, doc, "grant_types_supported")
			for _, g := range []string{"client_credentials", "password", "authorization_code", "refresh_token", GrantJWTBearer} {
				if !slices.Contains(grants, g) {
					t.Errorf("grant_types_supported %v lacks %s", grants, g)
				}
			}
		})
	}
}

func TestIdentityClientCredentials(t *testing.T) {
	w := newIdentityWorld(t)
	f, cid, secret := w.f, w.app.cred("clientid"), w.app.cred("clientsecret")
	x := f.bind(w.app.InstanceID, `{"credential-type":"X509_GENERATED"}`)

	claims := okIAS(t, f)(f.iasToken(iasForm(w.app, ccGrant)))
	for k, want := range map[string]any{"sub": cid, "azp": cid, "app_tid": f.zone.ID, "zone_uuid": f.zone.ID, "sap_id_type": "app"} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if w.app.cred("app_tid") != f.zone.ID {
		t.Errorf("binding app_tid %q, zone %s", w.app.cred("app_tid"), f.zone.ID)
	}
	if aud := strs(t, claims, "aud"); !slices.Equal(aud, []string{cid}) {
		t.Errorf("aud %v", aud)
	}
	if _, ok := claims["cnf"]; ok {
		t.Errorf("secret-authenticated token has cnf %v", claims["cnf"])
	}
	if d := num(t, claims, "exp") - num(t, claims, "iat"); d != 3600 {
		t.Errorf("lifetime %d, want the default 3600", d)
	}

	t.Run("certificate: cnf x5t#S256", func(t *testing.T) {
		for _, form := range []url.Values{
			{"grant_type": {ccGrant}, "client_id": {cid}},
			{"grant_type": {ccGrant}},
		} {
			claims := okIAS(t, f)(f.iasToken(form, withCert(x.tlsCert(t))))
			cnf, _ := claims["cnf"].(map[string]any)
			if cnf["x5t#S256"] != credentials.X5tS256(x.leaf(t)) || claims["azp"] != cid {
				t.Errorf("cnf %v azp %v", claims["cnf"], claims["azp"])
			}
		}
	})

	xsuaa := f.bind(f.provisionXsuaa(`{"xsappname":"plain"}`), "")
	for _, tc := range []struct {
		name       string
		form       url.Values
		opts       []reqOpt
		wantStatus int // 0: success
		wantCode   string
	}{
		{"Basic only", url.Values{"grant_type": {ccGrant}}, []reqOpt{withBasic(cid, secret)}, 0, ""},
		{"Basic and body together", iasForm(w.app, ccGrant), []reqOpt{withBasic(cid, secret)}, 0, ""},
		{"empty app_tid", iasForm(w.app, ccGrant, "app_tid", ""), nil, 0, ""},
		{"token_format and refresh_expiry ignored", iasForm(w.app, ccGrant, "token_format", "jwt", "refresh_expiry", "0"), nil, 0, ""},
		{"unknown app_tid", url.Values{"grant_type": {ccGrant}, "client_id": {cid}, "client_secret": {secret}, "app_tid": {"other-tenant"}}, nil, 400, "invalid_request"},
		{"Basic and body name different clients", iasForm(w.provider, ccGrant), []reqOpt{withBasic(cid, secret)}, 401, "invalid_client"},
		{"wrong secret", url.Values{"grant_type": {ccGrant}, "client_id": {cid}, "client_secret": {tweak(secret)}}, nil, 401, "invalid_client"},
		{"certificate with another client_id", url.Values{"grant_type": {ccGrant}, "client_id": {w.provider.cred("clientid")}}, []reqOpt{withCert(x.tlsCert(t))}, 401, "invalid_client"},
		{"xsuaa client on /oauth2/token", xsuaa.secretForm(), nil, 401, "invalid_client"},
		{"unsupported grant", iasForm(w.app, GrantTokenExchange), nil, 400, "unsupported_grant_type"},
		{"missing grant", url.Values{"client_id": {cid}, "client_secret": {secret}}, nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.iasToken(tc.form, tc.opts...)
			if tc.wantStatus == 0 {
				if c := iasOK(t, f, status, body); c["azp"] != cid {
					t.Errorf("azp %v", c["azp"])
				}
				return
			}
			wantOAuthError(t, status, body, tc.wantStatus, tc.wantCode)
		})
	}

	t.Run("identity client on /oauth/token", func(t *testing.T) {
		status, body := f.token(w.app.secretForm())
		wantInvalidClient(t, status, body)
		status, body = f.token(url.Values{"grant_type": {ccGrant}}, withCert(x.tlsCert(t)))
		wantInvalidClient(t, status, body)
	})

	t.Run("client without the grant", func(t *testing.T) {
		b := f.bind(f.provisionIdentity("cc-only", `{"oauth2-configuration":{"grant-types":["client_credentials"]}}`), "")
		okIAS(t, f)(f.iasToken(iasForm(b, ccGrant)))
		status, body := f.iasToken(passwordForm(b, "alice", alicePass))
		wantOAuthError(t, status, body, http.StatusBadRequest, "unauthorized_client")
	})
}

// okIAS is iasOK taking (status, body) as f.iasToken returns them.
func okIAS(t *testing.T, f *fixture) func(int, map[string]any) map[string]any {
	return func(status int, body map[string]any) map[string]any {
		t.Helper()
		return iasOK(t, f, status, body)
	}
}

// wantIASUser asserts the user claims of an identity token.
func wantIASUser(t *testing.T, claims map[string]any, userID, clientID string) {
	t.Helper()
	for k, want := range map[string]any{
		"sub": userID, "user_uuid": userID, "scim_id": userID, "sap_id_type": "user", "azp": clientID,
		"email": "alice@example.com", "given_name": "Alice", "family_name": "Doe", "email_verified": true,
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if aud := strs(t, claims, "aud"); !slices.Contains(aud, clientID) {
		t.Errorf("aud %v lacks %s", aud, clientID)
	}
}

func TestIdentityUserGrants(t *testing.T) {
	w := newIdentityWorld(t)
	f, cid := w.f, w.app.cred("clientid")

	status, body := f.iasToken(passwordForm(w.app, "alice", alicePass, "app_tid", w.app.cred("app_tid")))
	claims := iasOK(t, f, status, body)
	wantIASUser(t, claims, w.aliceID, cid)
	idt, _ := body["id_token"].(string)
	_, id := f.parseJWT(idt)
	wantIASUser(t, id, w.aliceID, cid)
	if aud := strs(t, id, "aud"); !slices.Contains(aud, stringClaim(id, "azp")) {
		t.Errorf("id_token aud %v lacks azp (xssec would take it for an access token)", aud)
	}
	rt, _ := body["refresh_token"].(string)
	if rt == "" {
		t.Fatalf("no refresh_token: %v", body)
	}

	t.Run("wrong password", func(t *testing.T) {
		status, body := f.iasToken(passwordForm(w.app, "alice", "wrong"))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_grant")
	})

	t.Run("refresh", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "app_tid": {""}}
		status, body := f.iasToken(form, withBasic(cid, w.app.cred("clientsecret")))
		wantIASUser(t, iasOK(t, f, status, body), w.aliceID, cid)
		next, _ := body["refresh_token"].(string)
		if next == "" || next == rt || body["id_token"] == nil {
			t.Errorf("refresh reply %v", body)
		}
		status, body = f.iasToken(form, withBasic(cid, w.app.cred("clientsecret")))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_token")
		status, body = f.iasToken(iasForm(w.provider, "refresh_token", "refresh_token", next))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_grant")
	})

	t.Run("jwt-bearer with an id_token of the same client", func(t *testing.T) {
		status, body := f.iasToken(iasForm(w.app, GrantJWTBearer, "assertion", idt, "token_format", "jwt"))
		wantIASUser(t, iasOK(t, f, status, body), w.aliceID, cid)
		if body["id_token"] == nil || body["refresh_token"] == nil {
			t.Errorf("reply %v", body)
		}
		// getIdToken's exchange: refresh_expiry=0 means no refresh token.
		status, body = f.iasToken(iasForm(w.app, GrantJWTBearer, "assertion", idt, "token_format", "jwt", "refresh_expiry", "0"))
		iasOK(t, f, status, body)
		if _, ok := body["refresh_token"]; ok || body["id_token"] == nil {
			t.Errorf("refresh_expiry=0: reply %v", body)
		}
	})

	xsuaaTok, _, _ := f.mustToken(passwordForm(f.bind(f.provisionXsuaa(`{"xsappname":"x"}`), ""), "alice", alicePass))
	_, cc := f.iasToken(iasForm(w.app, ccGrant))
	ccRaw, _ := cc["access_token"].(string)
	_, other := f.iasToken(passwordForm(w.provider, "alice", alicePass))
	otherID, _ := other["id_token"].(string)
	for _, tc := range []struct {
		name      string
		assertion string
	}{
		{"an xsuaa token", xsuaaTok["access_token"].(string)},
		{"an id_token of another client", otherID},
		{"an app token", ccRaw},
		{"garbage", "garbage"},
	} {
		t.Run("jwt-bearer refuses "+tc.name, func(t *testing.T) {
			status, body := f.iasToken(iasForm(w.app, GrantJWTBearer, "assertion", tc.assertion))
			wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
		})
	}

	t.Run("userinfo", func(t *testing.T) {
		status, _, raw := f.do(http.MethodGet, "/oauth2/userinfo", "", f.onIdentity(), withBearer(body["access_token"].(string)))
		if info := decodeJSON(t, raw); status != http.StatusOK || info["sub"] != w.aliceID || info["email"] != "alice@example.com" {
			t.Errorf("userinfo %d %v", status, info)
		}
		status, _, raw = f.do(http.MethodGet, "/oauth2/userinfo", "", f.onIdentity(), withBearer(xsuaaTok["access_token"].(string)))
		wantOAuthError(t, status, decodeJSON(t, raw), http.StatusUnauthorized, "invalid_token")
		status, _, raw = f.do(http.MethodGet, "/userinfo", "", withBearer(body["access_token"].(string)))
		wantOAuthError(t, status, decodeJSON(t, raw), http.StatusUnauthorized, "invalid_token")
	})

	t.Run("deleted user", func(t *testing.T) {
		ivy := f.addUser(users.Spec{Username: "ivy", Password: "ivy-pass"})
		_, body := f.iasToken(passwordForm(w.app, "ivy", "ivy-pass"))
		f.deleteUser(ivy.ID)
		status, reply := f.iasToken(iasForm(w.app, GrantJWTBearer, "assertion", body["id_token"].(string)))
		wantOAuthError(t, status, reply, http.StatusBadRequest, "invalid_grant")
		status, reply = f.iasToken(iasForm(w.app, "refresh_token", "refresh_token", body["refresh_token"].(string)))
		wantOAuthError(t, status, reply, http.StatusUnauthorized, "invalid_token")
	})
}

func TestIdentityAuthorizationCode(t *testing.T) {
	w := newIdentityWorld(t)
	f, cid := w.f, w.app.cred("clientid")
	br := f.browser()
	br.host = f.identity.Host
	verifier, challenge := pkce()
	const redirect = "https://app.example.com/login/callback"
	q := authorizeQuery(cid, redirect, "st-9", "scope", "openid", "nonce", "n-9", "code_challenge", challenge, "code_challenge_method", "S256")

	p := br.get("/oauth2/authorize?" + q.Encode())
	if !p.isLoginForm() || !strings.Contains(p.Body, "app") {
		t.Fatalf("no login form: %d %.300s", p.Status, p.Body)
	}
	if cont, _ := url.Parse(p.field("continue")); cont == nil || cont.Path != "/oauth2/authorize" {
		t.Errorf("continue %q", p.field("continue"))
	}
	code := codeOf(t, br.authorizeCode("/oauth2/authorize", q, "alice", alicePass), redirect, "st-9")

	// Approuter's IAS code exchange: Basic and the body together.
	form := iasForm(w.app, "authorization_code", "code", code, "redirect_uri", redirect, "code_verifier", verifier)
	status, body := f.iasToken(form, withBasic(cid, w.app.cred("clientsecret")))
	wantIASUser(t, iasOK(t, f, status, body), w.aliceID, cid)
	_, id := f.parseJWT(body["id_token"].(string))
	if id["nonce"] != "n-9" {
		t.Errorf("id_token nonce %v", id["nonce"])
	}
	status, body = f.iasToken(form)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")

	t.Run("wrong verifier", func(t *testing.T) {
		code := codeOf(t, br.authorizeCode("/oauth2/authorize", q, "alice", alicePass), redirect, "st-9")
		status, body := f.iasToken(iasForm(w.app, "authorization_code", "code", code, "redirect_uri", redirect, "code_verifier", verifier+"x"))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("xsuaa endpoint refuses an identity code exchange", func(t *testing.T) {
		code := codeOf(t, br.authorizeCode("/oauth2/authorize", q, "alice", alicePass), redirect, "st-9")
		status, body := f.token(iasForm(w.app, "authorization_code", "code", code, "redirect_uri", redirect, "code_verifier", verifier))
		wantInvalidClient(t, status, body)
	})
	t.Run("display name is escaped", func(t *testing.T) {
		b := f.bind(f.provisionIdentity("evil", `{"display-name":"<script>alert(1)</script>","oauth2-configuration":{"redirect-uris":["https://app.example.com/**"]}}`), "")
		p := f.browser().get("/oauth2/authorize?" + authorizeQuery(b.cred("clientid"), redirect, "s").Encode())
		if !p.isLoginForm() || strings.Contains(p.Body, "<script>") || !strings.Contains(p.Body, "&lt;script&gt;") {
			t.Errorf("display name not escaped: %.2000s", p.Body)
		}
	})
	t.Run("logout", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			params url.Values
			target string
		}{
			{"post_logout_redirect_uri", url.Values{"post_logout_redirect_uri": {"https://app.example.com/bye"}, "client_id": {cid}}, "https://app.example.com/bye"},
			{"id_token_hint", url.Values{"post_logout_redirect_uri": {"https://app.example.com/bye"}, "id_token_hint": {body2idToken(t, f, w)}}, "https://app.example.com/bye"},
			{"foreign target", url.Values{"post_logout_redirect_uri": {"https://evil.example.com/"}, "client_id": {cid}}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				codeOf(t, br.authorizeCode("/oauth2/authorize", q, "alice", alicePass), redirect, "st-9")
				p := br.get("/oauth2/logout?" + tc.params.Encode())
				if tc.target == "" {
					wantPage(t, p, http.StatusOK, "Signed out")
				} else if p.Status != http.StatusFound || p.Header.Get("Location") != tc.target {
					t.Errorf("%d to %q, want %s", p.Status, p.Header.Get("Location"), tc.target)
				}
				if br.cookie(sessionCookie) != "" {
					t.Error("session survives logout")
				}
			})
		}
		// An id_token_hint is often older than the id token's lifetime
		// (OIDC RP-initiated logout: the OP should still accept it).
		hint := body2idToken(t, f, w)
		f.advance(2 * time.Hour)
		p := br.get("/oauth2/logout?" + url.Values{"post_logout_redirect_uri": {"https://app.example.com/bye"}, "id_token_hint": {hint}}.Encode())
		if p.Status != http.StatusFound || p.Header.Get("Location") != "https://app.example.com/bye" {
			t.Errorf("expired id_token_hint: %d to %q", p.Status, p.Header.Get("Location"))
		}
		forged := signToken(t, jwt.SigningMethodRS256, mustForeignKey(t), sharedKID, map[string]any{"iss": testIdentityURL, "azp": cid, "aud": cid})
		p = br.get("/oauth2/logout?" + url.Values{"post_logout_redirect_uri": {"https://app.example.com/bye"}, "id_token_hint": {forged}}.Encode())
		wantPage(t, p, http.StatusOK, "Signed out")
	})
}

// body2idToken is a fresh id_token of alice for the app client.
func body2idToken(t *testing.T, f *fixture, w *identityWorld) string {
	t.Helper()
	_, body := f.iasToken(passwordForm(w.app, "alice", alicePass))
	return body["id_token"].(string)
}

func TestIdentityAppToApp(t *testing.T) {
	w := newIdentityWorld(t)
	f := w.f
	con, prov := w.consumer.cred("clientid"), w.provider.cred("clientid")
	byName := resourceByName + "provider"

	t.Run("consumer's own tokens name the provider in aud", func(t *testing.T) {
		claims := okIAS(t, f)(f.iasToken(iasForm(w.consumer, ccGrant)))
		if aud := strs(t, claims, "aud"); !sameSet(aud, []string{con, prov}) {
			t.Errorf("aud %v", aud)
		}
	})
	for _, res := range []string{byName, resourceByClientID + prov, resourceByClientID + prov + ":apptid:" + f.zone.ID} {
		t.Run("client_credentials "+res, func(t *testing.T) {
			claims := okIAS(t, f)(f.iasToken(iasForm(w.consumer, ccGrant, "resource", res)))
			if aud := strs(t, claims, "aud"); !slices.Equal(aud, []string{prov}) || claims["azp"] != con || claims["sub"] != con {
				t.Errorf("aud %v azp %v sub %v", aud, claims["azp"], claims["sub"])
			}
			if apis := strs(t, claims, "ias_apis"); !sameSet(apis, []string{"read-api", "write-api"}) {
				t.Errorf("ias_apis %v", apis)
			}
		})
	}
	t.Run("jwt-bearer with resource", func(t *testing.T) {
		_, body := f.iasToken(passwordForm(w.consumer, "alice", alicePass))
		status, reply := f.iasToken(iasForm(w.consumer, GrantJWTBearer, "assertion", body["id_token"].(string), "resource", byName))
		claims := iasOK(t, f, status, reply)
		if aud := strs(t, claims, "aud"); !slices.Equal(aud, []string{prov}) || claims["azp"] != con || claims["sap_id_type"] != "user" || claims["user_uuid"] != w.aliceID {
			t.Errorf("claims %v", claims)
		}
		if apis := strs(t, claims, "ias_apis"); !sameSet(apis, []string{"read-api", "write-api"}) {
			t.Errorf("ias_apis %v", apis)
		}
		// The provider validates such a token: its aud is the provider and
		// online validation accepts the consumer as azp.
		status, _, _ = f.do(http.MethodGet, "/oauth2/certs", "", f.onIdentity(), withHeader("x-client_id", prov), withHeader("x-azp", con), withHeader("x-app_tid", f.zone.ID))
		if status != http.StatusOK {
			t.Errorf("certs for the provider with azp consumer: %d", status)
		}
	})
	for _, tc := range []struct {
		name string
		b    binding
		res  []string
	}{
		{"provider not consumed", w.app, []string{byName}},
		{"reverse direction", w.provider, []string{resourceByName + "consumer"}},
		{"unknown provider name", w.consumer, []string{resourceByName + "nobody"}},
		{"unknown provider client id", w.consumer, []string{resourceByClientID + "nobody"}},
		{"xsuaa-style resource", w.consumer, []string{"https://provider.example.com"}},
		{"two providers", w.consumer, []string{byName, resourceByName + "app"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := iasForm(tc.b, ccGrant)
			for _, r := range tc.res {
				form.Add("resource", r)
			}
			status, body := f.iasToken(form)
			wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_target")
		})
	}
	t.Run("the same resource twice", func(t *testing.T) {
		okIAS(t, f)(f.iasToken(iasForm(w.consumer, ccGrant, "resource", byName, "resource", resourceByClientID+prov)))
	})
}

// certs calls /oauth2/certs on the identity host with headers kv.
func (f *fixture) certs(kv ...string) (int, http.Header, []byte) {
	f.tb.Helper()
	opts := []reqOpt{f.onIdentity()}
	for i := 0; i+1 < len(kv); i += 2 {
		opts = append(opts, withHeader(kv[i], kv[i+1]))
	}
	return f.do(http.MethodGet, "/oauth2/certs", "", opts...)
}

func TestIdentityCerts(t *testing.T) {
	w := newIdentityWorld(t)
	f := w.f
	app, prov, con := w.app.cred("clientid"), w.provider.cred("clientid"), w.consumer.cred("clientid")
	x := f.bind(w.app.InstanceID, `{"credential-type":"X509_GENERATED"}`)
	certPEM := x.cred("certificate")
	oneLine := strings.NewReplacer("\r", "", "\n", "").Replace(certPEM)
	_, selfPEM := selfSignedCert(t, "stranger")
	xsuaa := f.bind(f.provisionXsuaa(`{"xsappname":"plain"}`), "")
	unbound := f.bind(f.provisionIdentity("unbound", `{}`), "")
	f.unbind(unbound)

	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		plan    string // expected x-osb_plan
	}{
		{"no headers", nil, 200, ""},
		{"client_id", []string{"x-client_id", app}, 200, ""},
		{"client_id, app_tid and azp as xssec sends them", []string{"x-client_id", app, "x-app_tid", f.zone.ID, "x-azp", app}, 200, ""},
		{"unknown client_id", []string{"x-client_id", "nobody"}, 400, ""},
		{"xsuaa client_id", []string{"x-client_id", xsuaa.cred("clientid")}, 400, ""},
		{"client without bindings", []string{"x-client_id", unbound.cred("clientid")}, 400, ""},
		{"wrong app_tid", []string{"x-client_id", app, "x-app_tid", "other-tenant"}, 400, ""},
		{"azp consumes the client", []string{"x-client_id", prov, "x-azp", con}, 200, ""},
		{"azp the client does not accept", []string{"x-client_id", prov, "x-azp", app}, 400, ""},
		{"azp in the reverse direction", []string{"x-client_id", con, "x-azp", prov}, 400, ""},
		{"unknown azp", []string{"x-client_id", app, "x-azp", "nobody"}, 400, ""},
		{"wrong azp_app_tid", []string{"x-client_id", prov, "x-azp", con, "x-azp_app_tid", "other-tenant"}, 400, ""},
		{"client certificate, single-line PEM", []string{"x-client_id", app, "x-client_cert", oneLine}, 200, `"application"`},
		{"client certificate, PEM with literal \\n", []string{"x-client_cert", strings.ReplaceAll(strings.TrimSpace(certPEM), "\n", `\n`)}, 200, `"application"`},
		{"client certificate, base64 DER", []string{"x-client_cert", base64.StdEncoding.EncodeToString(x.leaf(t).Raw)}, 200, `"application"`},
		{"unknown certificate", []string{"x-client_cert", strings.ReplaceAll(selfPEM, "\n", "")}, 400, ""},
		{"not a certificate", []string{"x-client_cert", "garbage"}, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, raw := f.certs(tc.headers...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, raw)
			}
			if got := header.Get("x-osb_plan"); got != tc.plan {
				t.Errorf("x-osb_plan %q, want %q", got, tc.plan)
			}
			body := decodeJSON(t, raw)
			if tc.status == 200 {
				keys, _ := body["keys"].([]any)
				if len(keys) == 0 {
					t.Errorf("no keys: %s", raw)
				}
			} else if body["error"] == nil {
				t.Errorf("400 without error: %s", raw)
			}
		})
	}

	t.Run("unbind", func(t *testing.T) {
		f.unbind(w.app)
		// The certificate binding keeps the client alive.
		if status, _, _ := f.certs("x-client_id", app); status != 200 {
			t.Errorf("certs with one binding left: %d", status)
		}
		status, body := f.iasToken(iasForm(w.app, ccGrant))
		wantInvalidClient(t, status, body)
		f.unbind(x)
		if status, _, _ := f.certs("x-client_id", app); status != 400 {
			t.Errorf("certs after the last unbind: %d, want 400", status)
		}
		if status, _, _ := f.certs("x-client_cert", oneLine); status != 400 {
			t.Errorf("certs with an unbound certificate: %d, want 400", status)
		}
		status, body = f.iasToken(url.Values{"grant_type": {ccGrant}, "client_id": {app}}, withCert(x.tlsCert(t)))
		wantInvalidClient(t, status, body)
	})
}

// Issue 5 rotation: two X509_GENERATED bindings with the same
// app-identifier share the subject, but each certificate is pinned, so
// unbinding one leaves the other working.
func TestIdentityCertificateRotation(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionIdentity("rotating", `{}`)
	b1 := f.bind(inst, `{"credential-type":"X509_GENERATED","app-identifier":"orders"}`)
	b2 := f.bind(inst, `{"credential-type":"X509_GENERATED","app-identifier":"orders"}`)
	l1, l2 := b1.leaf(t), b2.leaf(t)
	if l1.Subject.String() != l2.Subject.String() {
		t.Errorf("subjects differ: %s / %s", l1.Subject, l2.Subject)
	}
	if credentials.Fingerprint(l1) == credentials.Fingerprint(l2) || b1.cred("clientid") != b2.cred("clientid") {
		t.Fatal("want two certificates of one client")
	}
	token := func(b binding) (int, map[string]any) {
		return f.iasToken(url.Values{"grant_type": {ccGrant}, "client_id": {b.cred("clientid")}}, withCert(b.tlsCert(t)))
	}
	certsStatus := func(b binding) int {
		status, _, _ := f.certs("x-client_cert", strings.ReplaceAll(b.cred("certificate"), "\n", ""))
		return status
	}
	for _, b := range []binding{b1, b2} {
		okIAS(t, f)(token(b))
		if s := certsStatus(b); s != 200 {
			t.Errorf("certs for %s: %d", b.ID, s)
		}
	}
	f.unbind(b1)
	status, body := token(b1)
	wantInvalidClient(t, status, body)
	if s := certsStatus(b1); s != 400 {
		t.Errorf("certs for the unbound certificate: %d", s)
	}
	claims := okIAS(t, f)(token(b2))
	if cnf, _ := claims["cnf"].(map[string]any); cnf["x5t#S256"] != credentials.X5tS256(l2) {
		t.Errorf("cnf %v", claims["cnf"])
	}
	if s := certsStatus(b2); s != 200 {
		t.Errorf("certs for the remaining certificate: %d", s)
	}
}

package oauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

const introspectApp = `{"xsappname":"introspect","scopes":[{"name":"$XSAPPNAME.Read"}],"authorities":["$XSAPPNAME.Read"]}`

// introspect asks /introspect (or /oauth2/introspect) about tok,
// authenticated as the binding by.
func (f *fixture) introspect(path string, by binding, tok string, opts ...reqOpt) (int, map[string]any) {
	f.tb.Helper()
	form := url.Values{"token": {tok}}
	opts = append(opts, withBasic(by.cred("clientid"), by.cred("clientsecret")))
	status, _, raw := f.do(http.MethodPost, path, form.Encode(), opts...)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return status, body
}

func (f *fixture) ccToken(b binding) string {
	f.tb.Helper()
	body, _, _ := f.mustToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}})
	return body["access_token"].(string)
}

func TestIntrospectXsuaa(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(introspectApp)
	b1, b2 := f.bind(inst, ""), f.bind(inst, "")
	other := f.bind(f.provisionXsuaa(`{"xsappname":"other"}`), "")
	tok1, tok2 := f.ccToken(b1), f.ccToken(b2)

	status, body := f.introspect("/introspect", other, tok1)
	if status != http.StatusOK || body["active"] != true || body["client_id"] != b1.cred("clientid") || body["scope"] == nil {
		t.Fatalf("live token: %d %v", status, body)
	}
	if _, ok := body["scope"].(string); !ok {
		t.Fatalf("scope must be a space-separated string (RFC 7662): %v", body["scope"])
	}

	// Unbinding b1 deactivates b1's tokens at once, not b2's.
	f.unbind(b1)
	if _, body := f.introspect("/introspect", other, tok1); body["active"] != false || len(body) != 1 {
		t.Fatalf("token of an unbound binding: %v", body)
	}
	if _, body := f.introspect("/introspect", other, tok2); body["active"] != true {
		t.Fatalf("token of the other, live binding: %v", body)
	}

	// Deleting the instance deactivates every token of it.
	f.deprovision(inst)
	if _, body := f.introspect("/introspect", other, tok2); body["active"] != false {
		t.Fatalf("token of a deleted instance: %v", body)
	}

	// Garbage and foreign tokens are inactive, not errors.
	for _, tok := range []string{"garbage", tok1 + "x", "a.b.c"} {
		if status, body := f.introspect("/introspect", other, tok); status != http.StatusOK || body["active"] != false {
			t.Fatalf("%q: %d %v", tok, status, body)
		}
	}
	// The caller must authenticate.
	if status, _, _ := f.do(http.MethodPost, "/introspect", url.Values{"token": {tok2}}.Encode()); status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated introspection: %d", status)
	}
	if status, _ := f.introspect("/introspect", other, ""); status != http.StatusBadRequest {
		t.Fatalf("missing token: %d", status)
	}
}

func TestRevoke(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	other := f.bind(f.provisionXsuaa(`{"xsappname":"revoker"}`), "")
	body, _ := w.aliceToken()
	access, refresh := body["access_token"].(string), body["refresh_token"].(string)

	// Another client cannot revoke alice's tokens of the bookshop client.
	revoke := func(by binding, tok string) int {
		status, _, _ := f.do(http.MethodPost, "/oauth/revoke", url.Values{"token": {tok}}.Encode(), withBasic(by.cred("clientid"), by.cred("clientsecret")))
		return status
	}
	if got := revoke(other, access); got != http.StatusOK {
		t.Fatalf("revoke by another client: %d (RFC 7009 answers 200)", got)
	}
	if _, b := f.introspect("/introspect", other, access); b["active"] != true {
		t.Fatalf("another client revoked the token: %v", b)
	}

	// The owner revokes the access token: introspection says inactive.
	if got := revoke(w.app, access); got != http.StatusOK {
		t.Fatalf("revoke: %d", got)
	}
	if _, b := f.introspect("/introspect", other, access); b["active"] != false {
		t.Fatalf("revoked access token: %v", b)
	}
	// The owner revokes the refresh token: it no longer works.
	if got := revoke(w.app, refresh); got != http.StatusOK {
		t.Fatalf("revoke refresh: %d", got)
	}
	status, _ := f.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, withBasic(w.app.cred("clientid"), w.app.cred("clientsecret")))
	if status == http.StatusOK {
		t.Fatal("a revoked refresh token still works")
	}
	// Unknown tokens: 200 all the same.
	if got := revoke(w.app, "nonsense"); got != http.StatusOK {
		t.Fatalf("revoke unknown: %d", got)
	}
}

func TestIntrospectIdentity(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionIdentity("intro-ias", `{}`)
	b := f.bind(inst, "")
	status, body := f.iasToken(url.Values{"grant_type": {"client_credentials"}, "client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}})
	if status != http.StatusOK {
		t.Fatalf("identity token: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	if _, got := f.introspect("/oauth2/introspect", b, tok, f.onIdentity()); got["active"] != true {
		t.Fatalf("live identity token: %v", got)
	}
	// An xsuaa-host introspection does not accept identity tokens.
	if _, got := f.introspect("/introspect", b, tok); got["active"] != false {
		t.Fatalf("identity token at the xsuaa endpoint: %v", got)
	}
	b2 := f.bind(inst, "")
	f.unbind(b)
	if _, got := f.introspect("/oauth2/introspect", b2, tok, f.onIdentity()); got["active"] != false {
		t.Fatalf("identity token of an unbound binding: %v", got)
	}
}

// TestInactiveTokensCannotBeExchanged: a token introspection calls
// inactive (revoked, or its binding unbound) must not buy fresh tokens
// through jwt-bearer or user_token, nor read /userinfo.
func TestInactiveTokensCannotBeExchanged(t *testing.T) {
	for _, how := range []string{"revoked", "unbound"} {
		t.Run(how, func(t *testing.T) {
			w := newUserWorld(t)
			f := w.f
			issuer := f.bind(w.inst, "") // the binding that obtains alice's token
			exchanger := f.bind(w.inst, "")
			body, _, _ := f.mustToken(passwordForm(issuer, "alice", alicePass))
			tok := body["access_token"].(string)
			switch how {
			case "revoked":
				status, _, _ := f.do(http.MethodPost, "/oauth/revoke", url.Values{"token": {tok}}.Encode(), withBasic(issuer.cred("clientid"), issuer.cred("clientsecret")))
				if status != http.StatusOK {
					t.Fatalf("revoke: %d", status)
				}
			case "unbound":
				f.unbind(issuer)
			}
			cid := exchanger.cred("clientid")
			status, got := f.token(url.Values{"grant_type": {GrantJWTBearer}, "assertion": {tok}}, withBasic(cid, exchanger.cred("clientsecret")))
			if status == http.StatusOK {
				t.Fatalf("jwt-bearer exchanged an inactive token: %v", got)
			}
			status, got = f.token(url.Values{"grant_type": {"user_token"}, "client_id": {cid}}, withBearer(tok))
			if status == http.StatusOK {
				t.Fatalf("user_token accepted an inactive token: %v", got)
			}
			if status, _, raw := f.do(http.MethodGet, "/userinfo", "", withBearer(tok)); status == http.StatusOK {
				t.Fatalf("userinfo answered for an inactive token: %s", raw)
			}
		})
	}
}

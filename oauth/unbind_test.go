package oauth

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
)

// TestUnbindKillsEveryPath binds one credential of each kind, checks that
// each path works, unbinds, and checks that every path through which the
// credential could get a token is refused — right after the unbind and
// again after a restart — while a second, live binding of the same
// instance keeps working (zero-downtime rotation).
func TestUnbindKillsEveryPath(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	secretB := w.app // a binding-secret binding of the bookshop instance
	keeper := f.bind(w.inst, "")
	x509B := f.bind(w.inst, `{"credential-type":"x509","x509":{"key-length":2048,"validity":7,"validity-type":"DAYS"}}`)
	// The XFCC path needs a plain-HTTP listener (as behind gorouter): a
	// second Server on the same store. In the broker one Server serves
	// both and the broker's Changed invalidates it; here the test does.
	xfcc := f.newServer(prefixes("127.0.0.1/32"))
	xfccServer := f.servePlain(xfcc)

	// A refresh token and a user token obtained by the secret binding.
	pw, _ := w.aliceToken()
	refresh := pw["refresh_token"].(string)
	userToken := pw["access_token"].(string)

	clientID := secretB.cred("clientid")
	paths := []struct {
		name string
		try  func() (int, map[string]any)
	}{
		{"secret in the body", func() (int, map[string]any) { return f.token(secretB.secretForm()) }},
		{"secret in Basic", func() (int, map[string]any) {
			return f.token(url.Values{"grant_type": {"client_credentials"}}, withBasic(clientID, secretB.cred("clientsecret")))
		}},
		{"x509 over direct mTLS", func() (int, map[string]any) {
			return f.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}, withCert(x509B.tlsCert(t)))
		}},
		{"x509 through trusted XFCC", func() (int, map[string]any) {
			return f.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}, via(xfccServer),
				withHeader("X-Forwarded-Client-Cert", base64.StdEncoding.EncodeToString(x509B.leaf(t).Raw)))
		}},
		{"refresh token issued to it (redeemed with the live binding)", func() (int, map[string]any) {
			return f.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, withBasic(clientID, keeper.cred("clientsecret")))
		}},
		{"jwt-bearer with it as the exchanging client", func() (int, map[string]any) {
			return f.token(url.Values{"grant_type": {GrantJWTBearer}, "assertion": {userToken}}, withBasic(clientID, secretB.cred("clientsecret")))
		}},
	}
	// Everything works while bound (the refresh path is checked last, as
	// it consumes the token; here only that the keeper works at all).
	for _, p := range paths[:4] {
		if status, body := p.try(); status != http.StatusOK {
			t.Fatalf("before unbind, %s: %d %v", p.name, status, body)
		}
	}
	if status, body := paths[5].try(); status != http.StatusOK {
		t.Fatalf("before unbind, jwt-bearer: %d %v", status, body)
	}

	f.unbind(secretB)
	f.unbind(x509B)
	xfcc.Invalidate()
	check := func(when string) {
		t.Helper()
		for _, p := range paths {
			if status, body := p.try(); status != http.StatusUnauthorized {
				t.Errorf("%s, %s: %d %v, want 401", when, p.name, status, body)
			}
		}
		if status, body := f.token(keeper.secretForm()); status != http.StatusOK {
			t.Errorf("%s, the other binding: %d %v", when, status, body)
		}
	}
	check("right after unbind")
	f.restart()
	xfccServer = f.plainServer("127.0.0.1/32")
	check("after a restart")
}

package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
)

// wantInvalidClient asserts the answer to a failed client authentication:
// 401 invalid_client "Bad credentials" and no token.
func wantInvalidClient(t *testing.T, status int, body map[string]any) {
	t.Helper()
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" || body["error_description"] != "Bad credentials" {
		t.Errorf("got %d error %v (%v), want 401 invalid_client/Bad credentials", status, body["error"], body["error_description"])
	}
	if _, ok := body["access_token"]; ok {
		t.Errorf("error reply carries an access_token (token of %v)", tokenClient(body))
	}
}

// tokenClient returns the unverified client_id of a reply's access token,
// for failure messages.
func tokenClient(body map[string]any) any {
	tok, _ := body["access_token"].(string)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		return nil
	}
	return claims["client_id"]
}

// wantOAuthError asserts a 4xx OAuth error reply without a token.
func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Errorf("got %d %v, want %d %s", status, body, wantStatus, wantCode)
	}
	if d, _ := body["error_description"].(string); d == "" {
		t.Errorf("error reply without error_description: %v", body)
	}
	if _, ok := body["access_token"]; ok {
		t.Errorf("error reply carries an access_token: %v", body)
	}
}

// wantTokenFor asserts a 200 token reply whose token belongs to clientID.
func wantTokenFor(t *testing.T, f *fixture, status int, body map[string]any, clientID string) map[string]any {
	t.Helper()
	if status != http.StatusOK {
		t.Errorf("got %d %v, want 200", status, body)
		return nil
	}
	tok, _ := body["access_token"].(string)
	_, claims := f.parseJWT(tok)
	if claims["client_id"] != clientID || claims["sub"] != clientID {
		t.Errorf("token of client %v (sub %v), want %s", claims["client_id"], claims["sub"], clientID)
	}
	return claims
}

// tweak returns secret with its last significant character changed.
func tweak(secret string) string {
	i := len(strings.TrimRight(secret, "=")) - 1
	c := byte('A')
	if secret[i] == c {
		c = 'B'
	}
	return secret[:i] + string(c) + secret[i+1:]
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func TestClientAuthentication(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(`{"xsappname":"bookshop"}`)
	b1 := f.bind(inst, "")
	b2 := f.bind(inst, "")
	ob := f.bind(f.provisionXsuaa(`{"xsappname":"other"}`), "")
	id, secret := b1.cred("clientid"), b1.cred("clientsecret")

	// The test is only meaningful for ids and secrets with the characters
	// that need care in Basic and form encoding.
	if !strings.Contains(id, "!") || !strings.Contains(secret, "$") || !strings.HasSuffix(secret, "=") {
		t.Fatalf("unexpected credential shapes: %q %q", id, secret)
	}
	if b2.cred("clientid") != id || b2.cred("clientsecret") == secret {
		t.Fatalf("two bindings of one instance: ids %q/%q, secrets equal: %v", id, b2.cred("clientid"), b2.cred("clientsecret") == secret)
	}
	encID, encSecret := url.QueryEscape(id), url.QueryEscape(secret)
	if !strings.Contains(encID, "%21") || !strings.Contains(encSecret, "%24") {
		t.Fatalf("QueryEscape left the id or secret as is: %q %q", encID, encSecret)
	}

	grant := form("grant_type", ccGrant)
	with := func(base url.Values, kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = slices.Clone(vs)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	cases := []struct {
		name       string
		form       url.Values
		opts       []reqOpt
		wantClient string // "" means 401
	}{
		{"secret in body", b1.secretForm(), nil, id},
		{"second binding's secret in body", b2.secretForm(), nil, id},
		{"basic raw", grant, []reqOpt{withBasic(id, secret)}, id},
		{"basic form-urlencoded", grant, []reqOpt{withBasic(encID, encSecret)}, id},
		{"basic with encoded id and raw secret", grant, []reqOpt{withBasic(encID, secret)}, id},
		{"basic and body, same client", b1.secretForm(), []reqOpt{withBasic(id, secret)}, id},
		{"basic and body client_id only", with(grant, "client_id", id), []reqOpt{withBasic(id, secret)}, id},
		{"basic and body with another binding's secret of the same client", b2.secretForm(), []reqOpt{withBasic(id, secret)}, id},
		{"other client in body", ob.secretForm(), nil, ob.cred("clientid")},

		{"basic and body name different clients", ob.secretForm(), []reqOpt{withBasic(id, secret)}, ""},
		{"basic and body client_id of another client", with(grant, "client_id", ob.cred("clientid")), []reqOpt{withBasic(id, secret)}, ""},
		{"basic right, body secret wrong", with(b1.secretForm(), "client_secret", secret+"x"), []reqOpt{withBasic(id, secret)}, ""},
		{"wrong secret in body", with(b1.secretForm(), "client_secret", tweak(secret)), nil, ""},
		{"wrong secret in basic", grant, []reqOpt{withBasic(id, "nope")}, ""},
		{"another client's secret", with(b1.secretForm(), "client_secret", ob.cred("clientsecret")), nil, ""},
		{"unknown client", with(b1.secretForm(), "client_id", "sb-unknown!t999"), nil, ""},
		{"unknown client in basic", grant, []reqOpt{withBasic("sb-unknown!t999", secret)}, ""},
		{"no credentials", grant, nil, ""},
		{"client_id without secret", with(grant, "client_id", id), nil, ""},
		{"secret without client_id", with(grant, "client_secret", secret), nil, ""},
		{"empty secret", with(grant, "client_id", id, "client_secret", ""), nil, ""},
		{"secret with different case", with(b1.secretForm(), "client_secret", strings.ToUpper(secret)), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.token(c.form, c.opts...)
			if c.wantClient == "" {
				wantInvalidClient(t, status, body)
				return
			}
			wantTokenFor(t, f, status, body, c.wantClient)
		})
	}

	t.Run("WWW-Authenticate on 401", func(t *testing.T) {
		status, h, _ := f.do(http.MethodPost, "/oauth/token", grant.Encode())
		if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("got %d WWW-Authenticate %q", status, h.Get("WWW-Authenticate"))
		}
	})
}

func TestUnbindAndDeprovisionRevoke(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(`{"xsappname":"bookshop"}`)
	b1 := f.bind(inst, "")
	b2 := f.bind(inst, "")
	id := b1.cred("clientid")

	// Warm the client table so that a stale cache would show.
	for _, b := range []binding{b1, b2} {
		status, body := f.token(b.secretForm())
		wantTokenFor(t, f, status, body, id)
	}
	f.unbind(b1)
	status, body := f.token(b1.secretForm())
	wantInvalidClient(t, status, body)
	status, body = f.token(form("grant_type", ccGrant), withBasic(id, b1.cred("clientsecret")))
	wantInvalidClient(t, status, body)
	status, body = f.token(b2.secretForm())
	wantTokenFor(t, f, status, body, id)

	// Deprovision removes the remaining binding with the instance.
	f.deprovision(inst)
	status, body = f.token(b2.secretForm())
	wantInvalidClient(t, status, body)

	// A new instance with the same xsappname gets a new client id; the old
	// secret stays dead for it as well.
	inst2 := f.provisionXsuaa(`{"xsappname":"bookshop"}`)
	b3 := f.bind(inst2, "")
	if b3.cred("clientid") == id {
		t.Errorf("re-created instance reuses client id %s", id)
	}
	status, body = f.token(url.Values{"grant_type": {ccGrant}, "client_id": {b3.cred("clientid")}, "client_secret": {b2.cred("clientsecret")}})
	wantInvalidClient(t, status, body)
	status, body = f.token(b3.secretForm())
	wantTokenFor(t, f, status, body, b3.cred("clientid"))
}

func TestInstanceSecret(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(`{"xsappname":"legacy","oauth2-configuration":{"credential-types":["instance-secret","binding-secret"]}}`)
	b1 := f.bind(inst, "") // the first credential type is the default
	b2 := f.bind(inst, `{"credential-type":"instance-secret"}`)
	b3 := f.bind(inst, `{"credential-type":"binding-secret"}`)
	if b1.cred("credential-type") != "instance-secret" || b2.cred("credential-type") != "instance-secret" || b3.cred("credential-type") != "binding-secret" {
		t.Fatalf("credential types %q %q %q", b1.cred("credential-type"), b2.cred("credential-type"), b3.cred("credential-type"))
	}
	shared := b1.cred("clientsecret")
	if shared == "" || b2.cred("clientsecret") != shared || b3.cred("clientsecret") == shared {
		t.Fatalf("instance secrets %q %q, binding secret %q", shared, b2.cred("clientsecret"), b3.cred("clientsecret"))
	}
	id := b1.cred("clientid")
	check := func(b binding, ok bool) {
		t.Helper()
		status, body := f.token(b.secretForm())
		if ok {
			wantTokenFor(t, f, status, body, id)
		} else {
			wantInvalidClient(t, status, body)
		}
	}
	check(b1, true)
	check(b3, true)
	f.unbind(b1)
	check(b2, true) // the shared secret lives while one of its bindings does
	f.unbind(b2)
	check(b2, false)
	check(b3, true)
}

// selfSignedCert makes a self-signed ECDSA client certificate with subject
// cn, the kind a user brings as a self-managed xsuaa x509 credential.
func selfSignedCert(t *testing.T, cn string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Customer"}, CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, p
}

// envoyXFCC renders an Envoy/Istio X-Forwarded-Client-Cert element for
// certPEM; esc URL-encodes the PEM.
func envoyXFCC(certPEM string, esc func(string) string) string {
	sum := sha256.Sum256([]byte(certPEM))
	return `Hash=` + hex.EncodeToString(sum[:]) + `;Cert="` + esc(certPEM) + `";Subject="CN=client";URI=`
}

func pathEscapeAll(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func TestCertificateAuthentication(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(`{"xsappname":"certapp"}`)
	xb := f.bind(inst, `{"credential-type":"x509","x509":{"key-length":2048,"validity":7,"validity-type":"DAYS"}}`)
	sb := f.bind(f.provisionXsuaa(`{"xsappname":"secretapp"}`), "")
	id := xb.cred("clientid")
	if xb.cred("certificate") == "" || xb.cred("key") == "" || xb.cred("certurl") == "" || xb.Creds["clientsecret"] != nil {
		t.Fatalf("x509 credentials: %v", xb.Creds)
	}
	leaf := xb.leaf(t)
	cert := xb.tlsCert(t)
	x5t := credentials.X5tS256(leaf)

	// Certificates that must not authenticate: from another CA with the
	// binding's very subject, and from the broker's own CA but belonging
	// to no binding. The shared key avoids generating RSA keys.
	otherCA, err := credentials.NewCA("Other")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherCA.IssueClientCertificate(credentials.ClientCertRequest{
		Key: testRSAKey(t), NotAfter: time.Now().Add(24 * time.Hour), Subject: leaf.Subject,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignCert, err := tls.X509KeyPair([]byte(foreign.CertificatePEM), []byte(foreign.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	stray, err := f.ca.IssueClientCertificate(credentials.ClientCertRequest{
		Key: testRSAKey(t), NotAfter: time.Now().Add(24 * time.Hour), Subject: leaf.Subject,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	strayCert, err := tls.X509KeyPair([]byte(stray.CertificatePEM), []byte(stray.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}

	grant := form("grant_type", ccGrant)
	withID := form("grant_type", ccGrant, "client_id", id)

	t.Run("mtls", func(t *testing.T) {
		cases := []struct {
			name string
			form url.Values
			opts []reqOpt
			ok   bool
		}{
			{"certificate and client_id", withID, []reqOpt{withCert(cert)}, true},
			{"certificate alone", grant, []reqOpt{withCert(cert)}, true},
			{"certificate and the client_id of another client", form("grant_type", ccGrant, "client_id", sb.cred("clientid")), []reqOpt{withCert(cert)}, false},
			{"client_id without certificate", withID, nil, false},
			{"certificate of another CA with the same subject", withID, []reqOpt{withCert(foreignCert)}, false},
			{"certificate of the broker CA without binding", withID, []reqOpt{withCert(strayCert)}, false},
			{"certificate and a wrong secret", form("grant_type", ccGrant, "client_id", id, "client_secret", "wrong"), []reqOpt{withCert(cert)}, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				status, body := f.token(c.form, c.opts...)
				if !c.ok {
					wantInvalidClient(t, status, body)
					return
				}
				claims := wantTokenFor(t, f, status, body, id)
				if cnf, _ := claims["cnf"].(map[string]any); cnf["x5t#S256"] != x5t {
					t.Errorf("cnf = %v, want x5t#S256 %s", claims["cnf"], x5t)
				}
			})
		}
		// A secret client's token is not certificate-bound.
		status, body := f.token(sb.secretForm(), withCert(cert))
		if claims := wantTokenFor(t, f, status, body, sb.cred("clientid")); claims != nil && claims["cnf"] != nil {
			t.Errorf("secret-authenticated token has cnf %v", claims["cnf"])
		}
	})

	t.Run("xfcc", func(t *testing.T) {
		trusted := f.plainServer("127.0.0.1/32")
		untrusted := f.plainServer("10.0.0.0/8")
		none := f.plainServer()
		leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
		gorouter := base64.StdEncoding.EncodeToString(leaf.Raw)
		foreignPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: foreignCert.Certificate[0]}))
		cases := []struct {
			name   string
			server *httptest.Server
			form   url.Values
			xfcc   string
			ok     bool
		}{
			{"gorouter base64 DER", trusted, withID, gorouter, true},
			{"gorouter without client_id", trusted, grant, gorouter, true},
			{"envoy, query-escaped PEM", trusted, withID, envoyXFCC(leafPEM, url.QueryEscape), true},
			{"envoy, percent-escaped PEM", trusted, withID, envoyXFCC(leafPEM, pathEscapeAll), true},
			{"envoy, ours is the last element", trusted, withID, envoyXFCC(foreignPEM, pathEscapeAll) + "," + envoyXFCC(leafPEM, pathEscapeAll), true},
			{"envoy, ours is not the last element", trusted, withID, envoyXFCC(leafPEM, pathEscapeAll) + "," + envoyXFCC(foreignPEM, pathEscapeAll), false},
			{"untrusted address, gorouter", untrusted, withID, gorouter, false},
			{"untrusted address, envoy", untrusted, withID, envoyXFCC(leafPEM, pathEscapeAll), false},
			{"no trusted proxies", none, withID, gorouter, false},
			{"garbage from a trusted proxy", trusted, withID, "not a certificate", false},
			{"truncated base64 from a trusted proxy", trusted, withID, gorouter[:len(gorouter)/2], false},
			{"another CA's certificate from a trusted proxy", trusted, withID, base64.StdEncoding.EncodeToString(foreignCert.Certificate[0]), false},
			{"other client_id", trusted, form("grant_type", ccGrant, "client_id", sb.cred("clientid")), gorouter, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				status, body := f.token(c.form, via(c.server), withHeader("X-Forwarded-Client-Cert", c.xfcc))
				if !c.ok {
					wantInvalidClient(t, status, body)
					return
				}
				claims := wantTokenFor(t, f, status, body, id)
				if cnf, _ := claims["cnf"].(map[string]any); cnf["x5t#S256"] != x5t {
					t.Errorf("cnf = %v, want x5t#S256 %s", claims["cnf"], x5t)
				}
			})
		}
	})

	t.Run("xfcc in several header fields", func(t *testing.T) {
		// Several fields mean the same as one comma-joined field (RFC 9110
		// §5.3): the element the nearest proxy added is the last, and an
		// earlier one may come from the client itself.
		trusted := f.plainServer("127.0.0.1/32")
		leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
		foreignPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: foreignCert.Certificate[0]}))
		cases := []struct {
			name   string
			fields []string
			ok     bool
		}{
			{"envoy, ours last", []string{envoyXFCC(foreignPEM, pathEscapeAll), envoyXFCC(leafPEM, pathEscapeAll)}, true},
			{"envoy, ours first", []string{envoyXFCC(leafPEM, pathEscapeAll), envoyXFCC(foreignPEM, pathEscapeAll)}, false},
			{"gorouter, ours first", []string{base64.StdEncoding.EncodeToString(leaf.Raw), base64.StdEncoding.EncodeToString(foreignCert.Certificate[0])}, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				opts := []reqOpt{via(trusted)}
				for _, v := range c.fields {
					opts = append(opts, withHeader("X-Forwarded-Client-Cert", v))
				}
				status, body := f.token(withID, opts...)
				if !c.ok {
					wantInvalidClient(t, status, body)
					return
				}
				wantTokenFor(t, f, status, body, id)
			})
		}
	})

	t.Run("expiry", func(t *testing.T) {
		// The binding asked for 7 days: on day 6 the certificate works, on
		// day 8 it does not, although the binding still exists.
		gorouter := base64.StdEncoding.EncodeToString(leaf.Raw)
		for _, c := range []struct {
			days int
			ok   bool
		}{{6, true}, {8, false}} {
			s := f.newServer(prefixes("127.0.0.1/32"))
			at := time.Now().AddDate(0, 0, c.days)
			s.cfg.Now = func() time.Time { return at }
			status, body := f.token(withID, via(f.servePlain(s)), withHeader("X-Forwarded-Client-Cert", gorouter))
			if !c.ok {
				wantInvalidClient(t, status, body)
				continue
			}
			if claims := wantTokenFor(t, f, status, body, id); claims != nil && num(t, claims, "iat") != at.Unix() {
				t.Errorf("iat %v, want the server clock %d", claims["iat"], at.Unix())
			}
		}
	})

	t.Run("self-managed", func(t *testing.T) {
		own, ownPEM := selfSignedCert(t, "customer-client")
		params, _ := json.Marshal(map[string]any{"credential-type": "x509", "x509": map[string]any{"certificate": ownPEM}})
		mb := f.bind(inst, string(params))
		if mb.cred("certificate") != ownPEM || mb.Creds["key"] != nil || mb.Creds["clientsecret"] != nil {
			t.Fatalf("self-managed credentials: %v", mb.Creds)
		}
		status, body := f.token(withID, withCert(own))
		claims := wantTokenFor(t, f, status, body, id)
		if cnf, _ := claims["cnf"].(map[string]any); cnf["x5t#S256"] != credentials.X5tS256(own.Leaf) {
			t.Errorf("cnf = %v", claims["cnf"])
		}
		// Pinned (the default): a certificate with the same subject and
		// issuer but another key is someone else.
		lookalike, _ := selfSignedCert(t, "customer-client")
		status, body = f.token(withID, withCert(lookalike))
		wantInvalidClient(t, status, body)

		// Past its end the certificate is refused even while bound.
		late := f.newServer(prefixes("127.0.0.1/32"))
		late.cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		ownXFCC := base64.StdEncoding.EncodeToString(own.Leaf.Raw)
		status, body = f.token(withID, via(f.servePlain(late)), withHeader("X-Forwarded-Client-Cert", ownXFCC))
		wantInvalidClient(t, status, body)
		status, body = f.token(withID, via(f.plainServer("127.0.0.1/32")), withHeader("X-Forwarded-Client-Cert", ownXFCC))
		wantTokenFor(t, f, status, body, id)

		f.unbind(mb)
		status, body = f.token(withID, withCert(own))
		wantInvalidClient(t, status, body)
		// The generated certificate of the other binding is unaffected.
		status, body = f.token(withID, withCert(cert))
		wantTokenFor(t, f, status, body, id)
	})

	t.Run("self-managed without pinning", func(t *testing.T) {
		own, ownPEM := selfSignedCert(t, "unpinned-client")
		params, _ := json.Marshal(map[string]any{"credential-type": "x509", "x509": map[string]any{"certificate": ownPEM, "certificate-pinning": false}})
		ub := f.bind(inst, string(params))
		if ub.Creds["certificate-pinning"] != false {
			t.Errorf("certificate-pinning %v", ub.Creds["certificate-pinning"])
		}
		status, body := f.token(withID, withCert(own))
		wantTokenFor(t, f, status, body, id)
		// Subject and issuer DN are no secret: anyone can make a
		// self-signed certificate carrying them. Without a CA the broker
		// trusts behind it, such a certificate must not authenticate.
		forged, _ := selfSignedCert(t, "unpinned-client")
		if forged.Leaf.Subject.String() != own.Leaf.Subject.String() || forged.Leaf.Issuer.String() != own.Leaf.Issuer.String() {
			t.Fatal("forged certificate does not copy the DNs")
		}
		status, body = f.token(withID, withCert(forged))
		wantInvalidClient(t, status, body)
		status, body = f.token(form("grant_type", ccGrant), withCert(forged))
		wantInvalidClient(t, status, body)
		f.unbind(ub)
		status, body = f.token(withID, withCert(own))
		wantInvalidClient(t, status, body)
	})

	t.Run("after unbind", func(t *testing.T) {
		trusted := f.plainServer("127.0.0.1/32")
		f.unbind(xb)
		status, body := f.token(withID, withCert(cert))
		wantInvalidClient(t, status, body)
		status, body = f.token(grant, withCert(cert))
		wantInvalidClient(t, status, body)
		status, body = f.token(withID, via(trusted), withHeader("X-Forwarded-Client-Cert", base64.StdEncoding.EncodeToString(leaf.Raw)))
		wantInvalidClient(t, status, body)
	})
}

func TestBasicClientEncodings(t *testing.T) {
	// A broker-plan clone id has '|'; form encoding turns it into %7C.
	const cloneID, secret = "sb-clone-1!b3|master!b1", "6f1c0a9e-1111-4222-8333-944455556666$AbC-_dEf0123456789abcdefghijklmnopqrstuvwx=="
	cl := &client{ID: cloneID}
	cl.creds.Store(&clientCreds{secrets: map[[32]byte]string{sha256.Sum256([]byte(secret)): "b1"}})
	tbl := &clientTable{byID: map[string]*client{cloneID: cl}}
	cases := []struct {
		id, secret string
		ok         bool
	}{
		{cloneID, secret, true},
		{url.QueryEscape(cloneID), url.QueryEscape(secret), true},
		{url.QueryEscape(cloneID), secret, true},
		{cloneID, url.QueryEscape(secret), true},
		{cloneID, secret + "x", false},
		{url.QueryEscape(cloneID), url.QueryEscape(secret + "x"), false},
		{"sb-clone-1!b3", secret, false},
		{cloneID, "", false},
		{"%zz", secret, false},
	}
	for _, c := range cases {
		got, bindingID, ok, err := tbl.basicClient(t.Context(), c.id, c.secret)
		if err != nil {
			t.Fatal(err)
		}
		if ok != c.ok || (ok && (got != cl || bindingID != "b1")) {
			t.Errorf("basicClient(%q, %q) = %v, %q, %v; want %v", c.id, c.secret, got, bindingID, ok, c.ok)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"127.0.0.1", []string{"127.0.0.1/32"}, false},
		{" 10.0.0.0/8 , 192.168.1.7 ", []string{"10.0.0.0/8", "192.168.1.7/32"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false},
		{"::1", []string{"::1/128"}, false},
		{"::ffff:127.0.0.1", []string{"127.0.0.1/32"}, false},
		{"localhost", nil, true},
		{"10.0.0.0/33", nil, true},
	}
	for _, c := range cases {
		got, err := ParseTrustedProxies(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseTrustedProxies(%q) error %v, want error %v", c.in, err, c.wantErr)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if !slices.Equal(gs, c.want) {
			t.Errorf("ParseTrustedProxies(%q) = %v, want %v", c.in, gs, c.want)
		}
	}

	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("fd00::/8")}}}
	for addr, want := range map[string]bool{
		"127.0.0.1:4711": true, "[::ffff:127.0.0.1]:80": true, "127.0.0.2:1": false,
		"[fd00::1]:443": true, "[fe80::1]:443": false, "garbage": false, "127.0.0.1": true,
	} {
		if got := s.trustedProxy(addr); got != want {
			t.Errorf("trustedProxy(%q) = %v, want %v", addr, got, want)
		}
	}
}

// serveDirect runs one token request through the handler without a
// network, as the benchmark does.
func serveDirect(h http.Handler, form url.Values) int {
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestConcurrentTokensAndUnbind(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(`{"xsappname":"busy"}`)
	live := f.bind(inst, "")

	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	codes := make(chan int, workers*perWorker)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				codes <- serveDirect(f.mux, live.secretForm())
			}
		}()
	}
	// Meanwhile bindings come and go; each is refused right after its
	// unbind returns, while the live one keeps working throughout.
	for range 5 {
		b := f.bind(inst, "")
		if code := serveDirect(f.mux, b.secretForm()); code != http.StatusOK {
			t.Errorf("fresh binding: %d", code)
		}
		f.unbind(b)
		if code := serveDirect(f.mux, b.secretForm()); code != http.StatusUnauthorized {
			t.Errorf("unbound binding: %d, want 401", code)
		}
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("live binding got %d during concurrent binds and unbinds", code)
		}
	}
}

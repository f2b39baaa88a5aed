package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// selfSignedPEM returns a fresh self-signed client certificate valid from
// notBefore to notAfter, as a user brings it for X509_PROVIDED.
func selfSignedPEM(t *testing.T, cn string, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Test"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// checkIdentityCredentials applies identity.md §8.1 check 1 to the fields
// every identity binding shares.
func checkIdentityCredentials(t *testing.T, tb *testBroker, creds map[string]any, credType string) {
	t.Helper()
	if !uuidRE.MatchString(str(t, creds, "clientid")) {
		t.Errorf("clientid %q is not a GUID", creds["clientid"])
	}
	base := tb.env["BROKER_IDENTITY_URL"]
	host := strings.TrimPrefix(base, "https://")
	if got := str(t, creds, "url"); got != base {
		t.Errorf("url %q, want %q", got, base)
	}
	if got, ok := creds["domains"].([]any); !ok || !reflect.DeepEqual(got, []any{host}) {
		t.Errorf("domains %#v, want [%q]", creds["domains"], host)
	}
	if got := str(t, creds, "domain"); got != host {
		t.Errorf("domain %q, want %q", got, host)
	}
	tid := str(t, creds, "app_tid")
	if !uuidRE.MatchString(tid) || str(t, creds, "zone_uuid") != tid {
		t.Errorf("app_tid %q / zone_uuid %q", tid, creds["zone_uuid"])
	}
	if got := str(t, creds, "authorization_endpoint"); got != base+"/oauth2/authorize" {
		t.Errorf("authorization_endpoint %q", got)
	}
	if got := str(t, creds, "end_session_endpoint"); got != base+"/oauth2/logout" {
		t.Errorf("end_session_endpoint %q", got)
	}
	if got := str(t, creds, "credential-type"); got != credType {
		t.Errorf("credential-type %q, want %q", got, credType)
	}
}

func TestOSBIdentity(t *testing.T) {
	tb := startBroker(t, nil)
	in := newInstance(identityServiceID, identityApplication, "bookshop-ias")
	tb.mustProvision(t, in, map[string]any{
		"display-name":         "Bookshop",
		"oauth2-configuration": map[string]any{"redirect-uris": []any{"https://bookshop.example.com/login/callback"}},
	})

	t.Run("secret", func(t *testing.T) {
		bid := newUUID()
		creds := tb.mustBind(t, in, bid, newUUID(), nil)
		checkIdentityCredentials(t, tb, creds, "SECRET")
		secret := str(t, creds, "clientsecret")
		if len(secret) < 32 || strings.Contains(secret, ":") {
			t.Errorf("clientsecret %q: too short or contains ':'", secret)
		}
		for _, k := range []string{"certificate", "key"} {
			if _, ok := creds[k]; ok {
				t.Errorf("SECRET binding has %q", k)
			}
		}
		explicit := tb.mustBind(t, in, newUUID(), "", map[string]any{"credential-type": "SECRET"})
		if explicit["clientsecret"] == secret || explicit["clientid"] != creds["clientid"] {
			t.Errorf("second SECRET binding: same secret or other client id")
		}
		status, body := tb.getBinding(in, bid)
		expectStatus(t, "GET binding", status, body, http.StatusOK)
		if !reflect.DeepEqual(credentialsOf(t, body), creds) {
			t.Errorf("GET binding returned other credentials")
		}
	})

	var srvSubject []byte
	var srvKey string
	t.Run("x509 generated", func(t *testing.T) {
		before := time.Now()
		params := map[string]any{"credential-type": "X509_GENERATED", "key-length": 4096, "validity": 2, "validity-type": "MONTHS", "app-identifier": "srv"}
		creds := tb.mustBind(t, in, newUUID(), newUUID(), params)
		checkIdentityCredentials(t, tb, creds, "X509_GENERATED")
		if _, ok := creds["clientsecret"]; ok {
			t.Errorf("X509_GENERATED binding has a clientsecret")
		}
		leaf := checkChain(t, tb, creds, 4096)
		if !near(leaf.NotAfter, before.AddDate(0, 2, 0)) {
			t.Errorf("notAfter %s, want about now+2 months", leaf.NotAfter)
		}
		if !strings.Contains(leaf.Subject.CommonName, "srv") {
			t.Errorf("subject %q does not contain the app-identifier", leaf.Subject)
		}
		srvSubject, srvKey = leaf.RawSubject, str(t, creds, "key")
	})

	t.Run("subject stability", func(t *testing.T) {
		params := map[string]any{"credential-type": "X509_GENERATED", "app-identifier": "srv"}
		before := time.Now()
		creds := tb.mustBind(t, in, newUUID(), newUUID(), params)
		leaf := checkChain(t, tb, creds, 2048)
		if srvSubject != nil && !bytes.Equal(leaf.RawSubject, srvSubject) {
			t.Errorf("same app-identifier, different subject DN: %s", leaf.Subject)
		}
		if str(t, creds, "key") == srvKey {
			t.Errorf("same app-identifier, same key")
		}
		// Default validity: 30 days.
		if !near(leaf.NotAfter, before.AddDate(0, 0, 30)) {
			t.Errorf("default notAfter %s, want about now+30d", leaf.NotAfter)
		}

		plain := map[string]any{"credential-type": "X509_GENERATED"}
		a := checkChain(t, tb, tb.mustBind(t, in, newUUID(), newUUID(), plain), 2048)
		b := checkChain(t, tb, tb.mustBind(t, in, newUUID(), "", plain), 2048)
		if bytes.Equal(a.RawSubject, b.RawSubject) {
			t.Errorf("without app-identifier two bindings share the subject %s", a.Subject)
		}
	})

	t.Run("long ids", func(t *testing.T) {
		// Ids are opaque and may be longer than the 64 characters a
		// certificate's CN may hold; that must not turn into a 500 (which
		// Cloud Controller answers with orphan mitigation).
		long := newInstance(identityServiceID, identityApplication, "bookshop-long")
		long.ID = strings.Repeat("i", 80)
		tb.mustProvision(t, long, nil)
		a := checkChain(t, tb, tb.mustBind(t, long, strings.Repeat("b", 100), "", map[string]any{"credential-type": "X509_GENERATED"}), 2048)
		b := checkChain(t, tb, tb.mustBind(t, long, strings.Repeat("b", 99), "", map[string]any{"credential-type": "X509_GENERATED"}), 2048)
		if bytes.Equal(a.RawSubject, b.RawSubject) {
			t.Errorf("two long binding ids share the subject %s", a.Subject)
		}
		p := map[string]any{"credential-type": "X509_GENERATED", "app-identifier": strings.Repeat("a", 20)}
		c := checkChain(t, tb, tb.mustBind(t, long, newUUID(), "", p), 2048)
		d := checkChain(t, tb, tb.mustBind(t, long, newUUID(), "", p), 2048)
		if !bytes.Equal(c.RawSubject, d.RawSubject) {
			t.Errorf("same app-identifier on a long instance id, different subjects %s / %s", c.Subject, d.Subject)
		}
	})

	t.Run("invalid binding parameters", func(t *testing.T) {
		cases := map[string]struct {
			params map[string]any
			key    string
		}{
			"validity-type WEEKS": {map[string]any{"credential-type": "X509_GENERATED", "validity-type": "WEEKS"}, "validity-type"},
			"key-length 1024":     {map[string]any{"credential-type": "X509_GENERATED", "key-length": 1024}, "key-length"},
			"key-length 8192":     {map[string]any{"credential-type": "X509_GENERATED", "key-length": 8192}, "key-length"},
			"validity 0":          {map[string]any{"credential-type": "X509_GENERATED", "validity": 0}, "validity"},
			"validity 2 YEARS":    {map[string]any{"credential-type": "X509_GENERATED", "validity": 2, "validity-type": "YEARS"}, "validity"},
			"app-identifier 21":   {map[string]any{"credential-type": "X509_GENERATED", "app-identifier": strings.Repeat("a", 21)}, "app-identifier"},
			"unknown type":        {map[string]any{"credential-type": "PASSWORD"}, "credential-type"},
			"attested":            {map[string]any{"credential-type": "X509_ATTESTED"}, "credential-type"},
			"malformed PEM":       {map[string]any{"credential-type": "X509_PROVIDED", "certificate": "-----BEGIN CERTIFICATE-----MIIB-----END CERTIFICATE-----"}, "certificate"},
			"provided without":    {map[string]any{"credential-type": "X509_PROVIDED"}, "certificate"},
			"expired provided": {map[string]any{"credential-type": "X509_PROVIDED", "certificate": selfSignedPEM(t, "old",
				time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))}, "certificate"},
		}
		for name, c := range cases {
			bid := newUUID()
			status, body := tb.bind(in, bid, in.appBindBody(newUUID(), c.params))
			expectError(t, name, status, body, http.StatusBadRequest, c.key)
			if s, _ := tb.getBinding(in, bid); s != http.StatusNotFound {
				t.Errorf("%s: refused bind left a binding (%d)", name, s)
			}
		}
	})

	t.Run("x509 provided", func(t *testing.T) {
		cert := selfSignedPEM(t, "my-client", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		p := map[string]any{"credential-type": "X509_PROVIDED", "certificate": cert}
		bid, app := newUUID(), newUUID()
		creds := tb.mustBind(t, in, bid, app, p)
		checkIdentityCredentials(t, tb, creds, "X509_PROVIDED")
		if got := str(t, creds, "certificate"); got != cert {
			t.Errorf("certificate not returned as given")
		}
		for _, k := range []string{"key", "clientsecret"} {
			if _, ok := creds[k]; ok {
				t.Errorf("X509_PROVIDED binding has %q", k)
			}
		}
		status, body := tb.bind(in, newUUID(), in.appBindBody(newUUID(), p))
		expectError(t, "same certificate twice", status, body, http.StatusBadRequest, "certificate")
		// The identical request for the same binding id is a re-bind,
		// not a second use of the certificate.
		status, body = tb.bind(in, bid, in.appBindBody(app, p))
		expectStatus(t, "identical re-bind", status, body, http.StatusOK)
		if !reflect.DeepEqual(credentialsOf(t, body), creds) {
			t.Errorf("identical re-bind returned other credentials")
		}
		// After unbind the certificate may be used again.
		status, body = tb.unbind(in, bid)
		expectStatus(t, "unbind", status, body, http.StatusOK)
		tb.mustBind(t, in, newUUID(), "", p)
	})

	t.Run("none", func(t *testing.T) {
		creds := tb.mustBind(t, in, newUUID(), "", map[string]any{"credential-type": "NONE"})
		checkIdentityCredentials(t, tb, creds, "NONE")
		for _, k := range []string{"key", "clientsecret", "certificate"} {
			if _, ok := creds[k]; ok {
				t.Errorf("NONE binding has %q", k)
			}
		}
	})

	t.Run("consumed-services", func(t *testing.T) {
		consumer := newInstance(identityServiceID, identityApplication, "bookshop-consumer")
		status, body := tb.provision(consumer, map[string]any{"consumed-services": []any{map[string]any{"service-instance-name": "missing-ias"}}})
		expectError(t, "missing consumed instance", status, body, http.StatusBadRequest, "consumed-services[0]", "missing-ias")
		tb.mustProvision(t, consumer, map[string]any{"consumed-services": []any{map[string]any{"service-instance-name": in.Name}}})
		// An instance of the other offering is not an identity instance.
		xs := newInstance(xsuaaServiceID, xsuaaApplicationID, "an-xsuaa")
		tb.mustProvision(t, xs, bookshop("an-xsuaa"))
		other := newInstance(identityServiceID, identityApplication, "bookshop-consumer2")
		status, body = tb.provision(other, map[string]any{"consumed-services": []any{map[string]any{"service-instance-name": "an-xsuaa"}}})
		expectError(t, "xsuaa instance as consumed service", status, body, http.StatusBadRequest, "consumed-services[0]")
	})

	t.Run("multi-tenant", func(t *testing.T) {
		mt := newInstance(identityServiceID, identityApplication, "bookshop-mt")
		tb.mustProvision(t, mt, map[string]any{"multi-tenant": true})
		status, body := tb.bind(mt, newUUID(), mt.appBindBody(newUUID(), nil))
		expectError(t, "SECRET on multi-tenant", status, body, http.StatusBadRequest, "credential-type")
		status, body = tb.bind(mt, newUUID(), mt.appBindBody(newUUID(), map[string]any{"credential-type": "X509_GENERATED"}))
		expectError(t, "X509 without app-identifier on multi-tenant", status, body, http.StatusBadRequest, "app-identifier")
	})
}

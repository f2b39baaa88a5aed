package main

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	uuidRE        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	xsuaaSecretRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\$[A-Za-z0-9_-]{43}=$`)
)

// str returns creds[key] as a string, failing if it is missing or not one.
func str(t *testing.T, creds map[string]any, key string) string {
	t.Helper()
	s, ok := creds[key].(string)
	if !ok || s == "" {
		t.Fatalf("credentials: %q is %v, want a non-empty string", key, creds[key])
	}
	return s
}

// checkXsuaaCredentials applies xsuaa.md §10 check 1 to the fields every
// xsuaa binding shares; suffix is the plan letter of the xsappname.
func checkXsuaaCredentials(t *testing.T, tb *testBroker, in instance, creds map[string]any, base, suffix string) {
	t.Helper()
	xsappname := str(t, creds, "xsappname")
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `!` + suffix + `\d+$`).MatchString(xsappname) {
		t.Errorf("xsappname %q, want %s!%s<n>", xsappname, base, suffix)
	}
	if got := str(t, creds, "clientid"); got != "sb-"+xsappname {
		t.Errorf("clientid %q, want sb-%s", got, xsappname)
	}
	host := strings.TrimPrefix(tb.env["BROKER_PUBLIC_URL"], "https://")
	if got := str(t, creds, "url"); got != "https://"+host {
		t.Errorf("url %q, want https://%s", got, host)
	}
	if got := str(t, creds, "uaadomain"); got != host {
		t.Errorf("uaadomain %q, want %s", got, host)
	}
	zoneID := str(t, creds, "identityzoneid")
	if !uuidRE.MatchString(zoneID) {
		t.Errorf("identityzoneid %q is not a uuid", zoneID)
	}
	for _, k := range []string{"tenantid", "subaccountid", "zoneid"} {
		if got := str(t, creds, k); got != zoneID {
			t.Errorf("%s %q, want the zone id %q", k, got, zoneID)
		}
	}
	if got := str(t, creds, "identityzone"); got != "default" {
		t.Errorf("identityzone %q, want default", got)
	}
	if got := str(t, creds, "tenantmode"); got != "dedicated" {
		t.Errorf("tenantmode %q", got)
	}
	if got := str(t, creds, "serviceInstanceId"); got != in.ID {
		t.Errorf("serviceInstanceId %q, want %q", got, in.ID)
	}
	for _, k := range []string{"sburl", "apiurl"} {
		if got := str(t, creds, k); !strings.HasPrefix(got, "https://") {
			t.Errorf("%s %q is not an https URL", k, got)
		}
	}
	block, _ := pem.Decode([]byte(str(t, creds, "verificationkey")))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("verificationkey is not a PEM public key: %q", creds["verificationkey"])
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Errorf("verificationkey: %v", err)
	}
	str(t, creds, "credential-type")
	if suffix == "b" {
		if got := str(t, creds, "trustedclientidsuffix"); got != "|"+xsappname {
			t.Errorf("trustedclientidsuffix %q, want |%s", got, xsappname)
		}
	}
}

// checkChain parses a generated certificate and key: a leaf plus the
// intermediate, verifying to the broker's root for client authentication,
// with a matching PKCS#1 key of the given size. It returns the leaf.
func checkChain(t *testing.T, tb *testBroker, creds map[string]any, bits int) *x509.Certificate {
	t.Helper()
	certPEM := str(t, creds, "certificate")
	keyPEM := str(t, creds, "key")
	var certs []*x509.Certificate
	rest := []byte(certPEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("certificate holds %d certificates, want leaf and intermediate", len(certs))
	}
	leaf := certs[0]
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(tb.caPEM(t))
	inters := x509.NewCertPool()
	for _, c := range certs[1:] {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify to ca.pem for client auth: %v", err)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Errorf("leaf is not CA:FALSE")
	}
	if !reflect.DeepEqual(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("leaf EKU %v, want clientAuth", leaf.ExtKeyUsage)
	}
	if !strings.HasPrefix(keyPEM, "-----BEGIN RSA PRIVATE KEY-----") {
		t.Fatalf("key is not PKCS#1: %.40q", keyPEM)
	}
	block, _ := pem.Decode([]byte(keyPEM))
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		t.Errorf("key does not match the leaf certificate")
	}
	if got := key.N.BitLen(); got != bits {
		t.Errorf("modulus %d bits, want %d", got, bits)
	}
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		t.Errorf("tls.X509KeyPair: %v", err)
	}
	expires, err := time.Parse(time.RFC3339, str(t, creds, "certificate_expires_at"))
	if err != nil {
		t.Errorf("certificate_expires_at: %v", err)
	} else if !expires.Equal(leaf.NotAfter) {
		t.Errorf("certificate_expires_at %s, leaf notAfter %s", expires, leaf.NotAfter)
	}
	if !strings.HasSuffix(str(t, creds, "certificate_expires_at"), "Z") {
		t.Errorf("certificate_expires_at %q is not UTC", creds["certificate_expires_at"])
	}
	return leaf
}

// near reports whether got is within tolerance of want. The tolerance
// covers the time between the request and the test's clock read, not a
// timing assumption: an off-by-a-unit bug (hours vs. days) still fails.
func near(got, want time.Time) bool {
	const tolerance = 10 * time.Minute
	d := got.Sub(want)
	return d > -tolerance && d < tolerance
}

func TestOSBXsuaaBinding(t *testing.T) {
	tb := startBroker(t, nil)
	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "bookshop-uaa")
	tb.mustProvision(t, in, bookshop("bookshop"))

	app := newUUID()
	bid := newUUID()
	var first map[string]any

	t.Run("credentials", func(t *testing.T) {
		first = tb.mustBind(t, in, bid, app, nil)
		checkXsuaaCredentials(t, tb, in, first, "bookshop", "t")
		if got := str(t, first, "credential-type"); got != "binding-secret" {
			t.Errorf("credential-type %q", got)
		}
		if s := str(t, first, "clientsecret"); !xsuaaSecretRE.MatchString(s) {
			t.Errorf("clientsecret %q is not <uuid>$<base64url 44>", s)
		}
		for _, k := range []string{"certificate", "key", "certurl"} {
			if _, ok := first[k]; ok {
				t.Errorf("secret binding has %q", k)
			}
		}
	})

	t.Run("other plans", func(t *testing.T) {
		for plan, suffix := range map[string]string{xsuaaBrokerPlanID: "b", xsuaaAPIAccessID: "a"} {
			other := newInstance(xsuaaServiceID, plan, "bookshop-"+suffix)
			tb.mustProvision(t, other, bookshop("bookshop"))
			creds := tb.mustBind(t, other, newUUID(), "", nil)
			checkXsuaaCredentials(t, tb, other, creds, "bookshop", suffix)
		}
	})

	t.Run("rebind", func(t *testing.T) {
		status, body := tb.bind(in, bid, in.appBindBody(app, nil))
		expectStatus(t, "identical rebind", status, body, http.StatusOK)
		if got := credentialsOf(t, body); !reflect.DeepEqual(got, first) {
			t.Errorf("identical rebind returned other credentials")
		}
		status, body = tb.bind(in, bid, in.appBindBody(app, map[string]any{"hide-secret": "true"}))
		expectStatus(t, "rebind with other parameters", status, body, http.StatusConflict)
		status, body = tb.bind(in, bid, in.appBindBody(newUUID(), nil))
		expectStatus(t, "rebind for another app", status, body, http.StatusConflict)
		status, body = tb.getBinding(in, bid)
		expectStatus(t, "GET binding", status, body, http.StatusOK)
		if got := credentialsOf(t, body); !reflect.DeepEqual(got, first) {
			t.Errorf("GET binding returned other credentials")
		}
	})

	t.Run("service keys", func(t *testing.T) {
		key := tb.mustBind(t, in, newUUID(), "", nil)
		if key["clientsecret"] == first["clientsecret"] {
			t.Errorf("service key shares the app binding's secret")
		}
		body := in.keyBindBody(nil)
		body["bind_resource"] = map[string]any{}
		kid := newUUID()
		status, raw := tb.bind(in, kid, body)
		expectStatus(t, "service key with bind_resource {}", status, raw, http.StatusCreated)
		k2 := credentialsOf(t, raw)
		status, raw = tb.bind(in, kid, body)
		expectStatus(t, "identical service key again", status, raw, http.StatusOK)
		if !reflect.DeepEqual(credentialsOf(t, raw), k2) {
			t.Errorf("identical service key returned other credentials")
		}
	})

	t.Run("unbind", func(t *testing.T) {
		gone := newUUID()
		tb.mustBind(t, in, gone, newUUID(), nil)
		status, body := tb.unbind(in, gone)
		expectStatus(t, "unbind", status, body, http.StatusOK)
		expectEmptyObject(t, "unbind", body)
		status, body = tb.unbind(in, gone)
		expectStatus(t, "unbind again", status, body, http.StatusGone)
		expectEmptyObject(t, "unbind again", body)
		status, body = tb.getBinding(in, gone)
		expectStatus(t, "GET removed binding", status, body, http.StatusNotFound)
		status, body = tb.getBinding(in, newUUID())
		expectStatus(t, "GET unknown binding", status, body, http.StatusNotFound)
		ghost := newInstance(xsuaaServiceID, xsuaaApplicationID, "ghost")
		status, body = tb.getBinding(ghost, bid)
		expectStatus(t, "GET binding under another instance", status, body, http.StatusNotFound)
		status, body = tb.unbind(ghost, bid)
		expectStatus(t, "unbind under another instance", status, body, http.StatusGone)

		// A new binding gets a new secret.
		fresh := tb.mustBind(t, in, newUUID(), newUUID(), nil)
		if fresh["clientsecret"] == first["clientsecret"] {
			t.Errorf("a new binding reused a secret")
		}
		// The removed id may be used again and then gets new credentials.
		again := tb.mustBind(t, in, gone, newUUID(), nil)
		if again["clientsecret"] == fresh["clientsecret"] || again["clientsecret"] == first["clientsecret"] {
			t.Errorf("re-created binding reused a secret")
		}
	})

	t.Run("unknown instance", func(t *testing.T) {
		// Not in the OSB spec; brokerapi answers 404 for
		// ErrInstanceDoesNotExist on bind (osb.md A.10 B12). CC treats a
		// 404 as "rejected", without orphan mitigation.
		ghost := newInstance(xsuaaServiceID, xsuaaApplicationID, "ghost")
		status, body := tb.bind(ghost, newUUID(), ghost.appBindBody(newUUID(), nil))
		expectError(t, "bind to unknown instance", status, body, http.StatusNotFound)
	})

	t.Run("wrong plan or offering", func(t *testing.T) {
		body := in.appBindBody(newUUID(), nil)
		body["plan_id"] = xsuaaBrokerPlanID
		status, raw := tb.bind(in, newUUID(), body)
		expectError(t, "bind with another plan", status, raw, http.StatusBadRequest, "plan_id")
		body["service_id"], body["plan_id"] = identityServiceID, identityApplication
		status, raw = tb.bind(in, newUUID(), body)
		expectError(t, "bind with the other offering", status, raw, http.StatusBadRequest)
		status, raw = tb.bind(in, newUUID(), `{"service_id":`)
		expectError(t, "malformed bind body", status, raw, http.StatusBadRequest)
		status, raw = tb.bind(in, newUUID(), in.appBindBody(newUUID(), []any{"x509"}))
		expectError(t, "parameters not an object", status, raw, http.StatusBadRequest, "parameters")
	})

	t.Run("x509", func(t *testing.T) {
		params := map[string]any{"credential-type": "x509", "x509": map[string]any{"key-length": 2048, "validity": 7, "validity-type": "DAYS"}}
		before := time.Now()
		creds := tb.mustBind(t, in, newUUID(), newUUID(), params)
		checkXsuaaCredentials(t, tb, in, creds, "bookshop", "t")
		if got := str(t, creds, "credential-type"); got != "x509" {
			t.Errorf("credential-type %q", got)
		}
		if _, ok := creds["clientsecret"]; ok {
			t.Errorf("x509 binding has a clientsecret")
		}
		if got := str(t, creds, "certurl"); !strings.HasPrefix(got, "https://") {
			t.Errorf("certurl %q", got)
		}
		leaf := checkChain(t, tb, creds, 2048)
		if !near(leaf.NotAfter, before.AddDate(0, 0, 7)) {
			t.Errorf("notAfter %s, want about now+7d", leaf.NotAfter)
		}
	})

	t.Run("x509 self-managed", func(t *testing.T) {
		cert := selfSignedPEM(t, "bookshop-client", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
		params := map[string]any{"credential-type": "x509", "x509": map[string]any{"certificate": cert}}
		creds := tb.mustBind(t, in, newUUID(), newUUID(), params)
		checkXsuaaCredentials(t, tb, in, creds, "bookshop", "t")
		if got := str(t, creds, "certificate"); got != cert {
			t.Errorf("certificate not returned as given")
		}
		for _, k := range []string{"key", "clientsecret"} {
			if _, ok := creds[k]; ok {
				t.Errorf("self-managed x509 binding has %q", k)
			}
		}
		str(t, creds, "certurl")
		status, body := tb.bind(in, newUUID(), in.appBindBody(newUUID(), params))
		expectError(t, "same certificate twice", status, body, http.StatusBadRequest, "certificate")

		hidden := selfSignedPEM(t, "bookshop-hidden", time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
		creds = tb.mustBind(t, in, newUUID(), "", map[string]any{"credential-type": "x509",
			"x509": map[string]any{"certificate": hidden, "hide-certificate": true}})
		if _, ok := creds["certificate"]; ok {
			t.Errorf("hide-certificate binding has a certificate")
		}
	})

	t.Run("x509 with a long binding id", func(t *testing.T) {
		// The binding id ends up in the certificate's CN (at most 64
		// characters); a longer opaque id must still bind.
		params := map[string]any{"credential-type": "x509"}
		creds := tb.mustBind(t, in, strings.Repeat("x", 100), "", params)
		checkChain(t, tb, creds, 2048)
	})

	t.Run("invalid x509 parameters", func(t *testing.T) {
		cases := map[string]struct {
			x509 map[string]any
			key  string
		}{
			"key-length 1024":     {map[string]any{"key-length": 1024}, "x509.key-length"},
			"validity 0":          {map[string]any{"validity": 0}, "x509.validity"},
			"validity 31":         {map[string]any{"validity": 31}, "x509.validity"},
			"validity-type WEEKS": {map[string]any{"validity-type": "WEEKS"}, "x509.validity-type"},
			"key-length string":   {map[string]any{"key-length": "2048"}, "x509.key-length"},
			"bad certificate":     {map[string]any{"certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}, "x509.certificate"},
		}
		for name, c := range cases {
			params := map[string]any{"credential-type": "x509", "x509": c.x509}
			status, body := tb.bind(in, newUUID(), in.appBindBody(newUUID(), params))
			expectError(t, name, status, body, http.StatusBadRequest, c.key)
		}
		status, body := tb.bind(in, newUUID(), in.appBindBody(newUUID(), map[string]any{"credential-type": "password"}))
		expectError(t, "unknown credential-type", status, body, http.StatusBadRequest, "credential-type")
	})

	t.Run("hide-secret", func(t *testing.T) {
		creds := tb.mustBind(t, in, newUUID(), newUUID(), map[string]any{"hide-secret": "true"})
		if _, ok := creds["clientsecret"]; ok {
			t.Errorf("hide-secret binding has a clientsecret")
		}
		checkXsuaaCredentials(t, tb, in, creds, "bookshop", "t")
	})

	t.Run("instance-secret", func(t *testing.T) {
		status, body := tb.bind(in, newUUID(), in.appBindBody(newUUID(), map[string]any{"credential-type": "instance-secret"}))
		expectError(t, "instance-secret not declared", status, body, http.StatusBadRequest, "credential-type")

		legacy := newInstance(xsuaaServiceID, xsuaaApplicationID, "legacy-uaa")
		d := bookshop("legacy")
		d["oauth2-configuration"] = map[string]any{"credential-types": []any{"binding-secret", "instance-secret"}}
		tb.mustProvision(t, legacy, d)
		p := map[string]any{"credential-type": "instance-secret"}
		a := tb.mustBind(t, legacy, newUUID(), newUUID(), p)
		b := tb.mustBind(t, legacy, newUUID(), "", p)
		if str(t, a, "credential-type") != "instance-secret" {
			t.Errorf("credential-type %q", a["credential-type"])
		}
		if str(t, a, "clientsecret") != str(t, b, "clientsecret") {
			t.Errorf("two instance-secret bindings have different secrets")
		}
		// The default stays binding-secret (first entry) and differs.
		c := tb.mustBind(t, legacy, newUUID(), "", nil)
		if str(t, c, "credential-type") != "binding-secret" || c["clientsecret"] == a["clientsecret"] {
			t.Errorf("default binding: %v / shares the instance secret", c["credential-type"])
		}
	})

	t.Run("credential-types restrict", func(t *testing.T) {
		only := newInstance(xsuaaServiceID, xsuaaApplicationID, "x509only-uaa")
		d := bookshop("x509only")
		d["oauth2-configuration"] = map[string]any{"credential-types": []any{"x509"}}
		tb.mustProvision(t, only, d)
		status, body := tb.bind(only, newUUID(), only.appBindBody(newUUID(), map[string]any{"credential-type": "binding-secret"}))
		expectError(t, "binding-secret not allowed", status, body, http.StatusBadRequest, "credential-type")
	})
}

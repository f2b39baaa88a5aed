package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestOSBRestartAndAtRest creates instances and bindings of every kind,
// restarts the broker on the same data directory, checks that everything is
// still served identically, then stops it and searches the raw store file
// for secrets that must only be kept sealed.
func TestOSBRestartAndAtRest(t *testing.T) {
	tb := startBroker(t, nil)
	caBefore := tb.caPEM(t)

	xs := newInstance(xsuaaServiceID, xsuaaApplicationID, "rest-uaa")
	xsParams := bookshop("rest")
	xsParams["oauth2-configuration"] = map[string]any{"credential-types": []any{"binding-secret", "x509", "instance-secret"}}
	tb.mustProvision(t, xs, xsParams)
	ias := newInstance(identityServiceID, identityApplication, "rest-ias")
	iasParams := map[string]any{"display-name": "Rest"}
	tb.mustProvision(t, ias, iasParams)

	type bound struct {
		in     instance
		id     string
		app    string
		params any
		creds  map[string]any
	}
	bindings := []*bound{
		{in: xs, params: nil},
		{in: xs, params: map[string]any{"credential-type": "x509", "x509": map[string]any{"validity": 3}}},
		{in: xs, params: map[string]any{"credential-type": "instance-secret"}},
		{in: ias, params: nil},
		{in: ias, params: map[string]any{"credential-type": "X509_GENERATED", "app-identifier": "rest"}},
	}
	for i, b := range bindings {
		b.id = newUUID()
		if i%2 == 0 {
			b.app = newUUID()
		}
		b.creds = tb.mustBind(t, b.in, b.id, b.app, b.params)
	}

	tb.restart(t)

	t.Run("served after restart", func(t *testing.T) {
		if got := tb.caPEM(t); !bytes.Equal(got, caBefore) {
			t.Errorf("ca.pem changed across a restart")
		}
		if got := instanceParams(t, tb, xs); !jsonEqual(t, got, xsParams) {
			t.Errorf("xsuaa instance parameters after restart: %v", got)
		}
		if got := instanceParams(t, tb, ias); !jsonEqual(t, got, iasParams) {
			t.Errorf("identity instance parameters after restart: %v", got)
		}
		for _, b := range bindings {
			status, body := tb.getBinding(b.in, b.id)
			expectStatus(t, "GET binding", status, body, http.StatusOK)
			if got := credentialsOf(t, body); !reflect.DeepEqual(got, b.creds) {
				t.Errorf("GET binding %v after restart returned other credentials", b.params)
			}
			req := b.in.keyBindBody(b.params)
			if b.app != "" {
				req = b.in.appBindBody(b.app, b.params)
			}
			status, body = tb.bind(b.in, b.id, req)
			expectStatus(t, "identical re-bind", status, body, http.StatusOK)
			if got := credentialsOf(t, body); !reflect.DeepEqual(got, b.creds) {
				t.Errorf("re-bind %v after restart returned other credentials", b.params)
			}
		}
		// Sequences survive: a new instance gets a new suffix.
		again := newInstance(xsuaaServiceID, xsuaaApplicationID, "rest-uaa2")
		tb.mustProvision(t, again, bookshop("rest2"))
		creds := tb.mustBind(t, again, newUUID(), "", nil)
		suffix := func(xsappname any) string {
			s, _ := xsappname.(string)
			return s[strings.IndexByte(s, '!'):]
		}
		if a, b := suffix(creds["xsappname"]), suffix(bindings[0].creds["xsappname"]); a == b {
			t.Errorf("xsappname suffix %s handed out again after restart", a)
		}
		// The instance secret is still the same one.
		shared := tb.mustBind(t, xs, newUUID(), "", map[string]any{"credential-type": "instance-secret"})
		if shared["clientsecret"] != bindings[2].creds["clientsecret"] {
			t.Errorf("instance secret changed across a restart")
		}
	})

	tb.stop()

	t.Run("nothing secret in clear at rest", func(t *testing.T) {
		db, err := os.ReadFile(filepath.Join(tb.dataDir, storeFile))
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string]string{"OSB password": testPassword, "encryption key": testEncryptionKey}
		for i, b := range bindings {
			if s, ok := b.creds["clientsecret"].(string); ok {
				secrets[fmt.Sprintf("clientsecret of binding %d", i)] = s
			}
			if k, ok := b.creds["key"].(string); ok {
				for j, line := range keyLines(k) {
					secrets[fmt.Sprintf("key line %d of binding %d", j, i)] = line
				}
			}
		}
		if len(secrets) < 10 {
			t.Fatalf("too few secrets collected (%d); the bindings lack secrets or keys", len(secrets))
		}
		for what, s := range secrets {
			if bytes.Contains(db, []byte(s)) {
				t.Errorf("%s is stored in clear in %s", what, storeFile)
			}
			if esc, _ := json.Marshal(s); bytes.Contains(db, esc[1:len(esc)-1]) {
				t.Errorf("%s is stored JSON-escaped in %s", what, storeFile)
			}
		}
		// Sanity check of the search: the (public) instance parameters
		// are stored as given.
		if !bytes.Contains(db, []byte("$XSAPPNAME.Display")) {
			t.Errorf("the store does not contain the instance parameters; is this the right file?")
		}
	})
}

// keyLines returns the full 64-character base64 lines of a PEM private key
// (the middle of the key; any of them found in the store means the key is
// stored readable).
func keyLines(pemText string) []string {
	var out []string
	for _, l := range strings.Split(pemText, "\n") {
		if len(l) == 64 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

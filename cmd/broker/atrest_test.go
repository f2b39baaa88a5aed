package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/oauth"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// keptBinding is a binding a test made, with what the bind returned.
type keptBinding struct {
	in     instance
	id     string
	app    string
	params any
	creds  map[string]any
}

// bindEveryKind provisions an xsuaa and an identity instance and binds every
// credential kind: xsuaa binding secret, x509 and instance secret, identity
// SECRET and X509_GENERATED.
func bindEveryKind(t *testing.T, tb *testBroker, name string) []*keptBinding {
	t.Helper()
	xs := newInstance(xsuaaServiceID, xsuaaApplicationID, name+"-uaa")
	params := bookshop(name)
	params["oauth2-configuration"] = map[string]any{"credential-types": []any{"binding-secret", "x509", "instance-secret"}}
	tb.mustProvision(t, xs, params)
	ias := newInstance(identityServiceID, identityApplication, name+"-ias")
	tb.mustProvision(t, ias, map[string]any{"display-name": name})
	bindings := []*keptBinding{
		{in: xs},
		{in: xs, params: map[string]any{"credential-type": "x509", "x509": map[string]any{"validity": 3}}},
		{in: xs, params: map[string]any{"credential-type": "instance-secret"}},
		{in: ias},
		{in: ias, params: map[string]any{"credential-type": "X509_GENERATED", "app-identifier": name}},
	}
	for i, b := range bindings {
		b.id = newUUID()
		if i%2 == 0 {
			b.app = newUUID()
		}
		b.creds = tb.mustBind(t, b.in, b.id, b.app, b.params)
	}
	return bindings
}

// checkServed fails unless GET binding returns the credentials of the bind.
func checkServed(t *testing.T, tb *testBroker, bindings []*keptBinding) {
	t.Helper()
	for _, b := range bindings {
		status, body := tb.getBinding(b.in, b.id)
		if status != http.StatusOK {
			t.Errorf("GET binding %v: %d %s", b.params, status, body)
			continue
		}
		got, _ := json.Marshal(credentialsOf(t, body))
		want, _ := json.Marshal(b.creds)
		if !bytes.Equal(got, want) {
			t.Errorf("GET binding %v returned other credentials", b.params)
		}
	}
}

// encodings returns the ways data could sit in the store file if it were
// kept unsealed: as is, and base64-encoded as encoding/json writes []byte
// (at each of the three alignments a surrounding value could give it, less
// the last characters, which depend on what follows).
func encodings(data []byte) [][]byte {
	out := [][]byte{data}
	for i := range 3 {
		enc := base64.StdEncoding.EncodeToString(data[i:])
		if len(enc) > 24 {
			out = append(out, []byte(enc[:len(enc)-4]))
		}
	}
	return out
}

// pemForms returns the encodings of a PEM text, of each DER block in it and
// its full base64 lines (as a JSON string holds the text).
func pemForms(t *testing.T, text string) [][]byte {
	t.Helper()
	out := encodings([]byte(text))
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, encodings(b.Bytes)...)
	}
	for _, l := range keyLines(text) {
		out = append(out, []byte(l))
	}
	if len(out) < 8 {
		t.Fatalf("no PEM in %.40q", text)
	}
	return out
}

// privateKeyForms returns the encodings of an RSA or ECDSA private key: its
// DER forms, PEM texts and private scalar.
func privateKeyForms(t *testing.T, key any) [][]byte {
	t.Helper()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := pemForms(t, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})))
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pkcs1 := x509.MarshalPKCS1PrivateKey(k)
		out = append(out, pemForms(t, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: pkcs1})))...)
		out = append(out, encodings(k.D.Bytes())...)
		for _, p := range k.Primes {
			out = append(out, encodings(p.Bytes())...)
		}
	case *ecdsa.PrivateKey:
		sec1, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pemForms(t, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})))...)
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, encodings(d)...)
	default:
		t.Fatalf("unexpected key type %T", key)
	}
	return out
}

// readOnlyStore refuses writes: loading keys or the CA for a check must not
// change the store.
type readOnlyStore struct{ store.Store }

func (readOnlyStore) Update(context.Context, func(store.Tx) error) error {
	return errors.New("read-only store")
}

// checkNothingInClear reads the raw bytes of the (stopped) broker's store
// file and fails if any client secret, client private key, token signing
// key or CA key is in it in any plain encoding. The signing keys and the CA
// are loaded from the store through the data key (key) for the search.
func checkNothingInClear(t *testing.T, dataDir, key string, bindings []*keptBinding) {
	t.Helper()
	path := filepath.Join(dataDir, storeFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][][]byte{}
	kinds := map[string]bool{}
	for i, b := range bindings {
		if s, ok := b.creds["clientsecret"].(string); ok {
			secrets[fmt.Sprintf("client secret of binding %d", i)] = encodings([]byte(s))
			kinds["secret"] = true
		}
		if k, ok := b.creds["key"].(string); ok {
			blk, _ := pem.Decode([]byte(k))
			if blk == nil {
				t.Fatalf("binding %d: key is not PEM", i)
			}
			priv, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				p8, err8 := x509.ParsePKCS8PrivateKey(blk.Bytes)
				if err8 != nil {
					t.Fatalf("binding %d: key: %v / %v", i, err, err8)
				}
				priv = p8.(*rsa.PrivateKey)
			}
			secrets[fmt.Sprintf("client private key of binding %d", i)] = append(pemForms(t, k), privateKeyForms(t, priv)...)
			kinds["key"] = true
		}
	}
	if !kinds["secret"] || !kinds["key"] {
		t.Fatalf("the bindings lack secrets or keys: %v", kinds)
	}

	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := credentials.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys, err := oauth.LoadKeys(ctx, readOnlyStore{st}, sealer, retiredKeyLifetime, nil)
	if err != nil {
		t.Fatalf("signing keys: %v", err)
	}
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(keys.JWKS(), &jwks); err != nil || len(jwks.Keys) == 0 {
		t.Fatalf("JWKS: %v %s", err, keys.JWKS())
	}
	for _, k := range jwks.Keys {
		sk, ok := keys.Lookup(k.Kid)
		if !ok {
			t.Fatalf("signing key %s not found", k.Kid)
		}
		secrets["signing key "+k.Kid] = privateKeyForms(t, sk.Private)
	}
	ca, err := storedCAOf(st, sealer)
	if err != nil {
		t.Fatalf("CA: %v", err)
	}
	_, caKeys, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	for i, rest := 0, caKeys; ; i++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		secrets[fmt.Sprintf("CA key %d", i)] = privateKeyForms(t, k)
	}
	secrets["CA keys PEM"] = encodings(caKeys)
	secrets["data key"] = encodings([]byte(key))
	secrets["OSB password"] = encodings([]byte(testPassword))

	for what, forms := range secrets {
		for _, f := range forms {
			if bytes.Contains(raw, f) {
				t.Errorf("%s is in %s in clear (%.24q…)", what, storeFile, f)
				break
			}
		}
	}
	// The search works: the CA's certificates, public and stored as
	// JSON []byte, are found the same way.
	found := false
	for _, f := range pemForms(t, string(ca.RootPEM())) {
		found = found || bytes.Contains(raw, f)
	}
	if !found {
		t.Errorf("the public CA certificate is not found in %s; the search is broken", storeFile)
	}
}

// storedCAOf loads the CA from the store's meta record, opening its keys
// with sealer.
func storedCAOf(st store.Store, sealer *credentials.Sealer) (*credentials.CA, error) {
	var ca *credentials.CA
	err := st.View(context.Background(), func(tx store.Tx) error {
		raw, err := tx.GetMeta(metaCA)
		if err != nil {
			return err
		}
		var s storedCA
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		keys, err := sealer.Open(s.SealedKeys, []byte(metaCA))
		if err != nil {
			return err
		}
		ca, err = credentials.LoadCA(s.Certs, keys)
		return err
	})
	return ca, err
}

// TestNothingSecretAtRest binds every credential kind, stops the broker and
// searches its raw store file for the secrets it must only keep sealed.
func TestNothingSecretAtRest(t *testing.T) {
	tb := startBroker(t, nil)
	bindings := bindEveryKind(t, tb, "at-rest")
	// A rotation leaves a retired signing key in the store too.
	status, body := adminCall(t, tb, http.MethodPost, "/admin/signing-keys/rotate")
	expectStatus(t, "rotate signing keys", status, body, http.StatusOK)
	tb.stop()
	checkNothingInClear(t, tb.dataDir, testEncryptionKey, bindings)
}

// adminCall sends an operator request without a body.
func adminCall(t *testing.T, tb *testBroker, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, tb.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUsername, testPassword)
	resp, err := tb.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

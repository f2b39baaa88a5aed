package oauth

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

func TestJWKSEndpoints(t *testing.T) {
	f := newFixture(t)
	pub := &testRSAKey(t).PublicKey
	type jwkDoc map[string]any
	checkKey := func(t *testing.T, k jwkDoc) {
		t.Helper()
		for _, field := range []string{"kty", "kid", "alg", "use", "n", "e", "value"} {
			if s, _ := k[field].(string); s == "" {
				t.Errorf("JWK lacks %s: %v", field, k)
			}
		}
		if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["e"] != "AQAB" || k["kid"] != sharedKID {
			t.Errorf("JWK %v", k)
		}
		n, err := base64.RawURLEncoding.DecodeString(k["n"].(string))
		if err != nil || new(big.Int).SetBytes(n).Cmp(pub.N) != 0 {
			t.Errorf("n does not decode (base64url) to the signing key's modulus: %v", err)
		}
		block, _ := pem.Decode([]byte(k["value"].(string)))
		if block == nil || block.Type != "PUBLIC KEY" {
			t.Fatalf("value is not a PEM public key: %v", k["value"])
		}
		pk, err := x509.ParsePKIXPublicKey(block.Bytes)
		if rk, ok := pk.(*rsa.PublicKey); err != nil || !ok || !rk.Equal(pub) {
			t.Errorf("value is not the signing key: %v", err)
		}
	}

	cases := []struct {
		name       string
		path       string
		opts       []reqOpt
		wantStatus int
		single     bool
	}{
		{"token_keys", "/token_keys", nil, 200, false},
		{"token_keys with zid", "/token_keys?zid=" + f.zone.ID, nil, 200, false},
		{"token_keys with x-zid header", "/token_keys", []reqOpt{withHeader("x-zid", f.zone.ID)}, 200, false},
		{"token_keys with unknown zid", "/token_keys?zid=unknown-zone", nil, 400, false},
		{"token_keys with unknown x-zid header", "/token_keys", []reqOpt{withHeader("x-zid", "unknown-zone")}, 400, false},
		{"token_key", "/token_key", nil, 200, true},
		{"token_key with zid", "/token_key?zid=" + f.zone.ID, nil, 200, true},
		{"token_key with unknown zid", "/token_key?zid=unknown-zone", nil, 400, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, raw := f.do(http.MethodGet, c.path, "", c.opts...)
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if ce := h.Get("Content-Encoding"); ce != "" {
				t.Errorf("Content-Encoding %q (xssec cannot read deflate)", ce)
			}
			body := decodeJSON(t, raw)
			if status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, c.wantStatus, raw)
			}
			if status != 200 {
				wantOAuthError(t, status, body, 400, "invalid_request")
				if _, ok := body["keys"]; ok {
					t.Errorf("error reply carries keys")
				}
				return
			}
			if c.single {
				checkKey(t, body)
				return
			}
			keys, _ := body["keys"].([]any)
			if len(keys) != 1 {
				t.Fatalf("keys %v, want the one current key", body["keys"])
			}
			k, _ := keys[0].(map[string]any)
			checkKey(t, k)
		})
	}

	t.Run("no authentication needed, other methods refused", func(t *testing.T) {
		status, _, _ := f.do(http.MethodPost, "/token_keys", "")
		if status != http.StatusMethodNotAllowed {
			t.Errorf("POST /token_keys: %d", status)
		}
	})

	t.Run("discovery", func(t *testing.T) {
		status, _, raw := f.do(http.MethodGet, "/.well-known/openid-configuration", "")
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		doc := decodeJSON(t, raw)
		const certBase = "https://acme.authentication.cert.test.local"
		want := map[string]string{
			"issuer":                 testXsuaaURL + "/oauth/token",
			"authorization_endpoint": testXsuaaURL + "/oauth/authorize",
			"token_endpoint":         testXsuaaURL + "/oauth/token",
			"userinfo_endpoint":      testXsuaaURL + "/userinfo",
			"jwks_uri":               testXsuaaURL + "/token_keys",
			"end_session_endpoint":   testXsuaaURL + "/logout.do",
		}
		for k, v := range want {
			if doc[k] != v {
				t.Errorf("%s = %v, want %s", k, doc[k], v)
			}
		}
		mtls, _ := doc["mtls_endpoint_aliases"].(map[string]any)
		if mtls["token_endpoint"] != certBase+"/oauth/token" || mtls["authorization_endpoint"] != certBase+"/oauth/authorize" {
			t.Errorf("mtls_endpoint_aliases %v", doc["mtls_endpoint_aliases"])
		}
		for _, list := range []string{"grant_types_supported", "token_endpoint_auth_methods_supported", "id_token_signing_alg_values_supported"} {
			if v, _ := doc[list].([]any); len(v) == 0 {
				t.Errorf("%s missing", list)
			}
		}
		// The issuer is what tokens carry in iss.
		b := f.bind(f.provisionXsuaa(`{"xsappname":"disco"}`), "")
		_, _, claims := f.mustToken(b.secretForm())
		if claims["iss"] != doc["issuer"] {
			t.Errorf("token iss %v, discovery issuer %v", claims["iss"], doc["issuer"])
		}
	})
}

// assertNoPlaintextKey fails if the file at path contains key's private
// material in any form a careless implementation would store it.
func assertNoPlaintextKey(t *testing.T, path string, key *rsa.PrivateKey) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PrivateKey(key)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	needles := map[string][]byte{
		"PKCS#1 DER":               pkcs1,
		"PKCS#1 DER, std base64":   []byte(base64.StdEncoding.EncodeToString(pkcs1)),
		"PKCS#1 DER, url base64":   []byte(base64.RawURLEncoding.EncodeToString(pkcs1)),
		"PKCS#8 DER":               pkcs8,
		"PKCS#8 DER, std base64":   []byte(base64.StdEncoding.EncodeToString(pkcs8)),
		"PEM armour":               []byte("PRIVATE KEY-----"),
		"private exponent":         key.D.Bytes(),
		"private exponent, base64": []byte(base64.RawURLEncoding.EncodeToString(key.D.Bytes())),
		"first prime":              key.Primes[0].Bytes(),
		"first prime, std base64":  []byte(base64.StdEncoding.EncodeToString(key.Primes[0].Bytes())),
	}
	for name, n := range needles {
		if bytes.Contains(raw, n) {
			t.Errorf("%s holds the signing key's %s in plaintext", filepath.Base(path), name)
		}
	}
	// Guard against scanning the wrong (or an empty) file.
	if !bytes.Contains(raw, []byte(metaSigningKeys)) {
		t.Errorf("store file has no %q record; the scan looked at the wrong file", metaSigningKeys)
	}
}

func TestKeysPersistedAndSealed(t *testing.T) {
	ctx := context.Background()
	sealer, err := credentials.NewSealer(testDataKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := LoadKeys(ctx, st, sealer, time.Hour, time.Now) // generates the first key
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeys(ctx, st, sealer, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := k1.Current(), k2.Current()
	if c1 == nil || c1.ID == "" || c1.ID != c2.ID || !c1.Private.Equal(c2.Private) {
		t.Fatalf("second LoadKeys: kid %v vs %v, same key %v", c1.ID, c2.ID, c1.Private.Equal(c2.Private))
	}
	if c1.Private.N.BitLen() != SigningKeyBits {
		t.Errorf("signing key has %d bits", c1.Private.N.BitLen())
	}
	if !bytes.Equal(k1.JWKS(), k2.JWKS()) {
		t.Errorf("JWKS differs between loads:\n%s\n%s", k1.JWKS(), k2.JWKS())
	}
	if !strings.Contains(k1.VerificationKeyPEM(), "BEGIN PUBLIC KEY") {
		t.Errorf("verification key %q", k1.VerificationKeyPEM())
	}

	// Another data key cannot open the stored key: LoadKeys fails instead
	// of silently making a new key (which would invalidate every token).
	other, _ := credentials.NewSealer(strings.Repeat("z", 40))
	if _, err := LoadKeys(ctx, st, other, time.Hour, time.Now); err == nil {
		t.Error("LoadKeys with a different data key succeeded")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	assertNoPlaintextKey(t, path, c1.Private)
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	b := f.bind(f.provisionXsuaa(`{"xsappname":"rotation"}`), "")
	_, h1, _ := f.mustToken(b.secretForm())
	status, body := f.token(b.secretForm())
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	before := body["access_token"].(string)
	oldKID := f.keys.Current().ID
	if h1["kid"] != oldKID {
		t.Fatalf("kid %v, current %s", h1["kid"], oldKID)
	}

	if err := f.keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	newKey := f.keys.Current()
	if newKey.ID == oldKID || newKey.Private.Equal(testRSAKey(t)) {
		t.Fatalf("Rotate kept the key %s", oldKID)
	}
	jwks := f.jwks()
	if _, ok := jwks[oldKID]; !ok || len(jwks) != 2 {
		t.Errorf("JWKS after rotation has kids %v, want %s and %s", keysOf(jwks), oldKID, newKey.ID)
	}
	if _, ok := jwks[newKey.ID]; !ok {
		t.Errorf("JWKS lacks the new key %s", newKey.ID)
	}
	if _, _, err := verifyJWT(before, jwks); err != nil {
		t.Errorf("token signed before the rotation no longer verifies: %v", err)
	}
	_, h2, _ := f.mustToken(b.secretForm())
	if h2["kid"] != newKey.ID {
		t.Errorf("token after rotation has kid %v, want %s", h2["kid"], newKey.ID)
	}
	status, _, raw := f.do(http.MethodGet, "/token_key", "")
	if k := decodeJSON(t, raw); status != 200 || k["kid"] != newKey.ID {
		t.Errorf("token_key: %d kid %v, want %s", status, k["kid"], newKey.ID)
	}
	// The binding's verificationkey follows the current key.
	nb := f.bind(b.InstanceID, "")
	if nb.cred("verificationkey") != newKey.publicPEM || nb.cred("verificationkey") == b.cred("verificationkey") {
		t.Errorf("verificationkey of a new binding is not the new key")
	}

	// Another process loading the store sees the same state.
	reloaded, err := LoadKeys(context.Background(), f.st, f.sealer, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.Current().ID != newKey.ID {
		t.Errorf("reloaded current %s, want %s", reloaded.Current().ID, newKey.ID)
	}
	if _, ok := reloaded.Lookup(oldKID); !ok {
		t.Errorf("reloaded keys lack the retired %s", oldKID)
	}

	f.close()
	assertNoPlaintextKey(t, f.path, testRSAKey(t))
	assertNoPlaintextKey(t, f.path, newKey.Private)
}

func keysOf(m map[string]*rsa.PublicKey) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRestart(t *testing.T) {
	f := newFixture(t)
	inst := f.provisionXsuaa(bookshop)
	live := f.bind(inst, "")
	dead := f.bind(inst, "")
	f.unbind(dead)
	_, h1, c1 := f.mustToken(live.secretForm())

	f.restart()

	body, h2, c2 := f.mustToken(live.secretForm())
	if h2["kid"] != h1["kid"] {
		t.Errorf("kid after restart %v, before %v", h2["kid"], h1["kid"])
	}
	if c2["zid"] != c1["zid"] || !sameSet(strs(t, c2, "scope"), strs(t, c1, "scope")) {
		t.Errorf("token changed across restart: zid %v/%v scope %v/%v", c1["zid"], c2["zid"], c1["scope"], c2["scope"])
	}
	if body["token_type"] != "bearer" {
		t.Errorf("reply %v", body)
	}
	status, reply := f.token(dead.secretForm())
	wantInvalidClient(t, status, reply)

	// The restarted broker keeps serving: a new binding works, and
	// unbinding the old one after the restart kills it.
	fresh := f.bind(inst, "")
	status, reply = f.token(fresh.secretForm())
	wantTokenFor(t, f, status, reply, live.cred("clientid"))
	f.unbind(live)
	status, reply = f.token(live.secretForm())
	wantInvalidClient(t, status, reply)

	// The zone survives too: bindings before and after carry the same id.
	if fresh.cred("identityzoneid") != live.cred("identityzoneid") {
		t.Errorf("zone id changed across restart: %s → %s", live.cred("identityzoneid"), fresh.cred("identityzoneid"))
	}
}

func TestRetiredKeyRetention(t *testing.T) {
	ctx := context.Background()
	sealer, err := credentials.NewSealer(testDataKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := seedSigningKey(st, sealer, testRSAKey(t)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	keys, err := LoadKeys(ctx, st, sealer, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	newKID := keys.Current().ID
	kids := func(k *Keys) []string {
		var doc struct {
			Keys []struct{ Kid string } `json:"keys"`
		}
		if err := json.Unmarshal(k.JWKS(), &doc); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range doc.Keys {
			out = append(out, j.Kid)
		}
		return out
	}

	cases := []struct {
		after time.Duration
		want  []string
	}{
		{0, []string{newKID, sharedKID}},
		{59 * time.Minute, []string{newKID, sharedKID}},
		// keepFor is over: the retired key's tokens have expired, so it
		// must leave the JWKS even though nobody rotated again.
		{61 * time.Minute, []string{newKID}},
	}
	for _, c := range cases {
		clock = t0.Add(c.after)
		if got := kids(keys); !slices.Equal(got, c.want) {
			t.Errorf("%v after rotation: JWKS kids %v, want %v", c.after, got, c.want)
		}
		_, found := keys.Lookup(sharedKID)
		if want := len(c.want) == 2; found != want {
			t.Errorf("%v after rotation: Lookup(retired) = %v, want %v", c.after, found, want)
		}
		// A process starting now (restart, another replica) agrees.
		loaded, err := LoadKeys(ctx, st, sealer, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := kids(loaded); !slices.Equal(got, c.want) {
			t.Errorf("%v after rotation, freshly loaded: JWKS kids %v, want %v", c.after, got, c.want)
		}
	}
}

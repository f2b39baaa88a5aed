package descriptor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

// testCertPEM makes a self-signed certificate valid in [notBefore, notAfter].
func testCertPEM(t *testing.T, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// jsonStr quotes s as a JSON string.
func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func wantKey(t *testing.T, err error, ok bool, key string) {
	t.Helper()
	if ok {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error with key %q, got %v", key, err)
	}
	if e.Key != key {
		t.Fatalf("want key %q, got %q (%v)", key, e.Key, err)
	}
}

func TestParseXsuaaBinding(t *testing.T) {
	cert := testCertPEM(t, testNow.Add(-time.Hour), testNow.Add(24*time.Hour))
	chain := cert + cert
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	both := []string{"binding-secret", "x509"}
	tests := []struct {
		name    string
		in      string
		allowed []string
		ok      bool
		key     string
	}{
		{name: "empty", in: ``, ok: true},
		{name: "x509 nested", in: `{"credential-type":"x509","x509":{"key-length":4096,"validity":30,"validity-type":"DAYS"}}`, ok: true},
		{name: "x509 flat", in: `{"credential-type":"x509","key-length":8192,"validity":1}`, ok: true},
		{name: "xsuaa wrapper", in: `{"xsuaa":{"credential-type":"x509","x509":{"key-length":2048}},"other":1}`, ok: true},
		{name: "xsuaa wrapper type", in: `{"xsuaa":"x509"}`, key: "xsuaa"},
		{name: "not an object", in: `"x509"`, key: ""},
		{name: "not JSON", in: `{credential-type:x509}`, key: ""},
		{name: "unknown type", in: `{"credential-type":"X509"}`, key: "credential-type"},
		{name: "type number", in: `{"credential-type":1}`, key: "credential-type"},
		{name: "type allowed", in: `{"credential-type":"x509"}`, allowed: both, ok: true},
		{name: "type not allowed", in: `{"credential-type":"x509"}`, allowed: []string{"binding-secret"}, key: "credential-type"},
		{name: "type not allowed in wrapper", in: `{"xsuaa":{"credential-type":"x509"}}`, allowed: []string{"binding-secret"}, key: "xsuaa.credential-type"},
		{name: "instance-secret listed", in: `{"credential-type":"instance-secret"}`, allowed: []string{"binding-secret", "instance-secret"}, ok: true},
		{name: "instance-secret unlisted", in: `{"credential-type":"instance-secret"}`, key: "credential-type"},
		{name: "hide-secret string", in: `{"hide-secret":"true"}`, ok: true},
		{name: "hide-secret bool", in: `{"hide-secret":false}`, ok: true},
		{name: "hide-secret bad", in: `{"hide-secret":"yes"}`, key: "hide-secret"},
		{name: "x509 not object", in: `{"credential-type":"x509","x509":true}`, key: "x509"},
		{name: "key-length bad", in: `{"credential-type":"x509","x509":{"key-length":1024}}`, key: "x509.key-length"},
		{name: "key-length string", in: `{"credential-type":"x509","x509":{"key-length":"2048"}}`, key: "x509.key-length"},
		{name: "flat key-length bad", in: `{"credential-type":"x509","key-length":3000}`, key: "key-length"},
		{name: "validity 0", in: `{"credential-type":"x509","x509":{"validity":0}}`, key: "x509.validity"},
		{name: "validity 31", in: `{"credential-type":"x509","x509":{"validity":31}}`, key: "x509.validity"},
		{name: "validity-type MONTHS", in: `{"credential-type":"x509","x509":{"validity-type":"MONTHS"}}`, key: "x509.validity-type"},
		{name: "self-managed certificate", in: `{"credential-type":"x509","x509":{"certificate":` + jsonStr(chain) + `,"ensure-uniqueness":true,"certificate-pinning":false,"hide-certificate":"true"}}`, ok: true},
		{name: "certificate garbage", in: `{"credential-type":"x509","x509":{"certificate":"hello"}}`, key: "x509.certificate"},
		{name: "certificate escaped newlines", in: `{"credential-type":"x509","x509":{"certificate":` + jsonStr(strings.ReplaceAll(cert, "\n", `\n`)) + `}}`, key: "x509.certificate"},
		{name: "certificate with key block", in: `{"credential-type":"x509","x509":{"certificate":` + jsonStr(cert+keyPEM) + `}}`, key: "x509.certificate"},
		{name: "certificate bad DER", in: `{"credential-type":"x509","x509":{"certificate":` + jsonStr(strings.Replace(keyPEM, "RSA PRIVATE KEY", "CERTIFICATE", 2)) + `}}`, key: "x509.certificate"},
		{name: "certificate-pinning bad", in: `{"credential-type":"x509","x509":{"certificate-pinning":"no"}}`, key: "x509.certificate-pinning"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseXsuaaBinding([]byte(tt.in), tt.allowed)
			wantKey(t, err, tt.ok, tt.key)
		})
	}
}

func TestParseXsuaaBindingValues(t *testing.T) {
	b, err := ParseXsuaaBinding(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := XsuaaBinding{CredentialType: "binding-secret", X509: X509Params{KeyLength: 2048, Validity: 7, ValidityType: "DAYS", CertificatePinning: true}}
	if *b != want {
		t.Fatalf("defaults = %+v", *b)
	}
	if b, err = ParseXsuaaBinding([]byte(`{}`), []string{"x509", "binding-secret"}); err != nil || b.CredentialType != "x509" {
		t.Fatalf("default from credential-types: %+v %v", b, err)
	}
	b, err = ParseXsuaaBinding([]byte(`{"xsuaa":{"credential-type":"x509","validity":3,"key-length":4096,"x509":{"validity":5},"hide-secret":"true"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.X509.Validity != 5 || b.X509.KeyLength != 4096 || !b.HideSecret || b.CredentialType != "x509" {
		t.Fatalf("nested should win over flat: %+v", *b)
	}
}

func TestParseIdentityBinding(t *testing.T) {
	valid := testCertPEM(t, testNow.Add(-time.Hour), testNow.Add(24*time.Hour))
	expired := testCertPEM(t, testNow.Add(-48*time.Hour), testNow.Add(-time.Hour))
	tests := []struct {
		name string
		in   string
		ok   bool
		key  string
	}{
		{name: "empty", in: ``, ok: true},
		{name: "secret", in: `{"credential-type":"SECRET"}`, ok: true},
		{name: "none", in: `{"credential-type":"NONE"}`, ok: true},
		{name: "generated", in: `{"credential-type":"X509_GENERATED","key-length":4096,"validity":30,"validity-type":"DAYS","app-identifier":"srv"}`, ok: true},
		{name: "attested", in: `{"credential-type":"X509_ATTESTED","app-identifier":"m"}`, key: "credential-type"},
		{name: "jwt client auth", in: `{"credential-type":"JWT_CLIENT_AUTH"}`, key: "credential-type"},
		{name: "unknown type", in: `{"credential-type":"secret"}`, key: "credential-type"},
		{name: "not JSON", in: `{"credential-type"}`, key: ""},
		{name: "key-length 1024", in: `{"credential-type":"X509_GENERATED","key-length":1024}`, key: "key-length"},
		{name: "key-length 8192", in: `{"credential-type":"X509_GENERATED","key-length":8192}`, key: "key-length"},
		{name: "validity 0", in: `{"credential-type":"X509_GENERATED","validity":0}`, key: "validity"},
		{name: "validity string", in: `{"validity":"30"}`, key: "validity"},
		{name: "365 days", in: `{"credential-type":"X509_GENERATED","validity":365}`, ok: true},
		{name: "366 days", in: `{"credential-type":"X509_GENERATED","validity":366}`, key: "validity"},
		{name: "12 months", in: `{"validity":12,"validity-type":"MONTHS"}`, ok: true},
		{name: "13 months", in: `{"validity":13,"validity-type":"MONTHS"}`, key: "validity"},
		{name: "1 year", in: `{"validity":1,"validity-type":"YEARS"}`, ok: true},
		{name: "2 years", in: `{"validity":2,"validity-type":"YEARS"}`, key: "validity"},
		{name: "weeks", in: `{"validity-type":"WEEKS"}`, key: "validity-type"},
		{name: "lower-case days", in: `{"validity-type":"days"}`, key: "validity-type"},
		{name: "app-identifier 20", in: `{"app-identifier":"` + strings.Repeat("a", 20) + `"}`, ok: true},
		{name: "app-identifier 21", in: `{"app-identifier":"` + strings.Repeat("a", 21) + `"}`, key: "app-identifier"},
		{name: "app-identifier control", in: `{"app-identifier":"a\u0000b"}`, key: "app-identifier"},
		{name: "provided", in: `{"credential-type":"X509_PROVIDED","certificate":` + jsonStr(valid) + `}`, ok: true},
		{name: "provided without certificate", in: `{"credential-type":"X509_PROVIDED"}`, key: "certificate"},
		{name: "provided expired", in: `{"credential-type":"X509_PROVIDED","certificate":` + jsonStr(expired) + `}`, key: "certificate"},
		{name: "provided malformed", in: `{"credential-type":"X509_PROVIDED","certificate":"-----BEGIN CERTIFICATE-----MIID-----END CERTIFICATE-----"}`, key: "certificate"},
		{name: "provided escaped newlines", in: `{"credential-type":"X509_PROVIDED","certificate":` + jsonStr(strings.ReplaceAll(valid, "\n", `\n`)) + `}`, key: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIdentityBinding([]byte(tt.in), testNow)
			wantKey(t, err, tt.ok, tt.key)
		})
	}
}

func TestIdentityBindingValues(t *testing.T) {
	b, err := ParseIdentityBinding(nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if *b != (IdentityBinding{CredentialType: "SECRET", KeyLength: 2048, Validity: 30, ValidityType: "DAYS"}) {
		t.Fatalf("defaults = %+v", *b)
	}
	tests := []struct {
		validity int
		unit     string
		want     time.Time
	}{
		{30, "DAYS", time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)},
		{1, "MONTHS", time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)}, // Feb 31 normalises like time.AddDate
		{12, "MONTHS", time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)},
		{1, "YEARS", time.Date(2027, 1, 31, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		b := IdentityBinding{Validity: tt.validity, ValidityType: tt.unit}
		if got := b.NotAfter(testNow); !got.Equal(tt.want) {
			t.Errorf("%d %s: got %v, want %v", tt.validity, tt.unit, got, tt.want)
		}
	}
}

func TestIdentityBindingCheckInstance(t *testing.T) {
	mt := &IdentityConfig{MultiTenant: true}
	tests := []struct {
		name string
		b    IdentityBinding
		c    *IdentityConfig
		ok   bool
		key  string
	}{
		{"secret single tenant", IdentityBinding{CredentialType: "SECRET"}, &IdentityConfig{}, true, ""},
		{"secret multi tenant", IdentityBinding{CredentialType: "SECRET"}, mt, false, "credential-type"},
		{"generated without app-identifier", IdentityBinding{CredentialType: "X509_GENERATED"}, mt, false, "app-identifier"},
		{"generated with app-identifier", IdentityBinding{CredentialType: "X509_GENERATED", AppIdentifier: "srv"}, mt, true, ""},
		{"provided multi tenant", IdentityBinding{CredentialType: "X509_PROVIDED"}, mt, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantKey(t, tt.b.CheckInstance(tt.c), tt.ok, tt.key)
		})
	}
}

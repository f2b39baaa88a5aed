package oauth

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkClientCredentials measures the whole token endpoint for a
// secret client: form parsing, client lookup, claims, RS256 signing and
// JSON encoding, without the network. Compare with BenchmarkRSASign2048 to
// see the overhead around the signature.
func BenchmarkClientCredentials(b *testing.B) {
	f := newFixture(b)
	bd := f.bind(f.provisionXsuaa(bookshop), "")
	body := bd.secretForm().Encode()
	// Build the client table outside the measurement.
	if err := f.srv.Warm(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
			rec := httptest.NewRecorder()
			f.mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body) // not Fatal: this is not the test goroutine
				return
			}
		}
	})
}

// BenchmarkRSASign2048 is the raw cost of one RS256 signature with a key of
// the signing key's size.
func BenchmarkRSASign2048(b *testing.B) {
	key := testRSAKey(b)
	digest := sha256.Sum256([]byte("header.payload of a typical token"))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

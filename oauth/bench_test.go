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

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/grants"
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

// BenchmarkMintJWT measures minting a client_credentials access token
// without HTTP, authentication or the client lookup: BuildAndSign builds
// the claims as the client_credentials grant does (authorities, narrowing,
// jti, aud) and signs them; SignOnly is signJWT alone (JSON encoding,
// base64 and the RS256 signature). Like BenchmarkRSASign2048 it runs in
// parallel, so the three compare directly.
func BenchmarkMintJWT(b *testing.B) {
	f := newFixture(b)
	bd := f.bind(f.provisionXsuaa(bookshop), "")
	t, err := f.srv.clients.Table(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	cl := t.byID[bd.cred("clientid")]
	if cl == nil || cl.App == nil {
		b.Fatalf("client %q not in the client table", bd.cred("clientid"))
	}
	zone := Zone{Name: f.zone.Name, ID: f.zone.ID}
	build := func() (jwt.MapClaims, error) {
		authorities := t.dir.Authorities(cl.App)
		granted, err := grants.Narrow(authorities, "")
		if err != nil {
			return nil, err
		}
		return f.srv.clientCredentialsClaims(cl, bd.ID, zone, authorities, granted, newJTI(), f.now()), nil
	}
	claims, err := build()
	if err != nil {
		b.Fatal(err)
	}
	// One token is verified, so the benchmark cannot measure a signer that
	// produces garbage.
	tok, err := f.srv.sign(claims)
	if err != nil {
		b.Fatal(err)
	}
	if _, got := f.parseJWT(tok); got["client_id"] != cl.ID {
		b.Fatalf("minted token has client_id %v, want %s", got["client_id"], cl.ID)
	}

	b.Run("BuildAndSign", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := build()
				if err == nil {
					_, err = f.srv.sign(c)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("SignOnly", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.srv.sign(claims); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

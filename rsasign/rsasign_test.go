package rsasign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
)

var key, _ = rsa.GenerateKey(rand.Reader, 2048)

// TestSignMatchesGo checks the build's signer against Go's crypto/rsa:
// PKCS#1 v1.5 is deterministic, so the bytes must be identical, and they
// must verify.
func TestSignMatchesGo(t *testing.T) {
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		digest := sha256.Sum256([]byte(fmt.Sprintf("message %d", i)))
		got, err := s.SignSHA256(digest[:])
		if err != nil {
			t.Fatal(err)
		}
		want, _ := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
		if string(got) != string(want) {
			t.Fatalf("%s signer: signature differs from crypto/rsa", Implementation)
		}
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], got); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignConcurrent(t *testing.T) {
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				d := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", g, i)))
				sig, err := s.SignSHA256(d[:])
				if err == nil {
					err = rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, d[:], sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestRejectsWrongDigestLength(t *testing.T) {
	s, _ := New(key)
	if _, err := s.SignSHA256([]byte("short")); err == nil {
		t.Fatal("a non-SHA-256 digest was signed")
	}
}

// BenchmarkSign measures this build's signer; run with and without
// -tags openssl to compare.
func BenchmarkSign(b *testing.B) {
	s, _ := New(key)
	d := sha256.Sum256([]byte("bench"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.SignSHA256(d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoRSA is Go's crypto/rsa, the reference in every build.
func BenchmarkGoRSA(b *testing.B) {
	key.Precompute()
	d := sha256.Sum256([]byte("bench"))
	for i := 0; i < b.N; i++ {
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

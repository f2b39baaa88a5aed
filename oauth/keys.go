// Package oauth is the embedded token server: the token endpoint with one
// file per grant, JWT minting, the JWKS and discovery documents.
package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/rsasign"
	"github.com/ossbroker/btp-security-broker/store"
)

// SigningKeyBits is the RSA modulus size of token signing keys: RS256 with
// 2048 bits is what SAP's clients expect.
const SigningKeyBits = 2048

const metaSigningKeys = "signing_keys"

// SigningKey is one RSA token signing key.
type SigningKey struct {
	ID        string
	Private   *rsa.PrivateKey
	CreatedAt time.Time
	// RetiredAt is zero for the current key. A retired key is still
	// published until its tokens have expired.
	RetiredAt time.Time
	publicPEM string
	// signer signs with Private: crypto/rsa, or OpenSSL in builds with
	// the openssl tag (package rsasign).
	signer rsasign.Signer
}

// storedKey is the persisted form: the private key only sealed.
type storedKey struct {
	ID        string    `json:"kid"`
	Sealed    []byte    `json:"sealed_pkcs1"`
	CreatedAt time.Time `json:"created_at"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
}

// Keys is the set of signing keys: one current, plus retired ones still
// published. Safe for concurrent use.
type Keys struct {
	mu      sync.RWMutex
	current *SigningKey
	retired []*SigningKey
	jwks    []byte
	// jwksLen is how many keys jwks was built from; fewer published keys
	// mean a retired key has expired since.
	jwksLen int
	st      store.Store
	sealer  *credentials.Sealer
	keepFor time.Duration
	nowFunc func() time.Time
}

// LoadKeys reads the signing keys from the store, creating the first one if
// there is none. keepFor is how long a retired key stays published (the
// longest token validity in use).
func LoadKeys(ctx context.Context, st store.Store, sealer *credentials.Sealer, keepFor time.Duration, now func() time.Time) (*Keys, error) {
	if now == nil {
		now = time.Now
	}
	k := &Keys{st: st, sealer: sealer, keepFor: keepFor, nowFunc: now}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	if k.current != nil {
		return k, nil
	}
	if err := k.Rotate(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

func keyAAD(kid string) []byte { return []byte("signing-key:" + kid) }

// Reload re-reads the key set from the store (another replica may have
// rotated).
func (k *Keys) Reload(ctx context.Context) error {
	var stored []storedKey
	err := k.st.View(ctx, func(tx store.Tx) error {
		raw, err := tx.GetMeta(metaSigningKeys)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &stored)
	})
	if err != nil {
		return err
	}
	var current *SigningKey
	var retired []*SigningKey
	for _, s := range stored {
		der, err := k.sealer.Open(s.Sealed, keyAAD(s.ID))
		if err != nil {
			return fmt.Errorf("signing key %s: %w", s.ID, err)
		}
		priv, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", s.ID, err)
		}
		sk := newSigningKey(s.ID, priv, s.CreatedAt, s.RetiredAt)
		if s.RetiredAt.IsZero() {
			current = sk
		} else {
			retired = append(retired, sk)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.current, k.retired = current, retired
	pub := k.publishedLocked()
	k.jwks, k.jwksLen = buildJWKS(pub), len(pub)
	return nil
}

func newSigningKey(id string, priv *rsa.PrivateKey, created, retired time.Time) *SigningKey {
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	priv.Precompute()
	signer, err := rsasign.New(priv)
	if err != nil {
		// OpenSSL refused a key Go accepted: fall back rather than fail.
		signer = rsasign.NewGo(priv)
	}
	return &SigningKey{ID: id, Private: priv, CreatedAt: created, RetiredAt: retired, publicPEM: p, signer: signer}
}

// Rotate makes a new current key. The previous one stays published for
// keepFor so tokens it signed keep validating; older ones are dropped.
func (k *Keys) Rotate(ctx context.Context) error {
	priv, err := rsa.GenerateKey(rand.Reader, SigningKeyBits)
	if err != nil {
		return err
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	sum := sha256.Sum256(der)
	kid := "key-" + hex.EncodeToString(sum[:6])
	now := k.nowFunc().UTC()
	err = k.st.Update(ctx, func(tx store.Tx) error {
		var stored []storedKey
		raw, err := tx.GetMeta(metaSigningKeys)
		if err == nil {
			if err := json.Unmarshal(raw, &stored); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		kept := stored[:0]
		for _, s := range stored {
			if s.RetiredAt.IsZero() {
				s.RetiredAt = now
			}
			if now.Sub(s.RetiredAt) < k.keepFor {
				kept = append(kept, s)
			}
		}
		sealed, err := k.sealer.Seal(x509.MarshalPKCS1PrivateKey(priv), keyAAD(kid))
		if err != nil {
			return err
		}
		kept = append(kept, storedKey{ID: kid, Sealed: sealed, CreatedAt: now})
		raw, err = json.Marshal(kept)
		if err != nil {
			return err
		}
		return tx.PutMeta(metaSigningKeys, raw)
	})
	if err != nil {
		return err
	}
	return k.Reload(ctx)
}

// Current returns the key new tokens are signed with.
func (k *Keys) Current() *SigningKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Lookup finds a published key by id.
func (k *Keys) Lookup(kid string) (*SigningKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, sk := range k.publishedLocked() {
		if sk.ID == kid {
			return sk, true
		}
	}
	return nil, false
}

// VerificationKeyPEM returns the PEM public key of the current key, the
// verificationkey of xsuaa credentials.
func (k *Keys) VerificationKeyPEM() string {
	return k.Current().publicPEM
}

// JWKS returns the JSON Web Key Set document of the published keys.
func (k *Keys) JWKS() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if pub := k.publishedLocked(); len(pub) != k.jwksLen {
		return buildJWKS(pub)
	}
	return k.jwks
}

// publishedLocked returns the current key and the retired keys whose
// tokens may still be valid: a retired key leaves keepFor after its
// retirement, whether or not another rotation has happened since.
func (k *Keys) publishedLocked() []*SigningKey {
	out := make([]*SigningKey, 0, 1+len(k.retired))
	if k.current != nil {
		out = append(out, k.current)
	}
	now := k.nowFunc()
	for _, sk := range k.retired {
		if now.Sub(sk.RetiredAt) < k.keepFor {
			out = append(out, sk)
		}
	}
	return out
}

// jwk is one key of the JWKS, with the fields UAA publishes (xsuaa.md §4.6):
// n/e for xssec 4, value (PEM) for xssec 3 and the Java library.
type jwk struct {
	Kty   string `json:"kty"`
	E     string `json:"e"`
	Use   string `json:"use"`
	Kid   string `json:"kid"`
	Alg   string `json:"alg"`
	Value string `json:"value"`
	N     string `json:"n"`
}

func buildJWKS(keys []*SigningKey) []byte {
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, sk := range keys {
		pub := sk.Private.PublicKey
		doc.Keys = append(doc.Keys, jwk{
			Kty: "RSA", Use: "sig", Alg: "RS256", Kid: sk.ID, Value: sk.publicPEM,
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
			N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		})
	}
	raw, _ := json.Marshal(doc)
	return raw
}

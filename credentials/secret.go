// Package credentials generates, hashes and seals the secrets and X.509
// certificates the broker hands out in service bindings, and parses the
// client certificates presented back to it.
package credentials

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// secretBytes is the entropy of every generated secret: 256 bits.
const secretBytes = 32

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("credentials: reading random bytes: %w", err)
	}
	return b, nil
}

// NewXsuaaSecret returns a client secret shaped like a real XSUAA binding
// secret: "<uuid v4>$<base64url of 32 random bytes with '=' padding>"
// (44 characters after the '$').
func NewXsuaaSecret() (string, error) {
	b, err := randomBytes(secretBytes)
	if err != nil {
		return "", err
	}
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	return id + "$" + base64.URLEncoding.EncodeToString(b), nil
}

// NewIdentitySecret returns a client secret for the identity service:
// 32 random bytes, base64url without padding (43 characters). The
// alphabet has no ':' so the secret is safe inside HTTP Basic credentials.
func NewIdentitySecret() (string, error) {
	b, err := randomBytes(secretBytes)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewPassword returns a generated OSB basic-auth password of 32 URL-safe
// characters (24 random bytes, 192 bits).
func NewPassword() (string, error) {
	b, err := randomBytes(24)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// NewID returns a random (version 4) UUID in its canonical lower-case
// form. It panics only if the system random source fails, which leaves
// the process unable to do anything secure anyway.
func NewID() string {
	id, err := newUUID()
	if err != nil {
		panic(err)
	}
	return id
}

func newUUID() (string, error) {
	b, err := randomBytes(16)
	if err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:]), nil
}

// SecretHash is the stored form of a client secret.
//
// A plain SHA-256 is sound here, unlike for passwords chosen by people:
// every secret this broker stores is generated with at least 256 bits of
// entropy, so there is nothing to brute-force and a slow KDF buys no
// security. A slow KDF would cost a lot, though: bcrypt at its default
// cost caps the token endpoint at roughly 16 secret checks per second per
// core.
type SecretHash [sha256.Size]byte

// HashSecret returns the SHA-256 of secret.
func HashSecret(secret string) SecretHash {
	return SecretHash(sha256.Sum256([]byte(secret)))
}

// Matches reports whether secret hashes to h, in constant time.
func (h SecretHash) Matches(secret string) bool {
	got := HashSecret(secret)
	return subtle.ConstantTimeCompare(h[:], got[:]) == 1
}

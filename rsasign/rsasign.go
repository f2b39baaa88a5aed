// Package rsasign signs SHA-256 digests with RSA PKCS#1 v1.5 (RS256), the
// token server's hot path. The default build uses Go's crypto/rsa; a build
// with the tag "openssl" (and cgo) uses OpenSSL's libcrypto, which signs
// several times faster on the same machine. PKCS#1 v1.5 signatures are
// deterministic, so both produce identical bytes.
package rsasign

import (
	"crypto"
	"crypto/rsa"
)

// Signer signs SHA-256 digests. Implementations are safe for concurrent use.
type Signer interface {
	SignSHA256(digest []byte) ([]byte, error)
}

// New returns a Signer for key using this build's implementation
// (Implementation says which).
func New(key *rsa.PrivateKey) (Signer, error) { return newSigner(key) }

// NewGo returns the crypto/rsa Signer whatever the build; the OpenSSL build
// falls back to it for a key OpenSSL refuses.
func NewGo(key *rsa.PrivateKey) Signer {
	key.Precompute()
	return goSigner{key}
}

type goSigner struct{ key *rsa.PrivateKey }

func (s goSigner) SignSHA256(digest []byte) ([]byte, error) {
	return rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, digest)
}

//go:build !openssl || !cgo

package rsasign

import "crypto/rsa"

// Implementation names the signer this binary was built with.
const Implementation = "go"

func newSigner(key *rsa.PrivateKey) (Signer, error) { return NewGo(key), nil }

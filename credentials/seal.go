package credentials

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// sealVersion is the first byte of every sealed value; a new layout
	// gets a new version so old records stay readable.
	sealVersion = 0x01
	keyIDLen    = 8
	nonceLen    = 12
	sealHeader  = 1 + keyIDLen + nonceLen

	// MinSecretLen is the minimum length of a data-key secret.
	MinSecretLen = 32

	hkdfInfo = "btp-security-broker data key v1"
)

// Errors returned by Sealer.Open.
var (
	ErrUnknownKey = errors.New("credentials: sealed with a data key this broker does not have")
	ErrTampered   = errors.New("credentials: sealed data was tampered with or belongs to another record")
	ErrMalformed  = errors.New("credentials: sealed data is malformed")
)

type dataKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
}

// Sealer encrypts credentials at rest with AES-256-GCM. It seals under
// one current key and opens values sealed under the current key or any
// previous key, so the data key can be rotated without downtime.
type Sealer struct {
	current  dataKey
	previous []dataKey
}

// NewSealer derives the current data key and any previous keys from their
// secrets (each at least MinSecretLen characters).
func NewSealer(current string, previous ...string) (*Sealer, error) {
	cur, err := deriveKey(current)
	if err != nil {
		return nil, fmt.Errorf("current data key: %w", err)
	}
	s := &Sealer{current: cur}
	for i, p := range previous {
		k, err := deriveKey(p)
		if err != nil {
			return nil, fmt.Errorf("previous data key %d: %w", i+1, err)
		}
		s.previous = append(s.previous, k)
	}
	return s, nil
}

func deriveKey(secret string) (dataKey, error) {
	if len(secret) < MinSecretLen {
		return dataKey{}, fmt.Errorf("credentials: data key secret has %d characters, need at least %d", len(secret), MinSecretLen)
	}
	raw, err := hkdf.Key(sha256.New, []byte(secret), nil, hkdfInfo, 32)
	if err != nil {
		return dataKey{}, fmt.Errorf("credentials: deriving data key: %w", err)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return dataKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return dataKey{}, err
	}
	// The id is a hash of the derived key, not of the secret: a short
	// or guessable secret would otherwise be checkable offline from any
	// sealed record.
	sum := sha256.Sum256(raw)
	k := dataKey{aead: aead}
	copy(k.id[:], sum[:keyIDLen])
	return k, nil
}

// KeyID returns the hex id of the current data key.
func (s *Sealer) KeyID() string {
	return hex.EncodeToString(s.current.id[:])
}

// Seal encrypts plaintext under the current key. aad is authenticated but
// not stored: pass the id of the record the value belongs to, so that a
// sealed value copied into another record does not open.
//
// Layout: 0x01 | key id (8) | nonce (12) | ciphertext and GCM tag.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce, err := randomBytes(nonceLen)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, sealHeader+len(plaintext)+s.current.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, s.current.id[:]...)
	out = append(out, nonce...)
	return s.current.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a value produced by Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < sealHeader+s.current.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrMalformed
	}
	k := s.key(sealed[1 : 1+keyIDLen])
	if k == nil {
		return nil, fmt.Errorf("%w (key id %x; current key id %s)", ErrUnknownKey, sealed[1:1+keyIDLen], s.KeyID())
	}
	nonce := sealed[1+keyIDLen : sealHeader]
	pt, err := k.aead.Open(nil, nonce, sealed[sealHeader:], aad)
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

// NeedsReseal reports whether sealed was produced under a previous key
// (and should be re-sealed under the current one).
func (s *Sealer) NeedsReseal(sealed []byte) bool {
	if len(sealed) < sealHeader || sealed[0] != sealVersion {
		return false
	}
	id := sealed[1 : 1+keyIDLen]
	if bytes.Equal(id, s.current.id[:]) {
		return false
	}
	return s.key(id) != nil
}

func (s *Sealer) key(id []byte) *dataKey {
	if bytes.Equal(id, s.current.id[:]) {
		return &s.current
	}
	for i := range s.previous {
		if bytes.Equal(id, s.previous[i].id[:]) {
			return &s.previous[i]
		}
	}
	return nil
}

// LoadOrCreateKeyFile returns the data-key secret stored in path. If the
// file does not exist it is created with mode 0600 holding 64 random hex
// characters, and flushed to disk together with its directory entry. An
// existing file readable or writable by group or others is refused.
func LoadOrCreateKeyFile(path string) (string, error) {
	secret, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	secret, err = createKeyFile(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our read and create.
		return readKeyFile(path)
	}
	return secret, err
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("credentials: data key file %s has permissions %04o, which let other users read it; run: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("credentials: reading data key file: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("credentials: data key file %s holds %d characters, need at least %d", path, len(secret), MinSecretLen)
	}
	return secret, nil
}

func createKeyFile(path string) (string, error) {
	b, err := randomBytes(32)
	if err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err = f.WriteString(secret + "\n"); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // never leave a half-written key behind
		return "", fmt.Errorf("credentials: writing data key file: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("credentials: syncing data key directory: %w", err)
	}
	return secret, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

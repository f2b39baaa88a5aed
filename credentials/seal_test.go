package credentials

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	secretA = strings.Repeat("a", 32)
	secretB = strings.Repeat("b", 40)
	secretC = strings.Repeat("c", 64)
)

func mustSealer(t testing.TB, cur string, prev ...string) *Sealer {
	t.Helper()
	s, err := NewSealer(cur, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustSealer(t, secretA)
	for _, pt := range [][]byte{nil, []byte("x"), []byte("client secret"), bytes.Repeat([]byte{0xff}, 5000)} {
		sealed, err := s.Seal(pt, []byte("binding-1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+8+12+len(pt)+16 {
			t.Errorf("sealed length %d for %d-byte plaintext", len(sealed), len(pt))
		}
		if sealed[0] != 0x01 {
			t.Errorf("version byte %#x", sealed[0])
		}
		if got := string(sealed[1:9]); got != string(mustHex(t, s.KeyID())) {
			t.Errorf("key id in sealed value %x, want %s", sealed[1:9], s.KeyID())
		}
		if len(pt) > 4 && bytes.Contains(sealed, pt) {
			t.Error("plaintext visible in sealed value")
		}
		got, err := s.Open(sealed, []byte("binding-1"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(s) {
		t.Fatalf("key id %q is not 16 hex chars", s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealNonceIsFresh(t *testing.T) {
	s := mustSealer(t, secretA)
	a, _ := s.Seal([]byte("same"), nil)
	b, _ := s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestKeyIDDeterministic(t *testing.T) {
	if mustSealer(t, secretA).KeyID() != mustSealer(t, secretA).KeyID() {
		t.Error("same secret gives different key ids")
	}
	if mustSealer(t, secretA).KeyID() == mustSealer(t, secretB).KeyID() {
		t.Error("different secrets give the same key id")
	}
}

func TestOpenErrors(t *testing.T) {
	old := mustSealer(t, secretA)
	sealedOld, err := old.Seal([]byte("secret"), []byte("b1"))
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustSealer(t, secretB, secretA)
	sealedNew, err := rotated.Seal([]byte("secret"), []byte("b1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}

	tests := []struct {
		name    string
		sealer  *Sealer
		sealed  []byte
		aad     string
		wantErr error // nil: must open
		wantMsg string
	}{
		{"previous key opens", rotated, sealedOld, "b1", nil, ""},
		{"current key opens", rotated, sealedNew, "b1", nil, ""},
		{"wrong aad", rotated, sealedNew, "b2", ErrTampered, ""},
		{"empty aad", rotated, sealedNew, "", ErrTampered, ""},
		{"tampered ciphertext", rotated, flip(sealedNew, len(sealedNew)-20), "b1", ErrTampered, ""},
		{"tampered tag", rotated, flip(sealedNew, len(sealedNew)-1), "b1", ErrTampered, ""},
		{"tampered nonce", rotated, flip(sealedNew, 10), "b1", ErrTampered, ""},
		{"tampered key id", rotated, flip(sealedNew, 3), "b1", ErrUnknownKey, "does not have"},
		{"unknown key", mustSealer(t, secretC), sealedNew, "b1", ErrUnknownKey, "sealed with a data key this broker does not have"},
		{"rotated away", mustSealer(t, secretB), sealedOld, "b1", ErrUnknownKey, ""},
		{"bad version", rotated, flip(sealedNew, 0), "b1", ErrMalformed, ""},
		{"truncated", rotated, sealedNew[:20], "b1", ErrMalformed, ""},
		{"empty", rotated, nil, "b1", ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(tt.sealed, []byte(tt.aad))
			if tt.wantErr == nil {
				if err != nil || string(got) != "secret" {
					t.Fatalf("Open = %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestNeedsReseal(t *testing.T) {
	old := mustSealer(t, secretA)
	rotated := mustSealer(t, secretB, secretA)
	sOld, _ := old.Seal([]byte("x"), nil)
	sNew, _ := rotated.Seal([]byte("x"), nil)
	sOther, _ := mustSealer(t, secretC).Seal([]byte("x"), nil)
	tests := []struct {
		name   string
		sealed []byte
		want   bool
	}{
		{"previous key", sOld, true},
		{"current key", sNew, false},
		{"unknown key", sOther, false},
		{"garbage", []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		if got := rotated.NeedsReseal(tt.sealed); got != tt.want {
			t.Errorf("%s: NeedsReseal = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNewSealerShortSecret(t *testing.T) {
	short := strings.Repeat("s", 31)
	tests := []struct {
		name string
		cur  string
		prev []string
	}{
		{"short current", short, nil},
		{"empty current", "", nil},
		{"short previous", secretA, []string{secretB, short}},
	}
	for _, tt := range tests {
		if _, err := NewSealer(tt.cur, tt.prev...); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.key")

	secret, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Fatalf("generated secret %q is not 64 hex chars", secret)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("created with %04o, want 0600", perm)
	}
	again, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again != secret {
		t.Errorf("second load %q, want %q", again, secret)
	}
	if _, err := NewSealer(secret); err != nil {
		t.Errorf("generated secret unusable: %v", err)
	}
}

func TestLoadKeyFileRefusesWidePermissions(t *testing.T) {
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		path := filepath.Join(t.TempDir(), "data.key")
		if err := os.WriteFile(path, []byte(secretA), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil { // umask-proof
			t.Fatal(err)
		}
		_, err := LoadOrCreateKeyFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%04o: err = %v, want a hint to chmod 600", perm, err)
		}
	}
}

func TestLoadKeyFileExisting(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
		wantErr bool
	}{
		{"trailing newline", secretB + "\n", secretB, false},
		{"too short", "short\n", "", true},
		{"empty", "", "", true},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateKeyFile(path)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %q, %v", tt.name, got, err)
		}
	}
}

func TestCreateKeyFileMissingDir(t *testing.T) {
	if _, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "nope", "k")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func FuzzOpen(f *testing.F) {
	s, err := NewSealer(secretB, secretA)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Seal([]byte("hello"), []byte("id"))
	old, _ := mustSealer(f, secretA).Seal([]byte("hello"), []byte("id"))
	f.Add(good, []byte("id"))
	f.Add(old, []byte("id"))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1}, []byte("id"))
	f.Add(bytes.Repeat([]byte{1}, 37), []byte("id"))
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := s.Open(sealed, aad)
		// Only genuine seeds can open (each fuzz worker process seals its
		// own, so compare contents, not bytes): forging a GCM tag is out
		// of a fuzzer's reach, so anything else means broken
		// authentication.
		if err == nil && (string(pt) != "hello" || string(aad) != "id") {
			t.Fatalf("forged value opened: %q with aad %q", pt, aad)
		}
		s.NeedsReseal(sealed)
	})
}

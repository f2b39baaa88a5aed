package credentials

import (
	"regexp"
	"strings"
	"testing"
)

const uuidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`

func TestSecretFormats(t *testing.T) {
	tests := []struct {
		name string
		gen  func() (string, error)
		re   *regexp.Regexp
	}{
		{"xsuaa", NewXsuaaSecret, regexp.MustCompile(`^` + uuidPattern + `\$[A-Za-z0-9_-]{43}=$`)},
		{"identity", NewIdentitySecret, regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)},
		{"password", NewPassword, regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)},
		{"id", func() (string, error) { return NewID(), nil }, regexp.MustCompile(`^` + uuidPattern + `$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 50 {
				s, err := tt.gen()
				if err != nil {
					t.Fatal(err)
				}
				if !tt.re.MatchString(s) {
					t.Fatalf("%q does not match %s", s, tt.re)
				}
				if strings.Contains(s, ":") {
					t.Fatalf("%q contains ':'", s)
				}
				if seen[s] {
					t.Fatalf("duplicate %q", s)
				}
				seen[s] = true
			}
		})
	}
}

func TestXsuaaSecretSuffixLength(t *testing.T) {
	s, err := NewXsuaaSecret()
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(s, "$")
	if !ok || len(after) != 44 {
		t.Fatalf("suffix %q has %d chars, want 44", after, len(after))
	}
}

func TestSecretHash(t *testing.T) {
	secret, err := NewIdentitySecret()
	if err != nil {
		t.Fatal(err)
	}
	h := HashSecret(secret)
	tests := []struct {
		in   string
		want bool
	}{
		{secret, true},
		{secret + "x", false},
		{secret[:len(secret)-1], false},
		{"", false},
		{strings.ToUpper(secret), strings.ToUpper(secret) == secret},
	}
	for _, tt := range tests {
		if got := h.Matches(tt.in); got != tt.want {
			t.Errorf("Matches(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if HashSecret(secret) != h {
		t.Error("HashSecret is not deterministic")
	}
	// Known SHA-256 test vector, so the stored format cannot drift.
	if got := HashSecret("abc"); got[0] != 0xba || got[31] != 0xad {
		t.Errorf("HashSecret(abc) = %x, want SHA-256 ba7816bf...f20015ad", got)
	}
}

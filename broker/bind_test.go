package broker

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCommonName(t *testing.T) {
	long := strings.Repeat("i", 80)
	cases := []struct {
		id, suffix string
		want       string // "" means: hashed, check the properties only
	}{
		{"3e4b9c1d-4a0e-4d6e-9a51-0c8f2b7e1a90", "", "3e4b9c1d-4a0e-4d6e-9a51-0c8f2b7e1a90"},
		{"3e4b9c1d-4a0e-4d6e-9a51-0c8f2b7e1a90", "/srv", "3e4b9c1d-4a0e-4d6e-9a51-0c8f2b7e1a90/srv"},
		{strings.Repeat("a", 64), "", strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), "", ""},
		{long, "/" + strings.Repeat("s", 20), ""},
		{strings.Repeat("ä", 60), "/äöü", strings.Repeat("ä", 60) + "/äöü"},
	}
	for _, c := range cases {
		got := commonName(c.id, c.suffix)
		if n := utf8.RuneCountInString(got); n > maxCommonName {
			t.Errorf("commonName(%q, %q) has %d characters", c.id, c.suffix, n)
		}
		if !strings.HasSuffix(got, c.suffix) {
			t.Errorf("commonName(%q, %q) = %q lost the suffix", c.id, c.suffix, got)
		}
		if c.want != "" && got != c.want {
			t.Errorf("commonName(%q, %q) = %q, want %q", c.id, c.suffix, got, c.want)
		}
		if again := commonName(c.id, c.suffix); again != got {
			t.Errorf("commonName(%q, %q) is not stable", c.id, c.suffix)
		}
	}
	if commonName(long, "") == commonName(long+"x", "") {
		t.Errorf("two long ids share a common name")
	}
}

package credentials

import (
	"fmt"
	"testing"
)

// BenchmarkNewSecret measures generating a client secret at bind time.
func BenchmarkNewSecret(b *testing.B) {
	gens := []struct {
		name string
		gen  func() (string, error)
	}{
		{"Xsuaa", NewXsuaaSecret},
		{"Identity", NewIdentitySecret},
	}
	for _, g := range gens {
		b.Run(g.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.gen(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHashSecret measures computing the stored form of a secret
// (bind time) and the hash of a presented one (every token request).
func BenchmarkHashSecret(b *testing.B) {
	secret, err := NewXsuaaSecret()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		HashSecret(secret)
	}
}

// BenchmarkVerifySecret measures checking a presented secret. Matches
// compares with one stored hash in constant time. Lookup is what the token
// server does (oauth client.checkSecret): hash the presented secret once
// and look the hash up among the client's binding secrets, here a client
// with 10 bindings. Both are measured for the right secret and a wrong one,
// which must cost the same.
func BenchmarkVerifySecret(b *testing.B) {
	const bindings = 10
	secrets := make([]string, bindings)
	byHash := make(map[SecretHash]string, bindings)
	for i := range secrets {
		s, err := NewXsuaaSecret()
		if err != nil {
			b.Fatal(err)
		}
		secrets[i] = s
		byHash[HashSecret(s)] = fmt.Sprintf("binding-%d", i)
	}
	stored := HashSecret(secrets[3])
	wrong, err := NewXsuaaSecret()
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name, presented string
		ok              bool
	}{
		{"Right", secrets[3], true},
		{"Wrong", wrong, false},
	}
	for _, c := range cases {
		if stored.Matches(c.presented) != c.ok {
			b.Fatalf("%s: Matches = %v", c.name, !c.ok)
		}
		if _, found := byHash[HashSecret(c.presented)]; found != c.ok {
			b.Fatalf("%s: lookup found = %v", c.name, found)
		}
		b.Run("Matches/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				stored.Matches(c.presented)
			}
		})
		b.Run("Lookup/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = byHash[HashSecret(c.presented)]
			}
		})
	}
}

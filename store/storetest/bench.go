package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// Size of the data set Bench works on.
const (
	BenchInstances           = 10000
	BenchBindingsPerInstance = 10
	// benchBatch is how many instances (with their bindings) one Update
	// creates while populating.
	benchBatch = 250
)

// Record sizes close to the broker's: sealed x509 credentials carry a
// certificate and a private key in PEM, sealed secret credentials only
// URLs and the secret; an xsuaa instance keeps its parsed descriptor.
const (
	sealedX509Size   = 3500
	sealedSecretSize = 800
)

var benchConfig = json.RawMessage(`{"xsappname":"orders","tenant-mode":"dedicated","description":"Orders service",` +
	`"scopes":[{"name":"$XSAPPNAME.Read","description":"read"},{"name":"$XSAPPNAME.Write","description":"write"},` +
	`{"name":"$XSAPPNAME.Admin","description":"administer","granted-apps":["$XSAPPNAME(application,orders-ui)"]}],` +
	`"attributes":[{"name":"Country","description":"Country","valueType":"string","valueRequired":false}],` +
	`"role-templates":[{"name":"Viewer","scope-references":["$XSAPPNAME.Read"],"attribute-references":[{"name":"Country"}]},` +
	`{"name":"Editor","scope-references":["$XSAPPNAME.Read","$XSAPPNAME.Write"]}],` +
	`"authorities":["$ACCEPT_GRANTED_AUTHORITIES"],` +
	`"oauth2-configuration":{"token-validity":43200,"credential-types":["binding-secret","x509"],"system-attributes":null}}`)

func benchInstanceID(i int) string { return fmt.Sprintf("bench-instance-%05d", i) }

func benchBindingID(i, j int) string { return fmt.Sprintf("bench-instance-%05d-binding-%02d", i, j) }

// benchFingerprint is the certificate fingerprint of binding (i, j), in the
// store's format (SHA-256, lower-case hex). Bindings with odd j are x509.
func benchFingerprint(i, j int) string {
	sum := sha256.Sum256([]byte(benchBindingID(i, j)))
	return hex.EncodeToString(sum[:])
}

// Bench runs the store lookup benchmarks against the store open returns,
// which must be empty (open arranges for its cleanup). It populates
// BenchInstances instances with BenchBindingsPerInstance bindings each
// (half secret, half x509) once, then measures each lookup the broker and
// the token server make, each in its own View transaction as they do, on
// keys spread over the whole data set.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	s := open(b)
	populate(b, s)
	ctx := context.Background()

	// A fixed pseudo-random order of instances, so that successive lookups
	// do not hit the same pages and runs are comparable.
	rng := rand.New(rand.NewPCG(1, 2))
	order := rng.Perm(BenchInstances)
	pick := func(n int) int { return order[n%len(order)] }

	lookups := []struct {
		name string
		run  func(tx store.Tx, n int) error
	}{
		{"GetInstance", func(tx store.Tx, n int) error {
			i := pick(n)
			in, err := tx.GetInstance(benchInstanceID(i))
			return expect(err, in != nil && in.ID == benchInstanceID(i), "GetInstance", i)
		}},
		{"GetInstanceByClientID", func(tx store.Tx, n int) error {
			i := pick(n)
			in, err := tx.GetInstanceByClientID("cid-" + benchInstanceID(i))
			return expect(err, in != nil && in.ID == benchInstanceID(i), "GetInstanceByClientID", i)
		}},
		{"GetBinding", func(tx store.Tx, n int) error {
			i, j := pick(n), n%BenchBindingsPerInstance
			bd, err := tx.GetBinding(benchBindingID(i, j))
			return expect(err, bd != nil && bd.ID == benchBindingID(i, j), "GetBinding", i)
		}},
		{"GetBindingByFingerprint", func(tx store.Tx, n int) error {
			i, j := pick(n), 2*(n%(BenchBindingsPerInstance/2))+1
			bd, err := tx.GetBindingByFingerprint(benchFingerprint(i, j))
			return expect(err, bd != nil && bd.ID == benchBindingID(i, j), "GetBindingByFingerprint", i)
		}},
		{"ListBindings", func(tx store.Tx, n int) error {
			i := pick(n)
			bs, err := tx.ListBindings(benchInstanceID(i))
			return expect(err, len(bs) == BenchBindingsPerInstance, "ListBindings", i)
		}},
	}
	for _, l := range lookups {
		b.Run(l.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if err := s.View(ctx, func(tx store.Tx) error { return l.run(tx, n) }); err != nil {
					b.Fatal(err)
				}
				n++
			}
		})
	}

	// What the token server reads to rebuild its client table after a
	// change: every instance and every binding, in one View.
	b.Run("ListAll", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			err := s.View(ctx, func(tx store.Tx) error {
				ins, err := tx.ListInstances()
				if err != nil {
					return err
				}
				if len(ins) != BenchInstances {
					return fmt.Errorf("ListInstances returned %d instances, want %d", len(ins), BenchInstances)
				}
				for _, in := range ins {
					if _, err := tx.ListBindings(in.ID); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// expect turns a lookup's outcome into an error.
func expect(err error, ok bool, what string, i int) error {
	if err != nil {
		return fmt.Errorf("%s (instance %d): %w", what, i, err)
	}
	if !ok {
		return fmt.Errorf("%s (instance %d): wrong record", what, i)
	}
	return nil
}

// populate creates the data set of Bench.
func populate(b *testing.B, s store.Store) {
	b.Helper()
	// Sealed credentials are ciphertext: random, so that no backend gets
	// to compress them.
	rng := rand.New(rand.NewPCG(3, 4))
	blob := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	sealedX509, sealedSecret := blob(sealedX509Size), blob(sealedSecretSize)
	secretHash := sha256.Sum256([]byte("bench secret"))
	for start := 0; start < BenchInstances; start += benchBatch {
		err := s.Update(context.Background(), func(tx store.Tx) error {
			for i := start; i < min(start+benchBatch, BenchInstances); i++ {
				in := NewInstance(benchInstanceID(i))
				in.Config = benchConfig
				if err := tx.CreateInstance(in); err != nil {
					return err
				}
				for j := range BenchBindingsPerInstance {
					var bd *store.Binding
					if j%2 == 1 {
						bd = NewBinding(benchBindingID(i, j), in.ID, benchFingerprint(i, j))
						bd.SecretHash = nil
						bd.SealedCredentials = sealedX509
					} else {
						bd = NewBinding(benchBindingID(i, j), in.ID, "")
						bd.SecretHash = secretHash[:]
						bd.SealedCredentials = sealedSecret
					}
					if err := tx.CreateBinding(bd); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("populating the store: %v", err)
		}
	}
}

package bolt

import (
	"path/filepath"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// BenchmarkLookups runs the shared store lookup benchmarks on a bbolt file.
func BenchmarkLookups(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := Open(filepath.Join(b.TempDir(), "broker.db"))
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

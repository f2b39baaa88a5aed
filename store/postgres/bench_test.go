package postgres

import (
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// BenchmarkLookups runs the shared store lookup benchmarks on PostgreSQL,
// in a schema of its own that is dropped afterwards. It is skipped unless
// BROKER_TEST_DATABASE_URL names a server.
func BenchmarkLookups(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return openStore(b, freshSchema(b)) })
}

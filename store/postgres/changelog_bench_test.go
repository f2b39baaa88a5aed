package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// BenchmarkUpdateOneInstance measures a writing Update of one instance,
// which bumps the change counter (and logs what it touched).
func BenchmarkUpdateOneInstance(b *testing.B) {
	s := benchStore(b)
	in := newInstance("bench")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutInstance(in) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadChangeLog measures what a watcher reads for one new change.
func BenchmarkReadChangeLog(b *testing.B) {
	s := benchStore(b)
	in := newInstance("bench")
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutInstance(in) }); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT n FROM changes`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		ch, _, err := s.readChangeLog(ctx, changeCursor{n: n - 1, valid: true})
		if err != nil || len(ch.Instances) != 1 {
			b.Fatal(ch, err)
		}
	}
}

// benchStore opens a store in a schema of its own, dropped afterwards.
func benchStore(b *testing.B) *Store {
	b.Helper()
	base := os.Getenv(urlVar)
	if base == "" {
		b.Skip("PostgreSQL benchmarks need " + urlVar)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		b.Fatal(err)
	}
	schema := "broker_bench_" + hex.EncodeToString(raw)
	benchExec(b, base, "CREATE SCHEMA "+schema)
	b.Cleanup(func() { benchExec(b, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := Open(context.Background(), u.String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

package postgres

import (
	"context"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// BenchmarkUpdateOneInstance measures a writing Update of one instance,
// which bumps the change counter (and logs what it touched).
func BenchmarkUpdateOneInstance(b *testing.B) {
	s := openStore(b, freshSchema(b))
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
	s := openStore(b, freshSchema(b))
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

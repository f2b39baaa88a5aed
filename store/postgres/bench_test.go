package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// BenchmarkLookups runs the shared store lookup benchmarks on PostgreSQL,
// in a schema of its own that is dropped afterwards. It is skipped unless
// BROKER_TEST_DATABASE_URL names a server.
func BenchmarkLookups(b *testing.B) {
	base := os.Getenv(urlVar)
	if base == "" {
		b.Skip("PostgreSQL benchmarks need " + urlVar + ", e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	storetest.Bench(b, func(b *testing.B) store.Store {
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
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		s, err := Open(ctx, u.String())
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// benchExec runs one statement on a connection of its own (the test
// helpers take a *testing.T).
func benchExec(b *testing.B, dbURL, sql string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

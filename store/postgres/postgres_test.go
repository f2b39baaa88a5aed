package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// The tests run against the PostgreSQL server named by this variable and
// skip without it; each test works in a schema or database of its own.
const urlVar = "BROKER_TEST_DATABASE_URL"

// notifyBound is the longest a change committed on one replica may take to
// reach Watch on another (the broker promises 2 s), with or without a
// notification.
const notifyBound = 2 * time.Second

// hangGuard bounds waits that have no stated limit, only so that a broken
// build fails instead of hanging.
const hangGuard = 30 * time.Second

func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(urlVar)
	if u == "" {
		t.Skip("PostgreSQL tests need " + urlVar + ", e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL, got %q", urlVar, u)
	}
	return u
}

func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// sqlExec runs statements on a plain connection of their own.
func sqlExec(t testing.TB, dbURL string, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Errorf("connect: %v", err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

func randomName(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "broker_test_" + hex.EncodeToString(b)
}

// freshSchema creates an empty schema, dropped after the test, and returns
// a URL whose connections use it.
func freshSchema(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	name := randomName(t)
	sqlExec(t, base, "CREATE SCHEMA "+name)
	t.Cleanup(func() { sqlExec(t, base, "DROP SCHEMA "+name+" CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// freshDatabase creates an empty database, dropped after the test. Watch
// tests use one: notifications are per database, not per schema, and the
// tests must see only their own.
func freshDatabase(t *testing.T) string {
	t.Helper()
	base := serverURL(t)
	name := randomName(t)
	sqlExec(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { sqlExec(t, base, "DROP DATABASE "+name+" WITH (FORCE)") })
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

func openStore(t testing.TB, dbURL string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	s, err := Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	serverURL(t)
	storetest.RunTests(t,
		func(t *testing.T) store.Store { return openStore(t, freshSchema(t)) },
		storetest.Options{
			Reopen: func(t *testing.T, s store.Store) store.Store {
				ps := s.(*Store)
				if err := ps.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return openStore(t, ps.connConfig.ConnString())
			},
		})
}

func TestMigrationFiles(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].name != "0001_init.sql" {
		t.Fatalf("migrations = %v, want 0001_init.sql first", ms)
	}
}

func migrationVersions(t *testing.T, s *Store) []int32 {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantVersions(t *testing.T) []int32 {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []int32
	for _, m := range ms {
		want = append(want, int32(m.version))
	}
	return want
}

// TestMigrationsIdempotent opens the same schema again: the second Open
// applies nothing and the data stays.
func TestMigrationsIdempotent(t *testing.T) {
	dbURL := freshSchema(t)
	s := openStore(t, dbURL)
	storetest.MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(storetest.NewInstance("i1")) })
	s.Close()

	s = openStore(t, dbURL)
	if got, want := migrationVersions(t, s), wantVersions(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schema_migrations after two Opens = %v, want %v", got, want)
	}
	storetest.MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstance("i1")
		return err
	})
}

// TestConcurrentOpen starts several replicas on an empty schema at once:
// the advisory lock lets one migrate while the others wait.
func TestConcurrentOpen(t *testing.T) {
	dbURL := freshSchema(t)
	const n = 4
	errs := make([]error, n)
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), dbURL)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
	s := openStore(t, dbURL)
	if got, want := migrationVersions(t, s), wantVersions(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url string
	}{
		{"unparsable", "postgres://[::1"},
		{"no server", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), tc.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
		})
	}
}

func TestClosedStore(t *testing.T) {
	s := openStore(t, freshSchema(t))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := s.View(ctx, func(store.Tx) error { return nil }); err == nil {
		t.Error("View on a closed store succeeded")
	}
	if err := s.Update(ctx, func(store.Tx) error { return nil }); err == nil {
		t.Error("Update on a closed store succeeded")
	}
	if err := s.Ping(ctx); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ping on a closed store: %v, want an error", err)
	}
}

// TestTwoStoresConcurrentCreate is the two-replica provision race: many
// contenders on two stores create the same instance id; exactly one wins
// and every other sees ErrExists.
func TestTwoStoresConcurrentCreate(t *testing.T) {
	dbURL := freshSchema(t)
	replicas := []*Store{openStore(t, dbURL), openStore(t, dbURL)}
	const perReplica = 8
	results := make([]error, 2*perReplica)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := replicas[i%2]
			in := storetest.NewInstance("contended")
			in.ClientID = fmt.Sprintf("cid-%d", i)
			<-start
			results[i] = s.Update(context.Background(), func(tx store.Tx) error {
				if _, err := tx.GetInstance(in.ID); err == nil {
					return fmt.Errorf("check: %w", store.ErrExists)
				}
				return tx.CreateInstance(in)
			})
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("contender %d: %v, want ErrExists", i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d contenders created the instance, want 1", wins)
	}
}

// TestWritersDoNotConflict checks the writer lock: concurrent
// read-modify-write transactions on two stores queue instead of failing
// and retrying, and none loses an update.
func TestWritersDoNotConflict(t *testing.T) {
	dbURL := freshSchema(t)
	replicas := []*Store{openStore(t, dbURL), openStore(t, dbURL)}
	const workers, rounds = 6, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := replicas[w%2]
			for range rounds {
				err := s.Update(context.Background(), func(tx store.Tx) error {
					var n int
					v, err := tx.GetMeta("counter")
					if err == nil {
						err = json.Unmarshal(v, &n)
					}
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return tx.PutMeta("counter", []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	storetest.MustView(t, replicas[0], func(tx store.Tx) error {
		v, err := tx.GetMeta("counter")
		if err == nil && string(v) != fmt.Sprint(workers*rounds) {
			t.Errorf("counter = %s, want %d", v, workers*rounds)
		}
		return err
	})
	if n := replicas[0].retries.Load() + replicas[1].retries.Load(); n != 0 {
		t.Errorf("%d Update retries, want 0: writers should wait for the lock, not conflict", n)
	}
}

// TestUpdateRetries commits a conflicting change from outside the broker
// (which does not take the writer lock) in the middle of an Update's
// first attempt. The attempt fails with a serialization failure; the
// second sees the change.
func TestUpdateRetries(t *testing.T) {
	tests := []struct {
		name string
		// setup runs before, external inside the first attempt, both as
		// plain SQL.
		setup, external string
		fn              func(tx store.Tx) error
		wantErr         error
		check           func(t *testing.T, tx store.Tx)
	}{
		{
			name:     "lost update",
			setup:    `INSERT INTO meta (key, value) VALUES ('k', '0')`,
			external: `UPDATE meta SET value = '10' WHERE key = 'k'`,
			fn: func(tx store.Tx) error {
				v, err := tx.GetMeta("k")
				if err != nil {
					return err
				}
				return tx.PutMeta("k", append(v, '1'))
			},
			check: func(t *testing.T, tx store.Tx) {
				if v, err := tx.GetMeta("k"); err != nil || string(v) != "101" {
					t.Errorf("GetMeta(k) = %q, %v; want 101 (the retry's read of the external write)", v, err)
				}
			},
		},
		{
			name:     "create of an id created concurrently",
			external: `INSERT INTO instances (id, client_id, data) VALUES ('x', 'cid-ext', '{"id":"x","client_id":"cid-ext"}')`,
			fn: func(tx store.Tx) error {
				if _, err := tx.GetInstance("x"); err == nil {
					return fmt.Errorf("check: %w", store.ErrExists)
				}
				return tx.CreateInstance(storetest.NewInstance("x"))
			},
			wantErr: store.ErrExists,
			check: func(t *testing.T, tx store.Tx) {
				if in, err := tx.GetInstance("x"); err != nil || in.ClientID != "cid-ext" {
					t.Errorf("GetInstance(x) = %v, %v; want the external one", in, err)
				}
			},
		},
		{
			name:     "put taking a client id taken concurrently",
			external: `INSERT INTO instances (id, client_id, data) VALUES ('z', 'cid-y', '{"id":"z","client_id":"cid-y"}')`,
			fn: func(tx store.Tx) error {
				in := storetest.NewInstance("y")
				in.ClientID = "cid-y"
				return tx.PutInstance(in)
			},
			wantErr: store.ErrExists,
			check: func(t *testing.T, tx store.Tx) {
				if _, err := tx.GetInstance("y"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetInstance(y): %v, want ErrNotFound", err)
				}
			},
		},
		{
			name:     "binding fingerprint taken concurrently",
			setup:    `INSERT INTO instances (id, data) VALUES ('i', '{"id":"i"}')`,
			external: `INSERT INTO bindings (id, instance_id, data) VALUES ('b-ext', 'i', '{"id":"b-ext"}'); INSERT INTO fingerprints VALUES ('fp', 'b-ext')`,
			fn: func(tx store.Tx) error {
				return tx.CreateBinding(storetest.NewBinding("b", "i", "fp"))
			},
			wantErr: store.ErrExists,
			check: func(t *testing.T, tx store.Tx) {
				if b, err := tx.GetBindingByFingerprint("fp"); err != nil || b.ID != "b-ext" {
					t.Errorf("GetBindingByFingerprint(fp) = %v, %v; want b-ext", b, err)
				}
			},
		},
		{
			name:     "binding of an instance deleted concurrently",
			setup:    `INSERT INTO instances (id, data) VALUES ('i', '{"id":"i"}')`,
			external: `DELETE FROM instances WHERE id = 'i'`,
			fn: func(tx store.Tx) error {
				return tx.CreateBinding(storetest.NewBinding("b", "i", ""))
			},
			wantErr: store.ErrNotFound,
			check: func(t *testing.T, tx store.Tx) {
				if _, err := tx.GetBinding("b"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("GetBinding(b): %v, want ErrNotFound", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := freshSchema(t)
			s := openStore(t, dbURL)
			if tc.setup != "" {
				sqlExec(t, dbURL, tc.setup)
			}
			attempts := 0
			err := s.Update(context.Background(), func(tx store.Tx) error {
				attempts++
				if attempts == 1 {
					// Take the snapshot, then let the outside write commit.
					if _, err := tx.GetMeta("snapshot"); !errors.Is(err, store.ErrNotFound) {
						return err
					}
					sqlExec(t, dbURL, tc.external)
				}
				return tc.fn(tx)
			})
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Update: %v, want %v", err, tc.wantErr)
			}
			if attempts != 2 {
				t.Errorf("fn ran %d times, want 2", attempts)
			}
			storetest.MustView(t, s, func(tx store.Tx) error {
				tc.check(t, tx)
				return nil
			})
		})
	}
}

// TestFailedStatement checks that a transaction whose statement failed
// commits nothing, also when fn ignores the error.
func TestFailedStatement(t *testing.T) {
	s := openStore(t, freshSchema(t))
	err := s.Update(context.Background(), func(st store.Tx) error {
		if err := st.PutMeta("before", []byte("x")); err != nil {
			return err
		}
		// Fail a statement by hand (the store's own never fail here)
		// and ignore the error, as a careless fn might.
		x := st.(*tx)
		_, err := x.tx.Exec(context.Background(), `SELECT 1/0`)
		x.fail(err)
		if err := st.PutMeta("after", []byte("y")); err == nil {
			t.Error("PutMeta after a failed statement succeeded")
		}
		return nil
	})
	if err == nil {
		t.Error("Update with a failed statement succeeded")
	}
	storetest.MustView(t, s, func(tx store.Tx) error {
		if _, err := tx.GetMeta("before"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMeta(before): %v, want ErrNotFound", err)
		}
		return nil
	})
}

// TestUnstorableKeys: keys PostgreSQL text cannot hold are found nowhere
// and refused on write, without breaking the transaction.
func TestUnstorableKeys(t *testing.T) {
	s := openStore(t, freshSchema(t))
	for _, key := range []string{"a\x00b", "\xff"} {
		storetest.MustUpdate(t, s, func(tx store.Tx) error {
			if _, err := tx.GetInstance(key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetInstance(%q): %v, want ErrNotFound", key, err)
			}
			if _, err := tx.GetUserByName(key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetUserByName(%q): %v, want ErrNotFound", key, err)
			}
			if _, err := tx.DeleteBinding(key); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("DeleteBinding(%q): %v, want ErrNotFound", key, err)
			}
			err := tx.CreateInstance(storetest.NewInstance(key))
			if err == nil || errors.Is(err, store.ErrExists) {
				t.Errorf("CreateInstance(%q): %v, want a key error", key, err)
			}
			if err := tx.PutMeta(key, nil); err == nil {
				t.Errorf("PutMeta(%q) succeeded", key)
			}
			// The transaction is still usable.
			return tx.CreateInstance(storetest.NewInstance(fmt.Sprintf("ok-%x", key)))
		})
	}
}

func changeCounter(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(context.Background(), `SELECT n FROM changes`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestChangeCounter: only committed Updates that changed something bump
// the counter the replicas watch.
func TestChangeCounter(t *testing.T) {
	s := openStore(t, freshSchema(t))
	storetest.MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(storetest.NewInstance("i1")) })
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(tx store.Tx) error
		wantErr error
		bump    int64
	}{
		{"read only", func(tx store.Tx) error { _, err := tx.GetInstance("i1"); return err }, nil, 0},
		{"refused create", func(tx store.Tx) error {
			if err := tx.CreateInstance(storetest.NewInstance("i1")); !errors.Is(err, store.ErrExists) {
				return fmt.Errorf("CreateInstance: %v, want ErrExists", err)
			}
			return nil
		}, nil, 0},
		{"missing delete", func(tx store.Tx) error {
			if err := tx.DeleteRoleCollection("nope"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("DeleteRoleCollection: %v, want ErrNotFound", err)
			}
			return nil
		}, nil, 0},
		{"failed", func(tx store.Tx) error {
			if err := tx.PutMeta("m", []byte("x")); err != nil {
				return err
			}
			return boom
		}, boom, 0},
		{"put", func(tx store.Tx) error { return tx.PutMeta("m", []byte("x")) }, nil, 1},
		{"several writes", func(tx store.Tx) error {
			if _, err := tx.NextSequence("s"); err != nil {
				return err
			}
			return tx.PutEphemeral("e", nil, time.Now().Add(time.Hour))
		}, nil, 1},
		{"ephemeral records only", func(tx store.Tx) error {
			if err := tx.PutEphemeral("e2", []byte("x"), time.Now().Add(time.Hour)); err != nil {
				return err
			}
			return tx.DeleteEphemeral("e")
		}, nil, 0},
		{"delete", func(tx store.Tx) error { _, err := tx.DeleteInstance("i1"); return err }, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := changeCounter(t, s)
			if err := s.Update(context.Background(), tc.fn); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update: %v, want %v", err, tc.wantErr)
			}
			if got := changeCounter(t, s) - before; got != tc.bump {
				t.Errorf("change counter moved by %d, want %d", got, tc.bump)
			}
		})
	}
}

// watchCalls runs s.Watch until the test ends and returns its calls.
func watchCalls(t *testing.T, s *Store) <-chan store.Change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan store.Change, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(ch store.Change) { calls <- ch })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(hangGuard):
			t.Error("Watch did not return after its context ended")
		}
	})
	return calls
}

// waitCall waits up to bound for a call and returns its Change.
func waitCall(t *testing.T, calls <-chan store.Change, bound time.Duration, what string) store.Change {
	t.Helper()
	start := time.Now()
	select {
	case ch := <-calls:
		t.Logf("%s: changed after %v: %+v", what, time.Since(start).Round(time.Millisecond), ch)
		return ch
	case <-time.After(bound):
		t.Fatalf("%s: changed not called within %v", what, bound)
		return store.Change{}
	}
}

func drain(calls <-chan store.Change) {
	for {
		select {
		case <-calls:
		default:
			return
		}
	}
}

// waitListening waits until dbURL's database has n LISTEN connections.
func waitListening(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		var got int
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN `+notifyChannel+`'`).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d LISTEN connections, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// noPoll turns the poll fallback (almost) off, so that only notifications
// can explain a call. The first poll, which makes the first call, still
// runs.
func noPoll(s *Store) { s.pollInterval = time.Hour }

func putMeta(t *testing.T, s *Store, key string) {
	t.Helper()
	storetest.MustUpdate(t, s, func(tx store.Tx) error { return tx.PutMeta(key, []byte(time.Now().String())) })
}

// TestWatchNotification: a change committed on replica A reaches Watch on
// replica B through NOTIFY (the poll is off).
func TestWatchNotification(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	noPoll(b)
	calls := watchCalls(t, b)
	waitCall(t, calls, hangGuard, "start")
	waitListening(t, connect(t, dbURL), 1)

	for i := range 3 {
		drain(calls)
		putMeta(t, a, fmt.Sprint("k", i))
		waitCall(t, calls, notifyBound, fmt.Sprintf("change %d on A", i))
	}
	// B's own changes are reported too.
	drain(calls)
	putMeta(t, b, "own")
	waitCall(t, calls, notifyBound, "change on B")
}

// TestWatchPollFallback: a change whose notification never comes is found
// by the poll. The counter is bumped by hand, without NOTIFY.
func TestWatchPollFallback(t *testing.T) {
	dbURL := freshDatabase(t)
	b := openStore(t, dbURL)
	calls := watchCalls(t, b)
	waitCall(t, calls, hangGuard, "start")
	waitListening(t, connect(t, dbURL), 1)

	for i := range 2 {
		drain(calls)
		sqlExec(t, dbURL, `UPDATE changes SET n = n + 1 WHERE id = 1`)
		waitCall(t, calls, notifyBound, fmt.Sprintf("bump %d without NOTIFY", i))
	}
}

// TestWatchReconnects kills the LISTEN connection: the listener comes
// back and notifications reach Watch again (the poll is off).
func TestWatchReconnects(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	noPoll(b)
	calls := watchCalls(t, b)
	waitCall(t, calls, hangGuard, "start")
	admin := connect(t, dbURL)
	waitListening(t, admin, 1)

	var killed int
	if err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+notifyChannel+`'`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d LISTEN connections (%v), want 1", killed, err)
	}
	// The killed backend leaves pg_stat_activity before the new one
	// LISTENs: wait for the count to drop, then to come back.
	waitListening(t, admin, 0)
	waitListening(t, admin, 1)

	drain(calls)
	putMeta(t, a, "after reconnect")
	waitCall(t, calls, notifyBound, "change after the listener reconnected")
}

// TestWatchEnds: Watch returns when its context ends and when the store
// is closed.
func TestWatchEnds(t *testing.T) {
	dbURL := freshDatabase(t)
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			s := openStore(t, dbURL)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			started := make(chan struct{}, 1)
			go func() {
				defer close(done)
				s.Watch(ctx, func(store.Change) {
					select {
					case started <- struct{}{}:
					default:
					}
				})
			}()
			<-started
			if how == "cancel" {
				cancel()
			} else {
				s.Close()
			}
			select {
			case <-done:
			case <-time.After(hangGuard):
				t.Fatalf("Watch did not return after %s", how)
			}
		})
	}
}

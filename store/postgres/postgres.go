// Package postgres implements store.Store on PostgreSQL, for brokers that
// run as several replicas sharing one database.
//
// Records are kept as the JSON of the store types, like the bbolt backend
// keeps them, with columns only for keys, unique constraints and indexes.
// The schema is created and upgraded by the numbered SQL files in
// migrations/, applied by Open under an advisory lock.
//
// Update transactions are SERIALIZABLE and, before anything else, lock the
// changes table: read-write transactions therefore run one at a time
// across all replicas, as they do in bbolt within one process, and each
// sees everything committed before it. They would all conflict anyway,
// since every writing transaction bumps the one change counter row; taking
// the lock first turns what would be aborts and retries into a short wait.
// Serialization failures and deadlocks that still happen (a writer outside
// the broker, for instance) are retried.
//
// Store also implements store.Watcher: every writing Update bumps the
// change counter, logs what it touched under the new value and sends
// NOTIFY broker_changes in its transaction, and Watch listens for those
// notifications and polls the counter as well, and reads the log to say
// what changed.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ossbroker/btp-security-broker/store"
)

// notifyChannel is the channel on which writing transactions notify
// the other replicas.
const notifyChannel = "broker_changes"

const (
	// lockWriters is the first statement of every Update. LOCK TABLE is
	// not a query, so a SERIALIZABLE transaction takes its snapshot only
	// after the lock is granted, and the snapshot includes the previous
	// writer's commit.
	lockWriters = `LOCK TABLE changes IN EXCLUSIVE MODE`
	// bumpChanges ends every Update that wrote something: it bumps the
	// change counter, logs what the Update touched under the new value
	// ($1 instance ids or NULL for too many, $2 role collections without
	// an owner, $3 meta; see migrations/0004_change_log.sql) and returns
	// the value. The notification, carrying the value, is delivered at
	// commit and only if the transaction commits. A value that comes
	// round again (a counter reset by hand) overwrites its stale row
	// rather than failing every write.
	bumpChanges = `WITH c AS (UPDATE changes SET n = n + 1 WHERE id = 1 RETURNING n),
		l AS (INSERT INTO change_log (n, instances, role_collections, meta)
			SELECT n, $1, $2, $3 FROM c
			ON CONFLICT (n) DO UPDATE SET instances = EXCLUDED.instances,
				role_collections = EXCLUDED.role_collections, meta = EXCLUDED.meta,
				logged_at = EXCLUDED.logged_at)
		SELECT c.n FROM c, pg_notify('` + notifyChannel + `', c.n::text)`
	// pruneChangeLog deletes the log rows up to value $1 that are older
	// than $2 seconds.
	pruneChangeLog = `DELETE FROM change_log WHERE n <= $1 AND logged_at < now() - make_interval(secs => $2)`

	// maxLoggedInstances bounds the instance ids one log row lists; an
	// Update that touched more (a re-seal of every record, say) logs
	// NULL, which the watchers read as "reload everything": rereading
	// that many instances one by one costs as much, and the row stays
	// small.
	maxLoggedInstances = 1000
	// Log rows are kept for changeLogKeepFor or for the last
	// changeLogKeep values, whichever keeps more, so that a watcher that
	// lags behind that far still learns what changed; further behind, the
	// missing rows make it report Unknown. Every changeLogPruneEvery-th
	// change prunes, so that writers seldom pay for it.
	changeLogKeep       = 10000
	changeLogKeepFor    = 10 * time.Minute
	changeLogPruneEvery = 100

	// maxAttempts bounds how often Update runs fn when the transaction
	// fails with a serialization failure or a deadlock.
	maxAttempts = 10
	retryBase   = 10 * time.Millisecond
	retryMax    = time.Second

	// defaultPollInterval is how often Watch reads the change counter, the
	// fallback for lost notifications. With the poll's own timeout of one
	// interval a change is seen within two intervals, inside the 2 s the
	// broker promises.
	defaultPollInterval = 500 * time.Millisecond
)

// Store is a PostgreSQL-backed store.Store and store.Watcher. It is safe
// for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// connConfig opens Watch's dedicated LISTEN connection.
	connConfig   *pgx.ConnConfig
	pollInterval time.Duration
	// changeLog holds the change log's limits (the constants above),
	// which tests shrink.
	changeLog changeLogLimits
	// retries counts the re-runs of Update functions, for tests.
	retries   atomic.Int64
	closeOnce sync.Once
	done      chan struct{} // closed by Close; ends Watch
}

// changeLogLimits says which change log rows writers keep and how many
// rows Watch reads at once.
type changeLogLimits struct {
	keep       int64
	keepFor    time.Duration
	pruneEvery int64
	// maxRead bounds the rows one Watch call reads; further behind, it
	// reports Unknown.
	maxRead int64
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, anything pgx accepts, including pool_max_conns),
// applies the schema migrations the database lacks and returns the store.
// The tables live in the first schema of the search path, so a
// search_path parameter in url selects the schema.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		return nil, fmt.Errorf("postgres store: migrate schema: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	return &Store{
		pool:         pool,
		connConfig:   cfg.ConnConfig,
		pollInterval: defaultPollInterval,
		changeLog: changeLogLimits{
			keep:       changeLogKeep,
			keepFor:    changeLogKeepFor,
			pruneEvery: changeLogPruneEvery,
			maxRead:    maxChangeLogRead,
		},
		done: make(chan struct{}),
	}, nil
}

// View implements store.Store with a read-only REPEATABLE READ
// transaction: fn sees one snapshot, and writes inside it are refused.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer rollback(ptx) // also when fn panics
	x := &tx{ctx: ctx, tx: ptx, readOnly: true}
	if err := fn(x); err != nil {
		return err
	}
	if x.err != nil {
		return fmt.Errorf("postgres store: transaction aborted: %w", x.err)
	}
	return ptx.Commit(ctx)
}

// Update implements store.Store with a SERIALIZABLE read-write
// transaction. If the transaction fails with a serialization failure or
// a deadlock, or a constraint violation a concurrent transaction caused, fn
// runs again in a new transaction (at most maxAttempts times in all), so
// fn must not have effects outside the transaction that cannot be
// repeated.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		retry, err := s.update(ctx, fn)
		if !retry || attempt == maxAttempts {
			return err
		}
		s.retries.Add(1)
		if err := sleep(ctx, jitter(min(retryBase<<(attempt-1), retryMax))); err != nil {
			return err
		}
	}
}

// update runs fn once and says whether it is worth running again.
func (s *Store) update(ctx context.Context, fn func(store.Tx) error) (retry bool, err error) {
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadWrite})
	if err != nil {
		return false, err
	}
	defer rollback(ptx) // a no-op after Commit; also runs when fn panics
	if _, err := ptx.Exec(ctx, lockWriters); err != nil {
		return retryable(err), err
	}
	x := &tx{ctx: ctx, tx: ptx}
	ferr := fn(x)
	if x.err != nil {
		// PostgreSQL aborted the transaction: nothing can be committed,
		// whatever fn made of the error.
		if ferr == nil {
			ferr = fmt.Errorf("postgres store: transaction aborted: %w", x.err)
		}
		return retryable(x.err), ferr
	}
	if ferr != nil {
		return false, ferr
	}
	if x.wrote {
		if err := s.logChange(ctx, ptx, &x.touched); err != nil {
			return retryable(err), err
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		return retryable(err), err
	}
	return false, nil
}

// logChange bumps the change counter, logs what the Update touched under
// the new value and now and then prunes the log. The writers' lock makes
// the values, and so the rows, come in counter order.
func (s *Store) logChange(ctx context.Context, ptx pgx.Tx, t *touched) error {
	var ids []string // nil is NULL: too many to list
	if len(t.instances) <= maxLoggedInstances {
		ids = make([]string, 0, len(t.instances))
		for id := range t.instances {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	}
	var n int64
	if err := ptx.QueryRow(ctx, bumpChanges, ids, t.roleCollections, t.meta).Scan(&n); err != nil {
		return err
	}
	if every := s.changeLog.pruneEvery; every > 0 && n%every == 0 {
		if _, err := ptx.Exec(ctx, pruneChangeLog, n-s.changeLog.keep, s.changeLog.keepFor.Seconds()); err != nil {
			return err
		}
	}
	return nil
}

// retryable reports whether err is a transaction failure that running the
// transaction again may avoid. Unique and foreign key violations count:
// the Tx methods check before they write, so one means another
// transaction changed the keys after this one's snapshot; on the next
// attempt the check sees the change and reports store.ErrExists or
// store.ErrNotFound.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"23505", // unique_violation
		"23503": // foreign_key_violation
		return true
	}
	return false
}

// rollback ends ptx if it is still open. It does not use the request's
// context: a cancelled request should not cost the pool its connection.
func rollback(ptx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ptx.Rollback(ctx) // ErrTxClosed after Commit; a failure closes the connection
}

// Ping implements store.Store: it runs a read transaction, which also
// checks that the schema is there.
func (s *Store) Ping(ctx context.Context) error {
	return s.View(ctx, func(t store.Tx) error {
		_, err := t.GetMeta("ping")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
}

// Close implements store.Store. It ends running Watch calls and closes
// the connections; it may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.pool.Close()
	})
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// jitter returns a duration between d/2 and d, so that replicas that
// failed together do not retry together.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

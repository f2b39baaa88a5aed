package postgres

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/ossbroker/btp-security-broker/store"
)

const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second

	// maxChangeLogRead bounds the change log rows one Watch call reads.
	// A watcher further behind reports Unknown: reloading that many
	// instances one by one costs about as much as reloading everything.
	maxChangeLogRead = 1000
	// changeReadTimeout bounds the read of the change log; a read that
	// fails is reported as Unknown.
	changeReadTimeout = 5 * time.Second
)

// Watch implements store.Watcher. Two loops feed it: one holds a dedicated
// connection that LISTENs on broker_changes, reconnecting with backoff
// when the connection fails; the other reads the change counter every
// poll interval through the pool, which catches every change the listener
// missed (a lost connection, a pooler that drops LISTEN) within about a
// second. Notifications carry the counter value, so a change seen by both
// loops makes one call.
//
// Each call then reads, in one snapshot, the counter and the change log
// rows after the value the previous call reported, and reports what they
// say, merged. Changes committed while a call runs are all read by the
// next one. A value without its row (a writer of the previous release,
// a pruned row), too many rows, a counter that went back or a failed read
// make the call report Unknown.
func (s *Store) Watch(ctx context.Context, changed func(store.Change)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	w := &watchState{kick: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.poll(ctx, w)
	}()
	go func() {
		defer wg.Done()
		s.listen(ctx, w)
	}()
	var c changeCursor
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-w.kick:
			ch := s.nextChange(ctx, w, &c)
			if ctx.Err() != nil {
				continue // ends at the top of the loop
			}
			if ch.Unknown || ch.RoleCollections || ch.Meta || len(ch.Instances) > 0 {
				changed(ch)
			}
		}
	}
}

// changeCursor is the counter value up to which Watch has reported.
type changeCursor struct {
	n     int64
	valid bool // false until the first read succeeded
	// loggedAt is when the log row of n was written (nil if it has none).
	// A later read that finds another time there (or no row) sees a
	// database restored or a counter reset under it, which its row count
	// alone would not show once the counter is past n again.
	loggedAt *time.Time
}

// nextChange reads what changed after c and moves c on. Before the first
// successful read, and when w says so, the change is Unknown.
func (s *Store) nextChange(ctx context.Context, w *watchState, c *changeCursor) store.Change {
	unknown := w.takeUnknown() || !c.valid
	ctx, cancel := context.WithTimeout(ctx, changeReadTimeout)
	defer cancel()
	var (
		ch  store.Change
		to  changeCursor
		err error
	)
	if unknown {
		ch.Unknown = true
		to.valid = true
		err = s.pool.QueryRow(ctx, `SELECT c.n, (SELECT logged_at FROM change_log l WHERE l.n = c.n)
			FROM changes c WHERE c.id = 1`).Scan(&to.n, &to.loggedAt)
	} else {
		ch, to, err = s.readChangeLog(ctx, *c)
	}
	if err != nil {
		// c stays: the next call reads from there again, saying at
		// worst too much.
		return store.Change{Unknown: true}
	}
	*c = to
	w.reported(to.n)
	return ch
}

// readChangeLog reads the change counter and what the changes after
// cursor from touched, in one statement and so one snapshot: every row up
// to the counter is there unless it was never written or was pruned.
// Rows are read only if there are at most maxRead of them. It returns
// the cursor for the counter.
func (s *Store) readChangeLog(ctx context.Context, from changeCursor) (ch store.Change, to changeCursor, err error) {
	rows, err := s.pool.Query(ctx, `SELECT c.n,
			(SELECT logged_at FROM change_log WHERE n = $1), (SELECT logged_at FROM change_log WHERE n = c.n),
			l.n, coalesce(l.instances, '{}'), l.n IS NOT NULL AND l.instances IS NULL,
			coalesce(l.role_collections, false), coalesce(l.meta, false)
		FROM changes c
		LEFT JOIN LATERAL (
			SELECT n, instances, role_collections, meta FROM change_log
			WHERE n > $1 AND n <= c.n AND c.n - $1 <= $2
			ORDER BY n
		) l ON true
		WHERE c.id = 1`, from.n, s.changeLog.maxRead)
	if err != nil {
		return store.Change{}, changeCursor{}, err
	}
	defer rows.Close()
	to.valid = true
	var (
		fromLoggedAt *time.Time
		logged       int64
		unlisted     bool
		instances    = map[string]struct{}{}
	)
	for rows.Next() {
		var (
			n        *int64
			ids      []string
			tooMany  bool
			rcs, met bool
		)
		if err := rows.Scan(&to.n, &fromLoggedAt, &to.loggedAt, &n, &ids, &tooMany, &rcs, &met); err != nil {
			return store.Change{}, changeCursor{}, err
		}
		if n == nil {
			continue // no rows: the LEFT JOIN's one row of NULLs
		}
		logged++
		unlisted = unlisted || tooMany
		for _, id := range ids {
			instances[id] = struct{}{}
		}
		ch.RoleCollections = ch.RoleCollections || rcs
		ch.Meta = ch.Meta || met
	}
	if err := rows.Err(); err != nil {
		return store.Change{}, changeCursor{}, err
	}
	// The rows are those of values from+1..counter, each at most once
	// (the primary key): as many rows as values means none is missing.
	gap := to.n < from.n || to.n-from.n > s.changeLog.maxRead || logged != to.n-from.n
	// The row of from must be the one read before; a missing one is
	// fine only if it was missing then too (an unlogged writer), not if
	// it was pruned since, which needs more than changeLogKeep changes.
	rewritten := from.loggedAt != nil && (fromLoggedAt == nil || !fromLoggedAt.Equal(*from.loggedAt))
	if gap || unlisted || rewritten {
		return store.Change{Unknown: true}, to, nil
	}
	if len(instances) > 0 {
		ch.Instances = make([]string, 0, len(instances))
		for id := range instances {
			ch.Instances = append(ch.Instances, id)
		}
		slices.Sort(ch.Instances)
	}
	return ch, to, nil
}

// watchState decides which counter values are news.
type watchState struct {
	mu      sync.Mutex
	seen    int64 // the counter value last observed or reported
	known   bool  // seen is set
	unknown bool  // the next call must report Unknown
	// kick holds at most one pending call: changes arriving while changed
	// runs make one more call, not one each.
	kick chan struct{}
}

// observe records counter value n, read by a poll or carried by a
// notification. The first value is news (that is Watch's first call), as
// is any later one above the last; a polled value that differs at all is
// news too, for a counter that went back (a restored database). A
// notification delivered after a poll already saw a later value is not.
func (w *watchState) observe(n int64, polled bool) {
	w.mu.Lock()
	news := !w.known || n > w.seen || (polled && n != w.seen)
	if news {
		w.seen, w.known = n, true
	}
	w.mu.Unlock()
	if news {
		w.signal()
	}
}

// reported records that a call read the changes up to counter value n,
// so that a notification of n arriving later makes no call.
func (w *watchState) reported(n int64) {
	w.mu.Lock()
	if !w.known || n > w.seen {
		w.seen, w.known = n, true
	}
	w.mu.Unlock()
}

// signalUnknown makes the next call report Unknown.
func (w *watchState) signalUnknown() {
	w.mu.Lock()
	w.unknown = true
	w.mu.Unlock()
	w.signal()
}

// takeUnknown says whether the next call must report Unknown, and clears
// it.
func (w *watchState) takeUnknown() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	u := w.unknown
	w.unknown = false
	return u
}

func (w *watchState) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// poll reads the change counter now and then every poll interval.
func (s *Store) poll(ctx context.Context, w *watchState) {
	t := time.NewTicker(s.pollInterval)
	defer t.Stop()
	for {
		// A stalled query must not hold up the next polls for long.
		qctx, cancel := context.WithTimeout(ctx, min(s.pollInterval, defaultPollInterval))
		var n int64
		err := s.pool.QueryRow(qctx, `SELECT n FROM changes WHERE id = 1`).Scan(&n)
		cancel()
		if err == nil {
			w.observe(n, true)
		}
		// An error (database unreachable) is retried at the next tick; a
		// change made meanwhile is still ahead of the last value seen.
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listen keeps a LISTEN connection open until ctx ends.
func (s *Store) listen(ctx context.Context, w *watchState) {
	backoff := listenBackoffMin
	for {
		// The error is not reported: the poll covers the time without
		// notifications, and there is no one to report it to.
		_ = s.listenOnce(ctx, w, func() { backoff = listenBackoffMin })
		if sleep(ctx, jitter(backoff)) != nil {
			return
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce connects, LISTENs, calls listening and passes notifications
// on until the connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, w *watchState, listening func()) error {
	cfg := s.connConfig.Copy()
	// Interrupt the wait by a deadline on the socket when ctx ends, not by
	// a cancel request, which would need a connection of its own.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if v, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			w.observe(v, false)
		} else {
			// Not one of ours (a NOTIFY by hand?): reload everything.
			w.signalUnknown()
		}
	}
}

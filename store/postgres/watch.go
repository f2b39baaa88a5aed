package postgres

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// Watch implements store.Watcher. Two loops feed it: one holds a dedicated
// connection that LISTENs on broker_changes, reconnecting with backoff
// when the connection fails; the other reads the change counter every
// poll interval through the pool, which catches every change the listener
// missed (a lost connection, a pooler that drops LISTEN) within about a
// second. Notifications carry the counter value, so a change seen by both
// loops makes one call.
func (s *Store) Watch(ctx context.Context, changed func()) {
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
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-w.kick:
			changed()
		}
	}
}

// watchState decides which counter values are news.
type watchState struct {
	mu    sync.Mutex
	seen  int64 // the counter value last reported
	known bool  // seen is set
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
			// Not one of ours (a NOTIFY by hand?): reload all the same.
			w.signal()
		}
	}
}

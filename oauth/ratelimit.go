package oauth

import (
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// failureLimiter counts failed authentications per key (a client id or a
// username, with the source address) in fixed windows. It never stands
// between a correct client secret and its token: client ids are public (they
// are in every token), so a stranger must not be able to lock a real app
// out. It slows down guessing and keeps a flood of bad requests cheap.
// Passwords are human secrets: for them the limit applies before the check.
type failureLimiter struct {
	mu      sync.Mutex
	entries map[string]*failWindow
	limit   int
	window  time.Duration
	// maxEntries bounds memory under a flood of distinct keys: when full,
	// expired windows are dropped, and if none are, the map is reset.
	maxEntries int
	now        func() time.Time
}

type failWindow struct {
	count int
	ends  time.Time
}

func newFailureLimiter(limit int, window time.Duration, now func() time.Time) *failureLimiter {
	return &failureLimiter{entries: map[string]*failWindow{}, limit: limit, window: window, maxEntries: 100_000, now: now}
}

// blocked reports whether key is over its limit, and for how long.
func (l *failureLimiter) blocked(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.entries[key]
	now := l.now()
	if w == nil || !now.Before(w.ends) {
		return false, 0
	}
	return w.count >= l.limit, w.ends.Sub(now)
}

// fail records a failure of key and reports whether it is now over the
// limit.
func (l *failureLimiter) fail(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.entries[key]
	if w == nil || !now.Before(w.ends) {
		if len(l.entries) >= l.maxEntries {
			l.pruneLocked(now)
		}
		w = &failWindow{ends: now.Add(l.window)}
		l.entries[key] = w
	}
	w.count++
	return w.count > l.limit, w.ends.Sub(now)
}

func (l *failureLimiter) pruneLocked(now time.Time) {
	for k, w := range l.entries {
		if !now.Before(w.ends) {
			delete(l.entries, k)
		}
	}
	// Still full: a flood of distinct keys. Drop an arbitrary half rather
	// than everything, so a flood cannot reset the counters of the keys
	// under attack in one go (the per-source limit and the bcrypt
	// semaphore bound what the flood itself costs).
	for k := range l.entries {
		if len(l.entries) < l.maxEntries/2 {
			break
		}
		delete(l.entries, k)
	}
}

// passwordChecks bounds concurrent bcrypt checks (~50 ms of CPU each):
// a flood of logins with random usernames would otherwise pin every core.
type passwordChecks chan struct{}

func newPasswordChecks() passwordChecks { return make(passwordChecks, 2*runtime.GOMAXPROCS(0)) }

// try takes a slot, or reports false when all are busy.
func (p passwordChecks) try() bool {
	select {
	case p <- struct{}{}:
		return true
	default:
		return false
	}
}

func (p passwordChecks) done() { <-p }

// errTooMany is the 429 answer with Retry-After.
func errTooMany(after time.Duration) *Error {
	secs := int(after.Seconds() + 0.999)
	if secs < 1 {
		secs = 1
	}
	return &Error{Status: http.StatusTooManyRequests, Code: "too_many_requests",
		Description: "too many failed authentications; retry later",
		header:      []string{"Retry-After", strconv.Itoa(secs)}}
}

// sourceAddress is the address the limiter keys on: the peer, or, when the
// peer is a trusted proxy, the nearest X-Forwarded-For entry that is not a
// trusted proxy (entries further left can be forged by the client).
func (s *Server) sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trustedProxy(r.RemoteAddr) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(hop)
		if err != nil {
			return host
		}
		if !s.trustedProxy(net.JoinHostPort(a.String(), "0")) {
			return a.String()
		}
	}
	return host
}

// claimedClientID is the client id a request names (for the limiter key;
// it is not yet authenticated).
func claimedClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	return r.PostForm.Get("client_id")
}

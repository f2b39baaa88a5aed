package oauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestFailureLimiterWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newFailureLimiter(3, time.Minute, func() time.Time { return now })
	for i := 1; i <= 3; i++ {
		if over, _ := l.fail("k"); over {
			t.Fatalf("failure %d already over a limit of 3", i)
		}
	}
	if blocked, _ := l.blocked("k"); !blocked {
		t.Fatal("3 failures of 3 should block further attempts")
	}
	if over, after := l.fail("k"); !over || after != time.Minute {
		t.Fatalf("4th failure: over=%v after=%v", over, after)
	}
	if blocked, _ := l.blocked("other"); blocked {
		t.Fatal("keys are independent")
	}
	now = now.Add(time.Minute)
	if blocked, _ := l.blocked("k"); blocked {
		t.Fatal("the window ended")
	}
}

func TestFailureLimiterBoundedMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newFailureLimiter(3, time.Minute, func() time.Time { return now })
	l.maxEntries = 10
	for i := 0; i < 100; i++ {
		l.fail(string(rune('a'+i%26)) + string(rune('A'+i/26)))
	}
	if len(l.entries) > 10 {
		t.Fatalf("%d entries for a bound of 10", len(l.entries))
	}
}

// A stranger who knows a client id (it is in every token) floods wrong
// secrets: they get 429, and the app with the right secret is still served.
func TestClientLimiterNeverRefusesTheRightSecret(t *testing.T) {
	f := newFixture(t)
	b := f.bind(f.provisionXsuaa(introspectApp), "")
	bad := url.Values{"grant_type": {"client_credentials"}, "client_id": {b.cred("clientid")}, "client_secret": {"wrong"}}
	var last int
	var retry string
	for i := 0; i <= ClientFailureLimit; i++ {
		status, h, _ := f.do(http.MethodPost, "/oauth/token", bad.Encode())
		last, retry = status, h.Get("Retry-After")
	}
	if last != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("after %d failures: %d, Retry-After %q", ClientFailureLimit+1, last, retry)
	}
	status, body := f.token(b.secretForm())
	if status != http.StatusOK {
		t.Fatalf("the right secret was refused during the flood: %d %v", status, body)
	}
}

func TestUserLimiterBlocksGuessing(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	wrong := passwordForm(w.app, "alice", "not-her-password")
	for i := 0; i < UserFailureLimit; i++ {
		if status, _ := f.token(wrong); status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, status)
		}
	}
	// Over the limit the password is not even checked: the right one is
	// refused too, from this source, until the window ends.
	status, body := f.token(passwordForm(w.app, "alice", alicePass))
	if status != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong passwords: %d %v", UserFailureLimit, status, body)
	}
	// Bob is not affected.
	if status, _ := f.token(passwordForm(w.app, "bob", bobPass)); status != http.StatusOK {
		t.Fatalf("another user: %d", status)
	}
	f.advance(5 * time.Minute)
	if status, _ := f.token(passwordForm(w.app, "alice", alicePass)); status != http.StatusOK {
		t.Fatalf("after the window: %d", status)
	}
}

func TestSourceAddress(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: prefixes("10.0.0.0/8")}}
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.7:1234", "", "192.0.2.7"},
		{"192.0.2.7:1234", "203.0.113.9", "192.0.2.7"}, // untrusted peer: header ignored
		{"10.1.2.3:1234", "203.0.113.9", "203.0.113.9"},
		{"10.1.2.3:1234", "198.51.100.1, 203.0.113.9", "203.0.113.9"}, // nearest non-proxy hop
		{"10.1.2.3:1234", "203.0.113.9, 10.9.9.9", "203.0.113.9"},
		{"10.1.2.3:1234", "garbage", "10.1.2.3"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodPost, "/oauth/token", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.sourceAddress(r); got != tc.want {
			t.Errorf("%s / %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// TestSourceLimitAndPasswordSlots: failed logins are also limited per
// source whatever the username (random usernames cannot dodge the limit),
// and concurrent bcrypt checks are bounded (a flood gets 503, not all
// cores).
func TestSourceLimitAndPasswordSlots(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	for i := 0; i < SourceFailureLimit; i++ {
		f.srv.sourceFailures.fail("127.0.0.1")
	}
	if status, body := f.token(passwordForm(w.app, "bob", bobPass)); status != http.StatusTooManyRequests {
		t.Fatalf("a source over its limit: %d %v", status, body)
	}
	f.advance(5 * time.Minute)
	for i := 0; i < cap(f.srv.passwordSlots); i++ {
		f.srv.passwordSlots <- struct{}{}
	}
	status, body := f.token(passwordForm(w.app, "bob", bobPass))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("all password slots busy: %d %v", status, body)
	}
	for i := 0; i < cap(f.srv.passwordSlots); i++ {
		f.srv.passwordSlots.done()
	}
	if status, _ := f.token(passwordForm(w.app, "bob", bobPass)); status != http.StatusOK {
		t.Fatalf("slots free again: %d", status)
	}
}

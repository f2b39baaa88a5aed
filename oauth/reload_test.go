package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// pausingStore pauses, once armed, the countdown-th View after it has
// read, until release is closed.
type pausingStore struct {
	store.Store
	mu        sync.Mutex
	countdown int
	paused    chan struct{}
	release   chan struct{}
}

func (p *pausingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	err := p.Store.View(ctx, fn)
	p.mu.Lock()
	pause := false
	if p.countdown > 0 {
		p.countdown--
		pause = p.countdown == 0
	}
	p.mu.Unlock()
	if pause {
		close(p.paused)
		<-p.release
	}
	return err
}

// failingStore fails every View while failing is set.
type failingStore struct {
	store.Store
	failing atomic.Bool
}

var errStoreDown = errors.New("store down")

func (f *failingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if f.failing.Load() {
		return errStoreDown
	}
	return f.Store.View(ctx, fn)
}

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	bs, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return bs
}

// putXsuaa stores an xsuaa instance as the broker would.
func putXsuaa(t *testing.T, st store.Store, id, base, suffix, xsSecurity string) *store.Instance {
	t.Helper()
	d, err := descriptor.Parse([]byte(xsSecurity), descriptor.Options{DefaultXSAppName: base, AppSuffix: suffix})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	in := &store.Instance{ID: id, Service: "xsuaa", Plan: "application", OrganizationGUID: "org", SpaceGUID: "space",
		InstanceName: base, ClientID: "sb-" + d.XSAppName + suffix, XSAppName: d.XSAppName + suffix, Config: cfg}
	if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.CreateInstance(in) }); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestStaleReadDoesNotResurrect: a reread of an instance that began before
// its deprovision committed (a failed authentication on a replica asking
// for the newest state) finishes after the deprovision was applied. It must
// not put the deleted instance, and the grants it made, back.
func TestStaleReadDoesNotResurrect(t *testing.T) {
	ctx := context.Background()
	bs := openBolt(t)
	ps := &pausingStore{Store: bs, paused: make(chan struct{}), release: make(chan struct{})}
	granter := putXsuaa(t, ps, "id-granter", "granter", "!t1",
		`{"xsappname":"granter","scopes":[{"name":"$XSAPPNAME.read","grant-as-authority-to-apps":["$XSAPPNAME(application,consumer)"]}]}`)
	putXsuaa(t, ps, "id-consumer", "consumer", "!t2", `{"xsappname":"consumer","authorities":["$ACCEPT_GRANTED_AUTHORITIES"]}`)
	u, _ := url.Parse("https://broker.test")
	s := NewServer(Config{Store: ps, XsuaaURL: u, IdentityURL: u, SharedStore: true})
	tab, err := s.clients.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consumerAuthorities := func() []string { return tab.dir.Authorities(tab.client("sb-consumer!t2").App) }
	if !slices.Contains(consumerAuthorities(), "granter!t1.read") {
		t.Fatalf("consumer's authorities %v lack the granted scope before the deprovision", consumerAuthorities())
	}

	ps.mu.Lock()
	ps.countdown = 2 // refresh: one View finds the instance, the second reads it
	ps.mu.Unlock()
	done := make(chan bool)
	go func() { done <- s.clients.refresh(ctx, tab, granter.ClientID, "", 0) }()
	<-ps.paused
	if err := bs.Update(ctx, func(tx store.Tx) error { _, err := tx.DeleteInstance(granter.ID); return err }); err != nil {
		t.Fatal(err)
	}
	s.InstanceChanged(granter.ID) // as broker.Deprovision does
	if tab.client(granter.ClientID) != nil {
		t.Fatal("the deprovisioned instance is still in the table")
	}
	close(ps.release)
	<-done
	if current, _ := s.clients.Table(ctx); current != tab {
		t.Fatal("the table was rebuilt: the test no longer tests the reread")
	}
	if tab.client(granter.ClientID) != nil || slices.Contains(consumerAuthorities(), "granter!t1.read") {
		t.Fatalf("the stale reread resurrected the deprovisioned instance: client %v, consumer's authorities %v",
			tab.client(granter.ClientID) != nil, consumerAuthorities())
	}
}

// TestStoreErrorIsNotAFailedLogin: when the store cannot be read while a
// client's credentials are looked up, the answer is 503
// temporarily_unavailable, not invalid_client, and it does not count
// towards the client's failed-authentication limit.
func TestStoreErrorIsNotAFailedLogin(t *testing.T) {
	ctx := context.Background()
	fs := &failingStore{Store: openBolt(t)}
	in := putXsuaa(t, fs, "id-app", "app", "!t1", `{"xsappname":"app"}`)
	const secret = "right-secret"
	sum := sha256.Sum256([]byte(secret))
	if err := fs.Update(ctx, func(tx store.Tx) error {
		return tx.CreateBinding(&store.Binding{ID: "b1", InstanceID: in.ID, CredentialType: "binding-secret", SecretHash: sum[:]})
	}); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("https://broker.test")
	s := NewServer(Config{Store: fs, XsuaaURL: u, IdentityURL: u})
	if err := s.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	token := func(secret string) (int, string) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {in.ClientID}, "client_secret": {secret}}
		req := httptest.NewRequest(http.MethodPost, "https://broker.test/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	fs.failing.Store(true)
	for i := range ClientFailureLimit + 5 {
		if status, body := token(secret); status != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily_unavailable") {
			t.Fatalf("request %d with the store down: %d %s; want 503 temporarily_unavailable", i, status, body)
		}
	}
	fs.failing.Store(false)
	// Not locked out: a wrong secret is an ordinary 401 (a lockout would
	// be 429), and it is the first failure counted.
	if status, body := token("wrong-secret"); status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
		t.Fatalf("wrong secret once the store is back: %d %s; want 401 invalid_client", status, body)
	}
}

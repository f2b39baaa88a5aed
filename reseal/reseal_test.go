package reseal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/oauth"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// Catalog ids (catalog.yml; stable forever).
const (
	xsuaaServiceID   = "94b57714-eb17-42a9-bb73-659a953e7531"
	xsuaaAppPlanID   = "c274f824-9b3a-4a8d-b607-0b01d3992fe5"
	identityService  = "47e9b017-269b-4453-b3da-a8bc37cdbb2b"
	identityAppPlaID = "16aa84a1-e5a1-4e0b-9eb2-c87bb2bba66b"
)

var (
	keyA = strings.Repeat("a", 40)
	keyB = strings.Repeat("b", 40)
	keyC = strings.Repeat("c", 40)
)

func sealer(t *testing.T, current string, previous ...string) *credentials.Sealer {
	t.Helper()
	s, err := credentials.NewSealer(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fixture is a bbolt store filled by the real broker and token key code
// under one data key.
type fixture struct {
	st       store.Store
	catalog  *broker.Catalog
	ca       *credentials.CA
	zone     broker.Zone
	xs, ias  string            // instance ids
	bindings map[string][]byte // binding id → credentials JSON at bind time
	bindsMu  sync.Mutex
	// signingKeys is the number of token signing keys in the store.
	signingKeys int
}

// newFixture provisions an xsuaa and an identity instance and binds every
// credential kind, all sealed under key.
func newFixture(t *testing.T, key string) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	catalog, err := broker.ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		t.Fatal(err)
	}
	zone, err := broker.EnsureZone(context.Background(), st, "test-zone")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, catalog: catalog, zone: zone, bindings: map[string][]byte{}}
	s := sealer(t, key)
	f.ca = putCA(t, st, s)
	keys, err := oauth.LoadKeys(context.Background(), st, s, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Rotate(context.Background()); err != nil { // a retired key too
		t.Fatal(err)
	}
	f.signingKeys = 2

	b := f.broker(t, s)
	f.xs, f.ias = "instance-xs", "instance-ias"
	f.provision(t, b, f.xs, xsuaaServiceID, xsuaaAppPlanID, map[string]any{
		"xsappname":            "reseal",
		"oauth2-configuration": map[string]any{"credential-types": []any{"binding-secret", "x509", "instance-secret"}},
	})
	f.provision(t, b, f.ias, identityService, identityAppPlaID, map[string]any{"display-name": "Reseal"})
	for i, p := range []map[string]any{
		nil,
		nil,
		{"credential-type": "instance-secret"},
		{"credential-type": "x509", "x509": map[string]any{"validity": 3}},
	} {
		f.bind(t, b, f.xs, fmt.Sprintf("xs-%d", i), p)
	}
	for i, p := range []map[string]any{nil, {"credential-type": "X509_GENERATED"}} {
		f.bind(t, b, f.ias, fmt.Sprintf("ias-%d", i), p)
	}
	return f
}

// sealedValues is the number of sealed values Run scans: every binding,
// the instance secret, each signing key and the CA.
func (f *fixture) sealedValues() int {
	f.bindsMu.Lock()
	defer f.bindsMu.Unlock()
	return len(f.bindings) + 1 + f.signingKeys + 1
}

// putCA stores a new CA the way cmd/broker's loadOrCreateCA does.
func putCA(t *testing.T, st store.Store, s *credentials.Sealer) *credentials.CA {
	t.Helper()
	ca, err := credentials.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	certs, keys, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal(keys, []byte("ca"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string][]byte{"certs": certs, "sealed_keys": sealed})
	err = st.Update(context.Background(), func(tx store.Tx) error { return tx.PutMeta(MetaCA, raw) })
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func (f *fixture) broker(t *testing.T, s *credentials.Sealer) *broker.Broker {
	t.Helper()
	base, _ := url.Parse("https://broker.example.com")
	return broker.New(broker.Config{
		Store: f.st, Catalog: f.catalog, Sealer: s, CA: f.ca, Zone: f.zone, Keys: fixedKey{},
		XsuaaURL: base, IdentityURL: base, Logger: lager.NewLogger("test"),
	})
}

// fixedKey stands in for the token keys in bind responses.
type fixedKey struct{}

func (fixedKey) VerificationKeyPEM() string {
	return "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"
}

func (f *fixture) provision(t *testing.T, b *broker.Broker, id, serviceID, planID string, params map[string]any) {
	t.Helper()
	raw, _ := json.Marshal(params)
	ctxRaw, _ := json.Marshal(map[string]any{"platform": "cloudfoundry", "instance_name": id})
	_, err := b.Provision(context.Background(), id, domain.ProvisionDetails{
		ServiceID: serviceID, PlanID: planID, OrganizationGUID: "org", SpaceGUID: "space",
		RawContext: ctxRaw, RawParameters: raw,
	}, true)
	if err != nil {
		t.Fatalf("provision %s: %v", id, err)
	}
}

func (f *fixture) bindDetails(instanceID string, params map[string]any) domain.BindDetails {
	d := domain.BindDetails{ServiceID: xsuaaServiceID, PlanID: xsuaaAppPlanID}
	if instanceID == f.ias {
		d = domain.BindDetails{ServiceID: identityService, PlanID: identityAppPlaID}
	}
	if params != nil {
		d.RawParameters, _ = json.Marshal(params)
	}
	return d
}

// bind binds and remembers the credentials; safe for concurrent use (it
// reports failures with t.Errorf).
func (f *fixture) bind(t *testing.T, b *broker.Broker, instanceID, bindingID string, params map[string]any) {
	t.Helper()
	res, err := b.Bind(context.Background(), instanceID, bindingID, f.bindDetails(instanceID, params), true)
	if err != nil {
		t.Errorf("bind %s: %v", bindingID, err)
		return
	}
	raw, _ := json.Marshal(res.Credentials)
	f.bindsMu.Lock()
	f.bindings[bindingID] = raw
	f.bindsMu.Unlock()
}

// checkReadable fails unless every binding fetches with its original
// credentials, an identical instance-secret bind returns the same secret,
// and the signing keys and CA open, all with s.
func (f *fixture) checkReadable(t *testing.T, s *credentials.Sealer) {
	t.Helper()
	b := f.broker(t, s)
	f.bindsMu.Lock()
	bindings := make(map[string][]byte, len(f.bindings))
	for id, raw := range f.bindings {
		bindings[id] = raw
	}
	f.bindsMu.Unlock()
	for id, want := range bindings {
		instanceID := f.xs
		if strings.HasPrefix(id, "ias-") {
			instanceID = f.ias
		}
		spec, err := b.GetBinding(context.Background(), instanceID, id, domain.FetchBindingDetails{})
		if err != nil {
			t.Errorf("GetBinding %s: %v", id, err)
			continue
		}
		got, _ := json.Marshal(spec.Credentials)
		if !bytes.Equal(got, want) {
			t.Errorf("GetBinding %s returned other credentials", id)
		}
	}
	// A new instance-secret binding opens the instance's sealed secret.
	// It is unbound again, so that the fixture's count stays right.
	probe := "probe-instance-secret"
	res, err := b.Bind(context.Background(), f.xs, probe,
		f.bindDetails(f.xs, map[string]any{"credential-type": "instance-secret"}), true)
	if err != nil {
		t.Errorf("instance-secret bind: %v", err)
	} else {
		var first, again map[string]any
		_ = json.Unmarshal(bindings["xs-2"], &first)
		raw, _ := json.Marshal(res.Credentials)
		_ = json.Unmarshal(raw, &again)
		if first["clientsecret"] == nil || first["clientsecret"] != again["clientsecret"] {
			t.Errorf("instance secret changed: %v then %v", first["clientsecret"], again["clientsecret"])
		}
		if _, err := b.Unbind(context.Background(), f.xs, probe, domain.UnbindDetails{}, true); err != nil {
			t.Errorf("unbind %s: %v", probe, err)
		}
	}
	if _, err := oauth.LoadKeys(context.Background(), readOnly{f.st}, s, time.Hour, nil); err != nil {
		t.Errorf("signing keys: %v", err)
	}
	err = f.st.View(context.Background(), func(tx store.Tx) error {
		ca, err := readCA(tx)
		if err != nil {
			return err
		}
		if _, err := s.Open(ca.sealed, []byte("ca")); err != nil {
			return fmt.Errorf("CA keys: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// readOnly refuses writes, so that loading keys cannot create one.
type readOnly struct{ store.Store }

func (r readOnly) Update(context.Context, func(store.Tx) error) error {
	return errors.New("read-only")
}

func TestRunResealsEverythingOnce(t *testing.T) {
	f := newFixture(t, keyA)
	total := f.sealedValues()
	// B alone cannot open what A sealed (so the checks below mean
	// something).
	err := f.st.View(context.Background(), func(tx store.Tx) error {
		b, err := tx.GetBinding("xs-0")
		if err != nil {
			return err
		}
		_, err = sealer(t, keyB).Open(b.SealedCredentials, bindingAAD("xs-0"))
		return err
	})
	if !errors.Is(err, credentials.ErrUnknownKey) {
		t.Fatalf("B alone opened a record sealed under A: %v", err)
	}

	rotated := sealer(t, keyB, keyA)
	r := &Resealer{Store: f.st, Sealer: rotated, BatchSize: 2, Logger: lager.NewLogger("test")}
	if got := r.Pending(); got != -1 {
		t.Errorf("Pending before the first scan = %d, want -1", got)
	}
	// Between batches, everything stays readable and binds work; the
	// binds run through a broker that already seals under B.
	b := f.broker(t, rotated)
	batches := 0
	r.batchDone = func() {
		batches++
		f.checkReadable(t, rotated)
		f.bind(t, b, f.xs, fmt.Sprintf("xs-during-%d", batches), nil)
		f.bind(t, b, f.ias, fmt.Sprintf("ias-during-%d", batches), map[string]any{"credential-type": "X509_GENERATED"})
	}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Bindings: the signing keys are one record with two sealed values.
	wantResealed := total - 1
	if res.Resealed != wantResealed || res.Scanned != total || len(res.Unreadable) != 0 {
		t.Errorf("Run = %+v, want %d scanned, %d re-sealed, none unreadable", res, total, wantResealed)
	}
	if want := (wantResealed + 1) / 2; batches != want {
		t.Errorf("%d batches, want %d", batches, want)
	}
	if got := r.Pending(); got != 0 {
		t.Errorf("Pending after the pass = %d", got)
	}

	// Only B is needed now: everything, also what was bound during the
	// pass, opens without A.
	f.checkReadable(t, sealer(t, keyB))
	// The certificate index survived the delete-and-create of x509
	// bindings.
	err = f.st.View(context.Background(), func(tx store.Tx) error {
		for _, id := range []string{"xs-3", "ias-1", "ias-during-1"} {
			bd, err := tx.GetBinding(id)
			if err != nil {
				return err
			}
			if by, err := tx.GetBindingByFingerprint(bd.Cert.Fingerprint); err != nil || by.ID != id {
				return fmt.Errorf("fingerprint of %s: %v %v", id, by, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// A second pass, with or without A, finds nothing to do.
	for _, s := range []*credentials.Sealer{rotated, sealer(t, keyB)} {
		again := &Resealer{Store: f.st, Sealer: s}
		res, err := again.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Resealed != 0 || res.Scanned != f.sealedValues() || len(res.Unreadable) != 0 || again.Pending() != 0 {
			t.Errorf("second pass = %+v (pending %d), want %d scanned and nothing else", res, again.Pending(), f.sealedValues())
		}
	}
}

func TestRunBesideConcurrentBinds(t *testing.T) {
	f := newFixture(t, keyA)
	rotated := sealer(t, keyB, keyA)
	b := f.broker(t, rotated)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				f.bind(t, b, f.xs, fmt.Sprintf("xs-conc-%d-%d", w, i), nil)
				if i%4 == 0 {
					id := fmt.Sprintf("xs-conc-%d-%d", w, i)
					if _, err := b.Unbind(context.Background(), f.xs, id, domain.UnbindDetails{}, true); err != nil {
						t.Errorf("unbind %s: %v", id, err)
					}
					f.bindsMu.Lock()
					delete(f.bindings, id)
					f.bindsMu.Unlock()
				}
			}
		}()
	}
	r := &Resealer{Store: f.st, Sealer: rotated, BatchSize: 1}
	_, err := r.Run(context.Background())
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	f.checkReadable(t, sealer(t, keyB))
}

// TestRunsInParallel is two replicas re-sealing one store at once: each
// record is re-sealed exactly once in all.
func TestRunsInParallel(t *testing.T) {
	f := newFixture(t, keyA)
	want := f.sealedValues() - 1 // two signing keys, one record
	var results [2]Result
	var errs [2]error
	var wg sync.WaitGroup
	for i := range results {
		r := &Resealer{Store: f.st, Sealer: sealer(t, keyB, keyA), BatchSize: 1}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.Run(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := results[0].Resealed + results[1].Resealed; got != want {
		t.Errorf("re-sealed %d + %d records, want %d in all", results[0].Resealed, results[1].Resealed, want)
	}
	f.checkReadable(t, sealer(t, keyB))
}

// retryingStore runs every Update's fn twice, discarding the first run's
// writes, as PostgreSQL does after a serialization failure.
type retryingStore struct{ store.Store }

var errRetry = errors.New("retry")

func (s retryingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRetry
	})
	if !errors.Is(err, errRetry) {
		return err
	}
	return s.Store.Update(ctx, fn)
}

func TestRunCountsOnceWhenTheStoreRetries(t *testing.T) {
	f := newFixture(t, keyA)
	r := &Resealer{Store: retryingStore{f.st}, Sealer: sealer(t, keyB, keyA), BatchSize: 3}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := f.sealedValues() - 1; res.Resealed != want || r.Pending() != 0 {
		t.Errorf("re-sealed %d (pending %d), want %d (0)", res.Resealed, r.Pending(), want)
	}
	f.checkReadable(t, sealer(t, keyB))
}

// TestUnreadableRecords: a record under a key the broker does not have is
// reported and left alone; the rest is re-sealed.
func TestUnreadableRecords(t *testing.T) {
	f := newFixture(t, keyA)
	// One binding sealed under C, another one damaged.
	err := f.st.Update(context.Background(), func(tx store.Tx) error {
		for id, s := range map[string]*credentials.Sealer{"xs-0": sealer(t, keyC), "xs-1": sealer(t, keyA)} {
			bd, err := tx.GetBinding(id)
			if err != nil {
				return err
			}
			if bd.SealedCredentials, err = s.Seal([]byte(`{}`), bindingAAD("elsewhere")); err != nil {
				return err
			}
			if _, err := tx.DeleteBinding(id); err != nil {
				return err
			}
			if err := tx.CreateBinding(bd); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Resealer{Store: f.st, Sealer: sealer(t, keyB, keyA)}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[Ref]bool{}
	for _, ref := range res.Unreadable {
		got[ref] = true
	}
	want := map[Ref]bool{{KindBinding, "xs-0"}: true, {KindBinding, "xs-1"}: true}
	if len(got) != len(want) || !got[Ref{KindBinding, "xs-0"}] || !got[Ref{KindBinding, "xs-1"}] {
		t.Errorf("unreadable = %v, want %v", res.Unreadable, want)
	}
	// The damaged one is under A: it is stale, fails to open, and stays
	// pending so that the operator does not drop A unawares.
	if r.Pending() != 1 || r.Unreadable() != 2 {
		t.Errorf("pending %d, unreadable %d; want 1, 2", r.Pending(), r.Unreadable())
	}
	if want := f.sealedValues() - 1 - 2; res.Resealed != want {
		t.Errorf("re-sealed %d, want %d", res.Resealed, want)
	}
}

func TestRunStopsWithTheContext(t *testing.T) {
	f := newFixture(t, keyA)
	ctx, cancel := context.WithCancel(context.Background())
	r := &Resealer{Store: f.st, Sealer: sealer(t, keyB, keyA), BatchSize: 1}
	r.batchDone = cancel
	res, err := r.Run(ctx)
	if !errors.Is(err, context.Canceled) || res.Resealed != 1 {
		t.Fatalf("Run = %+v, %v; want one record then context.Canceled", res, err)
	}
	if want := int64(f.sealedValues() - 1 - 1); r.Pending() != want {
		t.Errorf("pending %d, want %d", r.Pending(), want)
	}
	// Everything is readable with both keys meanwhile, and a new pass
	// finishes the job.
	f.checkReadable(t, sealer(t, keyB, keyA))
	if _, err := r.Run(context.Background()); err != nil || r.Pending() != 0 {
		t.Fatalf("second pass: %v, pending %d", err, r.Pending())
	}
	f.checkReadable(t, sealer(t, keyB))
}

// TestNoPreviousKey: with only the current key nothing is stale.
func TestNoPreviousKey(t *testing.T) {
	f := newFixture(t, keyA)
	r := &Resealer{Store: f.st, Sealer: sealer(t, keyA)}
	res, err := r.Run(context.Background())
	if err != nil || res.Resealed != 0 || len(res.Unreadable) != 0 || res.Scanned != f.sealedValues() {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}

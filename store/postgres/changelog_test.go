package postgres

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// heldWatch runs s.Watch until the test ends. Its calls pass their Change
// on and then, while the watch is held, wait for the release: changes
// committed meanwhile must reach the next call.
type heldWatch struct {
	calls <-chan store.Change
	mu    sync.Mutex
	gate  chan struct{}
}

func watchHeld(t *testing.T, s *Store) *heldWatch {
	t.Helper()
	calls := make(chan store.Change, 1000)
	h := &heldWatch{calls: calls}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(ch store.Change) {
			// The gate is read before the Change is passed on: a hold
			// the test sets after receiving it is for the next call.
			h.mu.Lock()
			gate := h.gate
			h.mu.Unlock()
			calls <- ch
			if gate != nil {
				<-gate
			}
		})
	}()
	t.Cleanup(func() {
		h.release()
		cancel()
		<-done
	})
	return h
}

// hold makes the calls from now on wait for release.
func (h *heldWatch) hold() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldWatch) release() {
	h.mu.Lock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
	h.mu.Unlock()
}

// wantChange waits for the next call and compares its Change.
func wantChange(t *testing.T, calls <-chan store.Change, what string, want store.Change) {
	t.Helper()
	got := waitCall(t, calls, notifyBound, what)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: Change %+v, want %+v", what, got, want)
	}
}

func instances(ids ...string) store.Change { return store.Change{Instances: ids} }

func newInstance(id string) *store.Instance {
	return &store.Instance{ID: id, Service: "xsuaa", ClientID: "client-" + id, Config: []byte(`{}`)}
}

func mustCreateInstance(t *testing.T, s *Store, id string) {
	t.Helper()
	storetest.MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(newInstance(id)) })
}

// logRows returns the counter values the change log holds.
func logRows(t *testing.T, s *Store) []int64 {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT n FROM change_log ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestChangeLogSingleChanges: each kind of write, committed on replica A
// (or B itself), reaches B's watcher as exactly what it touched.
func TestChangeLogSingleChanges(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	calls := watchCalls(t, b)
	if ch := waitCall(t, calls, hangGuard, "start"); !reflect.DeepEqual(ch, store.Change{Unknown: true}) {
		t.Fatalf("first call: %+v, want Unknown only", ch)
	}

	steps := []struct {
		name string
		on   *Store
		fn   func(store.Tx) error
		want store.Change
	}{
		{"create instance", a, func(tx store.Tx) error { return tx.CreateInstance(newInstance("i1")) }, instances("i1")},
		{"create two instances", a, func(tx store.Tx) error {
			if err := tx.CreateInstance(newInstance("i3")); err != nil {
				return err
			}
			return tx.CreateInstance(newInstance("i2"))
		}, instances("i2", "i3")},
		{"put instance", a, func(tx store.Tx) error {
			in := newInstance("i1")
			in.Plan = "application"
			return tx.PutInstance(in)
		}, instances("i1")},
		{"create binding", a, func(tx store.Tx) error {
			return tx.CreateBinding(&store.Binding{ID: "b1", InstanceID: "i1", Cert: &store.CertRecord{Fingerprint: "ff"}})
		}, instances("i1")},
		{"delete binding", a, func(tx store.Tx) error { _, err := tx.DeleteBinding("b1"); return err }, instances("i1")},
		{"admin role collection", a, func(tx store.Tx) error {
			return tx.PutRoleCollection(&store.RoleCollection{Name: "admin-rc"})
		}, store.Change{RoleCollections: true}},
		{"owned role collection", a, func(tx store.Tx) error {
			return tx.PutRoleCollection(&store.RoleCollection{Name: "owned-rc", Owner: "i2"})
		}, instances("i2")},
		{"role collection changes owner", a, func(tx store.Tx) error {
			return tx.PutRoleCollection(&store.RoleCollection{Name: "owned-rc", Owner: "i3"})
		}, instances("i2", "i3")},
		{"role collection taken over by the admin API", a, func(tx store.Tx) error {
			return tx.PutRoleCollection(&store.RoleCollection{Name: "owned-rc"})
		}, store.Change{Instances: []string{"i3"}, RoleCollections: true}},
		{"delete admin role collection", a, func(tx store.Tx) error { return tx.DeleteRoleCollection("admin-rc") },
			store.Change{RoleCollections: true}},
		{"delete owned role collection", a, func(tx store.Tx) error {
			if err := tx.PutRoleCollection(&store.RoleCollection{Name: "owned-rc", Owner: "i2"}); err != nil {
				return err
			}
			return tx.DeleteRoleCollection("owned-rc")
		}, store.Change{Instances: []string{"i2"}, RoleCollections: true}},
		{"meta", a, func(tx store.Tx) error { return tx.PutMeta("signing-keys", []byte("k")) }, store.Change{Meta: true}},
		{"delete instance", a, func(tx store.Tx) error { _, err := tx.DeleteInstance("i2"); return err }, instances("i2")},
		{"own change", b, func(tx store.Tx) error { return tx.PutInstance(newInstance("i3")) }, instances("i3")},
		// A user change alone makes no call: the next call is the meta
		// change's alone (an empty call would come first).
		{"user, then meta", a, func(tx store.Tx) error {
			return tx.PutUser(&store.User{ID: "u1", Username: "alice"})
		}, store.Change{}},
		{"meta after user", a, func(tx store.Tx) error { return tx.PutMeta("zone/z", []byte("z")) }, store.Change{Meta: true}},
		{"failed write", a, func(tx store.Tx) error {
			if err := tx.CreateInstance(newInstance("i9")); err != nil {
				return err
			}
			return fmt.Errorf("rolled back")
		}, store.Change{}},
		{"meta after failed write", a, func(tx store.Tx) error { return tx.PutMeta("zone/z", []byte("z2")) }, store.Change{Meta: true}},
	}
	for _, st := range steps {
		err := st.on.Update(context.Background(), st.fn)
		if err != nil && st.name != "failed write" {
			t.Fatalf("%s: %v", st.name, err)
		}
		if reflect.DeepEqual(st.want, store.Change{}) {
			continue // checked by the next step
		}
		wantChange(t, calls, st.name, st.want)
	}
}

// TestChangeLogCoalesced: changes committed while a call runs reach the
// next call, merged into one Change.
func TestChangeLogCoalesced(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	w := watchHeld(t, b)
	waitCall(t, w.calls, hangGuard, "start")

	w.hold()
	mustCreateInstance(t, a, "x0")
	wantChange(t, w.calls, "first change", instances("x0"))
	// That call now waits; these commit meanwhile.
	mustCreateInstance(t, a, "x2")
	mustCreateInstance(t, a, "x1")
	putMeta(t, a, "k")
	storetest.MustUpdate(t, a, func(tx store.Tx) error {
		return tx.CreateBinding(&store.Binding{ID: "b", InstanceID: "x2"})
	})
	w.release()
	wantChange(t, w.calls, "merged changes", store.Change{Instances: []string{"x1", "x2"}, Meta: true})
	// Nothing else is pending: the next call is the next change's alone.
	mustCreateInstance(t, a, "x3")
	wantChange(t, w.calls, "next change", instances("x3"))
}

// bumpUnlogged commits an instance write as a replica of the previous
// release does: counter and notification, no change log row.
func bumpUnlogged(t *testing.T, dbURL, id string) {
	t.Helper()
	sqlExec(t, dbURL, `BEGIN;
		LOCK TABLE changes IN EXCLUSIVE MODE;
		UPDATE instances SET data = data WHERE id = '`+id+`';
		WITH c AS (UPDATE changes SET n = n + 1 WHERE id = 1 RETURNING n)
			SELECT pg_notify('`+notifyChannel+`', n::text) FROM c;
		COMMIT`)
}

// TestChangeLogUnloggedWriter: a change without its log row, alone or
// among logged ones, makes the call Unknown; later changes are described
// again.
func TestChangeLogUnloggedWriter(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	w := watchHeld(t, b)
	waitCall(t, w.calls, hangGuard, "start")
	mustCreateInstance(t, a, "i1")
	wantChange(t, w.calls, "logged", instances("i1"))

	bumpUnlogged(t, dbURL, "i1")
	wantChange(t, w.calls, "unlogged", store.Change{Unknown: true})

	mustCreateInstance(t, a, "i2")
	wantChange(t, w.calls, "logged after unlogged", instances("i2"))

	w.hold()
	putMeta(t, a, "k")
	wantChange(t, w.calls, "held", store.Change{Meta: true})
	mustCreateInstance(t, a, "i3")
	bumpUnlogged(t, dbURL, "i1")
	mustCreateInstance(t, a, "i4")
	w.release()
	wantChange(t, w.calls, "unlogged among logged", store.Change{Unknown: true})

	mustCreateInstance(t, a, "i5")
	wantChange(t, w.calls, "logged again", instances("i5"))
}

// TestChangeLogGap: a missing row (deleted here by hand, as pruning
// would) and an Update touching more
// instances than a row lists make the call Unknown.
func TestChangeLogGap(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	w := watchHeld(t, b)
	waitCall(t, w.calls, hangGuard, "start")

	t.Run("missing row", func(t *testing.T) {
		w.hold()
		putMeta(t, a, "k1")
		wantChange(t, w.calls, "held", store.Change{Meta: true})
		mustCreateInstance(t, a, "g1")
		mustCreateInstance(t, a, "g2")
		mustCreateInstance(t, a, "g3")
		rows := logRows(t, a)
		sqlExec(t, dbURL, `DELETE FROM change_log WHERE n = $1`, rows[len(rows)-2])
		w.release()
		wantChange(t, w.calls, "row of g2 missing", store.Change{Unknown: true})
		mustCreateInstance(t, a, "g4")
		wantChange(t, w.calls, "after the gap", instances("g4"))
	})

	t.Run("too many instances", func(t *testing.T) {
		storetest.MustUpdate(t, a, func(tx store.Tx) error {
			for i := range maxLoggedInstances + 1 {
				if err := tx.CreateInstance(newInstance(fmt.Sprintf("many-%04d", i))); err != nil {
					return err
				}
			}
			return nil
		})
		wantChange(t, w.calls, "too many instances", store.Change{Unknown: true})
		mustCreateInstance(t, a, "after-many")
		wantChange(t, w.calls, "after too many", instances("after-many"))
	})
}

// TestChangeLogReadLimit: a watcher more than maxRead rows behind reports
// Unknown without reading them; within the limit it reads them.
func TestChangeLogReadLimit(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	b.changeLog.maxRead = 2
	w := watchHeld(t, b)
	waitCall(t, w.calls, hangGuard, "start")

	w.hold()
	putMeta(t, a, "k")
	wantChange(t, w.calls, "held", store.Change{Meta: true})
	mustCreateInstance(t, a, "m1")
	mustCreateInstance(t, a, "m2")
	mustCreateInstance(t, a, "m3")
	w.release()
	wantChange(t, w.calls, "3 rows, 2 read at most", store.Change{Unknown: true})

	w.hold()
	mustCreateInstance(t, a, "m4")
	wantChange(t, w.calls, "held again", instances("m4"))
	mustCreateInstance(t, a, "m5")
	mustCreateInstance(t, a, "m6")
	w.release()
	wantChange(t, w.calls, "2 rows", instances("m5", "m6"))
}

// TestChangeLogCounterReset: a counter set back by hand (as a restored
// database is) and counted up past the last reported value again makes
// the call Unknown, although every value has its row: the rows were
// rewritten. The poll is off, so that only the notifications, the last
// of which is above the value reported, make the call.
func TestChangeLogCounterReset(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	noPoll(b)
	calls := watchCalls(t, b)
	waitCall(t, calls, hangGuard, "start")
	waitListening(t, connect(t, dbURL), 1)
	for _, id := range []string{"r1", "r2", "r3"} {
		mustCreateInstance(t, a, id)
		wantChange(t, calls, id, instances(id))
	}
	sqlExec(t, dbURL, `UPDATE changes SET n = n - 2 WHERE id = 1`)
	mustCreateInstance(t, a, "r4")
	mustCreateInstance(t, a, "r5")
	mustCreateInstance(t, a, "r6")
	wantChange(t, calls, "counted up again past the reset", store.Change{Unknown: true})
	mustCreateInstance(t, a, "r7")
	wantChange(t, calls, "after the reset", instances("r7"))
}

// TestChangeLogPrune: writers keep the rows of the last changeLogKeep
// values (here, the age limit is off), and a watcher that lagged behind
// the pruned rows reports Unknown, while one within them does not.
func TestChangeLogPrune(t *testing.T) {
	dbURL := freshDatabase(t)
	a, b := openStore(t, dbURL), openStore(t, dbURL)
	a.changeLog.keep, a.changeLog.keepFor, a.changeLog.pruneEvery = 5, 0, 1
	w := watchHeld(t, b)
	waitCall(t, w.calls, hangGuard, "start")

	w.hold()
	putMeta(t, a, "k")
	wantChange(t, w.calls, "held", store.Change{Meta: true})
	for i := range 20 {
		mustCreateInstance(t, a, fmt.Sprint("p", i))
	}
	rows := logRows(t, a)
	last := changeCounter(t, a)
	if want := []int64{last - 4, last - 3, last - 2, last - 1, last}; !reflect.DeepEqual(rows, want) {
		t.Fatalf("change log rows %v, want %v", rows, want)
	}
	w.release()
	wantChange(t, w.calls, "lagged past the pruned rows", store.Change{Unknown: true})

	w.hold()
	putMeta(t, a, "k2")
	wantChange(t, w.calls, "held again", store.Change{Meta: true})
	for i := range 4 {
		mustCreateInstance(t, a, fmt.Sprint("q", i))
	}
	w.release()
	wantChange(t, w.calls, "lagged within the kept rows", instances("q0", "q1", "q2", "q3"))

	// With the default age limit nothing this young is pruned.
	a.changeLog.keepFor = changeLogKeepFor
	before := len(logRows(t, a))
	for i := range 3 {
		mustCreateInstance(t, a, fmt.Sprint("r", i))
	}
	if got := len(logRows(t, a)); got != before+3 {
		t.Fatalf("%d change log rows after 3 more changes, want %d", got, before+3)
	}
}

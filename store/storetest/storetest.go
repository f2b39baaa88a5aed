// Package storetest is the conformance suite for store.Store backends.
// Every backend runs it from its own _test.go:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunTests(t, newStore, storetest.Options{Reopen: reopen})
//	}
//
// The suite checks the contract callers rely on: errors comparable with
// errors.Is, the client-id, fingerprint, xsappname, service-name,
// role-collection-owner and certificate-DN indexes, the cascade of
// DeleteInstance, all-or-nothing Update, read-only View and serialisable
// concurrent updates.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/store"
)

// Options are the optional, backend-specific parts of the suite.
type Options struct {
	// Reopen closes s and returns a new Store over the same persistent
	// data, as after a broker restart. The new store must be closed by the
	// backend (t.Cleanup). When nil the persistence test is not run.
	Reopen func(t *testing.T, s store.Store) store.Store
}

// RunTests runs the conformance suite. newStore must return an empty,
// open store for each subtest and arrange (with t.Cleanup) to close it.
// Timestamps in the fixtures have microsecond precision, so backends must
// keep at least that much.
func RunTests(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"Instances", testInstances},
		{"InstanceClientIDIndex", testInstanceClientIDIndex},
		{"InstanceIsolation", testInstanceIsolation},
		{"Bindings", testBindings},
		{"ListBindingsPrefixes", testListBindingsPrefixes},
		{"BindingFingerprints", testBindingFingerprints},
		{"DeleteInstanceCascades", testDeleteInstanceCascades},
		{"RoleCollections", testRoleCollections},
		{"BaseAppName", testBaseAppName},
		{"XSAppNameIndexes", testXSAppNameIndexes},
		{"ServiceNameIndex", testServiceNameIndex},
		{"RoleCollectionOwnerIndex", testRoleCollectionOwnerIndex},
		{"IndexFixture", testIndexFixture},
		{"CertDNIndex", testCertDNIndex},
		{"CertDNFixture", testCertDNFixture},
		{"Meta", testMeta},
		{"Sequences", testSequences},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"ConcurrentCounter", testConcurrentCounter},
		{"ConcurrentSequence", testConcurrentSequence},
		{"ConcurrentCreateInstance", testConcurrentCreateInstance},
		{"ListAtScale", testListAtScale},
		{"CancelledContext", testCancelledContext},
		{"Users", testUsers},
		{"Ephemeral", testEphemeral},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
	if opts.Reopen != nil {
		t.Run("Persistence", func(t *testing.T) {
			testPersistence(t, newStore(t), opts.Reopen)
		})
	}
}

// MustUpdate runs fn in s.Update and fails the test if it returns an error.
func MustUpdate(t testing.TB, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// MustView runs fn in s.View and fails the test if it returns an error.
func MustView(t testing.TB, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// ts is a fixed timestamp with microsecond precision (what PostgreSQL keeps).
func ts(sec int) time.Time {
	return time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC).Add(time.Duration(sec) * time.Second)
}

// NewInstance returns an instance with every field set, so that a round
// trip through the store checks them all. The client id is "cid-" + id.
func NewInstance(id string) *store.Instance {
	return &store.Instance{
		ID:               id,
		Service:          "xsuaa",
		Plan:             "application",
		ServiceID:        "svc-" + id,
		PlanID:           "plan-" + id,
		OrganizationGUID: "org-" + id,
		SpaceGUID:        "space-" + id,
		InstanceName:     "name-" + id,
		Context:          json.RawMessage(`{"platform":"cloudfoundry","space_guid":"space-` + id + `"}`),
		Parameters:       json.RawMessage(`{"xsappname":"app","scopes":[{"name":"$XSAPPNAME.Read"}]}`),
		ClientID:         "cid-" + id,
		XSAppName:        "app!t1",
		Config:           json.RawMessage(`{"xsappname":"app","tenant-mode":"dedicated"}`),
		InstanceSecret:   &store.SecretRecord{Hash: []byte{1, 2, 3}, Sealed: []byte{4, 5, 6}},
		CreatedAt:        ts(0),
		UpdatedAt:        ts(1),
	}
}

// NewBinding returns a binding of instance with every field set. A
// non-empty fingerprint gives it a certificate.
func NewBinding(id, instanceID, fingerprint string) *store.Binding {
	b := &store.Binding{
		ID:                id,
		InstanceID:        instanceID,
		ServiceID:         "svc-" + instanceID,
		PlanID:            "plan-" + instanceID,
		AppGUID:           "app-" + id,
		BindResource:      json.RawMessage(`{"app_guid":"app-` + id + `"}`),
		Parameters:        json.RawMessage(`{"credential-type":"x509"}`),
		CredentialType:    "binding-secret",
		SecretHash:        []byte{9, 8, 7},
		SealedCredentials: []byte("sealed-" + id),
		CreatedAt:         ts(2),
	}
	if fingerprint != "" {
		b.CredentialType = "x509"
		b.Cert = &store.CertRecord{
			Fingerprint: fingerprint,
			Subject:     "CN=" + id + ",OU=broker",
			Issuer:      "CN=broker-ca",
			NotAfter:    ts(3600),
			Pinned:      true,
			Provided:    true,
		}
	}
	return b
}

// normalize puts every timestamp in UTC so that records compare equal
// whatever zone a backend hands them back in.
func normalize(v any) any {
	switch x := v.(type) {
	case *store.Instance:
		if x == nil {
			return x
		}
		c := *x
		c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
		return &c
	case *store.Binding:
		if x == nil {
			return x
		}
		c := *x
		c.CreatedAt = c.CreatedAt.UTC()
		if c.Cert != nil {
			cert := *c.Cert
			cert.NotAfter = cert.NotAfter.UTC()
			c.Cert = &cert
		}
		return &c
	}
	return v
}

func checkEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		t.Errorf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func instanceIDs(ins []*store.Instance) []string {
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	sort.Strings(ids)
	return ids
}

func bindingIDs(bs []*store.Binding) []string {
	var ids []string
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	sort.Strings(ids)
	return ids
}

func rcNames(rcs []*store.RoleCollection) []string {
	var names []string
	for _, rc := range rcs {
		names = append(names, rc.Name)
	}
	sort.Strings(names)
	return names
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testInstances(t *testing.T, s store.Store) {
	a, b := NewInstance("inst-a"), NewInstance("inst-b")
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.CreateInstance(a); err != nil {
			return fmt.Errorf("create a: %w", err)
		}
		// A record written earlier in the transaction is visible to it.
		got, err := tx.GetInstance("inst-a")
		if err != nil {
			return fmt.Errorf("get a in the creating transaction: %w", err)
		}
		checkEqual(t, "instance a in the creating transaction", got, a)
		return tx.CreateInstance(b)
	})

	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetInstance("inst-a")
		if err != nil {
			return fmt.Errorf("get a: %w", err)
		}
		checkEqual(t, "instance a", got, a)
		_, err = tx.GetInstance("missing")
		checkErr(t, "GetInstance(missing)", err, store.ErrNotFound)
		_, err = tx.GetInstanceByClientID("cid-missing")
		checkErr(t, "GetInstanceByClientID(missing)", err, store.ErrNotFound)
		list, err := tx.ListInstances()
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if got, want := instanceIDs(list), []string{"inst-a", "inst-b"}; !slices.Equal(got, want) {
			t.Errorf("ListInstances = %v, want %v", got, want)
		}
		for _, in := range list {
			if in.ID == "inst-b" {
				checkEqual(t, "listed instance b", in, b)
			}
		}
		return nil
	})

	// Duplicates are refused and leave the stored record alone.
	MustUpdate(t, s, func(tx store.Tx) error {
		dup := NewInstance("inst-a")
		dup.ClientID, dup.Plan = "cid-other", "broker"
		checkErr(t, "CreateInstance(duplicate id)", tx.CreateInstance(dup), store.ErrExists)
		sameClient := NewInstance("inst-c")
		sameClient.ClientID = a.ClientID
		checkErr(t, "CreateInstance(duplicate client id)", tx.CreateInstance(sameClient), store.ErrExists)
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetInstance("inst-a")
		if err != nil {
			return err
		}
		checkEqual(t, "instance a after refused duplicate", got, a)
		if _, err := tx.GetInstance("inst-c"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("instance with a taken client id was stored (err %v)", err)
		}
		if _, err := tx.GetInstanceByClientID("cid-other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused duplicate indexed its client id (err %v)", err)
		}
		return nil
	})

	// Put replaces the record.
	upd := NewInstance("inst-a")
	upd.Plan = "broker"
	upd.PlanID = "plan-broker"
	upd.Parameters = json.RawMessage(`{"xsappname":"app2"}`)
	upd.InstanceSecret = nil
	upd.UpdatedAt = ts(100)
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutInstance(upd) })
	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetInstance("inst-a")
		if err != nil {
			return err
		}
		checkEqual(t, "instance a after PutInstance", got, upd)
		got, err = tx.GetInstanceByClientID(upd.ClientID)
		if err != nil {
			return fmt.Errorf("by client id after put: %w", err)
		}
		checkEqual(t, "instance a by client id after PutInstance", got, upd)
		return nil
	})

	// Delete.
	MustUpdate(t, s, func(tx store.Tx) error {
		removed, err := tx.DeleteInstance("inst-b")
		if err != nil {
			return fmt.Errorf("delete b: %w", err)
		}
		if len(removed) != 0 {
			t.Errorf("DeleteInstance of an instance without bindings returned %d bindings", len(removed))
		}
		_, err = tx.DeleteInstance("inst-b")
		checkErr(t, "DeleteInstance(already deleted)", err, store.ErrNotFound)
		_, err = tx.DeleteInstance("missing")
		checkErr(t, "DeleteInstance(missing)", err, store.ErrNotFound)
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstance("inst-b")
		checkErr(t, "GetInstance(deleted)", err, store.ErrNotFound)
		_, err = tx.GetInstanceByClientID("cid-inst-b")
		checkErr(t, "GetInstanceByClientID(deleted)", err, store.ErrNotFound)
		list, err := tx.ListInstances()
		if err != nil {
			return err
		}
		if got, want := instanceIDs(list), []string{"inst-a"}; !slices.Equal(got, want) {
			t.Errorf("ListInstances after delete = %v, want %v", got, want)
		}
		return nil
	})
	// An empty store lists nothing, without error.
	MustUpdate(t, s, func(tx store.Tx) error {
		if _, err := tx.DeleteInstance("inst-a"); err != nil {
			return err
		}
		list, err := tx.ListInstances()
		if err != nil {
			return err
		}
		if len(list) != 0 {
			t.Errorf("ListInstances of an empty store = %v", instanceIDs(list))
		}
		return nil
	})
}

func testInstanceClientIDIndex(t *testing.T, s store.Store) {
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.CreateInstance(NewInstance("i1")); err != nil {
			return err
		}
		return tx.CreateInstance(NewInstance("i2"))
	})
	lookup := func(cid string) (string, error) {
		var id string
		err := s.View(context.Background(), func(tx store.Tx) error {
			in, err := tx.GetInstanceByClientID(cid)
			if err != nil {
				return err
			}
			id = in.ID
			return nil
		})
		return id, err
	}
	if id, err := lookup("cid-i1"); err != nil || id != "i1" {
		t.Errorf("GetInstanceByClientID(cid-i1) = %q, %v; want i1", id, err)
	}

	// Changing the client id moves the index.
	changed := NewInstance("i1")
	changed.ClientID = "cid-new"
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutInstance(changed) })
	if id, err := lookup("cid-new"); err != nil || id != "i1" {
		t.Errorf("GetInstanceByClientID(cid-new) = %q, %v; want i1", id, err)
	}
	if _, err := lookup("cid-i1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInstanceByClientID(old client id) error %v, want ErrNotFound", err)
	}

	// Another instance's client id cannot be taken over by PutInstance:
	// the index would then point one client at two instances.
	MustUpdate(t, s, func(tx store.Tx) error {
		steal := NewInstance("i2")
		steal.ClientID = "cid-new"
		checkErr(t, "PutInstance(client id of another instance)", tx.PutInstance(steal), store.ErrExists)
		return nil
	})
	if id, err := lookup("cid-new"); err != nil || id != "i1" {
		t.Errorf("after refused takeover GetInstanceByClientID(cid-new) = %q, %v; want i1", id, err)
	}
	if id, err := lookup("cid-i2"); err != nil || id != "i2" {
		t.Errorf("after refused takeover GetInstanceByClientID(cid-i2) = %q, %v; want i2", id, err)
	}

	// The freed client id can be used by another instance.
	MustUpdate(t, s, func(tx store.Tx) error {
		in := NewInstance("i3")
		in.ClientID = "cid-i1"
		return tx.CreateInstance(in)
	})
	if id, err := lookup("cid-i1"); err != nil || id != "i3" {
		t.Errorf("GetInstanceByClientID(reused cid-i1) = %q, %v; want i3", id, err)
	}

	// Deleting an instance frees its client id.
	MustUpdate(t, s, func(tx store.Tx) error {
		_, err := tx.DeleteInstance("i1")
		return err
	})
	if _, err := lookup("cid-new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInstanceByClientID(deleted instance) error %v, want ErrNotFound", err)
	}
	if id, err := lookup("cid-i2"); err != nil || id != "i2" {
		t.Errorf("GetInstanceByClientID(cid-i2) after deleting i1 = %q, %v; want i2", id, err)
	}
}

// testInstanceIsolation checks that records are values: changing an
// object after writing it, or one read back, does not change the store.
func testInstanceIsolation(t *testing.T, s store.Store) {
	in := NewInstance("iso")
	MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(in) })
	in.Plan = "mutated"
	in.InstanceSecret.Hash[0] = 99
	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetInstance("iso")
		if err != nil {
			return err
		}
		checkEqual(t, "instance after mutating the written object", got, NewInstance("iso"))
		got.Plan = "mutated-again"
		got.Config[0] = ' '
		again, err := tx.GetInstance("iso")
		if err != nil {
			return err
		}
		checkEqual(t, "instance after mutating a read object", again, NewInstance("iso"))
		return nil
	})
}

func testBindings(t *testing.T, s store.Store) {
	MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(NewInstance("inst")) })

	b1, b2 := NewBinding("b1", "inst", ""), NewBinding("b2", "inst", "aa01")
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.CreateBinding(b1); err != nil {
			return fmt.Errorf("create b1: %w", err)
		}
		if err := tx.CreateBinding(b2); err != nil {
			return fmt.Errorf("create b2: %w", err)
		}
		err := tx.CreateBinding(NewBinding("orphan", "no-such-instance", "bb02"))
		checkErr(t, "CreateBinding(unknown instance)", err, store.ErrNotFound)
		dup := NewBinding("b1", "inst", "cc03")
		checkErr(t, "CreateBinding(duplicate id)", tx.CreateBinding(dup), store.ErrExists)
		return nil
	})

	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetBinding("b1")
		if err != nil {
			return fmt.Errorf("get b1: %w", err)
		}
		checkEqual(t, "binding b1", got, b1)
		got, err = tx.GetBinding("b2")
		if err != nil {
			return fmt.Errorf("get b2: %w", err)
		}
		checkEqual(t, "binding b2", got, b2)
		_, err = tx.GetBinding("missing")
		checkErr(t, "GetBinding(missing)", err, store.ErrNotFound)
		// A refused binding leaves nothing behind, not even its indexes.
		_, err = tx.GetBinding("orphan")
		checkErr(t, "GetBinding(refused orphan)", err, store.ErrNotFound)
		_, err = tx.GetBindingByFingerprint("bb02")
		checkErr(t, "GetBindingByFingerprint(refused orphan)", err, store.ErrNotFound)
		_, err = tx.GetBindingByFingerprint("cc03")
		checkErr(t, "GetBindingByFingerprint(refused duplicate)", err, store.ErrNotFound)
		list, err := tx.ListBindings("no-such-instance")
		if err != nil || len(list) != 0 {
			t.Errorf("ListBindings(refused orphan's instance) = %v, %v; want none", bindingIDs(list), err)
		}

		list, err = tx.ListBindings("inst")
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if got, want := bindingIDs(list), []string{"b1", "b2"}; !slices.Equal(got, want) {
			t.Errorf("ListBindings(inst) = %v, want %v", got, want)
		}
		for _, b := range list {
			if b.ID == "b2" {
				checkEqual(t, "listed binding b2", b, b2)
			}
		}
		return nil
	})

	MustUpdate(t, s, func(tx store.Tx) error {
		removed, err := tx.DeleteBinding("b2")
		if err != nil {
			return fmt.Errorf("delete b2: %w", err)
		}
		checkEqual(t, "DeleteBinding result", removed, b2)
		_, err = tx.DeleteBinding("b2")
		checkErr(t, "DeleteBinding(already deleted)", err, store.ErrNotFound)
		_, err = tx.DeleteBinding("missing")
		checkErr(t, "DeleteBinding(missing)", err, store.ErrNotFound)
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetBinding("b2")
		checkErr(t, "GetBinding(deleted)", err, store.ErrNotFound)
		_, err = tx.GetBindingByFingerprint("aa01")
		checkErr(t, "GetBindingByFingerprint(deleted)", err, store.ErrNotFound)
		list, err := tx.ListBindings("inst")
		if err != nil {
			return err
		}
		if got, want := bindingIDs(list), []string{"b1"}; !slices.Equal(got, want) {
			t.Errorf("ListBindings after delete = %v, want %v", got, want)
		}
		// The instance is untouched by deleting its binding.
		if _, err := tx.GetInstance("inst"); err != nil {
			t.Errorf("GetInstance after DeleteBinding: %v", err)
		}
		return nil
	})
}

// testListBindingsPrefixes uses instance and binding ids that are prefixes
// of each other, or contain a slash, to catch index keys built by naive
// concatenation.
func testListBindingsPrefixes(t *testing.T, s store.Store) {
	want := map[string][]string{
		"a":   {"a", "a-1", "b/c"},
		"ab":  {"ab-1", "ab-2"},
		"a/b": {"c", "x"},
		"a/":  {"d"},
		"b":   nil,
	}
	MustUpdate(t, s, func(tx store.Tx) error {
		for iid, bids := range want {
			if err := tx.CreateInstance(NewInstance(iid)); err != nil {
				return fmt.Errorf("create instance %q: %w", iid, err)
			}
			for _, bid := range bids {
				if err := tx.CreateBinding(NewBinding(bid, iid, "")); err != nil {
					return fmt.Errorf("create binding %q of %q: %w", bid, iid, err)
				}
			}
		}
		return nil
	})
	check := func(stage string) {
		t.Helper()
		MustView(t, s, func(tx store.Tx) error {
			for iid, bids := range want {
				list, err := tx.ListBindings(iid)
				if err != nil {
					t.Errorf("%s: ListBindings(%q): %v", stage, iid, err)
					continue
				}
				for _, b := range list {
					if b.InstanceID != iid {
						t.Errorf("%s: ListBindings(%q) returned binding %q of instance %q", stage, iid, b.ID, b.InstanceID)
					}
				}
				if got := bindingIDs(list); !slices.Equal(got, bids) {
					t.Errorf("%s: ListBindings(%q) = %q, want %q", stage, iid, got, bids)
				}
			}
			return nil
		})
	}
	check("after create")

	// Deleting "a" must not take bindings of "ab", "a/b" or "a/" with it.
	MustUpdate(t, s, func(tx store.Tx) error {
		removed, err := tx.DeleteInstance("a")
		if err != nil {
			return err
		}
		if got := bindingIDs(removed); !slices.Equal(got, want["a"]) {
			t.Errorf("DeleteInstance(a) removed %q, want %q", got, want["a"])
		}
		return nil
	})
	delete(want, "a")
	check("after deleting instance a")
}

func testBindingFingerprints(t *testing.T, s store.Store) {
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.CreateInstance(NewInstance("i1")); err != nil {
			return err
		}
		if err := tx.CreateInstance(NewInstance("i2")); err != nil {
			return err
		}
		if err := tx.CreateBinding(NewBinding("b1", "i1", "f1")); err != nil {
			return err
		}
		return tx.CreateBinding(NewBinding("b2", "i2", "f2"))
	})
	byFP := func(tx store.Tx, fp, wantID string) {
		t.Helper()
		b, err := tx.GetBindingByFingerprint(fp)
		if err != nil {
			t.Errorf("GetBindingByFingerprint(%s): %v", fp, err)
			return
		}
		if b.ID != wantID {
			t.Errorf("GetBindingByFingerprint(%s) = %s, want %s", fp, b.ID, wantID)
		}
	}
	MustView(t, s, func(tx store.Tx) error {
		byFP(tx, "f1", "b1")
		byFP(tx, "f2", "b2")
		b, err := tx.GetBindingByFingerprint("f1")
		if err == nil {
			checkEqual(t, "binding by fingerprint", b, NewBinding("b1", "i1", "f1"))
		}
		_, err = tx.GetBindingByFingerprint("f3")
		checkErr(t, "GetBindingByFingerprint(unknown)", err, store.ErrNotFound)
		return nil
	})

	// A certificate belongs to one binding, across instances too.
	MustUpdate(t, s, func(tx store.Tx) error {
		err := tx.CreateBinding(NewBinding("b3", "i2", "f1"))
		checkErr(t, "CreateBinding(fingerprint of another binding)", err, store.ErrExists)
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		byFP(tx, "f1", "b1")
		_, err := tx.GetBinding("b3")
		checkErr(t, "GetBinding(refused duplicate fingerprint)", err, store.ErrNotFound)
		list, err := tx.ListBindings("i2")
		if err != nil {
			return err
		}
		if got := bindingIDs(list); !slices.Equal(got, []string{"b2"}) {
			t.Errorf("ListBindings(i2) after refused duplicate fingerprint = %v, want [b2]", got)
		}
		return nil
	})

	// Deleting the binding frees its fingerprint.
	MustUpdate(t, s, func(tx store.Tx) error {
		if _, err := tx.DeleteBinding("b1"); err != nil {
			return err
		}
		_, err := tx.GetBindingByFingerprint("f1")
		checkErr(t, "GetBindingByFingerprint after DeleteBinding", err, store.ErrNotFound)
		return tx.CreateBinding(NewBinding("b3", "i2", "f1"))
	})
	MustView(t, s, func(tx store.Tx) error {
		byFP(tx, "f1", "b3")
		byFP(tx, "f2", "b2")
		return nil
	})
}

func testDeleteInstanceCascades(t *testing.T, s store.Store) {
	victim, keep := NewInstance("victim"), NewInstance("keep")
	vb := []*store.Binding{NewBinding("v1", "victim", "fv1"), NewBinding("v2", "victim", ""), NewBinding("v3", "victim", "fv3")}
	kb := []*store.Binding{NewBinding("k1", "keep", "fk1")}
	rcs := []*store.RoleCollection{
		{Name: "victim-viewer", RoleTemplates: []string{"app!t1.Viewer"}, Owner: "victim"},
		{Name: "victim-admin", RoleTemplates: []string{"app!t1.Admin"}, Owner: "victim"},
		{Name: "keep-viewer", RoleTemplates: []string{"keep!t1.Viewer"}, Owner: "keep"},
		{Name: "victim-prefix", RoleTemplates: []string{"x"}, Owner: "victim2"},
		{Name: "admin-made", RoleTemplates: []string{"app!t1.Viewer"}},
	}
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, in := range []*store.Instance{victim, keep} {
			if err := tx.CreateInstance(in); err != nil {
				return err
			}
		}
		for _, b := range append(slices.Clone(vb), kb...) {
			if err := tx.CreateBinding(b); err != nil {
				return err
			}
		}
		for _, rc := range rcs {
			if err := tx.PutRoleCollection(rc); err != nil {
				return err
			}
		}
		return nil
	})

	MustUpdate(t, s, func(tx store.Tx) error {
		removed, err := tx.DeleteInstance("victim")
		if err != nil {
			return err
		}
		if len(removed) != len(vb) {
			t.Errorf("DeleteInstance returned %v, want %v", bindingIDs(removed), bindingIDs(vb))
		}
		for _, want := range vb {
			found := false
			for _, got := range removed {
				if got.ID == want.ID {
					found = true
					checkEqual(t, "removed binding "+want.ID, got, want)
				}
			}
			if !found {
				t.Errorf("DeleteInstance did not return binding %s", want.ID)
			}
		}
		return nil
	})

	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstance("victim")
		checkErr(t, "GetInstance(victim)", err, store.ErrNotFound)
		_, err = tx.GetInstanceByClientID(victim.ClientID)
		checkErr(t, "GetInstanceByClientID(victim)", err, store.ErrNotFound)
		for _, b := range vb {
			_, err := tx.GetBinding(b.ID)
			checkErr(t, "GetBinding("+b.ID+")", err, store.ErrNotFound)
			if b.Cert != nil {
				_, err := tx.GetBindingByFingerprint(b.Cert.Fingerprint)
				checkErr(t, "GetBindingByFingerprint("+b.Cert.Fingerprint+")", err, store.ErrNotFound)
			}
		}
		list, err := tx.ListBindings("victim")
		if err != nil || len(list) != 0 {
			t.Errorf("ListBindings(victim) = %v, %v; want none", bindingIDs(list), err)
		}
		for _, rc := range rcs {
			_, err := tx.GetRoleCollection(rc.Name)
			if rc.Owner == "victim" {
				checkErr(t, "GetRoleCollection("+rc.Name+")", err, store.ErrNotFound)
			} else if err != nil {
				t.Errorf("GetRoleCollection(%s) of owner %q: %v", rc.Name, rc.Owner, err)
			}
		}
		all, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		if got, want := rcNames(all), []string{"admin-made", "keep-viewer", "victim-prefix"}; !slices.Equal(got, want) {
			t.Errorf("ListRoleCollections after cascade = %v, want %v", got, want)
		}

		// The other instance keeps everything.
		got, err := tx.GetInstanceByClientID(keep.ClientID)
		if err != nil {
			t.Errorf("GetInstanceByClientID(keep): %v", err)
		} else {
			checkEqual(t, "kept instance", got, keep)
		}
		list, err = tx.ListBindings("keep")
		if err != nil {
			return err
		}
		if got := bindingIDs(list); !slices.Equal(got, []string{"k1"}) {
			t.Errorf("ListBindings(keep) = %v, want [k1]", got)
		}
		if b, err := tx.GetBindingByFingerprint("fk1"); err != nil || b.ID != "k1" {
			t.Errorf("GetBindingByFingerprint(fk1) = %v, %v; want k1", b, err)
		}
		return nil
	})

	// The freed ids and fingerprints can be used again.
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.CreateInstance(NewInstance("victim")); err != nil {
			return fmt.Errorf("re-create victim: %w", err)
		}
		for _, b := range vb {
			if err := tx.CreateBinding(b); err != nil {
				return fmt.Errorf("re-create %s: %w", b.ID, err)
			}
		}
		return nil
	})
}

func testRoleCollections(t *testing.T, s store.Store) {
	viewer := &store.RoleCollection{Name: "Viewer", Description: "read", RoleTemplates: []string{"app!t1.Viewer", "app!t1.Reader"}, Owner: "i1"}
	admin := &store.RoleCollection{Name: "Admin", RoleTemplates: []string{"app!t1.Admin"}}
	MustUpdate(t, s, func(tx store.Tx) error {
		_, err := tx.GetRoleCollection("Viewer")
		checkErr(t, "GetRoleCollection(missing)", err, store.ErrNotFound)
		list, err := tx.ListRoleCollections()
		if err != nil || len(list) != 0 {
			t.Errorf("ListRoleCollections of an empty store = %v, %v", rcNames(list), err)
		}
		if err := tx.PutRoleCollection(viewer); err != nil {
			return err
		}
		return tx.PutRoleCollection(admin)
	})
	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetRoleCollection("Viewer")
		if err != nil {
			return err
		}
		checkEqual(t, "role collection Viewer", got, viewer)
		list, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		if got, want := rcNames(list), []string{"Admin", "Viewer"}; !slices.Equal(got, want) {
			t.Errorf("ListRoleCollections = %v, want %v", got, want)
		}
		return nil
	})

	// Put replaces.
	viewer2 := &store.RoleCollection{Name: "Viewer", Description: "changed", RoleTemplates: []string{"app!t1.Viewer"}}
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutRoleCollection(viewer2) })
	MustUpdate(t, s, func(tx store.Tx) error {
		got, err := tx.GetRoleCollection("Viewer")
		if err != nil {
			return err
		}
		checkEqual(t, "role collection Viewer after put", got, viewer2)
		if err := tx.DeleteRoleCollection("Admin"); err != nil {
			return err
		}
		checkErr(t, "DeleteRoleCollection(deleted)", tx.DeleteRoleCollection("Admin"), store.ErrNotFound)
		checkErr(t, "DeleteRoleCollection(missing)", tx.DeleteRoleCollection("nope"), store.ErrNotFound)
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetRoleCollection("Admin")
		checkErr(t, "GetRoleCollection(deleted)", err, store.ErrNotFound)
		list, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		if got, want := rcNames(list), []string{"Viewer"}; !slices.Equal(got, want) {
			t.Errorf("ListRoleCollections after delete = %v, want %v", got, want)
		}
		return nil
	})
}

func testMeta(t *testing.T, s store.Store) {
	MustUpdate(t, s, func(tx store.Tx) error {
		_, err := tx.GetMeta("zone")
		checkErr(t, "GetMeta(missing)", err, store.ErrNotFound)
		if err := tx.PutMeta("zone", []byte(`{"id":"z1"}`)); err != nil {
			return err
		}
		// An empty value is a value, not a missing key.
		if err := tx.PutMeta("empty", []byte{}); err != nil {
			return err
		}
		if v, err := tx.GetMeta("empty"); err != nil || len(v) != 0 {
			t.Errorf("GetMeta(empty) in the writing transaction = %q, %v; want empty, nil", v, err)
		}
		if err := tx.PutMeta("nil", nil); err != nil {
			return err
		}
		if v, err := tx.GetMeta("nil"); err != nil || len(v) != 0 {
			t.Errorf("GetMeta(nil) in the writing transaction = %q, %v; want empty, nil", v, err)
		}
		return tx.PutMeta("ca", []byte{0, 1, 2, 255})
	})
	MustView(t, s, func(tx store.Tx) error {
		for key, want := range map[string][]byte{"zone": []byte(`{"id":"z1"}`), "ca": {0, 1, 2, 255}, "empty": {}, "nil": {}} {
			got, err := tx.GetMeta(key)
			if err != nil || string(got) != string(want) {
				t.Errorf("GetMeta(%s) = %q, %v; want %q", key, got, err, want)
			}
		}
		// The returned slice is the caller's: changing it changes nothing.
		got, err := tx.GetMeta("zone")
		if err != nil {
			return err
		}
		got[0] = 'X'
		if again, err := tx.GetMeta("zone"); err != nil || string(again) != `{"id":"z1"}` {
			t.Errorf("GetMeta(zone) after changing a returned slice = %q, %v", again, err)
		}
		return nil
	})
	// Changing the slice after PutMeta changes nothing either.
	v := []byte("v1")
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutMeta("zone", v) })
	v[1] = '9'
	MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetMeta("zone")
		if err != nil || string(got) != "v1" {
			t.Errorf("GetMeta(zone) after overwrite = %q, %v; want v1", got, err)
		}
		return nil
	})
}

func nextSeq(t *testing.T, s store.Store, name string) uint64 {
	t.Helper()
	var n uint64
	MustUpdate(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.NextSequence(name)
		return err
	})
	return n
}

func testSequences(t *testing.T, s store.Store) {
	steps := []struct {
		name string
		want uint64
	}{
		{"serial", 1}, {"serial", 2}, {"other", 1}, {"serial", 3}, {"other", 2}, {"serial-2", 1},
	}
	for i, st := range steps {
		if got := nextSeq(t, s, st.name); got != st.want {
			t.Errorf("step %d: NextSequence(%s) = %d, want %d", i, st.name, got, st.want)
		}
	}
	// Several calls in one transaction hand out distinct values.
	MustUpdate(t, s, func(tx store.Tx) error {
		for want := uint64(4); want <= 6; want++ {
			got, err := tx.NextSequence("serial")
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("NextSequence(serial) in one transaction = %d, want %d", got, want)
			}
		}
		return nil
	})
	// Sequences and meta keys are separate name spaces.
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetMeta("serial")
		checkErr(t, "GetMeta(sequence name)", err, store.ErrNotFound)
		return nil
	})
}

var errAbort = errors.New("storetest: abort")

// state is what the suite can observe of a store, for before/after
// comparisons.
type state struct {
	Instances []*store.Instance
	Bindings  map[string][]*store.Binding
	RCs       []*store.RoleCollection
	Meta      map[string]string
}

func snapshot(t *testing.T, s store.Store, metaKeys ...string) state {
	t.Helper()
	st := state{Bindings: map[string][]*store.Binding{}, Meta: map[string]string{}}
	MustView(t, s, func(tx store.Tx) error {
		var err error
		if st.Instances, err = tx.ListInstances(); err != nil {
			return err
		}
		sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].ID < st.Instances[j].ID })
		for i, in := range st.Instances {
			st.Instances[i] = normalize(in).(*store.Instance)
			bs, err := tx.ListBindings(in.ID)
			if err != nil {
				return err
			}
			sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
			for j, b := range bs {
				bs[j] = normalize(b).(*store.Binding)
			}
			st.Bindings[in.ID] = bs
		}
		if st.RCs, err = tx.ListRoleCollections(); err != nil {
			return err
		}
		sort.Slice(st.RCs, func(i, j int) bool { return st.RCs[i].Name < st.RCs[j].Name })
		for _, k := range metaKeys {
			v, err := tx.GetMeta(k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			st.Meta[k] = string(v)
		}
		return nil
	})
	return st
}

func checkState(t *testing.T, what string, got, want state) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s: store changed:\n got %s\nwant %s", what, gj, wj)
	}
}

// seed writes a small, fully connected data set: two instances, bindings
// with and without certificates, role collections and meta.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, id := range []string{"s1", "s2"} {
			if err := tx.CreateInstance(NewInstance(id)); err != nil {
				return err
			}
		}
		for _, b := range []*store.Binding{NewBinding("sb1", "s1", "sf1"), NewBinding("sb2", "s1", ""), NewBinding("sb3", "s2", "sf3")} {
			if err := tx.CreateBinding(b); err != nil {
				return err
			}
		}
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: "rc1", RoleTemplates: []string{"a.b"}, Owner: "s1"}); err != nil {
			return err
		}
		if err := tx.PutMeta("m1", []byte("one")); err != nil {
			return err
		}
		_, err := tx.NextSequence("seq")
		return err
	})
}

var seedMeta = []string{"m1", "m2"}

func testUpdateRollsBack(t *testing.T, s store.Store) {
	seed(t, s)
	before := snapshot(t, s, seedMeta...)

	err := s.Update(context.Background(), func(tx store.Tx) error {
		// New records of every kind.
		if err := tx.CreateInstance(NewInstance("new")); err != nil {
			return err
		}
		if err := tx.CreateBinding(NewBinding("nb", "new", "nf")); err != nil {
			return err
		}
		if err := tx.CreateBinding(NewBinding("nb2", "s1", "nf2")); err != nil {
			return err
		}
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: "rc-new", RoleTemplates: []string{"x"}}); err != nil {
			return err
		}
		if err := tx.PutMeta("m2", []byte("two")); err != nil {
			return err
		}
		if _, err := tx.NextSequence("seq"); err != nil {
			return err
		}
		if _, err := tx.NextSequence("fresh"); err != nil {
			return err
		}
		// Changes to existing records.
		changed := NewInstance("s2")
		changed.ClientID, changed.Plan = "cid-changed", "broker"
		if err := tx.PutInstance(changed); err != nil {
			return err
		}
		if err := tx.PutMeta("m1", []byte("changed")); err != nil {
			return err
		}
		if _, err := tx.DeleteBinding("sb3"); err != nil {
			return err
		}
		if _, err := tx.DeleteInstance("s1"); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := tx.GetInstance("s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted instance still visible in its transaction (err %v)", err)
		}
		if in, err := tx.GetInstanceByClientID("cid-changed"); err != nil || in.ID != "s2" {
			t.Errorf("GetInstanceByClientID(cid-changed) in the transaction = %v, %v", in, err)
		}
		return fmt.Errorf("failing on purpose: %w", errAbort)
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update returned %v, want the error of fn", err)
	}

	checkState(t, "after failed Update", snapshot(t, s, seedMeta...), before)
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstance("new")
		checkErr(t, "GetInstance(rolled back)", err, store.ErrNotFound)
		_, err = tx.GetInstanceByClientID("cid-new")
		checkErr(t, "GetInstanceByClientID(rolled back)", err, store.ErrNotFound)
		_, err = tx.GetInstanceByClientID("cid-changed")
		checkErr(t, "GetInstanceByClientID(rolled back change)", err, store.ErrNotFound)
		if in, err := tx.GetInstanceByClientID("cid-s2"); err != nil || in.ID != "s2" {
			t.Errorf("GetInstanceByClientID(cid-s2) after rollback = %v, %v", in, err)
		}
		for _, fp := range []string{"nf", "nf2"} {
			_, err = tx.GetBindingByFingerprint(fp)
			checkErr(t, "GetBindingByFingerprint(rolled back "+fp+")", err, store.ErrNotFound)
		}
		for fp, id := range map[string]string{"sf1": "sb1", "sf3": "sb3"} {
			if b, err := tx.GetBindingByFingerprint(fp); err != nil || b.ID != id {
				t.Errorf("GetBindingByFingerprint(%s) after rollback = %v, %v; want %s", fp, b, err, id)
			}
		}
		return nil
	})
	if got := nextSeq(t, s, "seq"); got != 2 {
		t.Errorf("NextSequence(seq) after rollback = %d, want 2", got)
	}
	if got := nextSeq(t, s, "fresh"); got != 1 {
		t.Errorf("NextSequence(fresh) after rollback = %d, want 1", got)
	}

	// A panic in fn also leaves nothing behind.
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Errorf("a panic in fn was swallowed by Update")
			}
		}()
		_ = s.Update(context.Background(), func(tx store.Tx) error {
			if err := tx.CreateInstance(NewInstance("panicky")); err != nil {
				return err
			}
			panic("storetest: panic inside Update")
		})
	}()
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstance("panicky")
		checkErr(t, "GetInstance(written before a panic)", err, store.ErrNotFound)
		return nil
	})
}

func testViewIsReadOnly(t *testing.T, s store.Store) {
	seed(t, s)
	writes := []struct {
		name string
		fn   func(store.Tx) error
	}{
		{"CreateInstance", func(tx store.Tx) error { return tx.CreateInstance(NewInstance("v-new")) }},
		{"PutInstance", func(tx store.Tx) error {
			in := NewInstance("s1")
			in.Plan, in.ClientID = "changed", "cid-changed"
			return tx.PutInstance(in)
		}},
		{"DeleteInstance", func(tx store.Tx) error { _, err := tx.DeleteInstance("s1"); return err }},
		{"CreateBinding", func(tx store.Tx) error { return tx.CreateBinding(NewBinding("v-b", "s1", "vf")) }},
		{"DeleteBinding", func(tx store.Tx) error { _, err := tx.DeleteBinding("sb2"); return err }},
		{"DeleteBindingWithCert", func(tx store.Tx) error { _, err := tx.DeleteBinding("sb1"); return err }},
		{"PutRoleCollection", func(tx store.Tx) error {
			return tx.PutRoleCollection(&store.RoleCollection{Name: "v-rc", RoleTemplates: []string{"x"}})
		}},
		{"DeleteRoleCollection", func(tx store.Tx) error { return tx.DeleteRoleCollection("rc1") }},
		{"PutMeta", func(tx store.Tx) error { return tx.PutMeta("m2", []byte("two")) }},
		{"NextSequence", func(tx store.Tx) error { _, err := tx.NextSequence("seq"); return err }},
	}
	before := snapshot(t, s, seedMeta...)
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			var writeErr error
			viewErr := func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Errorf("%s inside View panicked: %v", w.name, r)
					}
				}()
				return s.View(context.Background(), func(tx store.Tx) error {
					writeErr = w.fn(tx)
					// Return nil so that a backend which would commit a
					// successful View gets the chance to.
					return nil
				})
			}()
			if viewErr != nil && writeErr == nil {
				t.Errorf("View: %v", viewErr)
			}
			if writeErr == nil {
				t.Errorf("%s inside View returned nil, want an error", w.name)
			}
			checkState(t, w.name+" inside View", snapshot(t, s, seedMeta...), before)
			if err := s.View(context.Background(), func(tx store.Tx) error {
				_, err := tx.GetInstance("s1")
				return err
			}); err != nil {
				t.Errorf("store unusable after %s inside View: %v", w.name, err)
			}
		})
	}
	// The sequence was not advanced by the attempt in View.
	if got := nextSeq(t, s, "seq"); got != 2 {
		t.Errorf("NextSequence(seq) after attempts inside View = %d, want 2", got)
	}
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetInstanceByClientID("cid-changed")
		checkErr(t, "GetInstanceByClientID(written in View)", err, store.ErrNotFound)
		_, err = tx.GetBindingByFingerprint("vf")
		checkErr(t, "GetBindingByFingerprint(written in View)", err, store.ErrNotFound)
		if b, err := tx.GetBindingByFingerprint("sf1"); err != nil || b.ID != "sb1" {
			t.Errorf("GetBindingByFingerprint(sf1) = %v, %v; want sb1", b, err)
		}
		return nil
	})
}

const (
	workers = 8
	rounds  = 50
)

func testConcurrentCounter(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				errs <- s.Update(ctx, func(tx store.Tx) error {
					var n int
					v, err := tx.GetMeta("counter")
					switch {
					case errors.Is(err, store.ErrNotFound):
					case err != nil:
						return err
					default:
						if err := json.Unmarshal(v, &n); err != nil {
							return err
						}
					}
					return tx.PutMeta("counter", []byte(fmt.Sprint(n+1)))
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	MustView(t, s, func(tx store.Tx) error {
		v, err := tx.GetMeta("counter")
		if err != nil {
			return err
		}
		if got, want := string(v), fmt.Sprint(workers*rounds); got != want {
			t.Errorf("counter = %s, want %s (lost updates)", got, want)
		}
		return nil
	})
}

func testConcurrentSequence(t *testing.T, s store.Store) {
	ctx := context.Background()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[uint64]int{}
		errs []error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				var n uint64
				err := s.Update(ctx, func(tx store.Tx) error {
					var err error
					n, err = tx.NextSequence("serial")
					return err
				})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					seen[n]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("Update: %v", err)
	}
	for n := uint64(1); n <= workers*rounds; n++ {
		if seen[n] != 1 {
			t.Errorf("sequence value %d handed out %d times, want once", n, seen[n])
		}
	}
	if len(seen) != workers*rounds {
		t.Errorf("%d distinct sequence values, want %d", len(seen), workers*rounds)
	}
}

func testConcurrentCreateInstance(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 16
	results := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Each contender brings its own client id, so only the
			// instance id collides.
			in := NewInstance("contended")
			in.ClientID = fmt.Sprintf("cid-%d", i)
			results[i] = s.Update(ctx, func(tx store.Tx) error {
				// Check-then-create, as the provision handler does.
				if _, err := tx.GetInstance(in.ID); err == nil {
					return fmt.Errorf("check: %w", store.ErrExists)
				}
				return tx.CreateInstance(in)
			})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("contenders %d and %d both created the instance", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrExists):
			t.Errorf("contender %d: error %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no contender created the instance")
	}
	MustView(t, s, func(tx store.Tx) error {
		in, err := tx.GetInstanceByClientID(fmt.Sprintf("cid-%d", winner))
		if err != nil || in.ID != "contended" {
			t.Errorf("GetInstanceByClientID(winner) = %v, %v", in, err)
		}
		for i := range results {
			if i == winner {
				continue
			}
			if _, err := tx.GetInstanceByClientID(fmt.Sprintf("cid-%d", i)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("losing contender %d left its client id indexed (err %v)", i, err)
			}
		}
		list, err := tx.ListInstances()
		if err != nil || len(list) != 1 {
			t.Errorf("ListInstances = %d instances, %v; want 1", len(list), err)
		}
		return nil
	})
}

func testListAtScale(t *testing.T, s store.Store) {
	const (
		total = 5000
		batch = 500
	)
	iid := func(i int) string { return fmt.Sprintf("inst-%05d", i) }
	for start := 0; start < total; start += batch {
		MustUpdate(t, s, func(tx store.Tx) error {
			for i := start; i < start+batch; i++ {
				if err := tx.CreateInstance(NewInstance(iid(i))); err != nil {
					return err
				}
				for j := 0; j < 2; j++ {
					b := NewBinding(fmt.Sprintf("%s-b%d", iid(i), j), iid(i), fmt.Sprintf("fp-%05d-%d", i, j))
					if err := tx.CreateBinding(b); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	MustView(t, s, func(tx store.Tx) error {
		list, err := tx.ListInstances()
		if err != nil {
			return err
		}
		ids := instanceIDs(list)
		if len(ids) != total {
			t.Errorf("ListInstances returned %d instances, want %d", len(ids), total)
		}
		for i, id := range ids {
			if i < total && id != iid(i) {
				t.Errorf("ListInstances: sorted entry %d is %s, want %s", i, id, iid(i))
				break
			}
		}
		for _, i := range []int{0, 1, 499, 500, 2500, total - 1} {
			bs, err := tx.ListBindings(iid(i))
			if err != nil {
				return err
			}
			want := []string{iid(i) + "-b0", iid(i) + "-b1"}
			if got := bindingIDs(bs); !slices.Equal(got, want) {
				t.Errorf("ListBindings(%s) = %v, want %v", iid(i), got, want)
			}
			b, err := tx.GetBindingByFingerprint(fmt.Sprintf("fp-%05d-1", i))
			if err != nil || b.ID != want[1] {
				t.Errorf("GetBindingByFingerprint(fp-%05d-1) = %v, %v; want %s", i, b, err, want[1])
			}
		}
		return nil
	})
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, op := range []struct {
		name string
		run  func(context.Context, func(store.Tx) error) error
	}{
		{"View", s.View},
		{"Update", s.Update},
	} {
		called := false
		err := op.run(ctx, func(tx store.Tx) error {
			called = true
			return tx.PutMeta("cancelled", []byte("x"))
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: error %v, want context.Canceled", op.name, err)
		}
		if called {
			t.Errorf("%s ran fn with a cancelled context", op.name)
		}
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer dcancel()
	if err := s.Update(dctx, func(store.Tx) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update with an expired deadline: error %v, want context.DeadlineExceeded", err)
	}
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetMeta("cancelled")
		checkErr(t, "GetMeta(written under a cancelled context)", err, store.ErrNotFound)
		return nil
	})
}

func testPersistence(t *testing.T, s store.Store, reopen func(*testing.T, store.Store) store.Store) {
	seed(t, s)
	MustUpdate(t, s, func(tx store.Tx) error {
		in := NewInstance("s2")
		in.ClientID = "cid-moved"
		return tx.PutInstance(in)
	})
	before := snapshot(t, s, seedMeta...)
	if len(before.Instances) != 2 {
		t.Fatalf("seeded %d instances, want 2", len(before.Instances))
	}

	s = reopen(t, s)
	checkState(t, "after reopen", snapshot(t, s, seedMeta...), before)
	MustView(t, s, func(tx store.Tx) error {
		for cid, id := range map[string]string{"cid-s1": "s1", "cid-moved": "s2"} {
			if in, err := tx.GetInstanceByClientID(cid); err != nil || in.ID != id {
				t.Errorf("GetInstanceByClientID(%s) after reopen = %v, %v; want %s", cid, in, err, id)
			}
		}
		_, err := tx.GetInstanceByClientID("cid-s2")
		checkErr(t, "GetInstanceByClientID(old client id) after reopen", err, store.ErrNotFound)
		for fp, id := range map[string]string{"sf1": "sb1", "sf3": "sb3"} {
			if b, err := tx.GetBindingByFingerprint(fp); err != nil || b.ID != id {
				t.Errorf("GetBindingByFingerprint(%s) after reopen = %v, %v; want %s", fp, b, err, id)
			}
		}
		if v, err := tx.GetMeta("m1"); err != nil || string(v) != "one" {
			t.Errorf("GetMeta(m1) after reopen = %q, %v", v, err)
		}
		// Both seeded instances have xsappname "app!t1".
		checkByXSAppName(t, tx, map[string]string{"app!t1": "s1"})
		checkInstances(t, tx, "application", "app", "s1", "s2")
		checkServiceName(t, tx, "space-s2", "name-s2", "s2")
		checkOwner(t, tx, "s1", "rc1")
		return nil
	})
	if got := nextSeq(t, s, "seq"); got != 2 {
		t.Errorf("NextSequence(seq) after reopen = %d, want 2 (a committed value must not be handed out again)", got)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping after reopen: %v", err)
	}

	// A second reopen sees the writes made after the first.
	s = reopen(t, s)
	if got := nextSeq(t, s, "seq"); got != 3 {
		t.Errorf("NextSequence(seq) after second reopen = %d, want 3", got)
	}
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// The indexed lookups (issue 7): instances by xsappname, by plan and
// xsappname without suffix, by space and instance name, and role
// collections by owner. The fixtures use values that are prefixes of each
// other, or concatenate to the same text, to catch index keys built by
// naive concatenation.

// ids returns the ids in the order given: the lookups promise id order,
// so unlike instanceIDs this does not sort.
func ids(ins []*store.Instance) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func names(rcs []*store.RoleCollection) []string {
	out := []string{}
	for _, rc := range rcs {
		out = append(out, rc.Name)
	}
	return out
}

// indexedInstance returns NewInstance(id) with the indexed fields set.
func indexedInstance(id, plan, xsappname, space, name string) *store.Instance {
	in := NewInstance(id)
	in.Plan, in.XSAppName, in.SpaceGUID, in.InstanceName = plan, xsappname, space, name
	if xsappname == "" {
		in.Service = "identity"
	}
	return in
}

// IndexFixture returns instances and role collections whose lookups
// CheckIndexFixture checks. Backends use it to test that indexes are
// built for records written before the indexes existed.
func IndexFixture() ([]*store.Instance, []*store.RoleCollection) {
	ins := []*store.Instance{
		indexedInstance("f2", "application", "bookshop!t2", "space-1", "web"),
		indexedInstance("f1", "application", "bookshop!t1", "space-1", "web"),
		indexedInstance("f3", "broker", "bookshop!b3", "space-2", "web"),
		indexedInstance("f4", "application", "", "space-1", "ias"),
		indexedInstance("f5", "application", "bookshop", "space-1", ""),
	}
	rcs := []*store.RoleCollection{
		{Name: "rc-b", RoleTemplates: []string{"bookshop!t1.Viewer"}, Owner: "f1"},
		{Name: "rc-a", RoleTemplates: []string{"bookshop!t1.Admin"}, Owner: "f1"},
		{Name: "rc-c", RoleTemplates: []string{"bookshop!b3.Admin"}, Owner: "f3"},
		{Name: "rc-admin", RoleTemplates: []string{"x"}},
	}
	return ins, rcs
}

// CheckIndexFixture checks the lookups of the IndexFixture records in s.
func CheckIndexFixture(t *testing.T, s store.Store) {
	t.Helper()
	MustView(t, s, func(tx store.Tx) error {
		for name, want := range map[string]string{"bookshop!t1": "f1", "bookshop!t2": "f2", "bookshop!b3": "f3", "bookshop": "f5"} {
			in, err := tx.GetInstanceByXSAppName(name)
			if err != nil || in.ID != want {
				t.Errorf("GetInstanceByXSAppName(%q) = %v, %v; want %s", name, in, err, want)
			}
		}
		_, err := tx.GetInstanceByXSAppName("")
		checkErr(t, "GetInstanceByXSAppName(\"\")", err, store.ErrNotFound)
		checkInstances(t, tx, "application", "bookshop", "f1", "f2", "f5")
		checkInstances(t, tx, "broker", "bookshop", "f3")
		checkInstances(t, tx, "application", "")
		checkServiceName(t, tx, "space-1", "web", "f1", "f2")
		checkServiceName(t, tx, "space-1", "ias", "f4")
		checkServiceName(t, tx, "space-2", "web", "f3")
		checkServiceName(t, tx, "space-1", "")
		checkOwner(t, tx, "f1", "rc-a", "rc-b")
		checkOwner(t, tx, "f3", "rc-c")
		checkOwner(t, tx, "", "rc-admin")
		return nil
	})
}

func checkInstances(t *testing.T, tx store.Tx, plan, base string, want ...string) {
	t.Helper()
	list, err := tx.ListInstancesByAppName(plan, base)
	if err != nil {
		t.Errorf("ListInstancesByAppName(%q, %q): %v", plan, base, err)
		return
	}
	for _, in := range list {
		if in.Plan != plan || in.XSAppName == "" || store.BaseAppName(in.XSAppName) != base {
			t.Errorf("ListInstancesByAppName(%q, %q) returned %s of plan %q, xsappname %q", plan, base, in.ID, in.Plan, in.XSAppName)
		}
	}
	if got := ids(list); !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("ListInstancesByAppName(%q, %q) = %q, want %q", plan, base, got, want)
	}
}

func checkServiceName(t *testing.T, tx store.Tx, space, name string, want ...string) {
	t.Helper()
	list, err := tx.ListInstancesByServiceName(space, name)
	if err != nil {
		t.Errorf("ListInstancesByServiceName(%q, %q): %v", space, name, err)
		return
	}
	for _, in := range list {
		if in.SpaceGUID != space || in.InstanceName != name {
			t.Errorf("ListInstancesByServiceName(%q, %q) returned %s of space %q, name %q", space, name, in.ID, in.SpaceGUID, in.InstanceName)
		}
	}
	if got := ids(list); !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("ListInstancesByServiceName(%q, %q) = %q, want %q", space, name, got, want)
	}
}

func checkOwner(t *testing.T, tx store.Tx, owner string, want ...string) {
	t.Helper()
	list, err := tx.ListRoleCollectionsByOwner(owner)
	if err != nil {
		t.Errorf("ListRoleCollectionsByOwner(%q): %v", owner, err)
		return
	}
	for _, rc := range list {
		if rc.Owner != owner {
			t.Errorf("ListRoleCollectionsByOwner(%q) returned %s of owner %q", owner, rc.Name, rc.Owner)
		}
	}
	if got := names(list); !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("ListRoleCollectionsByOwner(%q) = %q, want %q", owner, got, want)
	}
}

// byXSAppName returns the id GetInstanceByXSAppName finds, "" for
// ErrNotFound.
func byXSAppName(t *testing.T, tx store.Tx, name string) string {
	t.Helper()
	in, err := tx.GetInstanceByXSAppName(name)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Errorf("GetInstanceByXSAppName(%q): %v", name, err)
		return ""
	}
	if in.XSAppName != name {
		t.Errorf("GetInstanceByXSAppName(%q) returned %s with xsappname %q", name, in.ID, in.XSAppName)
	}
	return in.ID
}

func checkByXSAppName(t *testing.T, tx store.Tx, want map[string]string) {
	t.Helper()
	for name, id := range want {
		if got := byXSAppName(t, tx, name); got != id {
			t.Errorf("GetInstanceByXSAppName(%q) = %q, want %q (\"\" = not found)", name, got, id)
		}
	}
}

func testBaseAppName(t *testing.T, _ store.Store) {
	for in, want := range map[string]string{
		"bookshop!t3": "bookshop", "bookshop": "bookshop", "a!b!c": "a", "!t1": "", "": "", "x!": "x",
	} {
		if got := store.BaseAppName(in); got != want {
			t.Errorf("BaseAppName(%q) = %q, want %q", in, got, want)
		}
	}
}

func testXSAppNameIndexes(t *testing.T, s store.Store) {
	ins := []*store.Instance{
		indexedInstance("i2", "application", "bookshop!t2", "s", "n2"),
		indexedInstance("i1", "application", "bookshop!t1", "s", "n1"),
		indexedInstance("i3", "broker", "bookshop!b3", "s", "n3"),
		indexedInstance("i4", "application", "", "s", "n4"), // identity
		indexedInstance("i5", "application", "bookshop", "s", "n5"),
		indexedInstance("i6", "application", "bookshop2!t6", "s", "n6"),
		indexedInstance("i7", "application", "a!b!c", "s", "n7"),
		indexedInstance("i8", "applicationbookshop", "!t8", "s", "n8"),
	}
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, in := range ins {
			if err := tx.CreateInstance(in); err != nil {
				return fmt.Errorf("create %s: %w", in.ID, err)
			}
		}
		// The writing transaction sees its own index entries.
		checkByXSAppName(t, tx, map[string]string{"bookshop!t1": "i1"})
		checkInstances(t, tx, "application", "bookshop", "i1", "i2", "i5")
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkByXSAppName(t, tx, map[string]string{
			"bookshop!t1": "i1", "bookshop!t2": "i2", "bookshop!b3": "i3", "bookshop": "i5",
			"bookshop2!t6": "i6", "a!b!c": "i7", "!t8": "i8",
			// Not found: prefixes, bases, suffixes, the empty name.
			"bookshop!": "", "bookshop!t": "", "book": "", "t1": "", "a!b": "", "a": "", "": "",
		})
		in, err := tx.GetInstanceByXSAppName("bookshop!t1")
		if err == nil {
			checkEqual(t, "instance by xsappname", in, ins[1])
		}
		checkInstances(t, tx, "application", "bookshop", "i1", "i2", "i5")
		checkInstances(t, tx, "broker", "bookshop", "i3")
		checkInstances(t, tx, "application", "bookshop2", "i6")
		checkInstances(t, tx, "application", "a", "i7")
		checkInstances(t, tx, "application", "a!b")
		checkInstances(t, tx, "application", "book")
		checkInstances(t, tx, "applicationbookshop", "", "i8")
		checkInstances(t, tx, "application", "") // the identity instance i4 is not indexed
		checkInstances(t, tx, "app", "licationbookshop")
		checkInstances(t, tx, "missing", "bookshop")
		return nil
	})

	// Changes of the xsappname and the plan move the index entries.
	MustUpdate(t, s, func(tx store.Tx) error {
		moved := indexedInstance("i1", "application", "shop!t1", "s", "n1")
		if err := tx.PutInstance(moved); err != nil {
			return err
		}
		replanned := indexedInstance("i2", "broker", "bookshop!t2", "s", "n2")
		if err := tx.PutInstance(replanned); err != nil {
			return err
		}
		// An instance that loses its xsappname leaves both indexes.
		return tx.PutInstance(indexedInstance("i5", "application", "", "s", "n5"))
	})
	MustView(t, s, func(tx store.Tx) error {
		checkByXSAppName(t, tx, map[string]string{"bookshop!t1": "", "shop!t1": "i1", "bookshop!t2": "i2", "bookshop": ""})
		in, err := tx.GetInstanceByXSAppName("shop!t1")
		if err == nil {
			checkEqual(t, "instance by changed xsappname", in, indexedInstance("i1", "application", "shop!t1", "s", "n1"))
		}
		checkInstances(t, tx, "application", "bookshop")
		checkInstances(t, tx, "application", "shop", "i1")
		checkInstances(t, tx, "broker", "bookshop", "i2", "i3")
		return nil
	})

	// The store does not make xsappnames unique: the lowest id wins.
	MustUpdate(t, s, func(tx store.Tx) error {
		return tx.CreateInstance(indexedInstance("i0", "broker", "bookshop!b3", "s", "n0"))
	})
	MustView(t, s, func(tx store.Tx) error {
		checkByXSAppName(t, tx, map[string]string{"bookshop!b3": "i0"})
		checkInstances(t, tx, "broker", "bookshop", "i0", "i2", "i3")
		return nil
	})

	// Deletes remove the entries; a failed Update leaves them alone.
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, id := range []string{"i0", "i2"} {
			if _, err := tx.DeleteInstance(id); err != nil {
				return err
			}
		}
		return nil
	})
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutInstance(indexedInstance("i3", "application", "rolled!back", "s", "n3")); err != nil {
			return err
		}
		if _, err := tx.DeleteInstance("i6"); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update: %v, want the error of fn", err)
	}
	MustView(t, s, func(tx store.Tx) error {
		checkByXSAppName(t, tx, map[string]string{
			"bookshop!b3": "i3", "bookshop!t2": "", "rolled!back": "", "bookshop2!t6": "i6",
		})
		checkInstances(t, tx, "broker", "bookshop", "i3")
		checkInstances(t, tx, "application", "rolled")
		checkInstances(t, tx, "application", "bookshop2", "i6")
		return nil
	})
}

func testServiceNameIndex(t *testing.T, s store.Store) {
	ins := []*store.Instance{
		indexedInstance("i2", "application", "x2", "s1", "web"),
		indexedInstance("i1", "application", "x1", "s1", "web"),
		indexedInstance("i3", "application", "x3", "s2", "web"),
		indexedInstance("i4", "application", "x4", "s1", ""),
		indexedInstance("i5", "application", "x5", "s1", "web2"),
		indexedInstance("i6", "application", "x6", "s1w", "eb"), // "s1"+"web" = "s1w"+"eb"
		indexedInstance("i7", "application", "", "s2", "ias"),   // identity instances are indexed by name too
	}
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, in := range ins {
			if err := tx.CreateInstance(in); err != nil {
				return fmt.Errorf("create %s: %w", in.ID, err)
			}
		}
		checkServiceName(t, tx, "s1", "web", "i1", "i2")
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkServiceName(t, tx, "s1", "web", "i1", "i2")
		checkServiceName(t, tx, "s2", "web", "i3")
		checkServiceName(t, tx, "s1", "web2", "i5")
		checkServiceName(t, tx, "s1w", "eb", "i6")
		checkServiceName(t, tx, "s2", "ias", "i7")
		checkServiceName(t, tx, "s1", "we")
		checkServiceName(t, tx, "s1", "") // i4 has no name
		checkServiceName(t, tx, "missing", "web")
		list, err := tx.ListInstancesByServiceName("s2", "web")
		if err == nil && len(list) == 1 {
			checkEqual(t, "instance by service name", list[0], ins[2])
		}
		return nil
	})

	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.PutInstance(indexedInstance("i1", "application", "x1", "s1", "api")); err != nil {
			return err
		}
		if err := tx.PutInstance(indexedInstance("i2", "application", "x2", "s2", "web")); err != nil {
			return err
		}
		if err := tx.PutInstance(indexedInstance("i5", "application", "x5", "s1", "")); err != nil {
			return err
		}
		return tx.PutInstance(indexedInstance("i4", "application", "x4", "s1", "web"))
	})
	MustView(t, s, func(tx store.Tx) error {
		checkServiceName(t, tx, "s1", "web", "i4")
		checkServiceName(t, tx, "s1", "api", "i1")
		checkServiceName(t, tx, "s2", "web", "i2", "i3")
		checkServiceName(t, tx, "s1", "web2")
		return nil
	})

	MustUpdate(t, s, func(tx store.Tx) error {
		_, err := tx.DeleteInstance("i3")
		return err
	})
	MustView(t, s, func(tx store.Tx) error {
		checkServiceName(t, tx, "s2", "web", "i2")
		return nil
	})
}

func testRoleCollectionOwnerIndex(t *testing.T, s store.Store) {
	rcs := []*store.RoleCollection{
		{Name: "b", RoleTemplates: []string{"x!t1.B"}, Owner: "i1"},
		{Name: "a", Description: "first", RoleTemplates: []string{"x!t1.A"}, Owner: "i1"},
		{Name: "c", RoleTemplates: []string{"y!t2.C"}, Owner: "i2"},
		{Name: "d", RoleTemplates: []string{"z"}},
		{Name: "e", RoleTemplates: []string{"z"}, Owner: "i"},
		{Name: "1f", RoleTemplates: []string{"z"}, Owner: "i"}, // "i"+"1f" = "i1"+"f"
	}
	MustUpdate(t, s, func(tx store.Tx) error {
		checkOwner(t, tx, "i1")
		for _, rc := range rcs {
			if err := tx.PutRoleCollection(rc); err != nil {
				return err
			}
		}
		checkOwner(t, tx, "i1", "a", "b")
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkOwner(t, tx, "i1", "a", "b")
		checkOwner(t, tx, "i2", "c")
		checkOwner(t, tx, "", "d")
		checkOwner(t, tx, "i", "1f", "e")
		checkOwner(t, tx, "missing")
		list, err := tx.ListRoleCollectionsByOwner("i1")
		if err == nil && len(list) == 2 {
			checkEqual(t, "role collection by owner", list[0], rcs[1])
		}
		return nil
	})

	// Owner changes move the entries; deletes remove them.
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: "b", RoleTemplates: []string{"y!t2.B"}, Owner: "i2"}); err != nil {
			return err
		}
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: "a", RoleTemplates: []string{"x!t1.A"}}); err != nil {
			return err
		}
		// A put with the same owner keeps one entry.
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: "c", Description: "again", RoleTemplates: []string{"y!t2.C"}, Owner: "i2"}); err != nil {
			return err
		}
		return tx.DeleteRoleCollection("e")
	})
	MustView(t, s, func(tx store.Tx) error {
		checkOwner(t, tx, "i1")
		checkOwner(t, tx, "i2", "b", "c")
		checkOwner(t, tx, "", "a", "d")
		checkOwner(t, tx, "i", "1f")
		return nil
	})

	// DeleteInstance removes exactly the collections the instance owns.
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, id := range []string{"i", "i2"} {
			if err := tx.CreateInstance(NewInstance(id)); err != nil {
				return err
			}
		}
		_, err := tx.DeleteInstance("i2")
		return err
	})
	MustView(t, s, func(tx store.Tx) error {
		checkOwner(t, tx, "i2")
		checkOwner(t, tx, "i", "1f")
		all, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		if got, want := rcNames(all), []string{"1f", "a", "d"}; !slices.Equal(got, want) {
			t.Errorf("ListRoleCollections after DeleteInstance(i2) = %q, want %q", got, want)
		}
		return nil
	})
	// Re-creating a collection of the deleted owner indexes it again.
	MustUpdate(t, s, func(tx store.Tx) error {
		return tx.PutRoleCollection(&store.RoleCollection{Name: "c", RoleTemplates: []string{"y"}, Owner: "i2"})
	})
	MustView(t, s, func(tx store.Tx) error {
		checkOwner(t, tx, "i2", "c")
		return nil
	})
}

// WriteIndexFixture writes the IndexFixture records through s.
func WriteIndexFixture(t *testing.T, s store.Store) {
	t.Helper()
	ins, rcs := IndexFixture()
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := createAll(tx, ins, nil); err != nil {
			return err
		}
		for _, rc := range rcs {
			if err := tx.PutRoleCollection(rc); err != nil {
				return err
			}
		}
		return nil
	})
}

// testIndexFixture writes IndexFixture through the store and checks it,
// so that a backend's upgrade test checks the same lookups as a store
// that maintained its indexes from the start.
func testIndexFixture(t *testing.T, s store.Store) {
	WriteIndexFixture(t, s)
	CheckIndexFixture(t, s)
}

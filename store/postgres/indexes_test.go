package postgres

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// upsertOldInstance writes an instance as the release before migration
// 0002 does: without the index columns.
const upsertOldInstance = `INSERT INTO instances (id, client_id, data) VALUES ($1, $2, $3)
	ON CONFLICT (id) DO UPDATE SET client_id = EXCLUDED.client_id, data = EXCLUDED.data`

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIndexMigration upgrades a schema at version 1, holding records the
// previous release wrote, and checks that migration 0002 indexes them,
// and that writes of a previous-release replica (still running during a
// rolling upgrade) are indexed too.
func TestIndexMigration(t *testing.T) {
	dbURL := freshSchema(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	sqlExec(t, dbURL, ms[0].sql)
	sqlExec(t, dbURL, `CREATE TABLE schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	); INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql')`)

	ins, rcs := storetest.IndexFixture()
	// Records whose JSON holds the escape \u0000, which PostgreSQL cannot
	// read as text: one with a NUL in a parameter, one whose instance
	// name has a backslash followed by "u0000" (the JSON "\\u0000").
	nul := storetest.NewInstance("nul")
	nul.XSAppName, nul.ClientID = "nul!t1", "cid-nul"
	nul.Parameters = json.RawMessage(`{"description":"a\u0000b"}`)
	backslash := storetest.NewInstance("backslash")
	backslash.XSAppName, backslash.ClientID = "backslash!t1", "cid-backslash"
	backslash.InstanceName = `name\u0000`
	ins = append(ins, nul, backslash)
	for _, in := range ins {
		sqlExec(t, dbURL, upsertOldInstance, in.ID, in.ClientID, mustJSON(t, in))
	}
	for _, rc := range rcs {
		sqlExec(t, dbURL, `INSERT INTO role_collections (name, owner, data) VALUES ($1, $2, $3)`, rc.Name, rc.Owner, mustJSON(t, rc))
	}
	if t.Failed() {
		t.FailNow()
	}

	s := openStore(t, dbURL)
	if got, want := migrationVersions(t, s), wantVersions(t); len(got) != len(want) {
		t.Fatalf("schema_migrations = %v, want %v", got, want)
	}
	storetest.CheckIndexFixture(t, s)
	storetest.MustView(t, s, func(tx store.Tx) error {
		for name, id := range map[string]string{"nul!t1": "nul", "backslash!t1": "backslash"} {
			if in, err := tx.GetInstanceByXSAppName(name); err != nil || in.ID != id {
				t.Errorf("GetInstanceByXSAppName(%s) = %v, %v; want %s", name, in, err, id)
			}
		}
		if list, err := tx.ListInstancesByServiceName(backslash.SpaceGUID, `name\u0000`); err != nil || len(list) != 1 {
			t.Errorf("ListInstancesByServiceName(name\\u0000) = %d instances, %v; want backslash", len(list), err)
		}
		return nil
	})

	// A previous-release replica moves f1 to another xsappname, plan and
	// name, and creates f9.
	f1 := storetest.NewInstance("f1")
	f1.Plan, f1.XSAppName, f1.SpaceGUID, f1.InstanceName, f1.ClientID = "broker", "moved!b1", "space-1", "moved", "cid-f1"
	f9 := storetest.NewInstance("f9")
	f9.XSAppName, f9.SpaceGUID, f9.InstanceName, f9.ClientID = "bookshop!t9", "space-1", "web", "cid-f9"
	for _, in := range []*store.Instance{f1, f9} {
		sqlExec(t, dbURL, upsertOldInstance, in.ID, in.ClientID, mustJSON(t, in))
	}
	storetest.MustView(t, s, func(tx store.Tx) error {
		if _, err := tx.GetInstanceByXSAppName("bookshop!t1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetInstanceByXSAppName(old xsappname of f1): %v, want ErrNotFound", err)
		}
		for name, id := range map[string]string{"moved!b1": "f1", "bookshop!t9": "f9"} {
			if in, err := tx.GetInstanceByXSAppName(name); err != nil || in.ID != id {
				t.Errorf("GetInstanceByXSAppName(%s) = %v, %v; want %s", name, in, err, id)
			}
		}
		for _, c := range []struct {
			plan, base string
			want       []string
		}{{"application", "bookshop", []string{"f2", "f5", "f9"}}, {"broker", "moved", []string{"f1"}}} {
			list, err := tx.ListInstancesByAppName(c.plan, c.base)
			if got := idsOf(list); err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ListInstancesByAppName(%s, %s) = %v, %v; want %v", c.plan, c.base, got, err, c.want)
			}
		}
		list, err := tx.ListInstancesByServiceName("space-1", "web")
		if got, want := idsOf(list), []string{"f2", "f9"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("ListInstancesByServiceName(space-1, web) = %v, %v; want %v", got, err, want)
		}
		return nil
	})
}

// TestIndexColumnsWithNUL: an instance whose indexed fields or other
// strings hold a NUL (JSON \u0000) is still written; a lookup by a NUL
// name, which no text column can hold, finds nothing.
func TestIndexColumnsWithNUL(t *testing.T) {
	s := openStore(t, freshSchema(t))
	in := storetest.NewInstance("i1")
	in.InstanceName = "a\x00b"
	in.XSAppName = "x\x00y!t1"
	in.Parameters = json.RawMessage(`{"description":"a\u0000b"}`)
	storetest.MustUpdate(t, s, func(tx store.Tx) error { return tx.CreateInstance(in) })
	storetest.MustView(t, s, func(tx store.Tx) error {
		got, err := tx.GetInstance("i1")
		if err != nil {
			return err
		}
		if got.InstanceName != in.InstanceName || string(got.Parameters) != string(in.Parameters) {
			t.Errorf("GetInstance = name %q, parameters %s; want %q, %s", got.InstanceName, got.Parameters, in.InstanceName, in.Parameters)
		}
		if _, err := tx.GetInstanceByXSAppName(in.XSAppName); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetInstanceByXSAppName(with NUL): %v, want ErrNotFound", err)
		}
		if list, err := tx.ListInstancesByServiceName(in.SpaceGUID, in.InstanceName); err != nil || len(list) != 0 {
			t.Errorf("ListInstancesByServiceName(with NUL) = %d, %v; want none", len(list), err)
		}
		return nil
	})
}

func idsOf(ins []*store.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

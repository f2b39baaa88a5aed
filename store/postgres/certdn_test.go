package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// insertOldBinding writes a binding as the release before migration 0003
// does: without the certificate DN columns.
func insertOldBinding(t *testing.T, dbURL string, b *store.Binding) {
	t.Helper()
	sqlExec(t, dbURL, `INSERT INTO bindings (id, instance_id, data) VALUES ($1, $2, $3)`, b.ID, b.InstanceID, mustJSON(t, b))
	if b.Cert != nil {
		sqlExec(t, dbURL, `INSERT INTO fingerprints (fingerprint, binding_id) VALUES ($1, $2)`, b.Cert.Fingerprint, b.ID)
	}
}

func bindingIDsOf(bs []*store.Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func checkCertDN(t *testing.T, tx store.Tx, subject, issuer string, want ...string) {
	t.Helper()
	list, err := tx.ListBindingsByCertDN(subject, issuer)
	if got := bindingIDsOf(list); err != nil || !slices.Equal(got, want) {
		t.Errorf("ListBindingsByCertDN(%q, %q) = %v, %v; want %v", subject, issuer, got, err, want)
	}
}

// TestCertDNMigration upgrades a schema at version 2, holding bindings
// the previous release wrote, and checks that migration 0003 indexes
// them, and that the writes of a previous-release replica (still running
// during a rolling upgrade) are indexed too.
func TestCertDNMigration(t *testing.T) {
	dbURL := freshSchema(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	sqlExec(t, dbURL, ms[0].sql)
	sqlExec(t, dbURL, ms[1].sql)
	sqlExec(t, dbURL, `CREATE TABLE schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)
	sqlExec(t, dbURL, `INSERT INTO schema_migrations (version, name) VALUES (1, $1), (2, $2)`, ms[0].name, ms[1].name)

	ins, bs := storetest.CertDNFixture()
	// Bindings whose JSON holds the escape \u0000, which PostgreSQL cannot
	// read as text: one with a NUL in a parameter, one with a NUL in its
	// subject, and one whose subject has a backslash followed by "u0000"
	// (the JSON "\\u0000").
	const issuer = "CN=ca,O=acme"
	nulParam := storetest.CertBinding("n1", "c1", "CN=nul-param", issuer)
	nulParam.Parameters = json.RawMessage(`{"description":"a\u0000b"}`)
	nulDN := storetest.CertBinding("n2", "c1", "CN=a\x00b", issuer)
	backslash := storetest.CertBinding("n3", "c1", `CN=a\u0000b`, issuer)
	bs = append(bs, nulParam, nulDN, backslash)
	for _, in := range ins {
		sqlExec(t, dbURL, upsertOldInstance, in.ID, in.ClientID, mustJSON(t, in))
	}
	for _, b := range bs {
		insertOldBinding(t, dbURL, b)
	}
	if t.Failed() {
		t.FailNow()
	}

	s := openStore(t, dbURL)
	if got, want := migrationVersions(t, s), wantVersions(t); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations = %v, want %v", got, want)
	}
	storetest.CheckCertDNFixture(t, s)
	storetest.MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, "CN=nul-param", issuer, "n1")
		checkCertDN(t, tx, `CN=a\u0000b`, issuer, "n3")
		// The NUL cannot be looked up (no text holds it), and the U+FFFD
		// its column holds instead must not find it.
		checkCertDN(t, tx, "CN=a\x00b", issuer)
		checkCertDN(t, tx, "CN=a\ufffdb", issuer)
		return nil
	})

	// A previous-release replica adds a binding, deletes one, and deletes
	// an instance with its bindings (the cascade).
	insertOldBinding(t, dbURL, storetest.CertBinding("e1", "c2", "CN=app", issuer))
	sqlExec(t, dbURL, `DELETE FROM bindings WHERE id = $1`, "d1")
	sqlExec(t, dbURL, `DELETE FROM instances WHERE id = $1`, "c1")
	storetest.MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, "CN=app,O=acme", issuer, "d3")
		checkCertDN(t, tx, "CN=app", issuer, "d4", "e1")
		checkCertDN(t, tx, "CN=app,O=acme", "CN=other-ca")
		checkCertDN(t, tx, "CN=nul-param", issuer)
		return nil
	})
}

// TestCertDNQueryUsesIndex: the lookup's query names the expressions of
// the index (hashes of the DNs) and implies its predicate, so that
// PostgreSQL can read the index instead of every binding.
func TestCertDNQueryUsesIndex(t *testing.T) {
	dbURL := freshSchema(t)
	openStore(t, dbURL)
	conn := connect(t, dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	// An empty table is read fastest without an index; forbid that, so
	// that the plan shows whether the index can serve the query at all.
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN "+bindingsByCertDN, "CN=app", "CN=ca")
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(plan, "\n"); !strings.Contains(text, "bindings_cert_dn") {
		t.Errorf("plan does not use index bindings_cert_dn:\n%s", text)
	}
}

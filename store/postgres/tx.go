package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ossbroker/btp-security-broker/store"
)

// errReadOnly is what write methods return inside View.
var errReadOnly = errors.New("postgres store: write in a read-only transaction")

// tx implements store.Tx on one PostgreSQL transaction.
//
// PostgreSQL aborts a transaction at the first failing statement, while
// store.Tx lets a caller carry on after ErrExists or ErrNotFound. So the
// methods check before they write and turn those outcomes into errors
// without a failing statement; a statement that fails all the same is
// recorded in err, and every later call and the commit fail with it.
type tx struct {
	ctx      context.Context
	tx       pgx.Tx
	readOnly bool
	// wrote says a statement changed a row, so Update must bump the
	// change counter.
	wrote bool
	// touched is what the writes changed that replicas cache, for the
	// change log. Saying too much is harmless, so it may be noted before
	// a write that then fails (and aborts the transaction anyway).
	touched touched
	err     error // the first database error
}

// touched collects what one Update changed, as Watch reports it
// (store.Change).
type touched struct {
	instances       map[string]struct{}
	roleCollections bool
	meta            bool
}

// instance notes a change to an instance, its bindings or the role
// collections it owns.
func (t *touched) instance(id string) {
	if t.instances == nil {
		t.instances = map[string]struct{}{}
	}
	t.instances[id] = struct{}{}
}

// owner notes a change to a role collection of owner ("" = the admin
// API's).
func (t *touched) owner(owner string) {
	if owner == "" {
		t.roleCollections = true
	} else {
		t.instance(owner)
	}
}

func (x *tx) writable() error {
	if x.readOnly {
		return errReadOnly
	}
	return x.aborted()
}

func (x *tx) aborted() error {
	if x.err != nil {
		return fmt.Errorf("postgres store: transaction aborted by an earlier error: %w", x.err)
	}
	return nil
}

// fail records err as the transaction's failure and returns it.
func (x *tx) fail(err error) error {
	if x.err == nil {
		x.err = err
	}
	return err
}

// storable reports whether key can be stored: PostgreSQL text is valid
// UTF-8 without NUL bytes. No stored record has another key, so lookups of
// one report ErrNotFound and writes of one are refused, both without
// sending a statement that would fail and abort the transaction.
func storable(key string) bool {
	return utf8.ValidString(key) && strings.IndexByte(key, 0) < 0
}

// storableKeys refuses the first key that cannot be stored.
func storableKeys(keys ...string) error {
	for _, k := range keys {
		if !storable(k) {
			return fmt.Errorf("postgres store: key %q is not valid UTF-8 text without NUL bytes", k)
		}
	}
	return nil
}

// exec runs a write statement and returns how many rows it changed.
func (x *tx) exec(sql string, args ...any) (int64, error) {
	if err := x.writable(); err != nil {
		return 0, err
	}
	tag, err := x.tx.Exec(x.ctx, sql, args...)
	if err != nil {
		return 0, x.fail(err)
	}
	n := tag.RowsAffected()
	if n > 0 {
		x.wrote = true
	}
	return n, nil
}

// execEphemeral is exec for the ephemeral table. Authorization codes and
// refresh tokens are never cached by a replica, so writing them does not
// bump the change counter: otherwise every login and refresh on one replica
// would make every replica reload its caches.
func (x *tx) execEphemeral(sql string, args ...any) (int64, error) {
	wrote := x.wrote
	n, err := x.exec(sql, args...)
	x.wrote = wrote
	return n, err
}

// insert is exec for a statement that adds a key the caller checked to be
// free. A unique violation means a concurrent transaction took it after
// this one's snapshot; the error says ErrExists, and Update, seeing the
// aborted transaction, runs fn again.
func (x *tx) insert(what string, sql string, args ...any) error {
	_, err := x.exec(sql, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%s: %w (%v)", what, store.ErrExists, err)
	}
	return err
}

// scan runs a query returning at most one row into dst. No row is
// store.ErrNotFound.
func (x *tx) scan(sql string, args []any, dst ...any) error {
	if err := x.aborted(); err != nil {
		return err
	}
	err := x.tx.QueryRow(x.ctx, sql, args...).Scan(dst...)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return x.fail(err)
	}
	return nil
}

// writeReturning runs a write statement returning at most one row into
// dst. No row (nothing written) is store.ErrNotFound.
func (x *tx) writeReturning(sql string, args []any, dst ...any) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := x.scan(sql, args, dst...); err != nil {
		return err
	}
	x.wrote = true
	return nil
}

// exists runs a query returning one boolean.
func (x *tx) exists(sql string, args ...any) (bool, error) {
	var ok bool
	err := x.scan(sql, args, &ok)
	return ok, err
}

// get returns the record a query selects as its one json column.
func get[T any](x *tx, key, sql string, args ...any) (*T, error) {
	var data []byte
	if err := x.scan(sql, args, &data); err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", key, err)
	}
	return out, nil
}

// list returns the records a query (or a DELETE ... RETURNING) selects as
// its one json column.
func list[T any](x *tx, sql string, args ...any) ([]*T, error) {
	if err := x.aborted(); err != nil {
		return nil, err
	}
	rows, err := x.tx.Query(x.ctx, sql, args...)
	if err != nil {
		return nil, x.fail(err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, x.fail(err)
	}
	out := make([]*T, 0, len(all))
	for _, data := range all {
		item := new(T)
		if err := json.Unmarshal(data, item); err != nil {
			return nil, fmt.Errorf("decode record: %w", err)
		}
		out = append(out, item)
	}
	return out, nil
}

// nullable maps the empty string to SQL NULL, for unique columns where
// empty means "none".
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nonNil stores a nil value as empty: the value columns are NOT NULL, and
// bbolt reads a nil value back as empty too.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

func (x *tx) GetInstance(id string) (*store.Instance, error) {
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	return get[store.Instance](x, id, `SELECT data FROM instances WHERE id = $1`, id)
}

func (x *tx) GetInstanceByClientID(cid string) (*store.Instance, error) {
	if !storable(cid) {
		return nil, store.ErrNotFound
	}
	return get[store.Instance](x, cid, `SELECT data FROM instances WHERE client_id = $1`, cid)
}

func (x *tx) ListInstances() ([]*store.Instance, error) {
	return list[store.Instance](x, `SELECT data FROM instances ORDER BY id`)
}

// The columns these lookups use are filled from the data column by a
// trigger (migrations/0002_instance_name_indexes.sql), so the writers need
// not set them.

func (x *tx) GetInstanceByXSAppName(name string) (*store.Instance, error) {
	if !storable(name) {
		return nil, store.ErrNotFound
	}
	return get[store.Instance](x, name, `SELECT data FROM instances WHERE xsappname = $1 ORDER BY id LIMIT 1`, name)
}

func (x *tx) ListInstancesByAppName(plan, base string) ([]*store.Instance, error) {
	if !storable(plan) || !storable(base) {
		return nil, nil
	}
	return list[store.Instance](x, `SELECT data FROM instances WHERE plan = $1 AND xsappname_base = $2 ORDER BY id`, plan, base)
}

func (x *tx) ListInstancesByServiceName(spaceGUID, name string) ([]*store.Instance, error) {
	if !storable(spaceGUID) || !storable(name) {
		return nil, nil
	}
	return list[store.Instance](x, `SELECT data FROM instances WHERE space_guid = $1 AND instance_name = $2 ORDER BY id`, spaceGUID, name)
}

func (x *tx) CreateInstance(in *store.Instance) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(in.ID, in.ClientID); err != nil {
		return err
	}
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	x.touched.instance(in.ID)
	// ON CONFLICT DO NOTHING skips a taken id or client id without
	// aborting the transaction. (A conflicting row committed after this
	// transaction's snapshot raises a serialization failure instead.)
	n, err := x.exec(`INSERT INTO instances (id, client_id, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		in.ID, nullable(in.ClientID), data)
	if err != nil || n == 1 {
		return err
	}
	taken, err := x.exists(`SELECT EXISTS (SELECT 1 FROM instances WHERE id = $1)`, in.ID)
	switch {
	case err != nil:
		return err
	case taken:
		return store.ErrExists
	}
	return fmt.Errorf("client id %q: %w", in.ClientID, store.ErrExists)
}

// PutInstance refuses a client id that belongs to another instance, as
// bbolt does: the index maps each client to one instance.
func (x *tx) PutInstance(in *store.Instance) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(in.ID, in.ClientID); err != nil {
		return err
	}
	if in.ClientID != "" {
		taken, err := x.exists(`SELECT EXISTS (SELECT 1 FROM instances WHERE client_id = $1 AND id <> $2)`, in.ClientID, in.ID)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("client id %q: %w", in.ClientID, store.ErrExists)
		}
	}
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	x.touched.instance(in.ID)
	return x.insert(fmt.Sprintf("client id %q", in.ClientID),
		`INSERT INTO instances (id, client_id, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET client_id = EXCLUDED.client_id, data = EXCLUDED.data`,
		in.ID, nullable(in.ClientID), data)
}

func (x *tx) DeleteInstance(id string) ([]*store.Binding, error) {
	if err := x.writable(); err != nil {
		return nil, err
	}
	// Check first: the owned role collections go only with an existing
	// instance.
	if _, err := x.GetInstance(id); err != nil {
		return nil, err
	}
	x.touched.instance(id)
	removed, err := list[store.Binding](x, `DELETE FROM bindings WHERE instance_id = $1 RETURNING data`, id)
	if err != nil {
		return nil, err
	}
	// Binding id order, as bbolt returns them.
	slices.SortFunc(removed, func(a, b *store.Binding) int { return strings.Compare(a.ID, b.ID) })
	if _, err := x.exec(`DELETE FROM role_collections WHERE owner = $1`, id); err != nil {
		return nil, err
	}
	if _, err := x.exec(`DELETE FROM instances WHERE id = $1`, id); err != nil {
		return nil, err
	}
	return removed, nil
}

func (x *tx) GetBinding(id string) (*store.Binding, error) {
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	return get[store.Binding](x, id, `SELECT data FROM bindings WHERE id = $1`, id)
}

func (x *tx) GetBindingByFingerprint(fp string) (*store.Binding, error) {
	if !storable(fp) {
		return nil, store.ErrNotFound
	}
	return get[store.Binding](x, fp,
		`SELECT b.data FROM fingerprints f JOIN bindings b ON b.id = f.binding_id WHERE f.fingerprint = $1`, fp)
}

func (x *tx) ListBindings(instanceID string) ([]*store.Binding, error) {
	if !storable(instanceID) {
		return nil, nil
	}
	return list[store.Binding](x, `SELECT data FROM bindings WHERE instance_id = $1 ORDER BY id`, instanceID)
}

// bindingsByCertDN selects the bindings with certificate subject $1 and
// issuer $2.
const bindingsByCertDN = `SELECT data FROM bindings
	WHERE md5(cert_subject) = md5($1) AND md5(cert_issuer) = md5($2)
		AND cert_subject = $1 AND cert_issuer = $2
	ORDER BY id`

// ListBindingsByCertDN reads the columns and the index of
// migrations/0003_binding_cert_dn_index.sql, filled by a trigger. The
// index holds hashes of the DNs, so the query names the same md5
// expressions to use it, and compares the DNs themselves as well. The
// bindings found are compared again here: a DN with a NUL is stored in
// its column with U+FFFD in place of the NUL, and must not match a
// lookup of that other DN.
func (x *tx) ListBindingsByCertDN(subject, issuer string) ([]*store.Binding, error) {
	if subject == "" || issuer == "" || !storable(subject) || !storable(issuer) {
		return nil, nil
	}
	found, err := list[store.Binding](x, bindingsByCertDN, subject, issuer)
	if err != nil {
		return nil, err
	}
	out := found[:0]
	for _, b := range found {
		if b.Cert != nil && b.Cert.Subject == subject && b.Cert.Issuer == issuer {
			out = append(out, b)
		}
	}
	return out, nil
}

func (x *tx) CreateBinding(b *store.Binding) error {
	if err := x.writable(); err != nil {
		return err
	}
	var fp *string
	if b.Cert != nil {
		fp = &b.Cert.Fingerprint
	}
	keys := []string{b.ID, b.InstanceID}
	if fp != nil {
		keys = append(keys, *fp)
	}
	if err := storableKeys(keys...); err != nil {
		return err
	}
	// The checks of bbolt, in bbolt's order, in one round trip.
	var idTaken, instanceExists, fpTaken bool
	err := x.scan(`SELECT
			EXISTS (SELECT 1 FROM bindings WHERE id = $1),
			EXISTS (SELECT 1 FROM instances WHERE id = $2),
			EXISTS (SELECT 1 FROM fingerprints WHERE fingerprint = $3)`,
		[]any{b.ID, b.InstanceID, fp}, &idTaken, &instanceExists, &fpTaken)
	switch {
	case err != nil:
		return err
	case idTaken:
		return store.ErrExists
	case !instanceExists:
		return fmt.Errorf("instance %s: %w", b.InstanceID, store.ErrNotFound)
	case fpTaken:
		return fmt.Errorf("certificate %s: %w", *fp, store.ErrExists)
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	x.touched.instance(b.InstanceID)
	if err := x.insert("binding "+b.ID,
		`INSERT INTO bindings (id, instance_id, data) VALUES ($1, $2, $3)`, b.ID, b.InstanceID, data); err != nil {
		return err
	}
	if fp == nil {
		return nil
	}
	return x.insert("certificate "+*fp,
		`INSERT INTO fingerprints (fingerprint, binding_id) VALUES ($1, $2)`, *fp, b.ID)
}

// DeleteBinding deletes the binding; its fingerprint goes with it (ON
// DELETE CASCADE).
func (x *tx) DeleteBinding(id string) (*store.Binding, error) {
	if err := x.writable(); err != nil {
		return nil, err
	}
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	removed, err := list[store.Binding](x, `DELETE FROM bindings WHERE id = $1 RETURNING data`, id)
	if err != nil {
		return nil, err
	}
	if len(removed) == 0 {
		return nil, store.ErrNotFound
	}
	x.wrote = true
	x.touched.instance(removed[0].InstanceID)
	return removed[0], nil
}

func (x *tx) GetRoleCollection(name string) (*store.RoleCollection, error) {
	if !storable(name) {
		return nil, store.ErrNotFound
	}
	return get[store.RoleCollection](x, name, `SELECT data FROM role_collections WHERE name = $1`, name)
}

func (x *tx) ListRoleCollections() ([]*store.RoleCollection, error) {
	return list[store.RoleCollection](x, `SELECT data FROM role_collections ORDER BY name`)
}

func (x *tx) ListRoleCollectionsByOwner(owner string) ([]*store.RoleCollection, error) {
	if !storable(owner) {
		return nil, nil
	}
	return list[store.RoleCollection](x, `SELECT data FROM role_collections WHERE owner = $1 ORDER BY name`, owner)
}

func (x *tx) PutRoleCollection(rc *store.RoleCollection) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(rc.Name, rc.Owner); err != nil {
		return err
	}
	data, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	x.touched.owner(rc.Owner)
	// A collection that changes owner leaves the previous owner's set, so
	// that owner changed too: the statement returns it (NULL for a new
	// collection; the CTE sees the table as it was before the statement).
	var previous *string
	if err := x.writeReturning(`WITH old AS (SELECT owner FROM role_collections WHERE name = $1)
		INSERT INTO role_collections (name, owner, data) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, data = EXCLUDED.data
		RETURNING (SELECT owner FROM old)`,
		[]any{rc.Name, rc.Owner, data}, &previous); err != nil {
		return err
	}
	if previous != nil {
		x.touched.owner(*previous)
	}
	return nil
}

func (x *tx) DeleteRoleCollection(name string) error {
	if err := x.writable(); err != nil {
		return err
	}
	if !storable(name) {
		return store.ErrNotFound
	}
	var owner string
	if err := x.writeReturning(`DELETE FROM role_collections WHERE name = $1 RETURNING owner`,
		[]any{name}, &owner); err != nil {
		return err
	}
	x.touched.owner(owner)
	return nil
}

func (x *tx) GetUser(id string) (*store.User, error) {
	if !storable(id) {
		return nil, store.ErrNotFound
	}
	return get[store.User](x, id, `SELECT data FROM users WHERE id = $1`, id)
}

func (x *tx) GetUserByName(username string) (*store.User, error) {
	if !storable(username) {
		return nil, store.ErrNotFound
	}
	return get[store.User](x, username, `SELECT data FROM users WHERE username = $1`, username)
}

func (x *tx) ListUsers() ([]*store.User, error) {
	return list[store.User](x, `SELECT data FROM users ORDER BY id`)
}

func (x *tx) PutUser(u *store.User) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(u.ID, u.Username); err != nil {
		return err
	}
	taken, err := x.exists(`SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND id <> $2)`, u.Username, u.ID)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("username %q: %w", u.Username, store.ErrExists)
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return x.insert(fmt.Sprintf("username %q", u.Username),
		`INSERT INTO users (id, username, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, data = EXCLUDED.data`,
		u.ID, u.Username, data)
}

func (x *tx) DeleteUser(id string) error {
	if err := x.writable(); err != nil {
		return err
	}
	if !storable(id) {
		return store.ErrNotFound
	}
	n, err := x.exec(`DELETE FROM users WHERE id = $1`, id)
	if err == nil && n == 0 {
		return store.ErrNotFound
	}
	return err
}

func (x *tx) PutEphemeral(key string, value []byte, expires time.Time) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(key); err != nil {
		return err
	}
	_, err := x.execEphemeral(`INSERT INTO ephemeral (key, expires_at, value) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = EXCLUDED.value`,
		key, expires.UnixNano(), nonNil(value))
	return err
}

func (x *tx) GetEphemeral(key string, now time.Time) ([]byte, error) {
	if !storable(key) {
		return nil, store.ErrNotFound
	}
	var v []byte
	if err := x.scan(`SELECT value FROM ephemeral WHERE key = $1 AND expires_at > $2`,
		[]any{key, now.UnixNano()}, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// DeleteEphemeral deletes the record if there is one; like bbolt it does
// not report a missing key.
func (x *tx) DeleteEphemeral(key string) error {
	if err := x.writable(); err != nil {
		return err
	}
	if !storable(key) {
		return nil
	}
	_, err := x.execEphemeral(`DELETE FROM ephemeral WHERE key = $1`, key)
	return err
}

func (x *tx) PurgeEphemeral(now time.Time) (int, error) {
	n, err := x.execEphemeral(`DELETE FROM ephemeral WHERE expires_at <= $1`, now.UnixNano())
	return int(n), err
}

func (x *tx) GetMeta(key string) ([]byte, error) {
	if !storable(key) {
		return nil, store.ErrNotFound
	}
	var v []byte
	if err := x.scan(`SELECT value FROM meta WHERE key = $1`, []any{key}, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func (x *tx) PutMeta(key string, value []byte) error {
	if err := x.writable(); err != nil {
		return err
	}
	if err := storableKeys(key); err != nil {
		return err
	}
	x.touched.meta = true
	_, err := x.exec(`INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, nonNil(value))
	return err
}

func (x *tx) NextSequence(name string) (uint64, error) {
	if err := x.writable(); err != nil {
		return 0, err
	}
	if err := storableKeys(name); err != nil {
		return 0, err
	}
	var n int64
	if err := x.scan(`INSERT INTO sequences (name, value) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 RETURNING value`,
		[]any{name}, &n); err != nil {
		return 0, err
	}
	x.wrote = true
	return uint64(n), nil
}

// Package bolt implements store.Store on an embedded bbolt file: the
// broker's zero-configuration default. bbolt serialises writers and fsyncs on
// every commit, so an acknowledged OSB call survives a crash.
package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/ossbroker/btp-security-broker/internal/parallel"
	"github.com/ossbroker/btp-security-broker/store"
)

var (
	bInstances       = []byte("instances")         // id → Instance
	bClients         = []byte("clients")           // client id → instance id
	bBindings        = []byte("bindings")          // id → Binding
	bInstanceBinding = []byte("instance_bindings") // bindingKey(instance id, binding id) → ""
	bFingerprints    = []byte("fingerprints")      // certificate fingerprint → binding id
	bRoleCollections = []byte("role_collections")  // name → RoleCollection
	bMeta            = []byte("meta")              // key → value
	bSequences       = []byte("sequences")         // name → decimal counter
	bUsers           = []byte("users")             // id → User
	bUsernames       = []byte("usernames")         // username → id
	bEphemeral       = []byte("ephemeral")         // key → expiry (8 bytes, unix nanoseconds) + value
	// Secondary indexes. Their keys are indexKey(record key, fields...):
	// a prefix scan finds the records with given field values, in record
	// key order.
	bXSAppNames     = []byte("xsappnames")            // indexKey(instance id, xsappname) → ""
	bAppNames       = []byte("app_names")             // indexKey(instance id, plan, BaseAppName(xsappname)) → ""
	bServiceNames   = []byte("service_names")         // indexKey(instance id, space guid, instance name) → ""
	bRoleCollOwners = []byte("role_collection_owner") // indexKey(role collection name, owner) → ""
	bCertDNs        = []byte("cert_dns")              // certDNPrefix(subject, issuer) + binding id → ""
	allBuckets      = [][]byte{bInstances, bClients, bBindings, bInstanceBinding, bFingerprints, bRoleCollections, bMeta, bSequences, bUsers, bUsernames, bEphemeral,
		bXSAppNames, bAppNames, bServiceNames, bRoleCollOwners, bCertDNs}
)

// Store is a bbolt-backed store.Store.
type Store struct {
	db *bbolt.DB
}

// Open opens (creating if needed) the store file at path with 0600
// permissions. It fails fast if another process holds the file.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is another broker using this data dir?)", path, err)
	}
	err = db.Update(func(t *bbolt.Tx) error {
		created := map[string]bool{}
		for _, b := range allBuckets {
			if t.Bucket(b) != nil {
				continue
			}
			if _, err := t.CreateBucket(b); err != nil {
				return err
			}
			created[string(b)] = true
		}
		// An index bucket that is new in a file with records (written by a
		// release without that index) is built here, once, in the same
		// transaction that creates it: a later Open finds it and skips
		// this.
		return backfillIndexes(&tx{t}, created)
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db}, nil
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.db.Path() }

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(t *bbolt.Tx) error { return fn(&tx{t}) })
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.View(ctx, func(t store.Tx) error {
		_, err := t.GetMeta("ping")
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

type tx struct{ t *bbolt.Tx }

func get[T any](b *bbolt.Bucket, key string) (*T, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	out := new(T)
	if err := json.Unmarshal(v, out); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", key, err)
	}
	return out, nil
}

func put(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func list[T any](b *bbolt.Bucket) ([]*T, error) {
	// The values stay valid until the transaction ends, so they are
	// collected without copying and decoded afterwards, on every core
	// for a long list: JSON decoding is most of the cost of reading the
	// instances of a large zone when the token server starts.
	var keys, values [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		keys, values = append(keys, k), append(values, v)
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]*T, len(values))
	err := parallel.Ranges(len(values), parallelDecodeMin, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			item := new(T)
			if err := json.Unmarshal(values[i], item); err != nil {
				return fmt.Errorf("decode %s: %w", keys[i], err)
			}
			out[i] = item
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parallelDecodeMin is the fewest records list gives one decoding
// goroutine.
const parallelDecodeMin = 512

func (x *tx) b(name []byte) *bbolt.Bucket { return x.t.Bucket(name) }

func (x *tx) GetInstance(id string) (*store.Instance, error) {
	return get[store.Instance](x.b(bInstances), id)
}

func (x *tx) GetInstanceByClientID(cid string) (*store.Instance, error) {
	id := x.b(bClients).Get([]byte(cid))
	if id == nil {
		return nil, store.ErrNotFound
	}
	return x.GetInstance(string(id))
}

func (x *tx) ListInstances() ([]*store.Instance, error) {
	return list[store.Instance](x.b(bInstances))
}

func (x *tx) CreateInstance(in *store.Instance) error {
	if x.b(bInstances).Get([]byte(in.ID)) != nil {
		return store.ErrExists
	}
	return x.PutInstance(in)
}

// PutInstance refuses a client id that belongs to another instance: the
// index maps each client to one instance, and overwriting it would leave
// the other instance unreachable by its client id (and later let deleting
// either instance remove the other's index entry).
func (x *tx) PutInstance(in *store.Instance) error {
	clients := x.b(bClients)
	if in.ClientID != "" {
		if owner := clients.Get([]byte(in.ClientID)); owner != nil && string(owner) != in.ID {
			return fmt.Errorf("client id %q: %w", in.ClientID, store.ErrExists)
		}
	}
	old, err := x.GetInstance(in.ID)
	switch {
	case err == nil:
		if old.ClientID != "" && old.ClientID != in.ClientID {
			if err := clients.Delete([]byte(old.ClientID)); err != nil {
				return err
			}
		}
		if err := x.deleteEntries(instanceIndexEntries(old)); err != nil {
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if in.ClientID != "" {
		if err := clients.Put([]byte(in.ClientID), []byte(in.ID)); err != nil {
			return err
		}
	}
	if err := x.putEntries(instanceIndexEntries(in)); err != nil {
		return err
	}
	return put(x.b(bInstances), in.ID, in)
}

// indexEntry is one key of a secondary index bucket.
type indexEntry struct {
	bucket []byte
	key    []byte
}

// indexPrefix encodes field values as the start of index keys: each
// value's length, then the value. With the lengths in front no list of
// values encodes to a prefix of another's (see bindingPrefix).
func indexPrefix(fields ...string) []byte {
	var p []byte
	for _, f := range fields {
		p = binary.AppendUvarint(p, uint64(len(f)))
		p = append(p, f...)
	}
	return p
}

// indexKey is the index key of the record with key id and these field
// values. The id comes last, unprefixed, so that the records sharing the
// values sort by id.
func indexKey(id string, fields ...string) []byte {
	return append(indexPrefix(fields...), id...)
}

// instanceIndexEntries are the secondary index keys of an instance.
func instanceIndexEntries(in *store.Instance) []indexEntry {
	var out []indexEntry
	if in.XSAppName != "" {
		out = append(out,
			indexEntry{bXSAppNames, indexKey(in.ID, in.XSAppName)},
			indexEntry{bAppNames, indexKey(in.ID, in.Plan, store.BaseAppName(in.XSAppName))})
	}
	if in.InstanceName != "" {
		out = append(out, indexEntry{bServiceNames, indexKey(in.ID, in.SpaceGUID, in.InstanceName)})
	}
	return out
}

func roleCollectionIndexEntries(rc *store.RoleCollection) []indexEntry {
	return []indexEntry{{bRoleCollOwners, indexKey(rc.Name, rc.Owner)}}
}

// certDNPrefix is the cert_dns key prefix of the certificates with this
// subject and issuer DN: the SHA-256 of their indexPrefix. The DNs of a
// certificate the user brought have no length limit, and bbolt refuses
// keys over 32 KiB; the hash keeps every key short. The lookup compares
// the DNs of the bindings it reads, so a collision could not return a
// wrong binding either.
func certDNPrefix(subject, issuer string) []byte {
	sum := sha256.Sum256(indexPrefix(subject, issuer))
	return sum[:]
}

// bindingIndexEntries are the secondary index keys of a binding: its
// certificate's DNs, unless it has no certificate or one of them is empty
// (see store.Tx.ListBindingsByCertDN).
func bindingIndexEntries(b *store.Binding) []indexEntry {
	if b.Cert == nil || b.Cert.Subject == "" || b.Cert.Issuer == "" {
		return nil
	}
	return []indexEntry{{bCertDNs, append(certDNPrefix(b.Cert.Subject, b.Cert.Issuer), b.ID...)}}
}

func (x *tx) putEntries(entries []indexEntry) error {
	for _, e := range entries {
		if err := x.b(e.bucket).Put(e.key, []byte{}); err != nil {
			return err
		}
	}
	return nil
}

func (x *tx) deleteEntries(entries []indexEntry) error {
	for _, e := range entries {
		if err := x.b(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	return nil
}

// scanIndex returns the record keys an index holds under these field
// values, in key order.
func (x *tx) scanIndex(bucket []byte, fields ...string) []string {
	return x.scanPrefix(bucket, indexPrefix(fields...))
}

// scanPrefix returns what follows prefix in the keys of an index that
// start with it, in key order.
func (x *tx) scanPrefix(bucket, prefix []byte) []string {
	var keys []string
	c := x.b(bucket).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, string(k[len(prefix):]))
	}
	return keys
}

// eachRecord decodes the records of a bucket one at a time (unlike list,
// which holds them all: a backfill may read a million bindings).
func eachRecord[T any](b *bbolt.Bucket, what string, fn func(*T)) error {
	return b.ForEach(func(k, v []byte) error {
		item := new(T)
		if err := json.Unmarshal(v, item); err != nil {
			return fmt.Errorf("index %s %s: %w", what, k, err)
		}
		fn(item)
		return nil
	})
}

// backfillIndexes fills the index buckets named in created from the
// records, for a file written before those indexes existed. The keys are
// put in key order: bbolt appends those to the last page instead of
// splitting pages all over the tree, several times faster for a large
// store.
func backfillIndexes(x *tx, created map[string]bool) error {
	keys := map[string][][]byte{}
	collect := func(entries []indexEntry) {
		for _, e := range entries {
			if created[string(e.bucket)] {
				keys[string(e.bucket)] = append(keys[string(e.bucket)], e.key)
			}
		}
	}
	var err error
	if created[string(bXSAppNames)] || created[string(bAppNames)] || created[string(bServiceNames)] {
		err = eachRecord(x.b(bInstances), "instance", func(in *store.Instance) { collect(instanceIndexEntries(in)) })
	}
	if err == nil && created[string(bRoleCollOwners)] {
		err = eachRecord(x.b(bRoleCollections), "role collection", func(rc *store.RoleCollection) { collect(roleCollectionIndexEntries(rc)) })
	}
	if err == nil && created[string(bCertDNs)] {
		err = eachRecord(x.b(bBindings), "binding", func(b *store.Binding) { collect(bindingIndexEntries(b)) })
	}
	if err != nil {
		return err
	}
	for bucket, ks := range keys {
		slices.SortFunc(ks, bytes.Compare)
		b := x.b([]byte(bucket))
		for _, k := range ks {
			if err := b.Put(k, []byte{}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *tx) instancesByIndex(bucket []byte, fields ...string) ([]*store.Instance, error) {
	var out []*store.Instance
	for _, id := range x.scanIndex(bucket, fields...) {
		in, err := x.GetInstance(id)
		if err != nil {
			return nil, fmt.Errorf("index %s: instance %s: %w", bucket, id, err)
		}
		out = append(out, in)
	}
	return out, nil
}

func (x *tx) GetInstanceByXSAppName(name string) (*store.Instance, error) {
	if name == "" {
		return nil, store.ErrNotFound
	}
	prefix := indexPrefix(name)
	k, _ := x.b(bXSAppNames).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, store.ErrNotFound
	}
	return x.GetInstance(string(k[len(prefix):]))
}

func (x *tx) ListInstancesByAppName(plan, base string) ([]*store.Instance, error) {
	return x.instancesByIndex(bAppNames, plan, base)
}

func (x *tx) ListInstancesByServiceName(spaceGUID, name string) ([]*store.Instance, error) {
	if name == "" {
		return nil, nil
	}
	return x.instancesByIndex(bServiceNames, spaceGUID, name)
}

func (x *tx) DeleteInstance(id string) ([]*store.Binding, error) {
	in, err := x.GetInstance(id)
	if err != nil {
		return nil, err
	}
	bindings, err := x.ListBindings(id)
	if err != nil {
		return nil, err
	}
	for _, b := range bindings {
		if _, err := x.DeleteBinding(b.ID); err != nil {
			return nil, err
		}
	}
	// The names are collected before deleting: bbolt cursors may skip
	// keys when the bucket changes under them.
	for _, name := range x.scanIndex(bRoleCollOwners, id) {
		if err := x.DeleteRoleCollection(name); err != nil {
			return nil, err
		}
	}
	if in.ClientID != "" {
		if err := x.b(bClients).Delete([]byte(in.ClientID)); err != nil {
			return nil, err
		}
	}
	if err := x.deleteEntries(instanceIndexEntries(in)); err != nil {
		return nil, err
	}
	return bindings, x.b(bInstances).Delete([]byte(id))
}

func (x *tx) GetBinding(id string) (*store.Binding, error) {
	return get[store.Binding](x.b(bBindings), id)
}

func (x *tx) GetBindingByFingerprint(fp string) (*store.Binding, error) {
	id := x.b(bFingerprints).Get([]byte(fp))
	if id == nil {
		return nil, store.ErrNotFound
	}
	return x.GetBinding(string(id))
}

// bindingPrefix is the instance_bindings key prefix of one instance: the
// id's length, then the id. With the length in front no instance's prefix
// is a prefix of another's, whatever characters the ids contain (a plain
// separator such as "/" would let instance "a" list the bindings of
// instance "a/b").
func bindingPrefix(instanceID string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(instanceID))), instanceID...)
}

// bindingKey is the instance_bindings key of one binding.
func bindingKey(instanceID, bindingID string) []byte {
	return append(bindingPrefix(instanceID), bindingID...)
}

func (x *tx) ListBindings(instanceID string) ([]*store.Binding, error) {
	var out []*store.Binding
	prefix := bindingPrefix(instanceID)
	c := x.b(bInstanceBinding).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		b, err := x.GetBinding(string(k[len(prefix):]))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (x *tx) ListBindingsByCertDN(subject, issuer string) ([]*store.Binding, error) {
	if subject == "" || issuer == "" {
		return nil, nil
	}
	var out []*store.Binding
	for _, id := range x.scanPrefix(bCertDNs, certDNPrefix(subject, issuer)) {
		b, err := x.GetBinding(id)
		if err != nil {
			return nil, fmt.Errorf("index %s: binding %s: %w", bCertDNs, id, err)
		}
		if b.Cert != nil && b.Cert.Subject == subject && b.Cert.Issuer == issuer {
			out = append(out, b)
		}
	}
	return out, nil
}

func (x *tx) CreateBinding(b *store.Binding) error {
	if x.b(bBindings).Get([]byte(b.ID)) != nil {
		return store.ErrExists
	}
	if x.b(bInstances).Get([]byte(b.InstanceID)) == nil {
		return fmt.Errorf("instance %s: %w", b.InstanceID, store.ErrNotFound)
	}
	if b.Cert != nil {
		if x.b(bFingerprints).Get([]byte(b.Cert.Fingerprint)) != nil {
			return fmt.Errorf("certificate %s: %w", b.Cert.Fingerprint, store.ErrExists)
		}
		if err := x.b(bFingerprints).Put([]byte(b.Cert.Fingerprint), []byte(b.ID)); err != nil {
			return err
		}
	}
	if err := x.b(bInstanceBinding).Put(bindingKey(b.InstanceID, b.ID), []byte{}); err != nil {
		return err
	}
	if err := x.putEntries(bindingIndexEntries(b)); err != nil {
		return err
	}
	return put(x.b(bBindings), b.ID, b)
}

func (x *tx) DeleteBinding(id string) (*store.Binding, error) {
	b, err := x.GetBinding(id)
	if err != nil {
		return nil, err
	}
	if b.Cert != nil {
		if err := x.b(bFingerprints).Delete([]byte(b.Cert.Fingerprint)); err != nil {
			return nil, err
		}
	}
	if err := x.b(bInstanceBinding).Delete(bindingKey(b.InstanceID, b.ID)); err != nil {
		return nil, err
	}
	if err := x.deleteEntries(bindingIndexEntries(b)); err != nil {
		return nil, err
	}
	return b, x.b(bBindings).Delete([]byte(id))
}

func (x *tx) GetRoleCollection(name string) (*store.RoleCollection, error) {
	return get[store.RoleCollection](x.b(bRoleCollections), name)
}

func (x *tx) ListRoleCollections() ([]*store.RoleCollection, error) {
	return list[store.RoleCollection](x.b(bRoleCollections))
}

func (x *tx) ListRoleCollectionsByOwner(owner string) ([]*store.RoleCollection, error) {
	var out []*store.RoleCollection
	for _, name := range x.scanIndex(bRoleCollOwners, owner) {
		rc, err := x.GetRoleCollection(name)
		if err != nil {
			return nil, fmt.Errorf("index %s: role collection %s: %w", bRoleCollOwners, name, err)
		}
		out = append(out, rc)
	}
	return out, nil
}

func (x *tx) PutRoleCollection(rc *store.RoleCollection) error {
	old, err := x.GetRoleCollection(rc.Name)
	switch {
	case err == nil:
		if err := x.deleteEntries(roleCollectionIndexEntries(old)); err != nil {
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := x.putEntries(roleCollectionIndexEntries(rc)); err != nil {
		return err
	}
	return put(x.b(bRoleCollections), rc.Name, rc)
}

func (x *tx) DeleteRoleCollection(name string) error {
	rc, err := x.GetRoleCollection(name)
	if err != nil {
		return err
	}
	if err := x.deleteEntries(roleCollectionIndexEntries(rc)); err != nil {
		return err
	}
	return x.b(bRoleCollections).Delete([]byte(name))
}

func (x *tx) GetMeta(key string) ([]byte, error) {
	v := x.b(bMeta).Get([]byte(key))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (x *tx) PutMeta(key string, value []byte) error {
	// bbolt keeps a nil value as nil until commit, so Get in the same
	// transaction would report the key missing; store nil as empty.
	if value == nil {
		value = []byte{}
	}
	return x.b(bMeta).Put([]byte(key), value)
}

func (x *tx) NextSequence(name string) (uint64, error) {
	b := x.b(bSequences)
	var n uint64
	if v := b.Get([]byte(name)); v != nil {
		var err error
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("sequence %s: %w", name, err)
		}
	}
	n++
	return n, b.Put([]byte(name), []byte(strconv.FormatUint(n, 10)))
}

func (x *tx) GetUser(id string) (*store.User, error) {
	return get[store.User](x.b(bUsers), id)
}

func (x *tx) GetUserByName(username string) (*store.User, error) {
	id := x.b(bUsernames).Get([]byte(username))
	if id == nil {
		return nil, store.ErrNotFound
	}
	return x.GetUser(string(id))
}

func (x *tx) ListUsers() ([]*store.User, error) {
	return list[store.User](x.b(bUsers))
}

func (x *tx) PutUser(u *store.User) error {
	if id := x.b(bUsernames).Get([]byte(u.Username)); id != nil && string(id) != u.ID {
		return fmt.Errorf("username %q: %w", u.Username, store.ErrExists)
	}
	old, err := x.GetUser(u.ID)
	switch {
	case err == nil && old.Username != u.Username:
		if err := x.b(bUsernames).Delete([]byte(old.Username)); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := x.b(bUsernames).Put([]byte(u.Username), []byte(u.ID)); err != nil {
		return err
	}
	return put(x.b(bUsers), u.ID, u)
}

func (x *tx) DeleteUser(id string) error {
	u, err := x.GetUser(id)
	if err != nil {
		return err
	}
	if err := x.b(bUsernames).Delete([]byte(u.Username)); err != nil {
		return err
	}
	return x.b(bUsers).Delete([]byte(id))
}

func (x *tx) PutEphemeral(key string, value []byte, expires time.Time) error {
	v := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(v, uint64(expires.UnixNano()))
	copy(v[8:], value)
	return x.b(bEphemeral).Put([]byte(key), v)
}

func (x *tx) GetEphemeral(key string, now time.Time) ([]byte, error) {
	v := x.b(bEphemeral).Get([]byte(key))
	if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v[8:]...), nil
}

func (x *tx) DeleteEphemeral(key string) error {
	return x.b(bEphemeral).Delete([]byte(key))
}

func (x *tx) PurgeEphemeral(now time.Time) (int, error) {
	var expired [][]byte
	err := x.b(bEphemeral).ForEach(func(k, v []byte) error {
		if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
			expired = append(expired, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range expired {
		if err := x.b(bEphemeral).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(expired), nil
}

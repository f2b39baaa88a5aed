package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/internal/parallel"
	"github.com/ossbroker/btp-security-broker/store"
)

// client is an OAuth client as the token endpoint sees it: one per service
// instance, shared by all its bindings, each binding with its own secret or
// certificate.
//
// A client is immutable once in a table except for its credentials, which
// are read from the store on first use (see clientTable.credsOf): a broker
// with a million bindings starts without reading them, and keeps in memory
// only those of clients that asked for tokens. A change of the instance or
// of its bindings replaces the whole client.
type client struct {
	ID       string
	Instance *store.Instance
	// App and Descriptor are set for xsuaa instances.
	App        *grants.App
	Descriptor *descriptor.Descriptor
	// Identity is set for identity instances.
	Identity *descriptor.IdentityConfig

	loadMu sync.Mutex // serialises the first load of creds
	creds  atomic.Pointer[clientCreds]
	// loaded is when the client was read from the store (unix nanoseconds).
	loaded int64
}

// clientCreds are the credentials of a client's live bindings.
type clientCreds struct {
	// secrets maps SHA-256(secret) to the binding id it belongs to.
	secrets map[[32]byte]string
	// certs lists the certificates of the client's bindings.
	certs []*clientCert
	// bindings holds the ids of the client's live bindings: refresh tokens
	// and codes remember the binding they were issued to and die with it.
	bindings map[string]bool
}

var noCreds = &clientCreds{secrets: map[[32]byte]string{}, bindings: map[string]bool{}}

type clientCert struct {
	BindingID string
	Rec       *store.CertRecord
}

// clientTable holds every client of the zone, the grants directory and the
// role collections. Token requests read it without touching the store
// (except for the first use of a client's credentials). It is kept current
// one instance at a time (clients.apply), so that a provision or bind
// costs the same with a hundred instances as with a hundred thousand; a
// full rebuild makes a new table.
type clientTable struct {
	st store.Store

	mu            sync.RWMutex
	byID          map[string]*client
	byInstance    map[string]*client
	byFingerprint map[string]*client // certificates of clients whose creds are loaded
	// identities indexes identity clients by space and instance name
	// (consumed-services, resource= and x-azp lookups).
	identities map[[2]string]*client
	// roleCollections are the zone's role collections by name, owned the
	// names each instance owns (to withdraw them when it changes).
	roleCollections map[string]*store.RoleCollection
	owned           map[string][]string
	dir             *grants.Directory
	// floor is the ticket taken when the table was built, applied the
	// ticket of the last read applied per instance (see clients).
	floor   uint64
	applied map[string]uint64
}

// clients holds the current table.
//
// Changes are applied as "read, then apply": a change's store read runs
// without locks (so token requests are not held up by I/O), and the
// result is applied under mu (and, by the Server, with token requests
// paused). Reads can finish out of order, so each takes a ticket before it
// starts, and a table applies a read only if it began after the table's
// own build and after the last read it applied for the same instance: a
// later read saw everything an earlier one did.
type clients struct {
	st      store.Store
	table   atomic.Pointer[clientTable]
	stale   atomic.Bool
	tickets atomic.Uint64
	mu      sync.Mutex // serialises full rebuilds and applying reads
}

func newClients(st store.Store) *clients {
	c := &clients{st: st}
	c.stale.Store(true)
	return c
}

// Invalidate marks the whole table stale: the next request rebuilds it.
// Used when the change is not described (another replica's commit that
// the change log cannot name), or a change could not be read.
func (c *clients) Invalidate() { c.stale.Store(true) }

// instanceRead is what the store held for one instance when it was read.
type instanceRead struct {
	ticket     uint64
	instanceID string
	in         *store.Instance // nil: deleted
	client     *client         // nil: deleted
	rcs        []*store.RoleCollection
}

// readInstance reads one instance and the role collections it owns.
func (c *clients) readInstance(ctx context.Context, instanceID string) (*instanceRead, error) {
	r := &instanceRead{ticket: c.tickets.Add(1), instanceID: instanceID}
	err := c.st.View(ctx, func(tx store.Tx) error {
		in, err := tx.GetInstance(instanceID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			r.in = in
		}
		r.rcs, err = tx.ListRoleCollectionsByOwner(instanceID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.in != nil {
		if r.client, err = newClient(r.in, time.Now().UnixNano()); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// readRoleCollections reads the role collections of one owner ("" = the
// admin API's).
func (c *clients) readRoleCollections(ctx context.Context, owner string) (*instanceRead, error) {
	r := &instanceRead{ticket: c.tickets.Add(1), instanceID: rcOwnerKey(owner)}
	err := c.st.View(ctx, func(tx store.Tx) error {
		var err error
		r.rcs, err = tx.ListRoleCollectionsByOwner(owner)
		return err
	})
	return r, err
}

// rcOwnerKey keys reads of role collections alone in clientTable.applied;
// instance ids are UUIDs, so it cannot clash with one.
func rcOwnerKey(owner string) string { return "\x00role-collections:" + owner }

// apply applies a read to the current table, unless the table is about to
// be rebuilt anyway or the read is older than what the table holds.
func (c *clients) apply(r *instanceRead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.table.Load()
	if t == nil || c.stale.Load() {
		return // the next request rebuilds everything
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.ticket <= t.floor || r.ticket <= t.applied[r.instanceID] {
		return
	}
	t.applied[r.instanceID] = r.ticket
	if owner, ok := strings.CutPrefix(r.instanceID, rcOwnerKey("")); ok {
		t.replaceOwnedLocked(owner, r.rcs)
		return
	}
	t.applyInstanceLocked(r)
}

// Table returns the current table, rebuilding it first if it is stale.
func (c *clients) Table(ctx context.Context) (*clientTable, error) {
	if t := c.table.Load(); t != nil && !c.stale.Load() {
		return t, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.table.Load(); t != nil && !c.stale.Load() {
		return t, nil
	}
	// Cleared before reading: a change committed while we read marks the
	// table stale again and is not lost.
	c.stale.Store(false)
	floor := c.tickets.Add(1)
	t, err := buildTable(ctx, c.st)
	if err != nil {
		c.stale.Store(true)
		return nil, err
	}
	t.floor = floor
	c.table.Store(t)
	return t, nil
}

// refresh rereads from the store the instance behind a client id or a
// certificate fingerprint, unless it was read less than maxAge ago, and
// reports whether it did. With replicas sharing a database, a credential
// another replica just created may not have reached this one yet; a failed
// authentication asks for it before refusing. The age bound caps how often
// failures cause reads.
func (c *clients) refresh(ctx context.Context, t *clientTable, clientID, fp string, maxAge time.Duration) bool {
	if t.st == nil {
		return false
	}
	var instanceID string
	_ = t.st.View(ctx, func(tx store.Tx) error {
		if clientID != "" {
			if in, err := tx.GetInstanceByClientID(clientID); err == nil {
				instanceID = in.ID
				return nil
			}
		}
		if fp != "" {
			if b, err := tx.GetBindingByFingerprint(fp); err == nil {
				instanceID = b.InstanceID
			}
		}
		return nil
	})
	if instanceID == "" {
		return false
	}
	t.mu.RLock()
	cl := t.byInstance[instanceID]
	t.mu.RUnlock()
	if cl != nil && time.Since(time.Unix(0, cl.loaded)) < maxAge {
		return false
	}
	r, err := c.readInstance(ctx, instanceID)
	if err != nil {
		return false
	}
	c.apply(r)
	return true
}

// buildTable reads every instance and role collection (not the bindings:
// they are loaded per client on first use).
func buildTable(ctx context.Context, st store.Store) (*clientTable, error) {
	t := &clientTable{
		st: st, byID: map[string]*client{}, byInstance: map[string]*client{}, byFingerprint: map[string]*client{},
		identities: map[[2]string]*client{}, roleCollections: map[string]*store.RoleCollection{}, owned: map[string][]string{},
		applied: map[string]uint64{},
	}
	var apps []grants.App
	var cls []*client
	err := st.View(ctx, func(tx store.Tx) error {
		instances, err := tx.ListInstances()
		if err != nil {
			return err
		}
		if cls, err = clientsOf(instances, time.Now().UnixNano()); err != nil {
			return err
		}
		for i, cl := range cls {
			if cl.Descriptor != nil {
				apps = append(apps, broker.AppFor(instances[i], cl.Descriptor))
			}
		}
		rcs, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		for _, rc := range rcs {
			t.roleCollections[rc.Name] = rc
			t.owned[rc.Owner] = append(t.owned[rc.Owner], rc.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.dir = grants.NewDirectory(apps)
	for _, cl := range cls {
		if cl.Descriptor != nil {
			cl.App, _ = t.dir.Lookup(cl.Instance.ID)
		}
		t.addLocked(cl)
	}
	return t, nil
}

// clientsOf makes the clients of instances, decoding their configurations
// on every core: with a large zone that is most of the start-up time.
func clientsOf(instances []*store.Instance, loaded int64) ([]*client, error) {
	out := make([]*client, len(instances))
	err := parallel.Ranges(len(instances), 256, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			cl, err := newClient(instances[i], loaded)
			if err != nil {
				return err
			}
			out[i] = cl
		}
		return nil
	})
	return out, err
}

// newClient makes the client of a stored instance. The instance's
// parameters and context are dropped: the token server does not need them,
// and with many instances they would be most of the table's memory.
func newClient(in *store.Instance, loaded int64) (*client, error) {
	slim := *in
	slim.Parameters, slim.Context, slim.Config = nil, nil, nil
	cl := &client{ID: in.ClientID, Instance: &slim, loaded: loaded}
	switch in.Service {
	case broker.ServiceXsuaa:
		var d descriptor.Descriptor
		if err := json.Unmarshal(in.Config, &d); err != nil {
			return nil, fmt.Errorf("instance %s: stored descriptor: %w", in.ID, err)
		}
		cl.Descriptor = &d
	case "identity":
		var ic descriptor.IdentityConfig
		if err := json.Unmarshal(in.Config, &ic); err != nil {
			return nil, fmt.Errorf("instance %s: stored configuration: %w", in.ID, err)
		}
		cl.Identity = &ic
	}
	return cl, nil
}

// addLocked indexes cl; t.mu is held for writing (or t is not shared yet).
func (t *clientTable) addLocked(cl *client) {
	t.byID[cl.ID] = cl
	t.byInstance[cl.Instance.ID] = cl
	if cl.Identity != nil {
		t.identities[[2]string{cl.Instance.SpaceGUID, cl.Instance.InstanceName}] = cl
	}
}

// removeLocked withdraws cl and the certificates indexed for it.
func (t *clientTable) removeLocked(cl *client) {
	if t.byID[cl.ID] == cl {
		delete(t.byID, cl.ID)
	}
	if t.byInstance[cl.Instance.ID] == cl {
		delete(t.byInstance, cl.Instance.ID)
	}
	key := [2]string{cl.Instance.SpaceGUID, cl.Instance.InstanceName}
	if t.identities[key] == cl {
		delete(t.identities, key)
	}
	if c := cl.creds.Load(); c != nil {
		for _, cc := range c.certs {
			if t.byFingerprint[cc.Rec.Fingerprint] == cl {
				delete(t.byFingerprint, cc.Rec.Fingerprint)
			}
		}
	}
}

// applyInstanceLocked replaces the client of one instance (or removes it)
// with what a read found, together with the role collections it owns.
// t.mu is held for writing.
func (t *clientTable) applyInstanceLocked(r *instanceRead) {
	if old := t.byInstance[r.instanceID]; old != nil {
		t.removeLocked(old)
	}
	cl := r.client
	if cl != nil && cl.Descriptor != nil {
		t.dir.Upsert(broker.AppFor(r.in, cl.Descriptor))
		cl.App, _ = t.dir.Lookup(r.instanceID)
	} else {
		t.dir.Remove(r.instanceID)
	}
	if cl != nil {
		t.addLocked(cl)
	}
	t.replaceOwnedLocked(r.instanceID, r.rcs)
}

// replaceOwnedLocked makes rcs the role collections of owner.
func (t *clientTable) replaceOwnedLocked(owner string, rcs []*store.RoleCollection) {
	for _, name := range t.owned[owner] {
		if rc := t.roleCollections[name]; rc != nil && rc.Owner == owner {
			delete(t.roleCollections, name)
		}
	}
	delete(t.owned, owner)
	for _, rc := range rcs {
		t.roleCollections[rc.Name] = rc
		t.owned[owner] = append(t.owned[owner], rc.Name)
	}
}

// client returns the client with this id, or nil.
func (t *clientTable) client(id string) *client {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byID[id]
}

// roleCollection returns the role collection with this name, or nil.
func (t *clientTable) roleCollection(name string) *store.RoleCollection {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.roleCollections[name]
}

// credsOf returns the credentials of cl's live bindings, reading them from
// the store on first use. A client not (or no longer) in the table, or a
// table without a store (unit tests), has only what was preloaded.
func (t *clientTable) credsOf(ctx context.Context, cl *client) (*clientCreds, error) {
	if c := cl.creds.Load(); c != nil {
		return c, nil
	}
	cl.loadMu.Lock()
	defer cl.loadMu.Unlock()
	if c := cl.creds.Load(); c != nil {
		return c, nil
	}
	if t.st == nil || cl.Instance == nil {
		return noCreds, nil
	}
	var bindings []*store.Binding
	err := t.st.View(ctx, func(tx store.Tx) error {
		var err error
		bindings, err = tx.ListBindings(cl.Instance.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &clientCreds{secrets: make(map[[32]byte]string, len(bindings)), bindings: make(map[string]bool, len(bindings))}
	for _, b := range bindings {
		c.bindings[b.ID] = true
		if len(b.SecretHash) == sha256.Size {
			c.secrets[[32]byte(b.SecretHash)] = b.ID
		}
		if b.Cert != nil {
			c.certs = append(c.certs, &clientCert{BindingID: b.ID, Rec: b.Cert})
		}
	}
	t.mu.Lock()
	// Only a client still in the table may own fingerprints: one replaced
	// while we read must not shadow its successor.
	if t.byInstance[cl.Instance.ID] == cl {
		for _, cc := range c.certs {
			t.byFingerprint[cc.Rec.Fingerprint] = cl
		}
	}
	cl.creds.Store(c)
	t.mu.Unlock()
	return c, nil
}

// checkSecret reports whether secret belongs to a live binding of cl, and
// which.
func (t *clientTable) checkSecret(ctx context.Context, cl *client, secret string) (bindingID string, ok bool, err error) {
	c, err := t.credsOf(ctx, cl)
	if err != nil {
		return "", false, err
	}
	bindingID, ok = c.secrets[sha256.Sum256([]byte(secret))]
	return bindingID, ok, nil
}

// hasBinding reports whether cl still has the binding with this id.
func (t *clientTable) hasBinding(ctx context.Context, cl *client, bindingID string) (bool, error) {
	c, err := t.credsOf(ctx, cl)
	if err != nil {
		return false, err
	}
	return c.bindings[bindingID], nil
}

// liveBindings returns the ids of cl's live bindings.
func (t *clientTable) liveBindings(ctx context.Context, cl *client) (map[string]bool, error) {
	c, err := t.credsOf(ctx, cl)
	if err != nil {
		return nil, err
	}
	return c.bindings, nil
}

// fingerprintClient finds the client holding the certificate with this
// fingerprint, asking the store when no loaded client has it. A nil client
// and nil error mean nobody holds it.
func (t *clientTable) fingerprintClient(ctx context.Context, fp string) (*client, *clientCreds, error) {
	t.mu.RLock()
	cl := t.byFingerprint[fp]
	t.mu.RUnlock()
	if cl == nil && t.st != nil {
		var instanceID string
		err := t.st.View(ctx, func(tx store.Tx) error {
			b, err := tx.GetBindingByFingerprint(fp)
			if err != nil {
				return err
			}
			instanceID = b.InstanceID
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		t.mu.RLock()
		cl = t.byInstance[instanceID]
		t.mu.RUnlock()
	}
	if cl == nil {
		return nil, nil, nil
	}
	c, err := t.credsOf(ctx, cl)
	if err != nil {
		return nil, nil, err
	}
	return cl, c, nil
}

// unpinnedClient finds the binding of an unpinned self-managed certificate
// (certificate-pinning false) with this subject and issuer DN.
func (t *clientTable) unpinnedClient(ctx context.Context, subject, issuer string) (*client, *clientCert, error) {
	if t.st == nil {
		return nil, nil, nil
	}
	var bindings []*store.Binding
	err := t.st.View(ctx, func(tx store.Tx) error {
		var err error
		bindings, err = tx.ListBindingsByCertDN(subject, issuer)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	for _, b := range bindings {
		if b.Cert == nil || !b.Cert.Provided || b.Cert.Pinned {
			continue
		}
		t.mu.RLock()
		cl := t.byInstance[b.InstanceID]
		t.mu.RUnlock()
		if cl == nil {
			continue
		}
		c, err := t.credsOf(ctx, cl)
		if err != nil {
			return nil, nil, err
		}
		for _, cc := range c.certs {
			if cc.BindingID == b.ID {
				return cl, cc, nil
			}
		}
	}
	return nil, nil, nil
}

// fingerprintHex is the store's fingerprint format.
func fingerprintHex(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

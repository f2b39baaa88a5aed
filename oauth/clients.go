package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
)

// client is an OAuth client as the token endpoint sees it: one per service
// instance, shared by all its bindings, each binding with its own secret or
// certificate.
type client struct {
	ID       string
	Instance *store.Instance
	// App and Descriptor are set for xsuaa instances.
	App        *grants.App
	Descriptor *descriptor.Descriptor
	// Identity is set for identity instances.
	Identity *descriptor.IdentityConfig
	// secrets maps SHA-256(secret) to the binding id it belongs to.
	secrets map[[32]byte]string
	// certs lists the certificates of the client's bindings.
	certs []*clientCert
	// bindings holds the ids of the client's live bindings: refresh tokens
	// and codes remember the binding they were issued to and die with it.
	bindings map[string]bool
}

type clientCert struct {
	BindingID string
	Rec       *store.CertRecord
}

// clientTable is an immutable snapshot of all clients, rebuilt whenever the
// broker commits a change. Token requests read it without touching the
// store.
type clientTable struct {
	byID          map[string]*client
	byFingerprint map[string]*client
	dir           *grants.Directory
	// roleCollections are the zone's role collections by name.
	roleCollections map[string]*store.RoleCollection
	// identities indexes identity clients by space and instance name
	// (consumed-services, resource= and x-azp lookups).
	identities map[[2]string]*client
}

// clients holds the current table and rebuilds it lazily after Invalidate.
type clients struct {
	st    store.Store
	mu    sync.Mutex // serialises rebuilds
	table *clientTable
	dirty bool
	built time.Time
}

func newClients(st store.Store) *clients { return &clients{st: st, dirty: true} }

// Invalidate marks the table stale. It is called after every committed
// change, before the OSB response is sent, so an unbound credential is
// refused by the very next token request.
func (c *clients) Invalidate() {
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
}

// Table returns a current snapshot.
func (c *clients) Table(ctx context.Context) (*clientTable, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty && c.table != nil {
		return c.table, nil
	}
	return c.rebuildLocked(ctx)
}

func (c *clients) rebuildLocked(ctx context.Context) (*clientTable, error) {
	t, err := buildTable(ctx, c.st)
	if err != nil {
		return nil, err
	}
	c.table, c.dirty, c.built = t, false, time.Now()
	return t, nil
}

// Fresh returns a snapshot built at most maxAge ago, rebuilding if the
// current one is older. With replicas sharing a database, a credential
// another replica just created may not have reached this one's snapshot
// yet; a failed authentication asks for a fresh one before refusing. The
// age bound also bounds how often failures can force a rebuild.
func (c *clients) Fresh(ctx context.Context, maxAge time.Duration) (*clientTable, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty && c.table != nil && time.Since(c.built) < maxAge {
		return c.table, nil
	}
	return c.rebuildLocked(ctx)
}

func buildTable(ctx context.Context, st store.Store) (*clientTable, error) {
	t := &clientTable{byID: map[string]*client{}, byFingerprint: map[string]*client{}, roleCollections: map[string]*store.RoleCollection{}, identities: map[[2]string]*client{}}
	var apps []grants.App
	err := st.View(ctx, func(tx store.Tx) error {
		instances, err := tx.ListInstances()
		if err != nil {
			return err
		}
		for _, in := range instances {
			cl := &client{ID: in.ClientID, Instance: in, secrets: map[[32]byte]string{}, bindings: map[string]bool{}}
			switch in.Service {
			case "xsuaa":
				var d descriptor.Descriptor
				if err := json.Unmarshal(in.Config, &d); err != nil {
					return err
				}
				cl.Descriptor = &d
				apps = append(apps, broker.AppFor(in, &d))
			case "identity":
				var ic descriptor.IdentityConfig
				if err := json.Unmarshal(in.Config, &ic); err != nil {
					return err
				}
				cl.Identity = &ic
			}
			bindings, err := tx.ListBindings(in.ID)
			if err != nil {
				return err
			}
			for _, b := range bindings {
				cl.bindings[b.ID] = true
				if len(b.SecretHash) == sha256.Size {
					cl.secrets[[32]byte(b.SecretHash)] = b.ID
				}
				if b.Cert != nil {
					cl.certs = append(cl.certs, &clientCert{BindingID: b.ID, Rec: b.Cert})
					t.byFingerprint[b.Cert.Fingerprint] = cl
				}
			}
			t.byID[cl.ID] = cl
			if cl.Identity != nil {
				t.identities[[2]string{in.SpaceGUID, in.InstanceName}] = cl
			}
		}
		rcs, err := tx.ListRoleCollections()
		if err != nil {
			return err
		}
		for _, rc := range rcs {
			t.roleCollections[rc.Name] = rc
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	t.dir = grants.NewDirectory(apps)
	for _, cl := range t.byID {
		if cl.Descriptor != nil {
			cl.App, _ = t.dir.Lookup(cl.Instance.ID)
		}
	}
	return t, nil
}

// checkSecret reports whether secret belongs to a live binding of cl, and
// which.
func (cl *client) checkSecret(secret string) (bindingID string, ok bool) {
	bindingID, ok = cl.secrets[sha256.Sum256([]byte(secret))]
	return bindingID, ok
}

// fingerprintHex is the store's fingerprint format.
func fingerprintHex(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

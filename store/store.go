// Package store defines the broker's persistent state and the one interface
// every storage backend implements. Callers work inside transactions
// (View/Update) so that a check and the write that depends on it are atomic:
// an identical re-provision racing a different one, or a bind racing the
// deprovision of its instance, see a consistent state.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Errors returned by Tx methods. Compare with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Store is a transactional key-value view of the broker's records.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction. If fn returns an error,
	// nothing it wrote is kept. A nil return means the writes are durable.
	Update(ctx context.Context, fn func(Tx) error) error
	// Ping reports whether the store is usable (for /healthz).
	Ping(ctx context.Context) error
	Close() error
}

// Watcher is implemented by stores that several broker replicas share.
// Watch calls changed after any replica (this one included) commits a
// change, at most a bounded delay later, also if a notification was lost,
// until ctx ends. Ephemeral records (codes, refresh tokens) are never
// cached and do not count as changes; commits that touched nothing a
// replica caches (users, sequences) need not make a call.
//
// Watch blocks until ctx ends (or the store is closed). It calls changed
// from its own goroutine, one call at a time, and coalesces changes that
// arrive while a call runs into one later call whose Change is their
// merge. One call with Unknown always comes once Watch is watching, so
// that a change committed just before cannot go unnoticed. A Change may
// say more than what changed, never less: reloading what it names (or
// everything, for Unknown) keeps a cache current.
type Watcher interface {
	Watch(ctx context.Context, changed func(Change))
}

// Change describes what committed changes touched, as far as the store knows.
type Change struct {
	// Instances are the ids of instances whose record, bindings or owned
	// role collections changed (created, updated or deleted).
	Instances []string
	// RoleCollections is true when role collections without an owner
	// (the admin API's) changed.
	RoleCollections bool
	// Meta is true when meta records (signing keys, CA, zone) changed.
	Meta bool
	// Unknown is true when what changed is not known (the first call once
	// watching, a gap in the change log, a writer that does not log): the
	// caller must reload everything.
	Unknown bool
}

// Tx is the set of operations available inside a transaction. Read methods
// return ErrNotFound for missing records; Create methods return ErrExists.
type Tx interface {
	GetInstance(id string) (*Instance, error)
	// GetInstanceByClientID finds the instance whose OAuth client id is cid.
	GetInstanceByClientID(cid string) (*Instance, error)
	ListInstances() ([]*Instance, error)
	CreateInstance(in *Instance) error
	PutInstance(in *Instance) error
	// DeleteInstance removes the instance, every binding of it and the role
	// collections it owns, and returns the removed bindings.
	DeleteInstance(id string) ([]*Binding, error)

	// The lookups below are indexed, so that provision and bind need not
	// scan every instance of the zone. Instances with an empty XSAppName
	// (identity instances) are in neither xsappname index; instances with
	// an empty InstanceName are not in the service-name index. Lists are
	// sorted by instance id.

	// GetInstanceByXSAppName finds the instance whose full xsappname (with
	// its plan suffix, e.g. "bookshop!t3") is name. ErrNotFound if none.
	// The store does not make xsappnames unique; if several instances have
	// this one, it returns the one with the lowest id.
	GetInstanceByXSAppName(name string) (*Instance, error)
	// ListInstancesByAppName returns the instances of plan whose
	// xsappname, without its suffix (BaseAppName), is base.
	ListInstancesByAppName(plan, base string) ([]*Instance, error)
	// ListInstancesByServiceName returns the instances of a space with
	// this instance name (context.instance_name).
	ListInstancesByServiceName(spaceGUID, name string) ([]*Instance, error)

	GetBinding(id string) (*Binding, error)
	// GetBindingByFingerprint finds the binding holding the certificate
	// with this SHA-256 fingerprint (lower-case hex).
	GetBindingByFingerprint(fp string) (*Binding, error)
	ListBindings(instanceID string) ([]*Binding, error)
	// ListBindingsByCertDN returns the bindings whose certificate
	// (Binding.Cert) has this subject and issuer DN (CertRecord.Subject,
	// CertRecord.Issuer), sorted by binding id. The token server uses it
	// to find unpinned self-managed certificates (certificate-pinning
	// false) without scanning every binding. The DNs compare as exact
	// strings. An empty subject or issuer identifies no one, so neither
	// matches anything: such certificates are not in the index, and the
	// lookup returns no bindings (and a nil error), as it does when none
	// match.
	ListBindingsByCertDN(subject, issuer string) ([]*Binding, error)
	CreateBinding(b *Binding) error
	DeleteBinding(id string) (*Binding, error)

	GetRoleCollection(name string) (*RoleCollection, error)
	ListRoleCollections() ([]*RoleCollection, error)
	// ListRoleCollectionsByOwner returns the role collections owned by an
	// instance ("" = those made through the admin API), sorted by name.
	ListRoleCollectionsByOwner(owner string) ([]*RoleCollection, error)
	PutRoleCollection(rc *RoleCollection) error
	DeleteRoleCollection(name string) error

	GetUser(id string) (*User, error)
	GetUserByName(username string) (*User, error)
	ListUsers() ([]*User, error)
	// PutUser creates or replaces a user; a username taken by another
	// user id is ErrExists.
	PutUser(u *User) error
	DeleteUser(id string) error

	// Ephemeral records (authorization codes, refresh tokens) live until
	// they expire or are deleted. GetEphemeral treats an expired record as
	// missing (ErrNotFound).
	PutEphemeral(key string, value []byte, expires time.Time) error
	GetEphemeral(key string, now time.Time) ([]byte, error)
	DeleteEphemeral(key string) error
	// PurgeEphemeral deletes records expired before now and says how many.
	PurgeEphemeral(now time.Time) (int, error)

	// GetMeta and PutMeta hold small singleton records (zone, CA, signing
	// keys). GetMeta returns ErrNotFound for an unknown key.
	GetMeta(key string) ([]byte, error)
	PutMeta(key string, value []byte) error
	// NextSequence returns the next value (starting at 1) of a named
	// counter. A value committed once is never handed out again.
	NextSequence(name string) (uint64, error)
}

// BaseAppName returns xsappname without its plan suffix: the text before
// the first '!' ("bookshop!t3" → "bookshop"), or all of it if there is no
// '!'.
func BaseAppName(xsappname string) string {
	base, _, _ := strings.Cut(xsappname, "!")
	return base
}

// Instance is a provisioned service instance of either offering.
type Instance struct {
	ID               string          `json:"id"`
	Service          string          `json:"service"` // catalog offering name: "xsuaa" or "identity"
	Plan             string          `json:"plan"`    // catalog plan name
	ServiceID        string          `json:"service_id"`
	PlanID           string          `json:"plan_id"`
	OrganizationGUID string          `json:"organization_guid"`
	SpaceGUID        string          `json:"space_guid"`
	InstanceName     string          `json:"instance_name,omitempty"` // context.instance_name
	Context          json.RawMessage `json:"context,omitempty"`
	// Parameters are the accepted provision/update parameters, compacted.
	Parameters json.RawMessage `json:"parameters,omitempty"`
	// ClientID is the OAuth client id shared by all bindings.
	ClientID string `json:"client_id"`
	// XSAppName is the full xsappname with plan suffix (xsuaa only).
	XSAppName string `json:"xsappname,omitempty"`
	// Config is the parsed, validated configuration as JSON: a
	// descriptor.Descriptor for xsuaa, a descriptor.IdentityConfig for
	// identity. Kept parsed so the token server need not re-validate.
	Config json.RawMessage `json:"config"`
	// InstanceSecret is the legacy shared instance secret (xsuaa
	// instance-secret bindings), created on first use.
	InstanceSecret *SecretRecord `json:"instance_secret,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

// SecretRecord keeps a client secret as a hash (for verification) and
// sealed (to hand the same credentials out again on an identical re-bind).
type SecretRecord struct {
	Hash   []byte `json:"hash"`
	Sealed []byte `json:"sealed"`
}

// Binding is a service binding or service key with its own credential.
type Binding struct {
	ID             string          `json:"id"`
	InstanceID     string          `json:"instance_id"`
	ServiceID      string          `json:"service_id"`
	PlanID         string          `json:"plan_id"`
	AppGUID        string          `json:"app_guid,omitempty"`
	BindResource   json.RawMessage `json:"bind_resource,omitempty"`
	Parameters     json.RawMessage `json:"parameters,omitempty"`
	CredentialType string          `json:"credential_type"`
	// SecretHash is the SHA-256 of the binding's client secret, if any.
	SecretHash []byte `json:"secret_hash,omitempty"`
	// Cert describes the binding's client certificate, if any.
	Cert *CertRecord `json:"cert,omitempty"`
	// SealedCredentials is the credentials object of the bind response,
	// sealed under the data key with the binding id as associated data.
	SealedCredentials []byte    `json:"sealed_credentials"`
	CreatedAt         time.Time `json:"created_at"`
}

// CertRecord identifies a client certificate without keeping its key.
type CertRecord struct {
	Fingerprint string    `json:"fingerprint"` // SHA-256 of the DER, lower-case hex
	Subject     string    `json:"subject"`     // RFC 2253 string, for display and DN matching
	Issuer      string    `json:"issuer"`
	NotAfter    time.Time `json:"not_after"`
	// Pinned is false only for self-managed xsuaa certificates with
	// certificate-pinning false: then subject and issuer DN match.
	Pinned bool `json:"pinned"`
	// Provided is true for certificates the user brought (X509_PROVIDED,
	// self-managed xsuaa x509): they do not chain to the broker's CA.
	Provided bool `json:"provided,omitempty"`
}

// RoleCollection is a zone-wide named set of role-template references.
type RoleCollection struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// RoleTemplates are "<full xsappname>.<template>" references.
	RoleTemplates []string `json:"role_templates"`
	// Owner is the instance whose descriptor declared the collection, or
	// empty for collections made through the admin API.
	Owner string `json:"owner,omitempty"`
}

// User is a person who can log in to the zone.
type User struct {
	ID       string `json:"id"` // user_id / sub in tokens
	Username string `json:"username"`
	// PasswordHash is a slow-KDF hash (users.HashPassword): passwords are
	// human secrets, unlike client secrets.
	PasswordHash string `json:"password_hash"`
	Email        string `json:"email,omitempty"`
	GivenName    string `json:"given_name,omitempty"`
	FamilyName   string `json:"family_name,omitempty"`
	Origin       string `json:"origin"` // identity provider key, e.g. "sap.default"
	// RoleCollections are assignments by name, resolved when a token is
	// issued, so they may name collections that do not exist yet.
	RoleCollections []string            `json:"role_collections,omitempty"`
	Attributes      map[string][]string `json:"attributes,omitempty"`
	CreatedAt       time.Time           `json:"created_at"`
	UpdatedAt       time.Time           `json:"updated_at"`
}

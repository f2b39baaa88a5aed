package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pivotal-cf/brokerapi/v10/domain"

	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
)

// Catalog ids of the xsuaa offering and its application plan (catalog.yml).
const (
	xsuaaServiceID = "94b57714-eb17-42a9-bb73-659a953e7531"
	xsuaaPlanID    = "c274f824-9b3a-4a8d-b607-0b01d3992fe5"
	xsuaaService   = "xsuaa"
	xsuaaPlan      = "application"
	planSuffix     = "!t"
)

// instancesPerSpace is how many seeded instances share a space (and its org).
const instancesPerSpace = 100

// grantEvery makes one instance in grantEvery grant a scope as authority
// to its predecessor, which accepts granted authorities: 1% of instances.
const grantEvery = 100

// Layout derives every id, name and secret of a seeded store from a seed,
// so that a later run (or a reuse of the data dir) can name and
// authenticate any seeded binding without reading the store.
type Layout struct {
	Seed      string
	Instances int
	Bindings  int // per instance
	// SeqBase is the xsappname sequence value before the first seeded
	// instance: instance i gets the suffix "!t<SeqBase+i+1>".
	SeqBase uint64

	once sync.Once
	macs sync.Pool
}

// derive is HMAC-SHA256(seed, label). Keyed hashes are pooled: seeding a
// million bindings derives several million values.
func (l *Layout) derive(label string) []byte {
	l.once.Do(func() {
		l.macs.New = func() any { return hmac.New(sha256.New, []byte(l.Seed)) }
	})
	m := l.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(label))
	out := m.Sum(nil)
	l.macs.Put(m)
	return out
}

// uuidOf shapes 16 derived bytes as a version 4 UUID, the form Cloud
// Controller uses for instance, binding, space and org GUIDs.
func uuidOf(b []byte) string {
	u := make([]byte, 16)
	copy(u, b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// InstanceID is the id of seeded instance i.
func (l *Layout) InstanceID(i int) string { return uuidOf(l.derive("instance/" + strconv.Itoa(i))) }

// BindingID is the id of binding j of seeded instance i.
func (l *Layout) BindingID(i, j int) string {
	return uuidOf(l.derive("binding/" + strconv.Itoa(i) + "/" + strconv.Itoa(j)))
}

// SpaceGUID and OrgGUID place instance i: instancesPerSpace instances per
// space, one space per org.
func (l *Layout) SpaceGUID(i int) string {
	return uuidOf(l.derive("space/" + strconv.Itoa(i/instancesPerSpace)))
}

// OrgGUID is the org of instance i's space.
func (l *Layout) OrgGUID(i int) string {
	return uuidOf(l.derive("org/" + strconv.Itoa(i/instancesPerSpace)))
}

// AppGUID is the app bound by binding j of instance i.
func (l *Layout) AppGUID(i, j int) string {
	return uuidOf(l.derive("app/" + strconv.Itoa(i) + "/" + strconv.Itoa(j)))
}

// InstanceName is unique within a space and repeats across spaces, as
// service instance names do on a real platform.
func InstanceName(i int) string { return fmt.Sprintf("uaa-%02d", i%instancesPerSpace) }

// AppName is the xsappname (without suffix) of seeded instance i, unique
// in the zone.
func AppName(i int) string { return fmt.Sprintf("app%06d", i) }

// FullAppName is the xsappname with the plan suffix the broker gives it.
func (l *Layout) FullAppName(i int) string {
	return AppName(i) + planSuffix + strconv.FormatUint(l.SeqBase+uint64(i)+1, 10)
}

// ClientID is the OAuth client id of seeded instance i.
func (l *Layout) ClientID(i int) string { return "sb-" + l.FullAppName(i) }

// Secret is the client secret of binding j of instance i, shaped like the
// broker's (credentials.NewXsuaaSecret): "<uuid v4>$<base64url of 32 bytes>".
func (l *Layout) Secret(i, j int) string {
	id := l.BindingID(i, j)
	return uuidOf(l.derive("secret-id/"+id)) + "$" + base64.URLEncoding.EncodeToString(l.derive("secret/"+id))
}

// IsGranter says whether instance i grants its Read scope as an authority
// to instance i-1.
func IsGranter(i int) bool { return i%grantEvery == 1 }

// IsServiceKey says whether binding j is a service key (no app), as about
// one binding in ten is on a real platform.
func IsServiceKey(j int) bool { return j%10 == 9 }

// XsSecurity is the xs-security.json of seeded instance i: three scopes,
// an attribute, two role templates and authorities. A granter's Read scope
// is granted as authority to instance i-1, which accepts granted
// authorities.
func XsSecurity(i int) []byte {
	read := map[string]any{"name": "$XSAPPNAME.Read", "description": "read"}
	if IsGranter(i) {
		read["grant-as-authority-to-apps"] = []string{"$XSAPPNAME(application," + AppName(i-1) + ")"}
	}
	return xsSecurity(AppName(i), fmt.Sprintf("scale test app %d", i), read, []string{"$XSAPPNAME.Admin", "$ACCEPT_GRANTED_AUTHORITIES"})
}

func xsSecurity(app, description string, read map[string]any, authorities []string) []byte {
	doc := map[string]any{
		"xsappname":   app,
		"tenant-mode": "dedicated",
		"description": description,
		"scopes": []any{
			read,
			map[string]any{"name": "$XSAPPNAME.Write", "description": "write"},
			map[string]any{"name": "$XSAPPNAME.Admin", "description": "administer"},
		},
		"attributes": []any{map[string]any{"name": "Region", "description": "region", "valueType": "string"}},
		"role-templates": []any{
			map[string]any{"name": "Viewer", "description": "read only", "scope-references": []string{"$XSAPPNAME.Read"}, "attribute-references": []string{"Region"}},
			map[string]any{"name": "Editor", "description": "read and write", "scope-references": []string{"$XSAPPNAME.Read", "$XSAPPNAME.Write"}},
		},
		"authorities": authorities,
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		panic(err) // static shapes only
	}
	return raw
}

// NewAppXsSecurity is the xs-security.json of an instance provisioned
// during the measurement, in the space of an existing app: like a seeded
// one, its Read scope granted as authority to app target, whose Read scope
// it accepts as an authority, and the Read scope of the instance named
// service in its space as a foreign scope reference. The references
// resolve through the store's xsappname and service-name indexes.
func NewAppXsSecurity(app, target, service string) []byte {
	read := map[string]any{"name": "$XSAPPNAME.Read", "description": "read",
		"grant-as-authority-to-apps": []string{"$XSAPPNAME(application," + target + ")"}}
	raw := xsSecurity(app, "scale test provision", read,
		[]string{"$XSAPPNAME.Admin", "$XSAPPNAME(application," + target + ").Read"})
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		panic(err)
	}
	doc["foreign-scope-references"] = []string{"$XSSERVICENAME(" + service + ").Read"}
	raw, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return raw
}

// cfContext is the OSB context object Cloud Foundry sends. The broker
// stores the raw bytes, so the seeder and the HTTP requests use one
// encoding.
type cfContext struct {
	Platform         string `json:"platform"`
	OrganizationGUID string `json:"organization_guid"`
	SpaceGUID        string `json:"space_guid"`
	InstanceName     string `json:"instance_name"`
	OrganizationName string `json:"organization_name"`
	SpaceName        string `json:"space_name"`
}

// ContextJSON is the provision context of an instance.
func ContextJSON(org, space, name string) json.RawMessage {
	raw, _ := json.Marshal(cfContext{Platform: "cloudfoundry", OrganizationGUID: org, SpaceGUID: space,
		InstanceName: name, OrganizationName: "org-" + short(org), SpaceName: "space-" + short(space)})
	return raw
}

func short(guid string) string { return guid[:min(8, len(guid))] }

// bindParams are the parameters of every seeded and measured bind.
var bindParams = []byte(`{"credential-type":"binding-secret"}`)

// InstanceSpec is what a provision request says about an xsuaa instance.
type InstanceSpec struct {
	ID, Org, Space, Name string
	Params               []byte // xs-security.json as sent
}

// BuildInstance returns the record broker.Provision stores for spec when
// the xsappname sequence hands out seq (broker/broker.go Provision,
// broker/xsuaa.go configureXsuaa).
func BuildInstance(spec InstanceSpec, seq uint64, now time.Time) (*store.Instance, error) {
	params, err := broker.CanonicalParams(spec.Params)
	if err != nil {
		return nil, err
	}
	suffix := planSuffix + strconv.FormatUint(seq, 10)
	def := spec.Name
	if def == "" {
		def = "app-" + spec.ID
	}
	d, err := descriptor.Parse(params, descriptor.Options{DefaultXSAppName: def, AppSuffix: suffix})
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", spec.ID, err)
	}
	cfg, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	now = now.UTC()
	in := &store.Instance{
		ID: spec.ID, Service: xsuaaService, Plan: xsuaaPlan, ServiceID: xsuaaServiceID, PlanID: xsuaaPlanID,
		OrganizationGUID: spec.Org, SpaceGUID: spec.Space, InstanceName: spec.Name,
		Context: ContextJSON(spec.Org, spec.Space, spec.Name), Parameters: params,
		XSAppName: d.XSAppName + suffix, Config: cfg, CreatedAt: now, UpdatedAt: now,
	}
	in.ClientID = "sb-" + in.XSAppName
	return in, nil
}

// BindingSpec is what a bind request says.
type BindingSpec struct {
	ID, InstanceID string
	AppGUID, Space string // empty AppGUID: a service key
	Secret         string
}

// BindResource is the bind_resource Cloud Foundry sends for an app
// binding (nil for a service key).
func (b BindingSpec) BindResource() *domain.BindResource {
	if b.AppGUID == "" {
		return nil
	}
	return &domain.BindResource{AppGuid: b.AppGUID, SpaceGuid: b.Space}
}

// CredentialsTemplate holds the fields of xsuaa credentials that depend on
// the deployment only (URLs, zone, verification key), taken from a
// credentials object the real broker issued.
type CredentialsTemplate map[string]any

// perInstanceKeys are the credential fields broker.xsuaaCredentials and
// issueXsuaa set per instance or binding; the template keeps the rest.
var perInstanceKeys = []string{"clientid", "xsappname", "tenantmode", "serviceInstanceId", "credential-type", "clientsecret", "trustedclientidsuffix"}

// NewCredentialsTemplate strips the per-instance fields from creds.
func NewCredentialsTemplate(creds map[string]any) CredentialsTemplate {
	t := CredentialsTemplate{}
	for k, v := range creds {
		t[k] = v
	}
	for _, k := range perInstanceKeys {
		delete(t, k)
	}
	return t
}

// Credentials returns the credentials object of a binding-secret binding
// of in (broker/credentials.go xsuaaCredentials, broker/bind.go issueXsuaa).
func (t CredentialsTemplate) Credentials(in *store.Instance, d *descriptor.Descriptor, credentialType, secret string) map[string]any {
	c := make(map[string]any, len(t)+6)
	for k, v := range t {
		c[k] = v
	}
	c["clientid"] = in.ClientID
	c["xsappname"] = in.XSAppName
	c["tenantmode"] = d.TenantModeOrDefault()
	c["serviceInstanceId"] = in.ID
	c["credential-type"] = credentialType
	c["clientsecret"] = secret
	return c
}

// credentialsEncoder writes the JSON of Credentials as json.Marshal
// would (keys sorted, values encoded the same way), with the template's
// values encoded once instead of for every binding.
type credentialsEncoder struct {
	keys  []string
	fixed map[string][]byte
}

func (t CredentialsTemplate) encoder() (*credentialsEncoder, error) {
	e := &credentialsEncoder{fixed: map[string][]byte{}}
	for k, v := range t {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		e.fixed[k] = raw
		e.keys = append(e.keys, k)
	}
	for _, k := range perInstanceKeys[:6] { // not trustedclientidsuffix: plan application
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	return e, nil
}

func (e *credentialsEncoder) encode(in *store.Instance, d *descriptor.Descriptor, credentialType, secret string) ([]byte, error) {
	vary := map[string]string{
		"clientid": in.ClientID, "xsappname": in.XSAppName, "tenantmode": d.TenantModeOrDefault(),
		"serviceInstanceId": in.ID, "credential-type": credentialType, "clientsecret": secret,
	}
	out := make([]byte, 0, 2048)
	out = append(out, '{')
	for n, k := range e.keys {
		if n > 0 {
			out = append(out, ',')
		}
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		out = append(append(out, key...), ':')
		if v, ok := e.fixed[k]; ok {
			out = append(out, v...)
			continue
		}
		v, err := json.Marshal(vary[k])
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
	}
	return append(out, '}'), nil
}

// BuildBinding returns the record broker.Bind stores for a binding-secret
// bind of in described by spec.
func BuildBinding(spec BindingSpec, in *store.Instance, t CredentialsTemplate, sealer *credentials.Sealer, now time.Time) (*store.Binding, error) {
	enc, err := t.encoder()
	if err != nil {
		return nil, err
	}
	bb, err := newBindingBuilder(in, enc, sealer, now)
	if err != nil {
		return nil, err
	}
	return bb.build(spec)
}

// bindingBuilder builds the bindings of one instance, decoding its
// descriptor and the bind parameters once.
type bindingBuilder struct {
	enc      *credentialsEncoder
	in       *store.Instance
	d        descriptor.Descriptor
	params   json.RawMessage
	credType string
	sealer   *credentials.Sealer
	now      time.Time
}

func newBindingBuilder(in *store.Instance, enc *credentialsEncoder, sealer *credentials.Sealer, now time.Time) (*bindingBuilder, error) {
	bb := &bindingBuilder{in: in, enc: enc, sealer: sealer, now: now.UTC()}
	if err := json.Unmarshal(in.Config, &bb.d); err != nil {
		return nil, err
	}
	var err error
	if bb.params, err = broker.CanonicalParams(bindParams); err != nil {
		return nil, err
	}
	p, err := descriptor.ParseXsuaaBinding(bb.params, bb.d.CredentialTypes())
	if err != nil {
		return nil, err
	}
	if p.CredentialType != "binding-secret" {
		return nil, fmt.Errorf("bind parameters give credential type %q", p.CredentialType)
	}
	bb.credType = p.CredentialType
	return bb, nil
}

func (bb *bindingBuilder) build(spec BindingSpec) (*store.Binding, error) {
	var bindRes json.RawMessage
	if r := spec.BindResource(); r != nil {
		var err error
		if bindRes, err = json.Marshal(r); err != nil {
			return nil, err
		}
	}
	raw, err := bb.enc.encode(bb.in, &bb.d, bb.credType, spec.Secret)
	if err != nil {
		return nil, err
	}
	sealed, err := bb.sealer.Seal(raw, []byte("binding:"+spec.ID))
	if err != nil {
		return nil, err
	}
	hash := credentials.HashSecret(spec.Secret)
	return &store.Binding{
		ID: spec.ID, InstanceID: bb.in.ID, ServiceID: bb.in.ServiceID, PlanID: bb.in.PlanID,
		AppGUID: spec.AppGUID, BindResource: bindRes, Parameters: bb.params,
		CredentialType: bb.credType, SecretHash: hash[:], SealedCredentials: sealed,
		CreatedAt: bb.now,
	}, nil
}

// SeededInstance is the spec of seeded instance i.
func (l *Layout) SeededInstance(i int) InstanceSpec {
	return InstanceSpec{ID: l.InstanceID(i), Org: l.OrgGUID(i), Space: l.SpaceGUID(i), Name: InstanceName(i), Params: XsSecurity(i)}
}

// SeededBinding is the spec of binding j of seeded instance i.
func (l *Layout) SeededBinding(i, j int) BindingSpec {
	b := BindingSpec{ID: l.BindingID(i, j), InstanceID: l.InstanceID(i), Secret: l.Secret(i, j)}
	if !IsServiceKey(j) {
		b.AppGUID, b.Space = l.AppGUID(i, j), l.SpaceGUID(i)
	}
	return b
}

type seedBatch struct {
	first     int
	instances []*store.Instance
	bindings  []*store.Binding
	err       error
}

// buildBatch builds instances first..last-1 of l with their bindings.
func buildBatch(l *Layout, t CredentialsTemplate, sealer *credentials.Sealer, now time.Time, first, last int) seedBatch {
	b := seedBatch{first: first}
	enc, err := t.encoder()
	if err != nil {
		b.err = err
		return b
	}
	for i := first; i < last; i++ {
		in, err := BuildInstance(l.SeededInstance(i), l.SeqBase+uint64(i)+1, now)
		if err != nil {
			b.err = err
			return b
		}
		b.instances = append(b.instances, in)
		bb, err := newBindingBuilder(in, enc, sealer, now)
		if err != nil {
			b.err = err
			return b
		}
		for j := 0; j < l.Bindings; j++ {
			bd, err := bb.build(l.SeededBinding(i, j))
			if err != nil {
				b.err = err
				return b
			}
			b.bindings = append(b.bindings, bd)
		}
	}
	return b
}

// Seed writes the layout's instances and bindings into st, batch
// instances (with their bindings) per transaction, in index order (the
// xsappname sequence follows it). Batches are built on every core ahead of
// the commits. progress, if not nil, is called after each commit with the
// number of instances written.
func Seed(ctx context.Context, st store.Store, l *Layout, t CredentialsTemplate, sealer *credentials.Sealer, batch int, progress func(int)) error {
	if batch < 1 {
		batch = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	workers := runtime.GOMAXPROCS(0)
	// queue holds the batches in commit order, each built by its own
	// goroutine (at most workers at a time) into its one-slot channel.
	queue := make(chan chan seedBatch, 2*workers)
	go func() {
		defer close(queue)
		sem := make(chan struct{}, workers)
		for first := 0; first < l.Instances; first += batch {
			ch := make(chan seedBatch, 1)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func(first int) {
				defer func() { <-sem }()
				ch <- buildBatch(l, t, sealer, now, first, min(first+batch, l.Instances))
			}(first)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	for ch := range queue {
		b := <-ch
		if b.err != nil {
			return b.err
		}
		err := st.Update(ctx, func(tx store.Tx) error {
			for k, in := range b.instances {
				// Provision draws the suffix inside its transaction; so
				// does the seeder, and checks it got the one it built.
				n, err := tx.NextSequence("xsappname")
				if err != nil {
					return err
				}
				if want := l.SeqBase + uint64(b.first+k) + 1; n != want {
					return fmt.Errorf("xsappname sequence gave %d, expected %d", n, want)
				}
				if err := tx.CreateInstance(in); err != nil {
					return fmt.Errorf("instance %s: %w", in.ID, err)
				}
			}
			for _, bd := range b.bindings {
				if err := tx.CreateBinding(bd); err != nil {
					return fmt.Errorf("binding %s: %w", bd.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if progress != nil {
			progress(b.first + len(b.instances))
		}
	}
	return ctx.Err()
}

// errRollback aborts a transaction that only looked.
var errRollback = errors.New("rollback")

// CurrentSequence returns the last value the xsappname sequence handed out
// (0 if none). NextSequence is the store's only reader of a sequence, so
// it runs in a transaction that is rolled back.
func CurrentSequence(ctx context.Context, st store.Store) (uint64, error) {
	var n uint64
	err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.NextSequence("xsappname"); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		return 0, fmt.Errorf("reading the xsappname sequence: %v", err)
	}
	return n - 1, nil
}

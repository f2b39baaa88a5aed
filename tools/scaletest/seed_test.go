package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/pivotal-cf/brokerapi/v10/domain"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

type fixedKey string

func (k fixedKey) VerificationKeyPEM() string { return string(k) }

const testKeyPEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtest\n-----END PUBLIC KEY-----\n"

type fixture struct {
	st     *bolt.Store
	sealer *credentials.Sealer
	b      *broker.Broker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := credentials.NewSealer(encryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := broker.ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://localhost:8443")
	ident, _ := url.Parse("https://127.0.0.1:8443")
	b := broker.New(broker.Config{
		Store: st, Catalog: cat, Sealer: sealer, Keys: fixedKey(testKeyPEM),
		Zone: broker.Zone{Name: "default", ID: "zone-id"}, XsuaaURL: pub, IdentityURL: ident,
	})
	return &fixture{st: st, sealer: sealer, b: b}
}

func (f *fixture) provision(t *testing.T, spec InstanceSpec) error {
	t.Helper()
	_, err := f.b.Provision(context.Background(), spec.ID, domain.ProvisionDetails{
		ServiceID: xsuaaServiceID, PlanID: xsuaaPlanID, OrganizationGUID: spec.Org, SpaceGUID: spec.Space,
		RawContext: ContextJSON(spec.Org, spec.Space, spec.Name), RawParameters: spec.Params,
	}, false)
	return err
}

func (f *fixture) bind(t *testing.T, spec BindingSpec) map[string]any {
	t.Helper()
	res, err := f.b.Bind(context.Background(), spec.InstanceID, spec.ID, domain.BindDetails{
		ServiceID: xsuaaServiceID, PlanID: xsuaaPlanID, AppGUID: spec.AppGUID,
		BindResource: spec.BindResource(), RawParameters: bindParams,
	}, false)
	if err != nil {
		t.Fatalf("bind %s: %v", spec.ID, err)
	}
	return credentialsMap(t, res.Credentials)
}

func credentialsMap(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) records(t *testing.T, instanceID, bindingID string) (*store.Instance, *store.Binding) {
	t.Helper()
	var in *store.Instance
	var bd *store.Binding
	err := f.st.View(context.Background(), func(tx store.Tx) error {
		var err error
		if in, err = tx.GetInstance(instanceID); err != nil {
			return err
		}
		if bindingID != "" {
			bd, err = tx.GetBinding(bindingID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return in, bd
}

// The seeder's records must be the ones the broker writes for the same
// provision and bind requests, field by field.
func TestRecordsMatchBroker(t *testing.T) {
	f := newFixture(t)
	l := &Layout{Seed: "test", Instances: 2, Bindings: 10}
	for i := 0; i < 2; i++ { // instance 1 grants to instance 0, which must exist
		if err := f.provision(t, l.SeededInstance(i)); err != nil {
			t.Fatalf("provision %d: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		for _, j := range []int{0, 9} { // an app binding and a service key
			spec := l.SeededBinding(i, j)
			creds := f.bind(t, spec)
			got, gotB := f.records(t, spec.InstanceID, spec.ID)

			want, err := BuildInstance(l.SeededInstance(i), l.SeqBase+uint64(i)+1, got.CreatedAt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("instance %d:\nbroker %+v\nseeder %+v", i, got, want)
			}
			if got.ClientID != l.ClientID(i) || got.XSAppName != l.FullAppName(i) {
				t.Errorf("instance %d: client id %q, layout says %q", i, got.ClientID, l.ClientID(i))
			}

			spec.Secret = creds["clientsecret"].(string)
			wantB, err := BuildBinding(spec, got, NewCredentialsTemplate(creds), f.sealer, gotB.CreatedAt)
			if err != nil {
				t.Fatal(err)
			}
			gotCreds, err := f.sealer.Open(gotB.SealedCredentials, []byte("binding:"+spec.ID))
			if err != nil {
				t.Fatal(err)
			}
			wantCreds, err := f.sealer.Open(wantB.SealedCredentials, []byte("binding:"+spec.ID))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotCreds, wantCreds) {
				t.Errorf("binding %d/%d credentials:\nbroker %s\nseeder %s", i, j, gotCreds, wantCreds)
			}
			// Sealing draws a fresh nonce: compare the rest.
			gotB.SealedCredentials, wantB.SealedCredentials = nil, nil
			if !reflect.DeepEqual(gotB, wantB) {
				t.Errorf("binding %d/%d:\nbroker %+v\nseeder %+v", i, j, gotB, wantB)
			}
		}
	}
}

// A seeded store must serve the broker like one it filled itself: fetch
// binding returns the derived credentials, a new bind on a seeded instance
// gets the same credentials but its own secret, references to seeded apps
// resolve, and grants between seeded instances take effect.
func TestSeedServesBroker(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)

	// The template comes from a probe the broker provisions and binds,
	// which is then removed, as the tool does it with the real binary.
	probe := InstanceSpec{ID: "probe", Org: "o", Space: "s", Name: "probe",
		Params: xsSecurity("probe", "probe", map[string]any{"name": "$XSAPPNAME.Read"}, []string{"$XSAPPNAME.Read"})}
	if err := f.provision(t, probe); err != nil {
		t.Fatal(err)
	}
	tmpl := NewCredentialsTemplate(f.bind(t, BindingSpec{ID: "probe-b", InstanceID: "probe"}))
	if err := f.st.Update(ctx, func(tx store.Tx) error { _, err := tx.DeleteInstance("probe"); return err }); err != nil {
		t.Fatal(err)
	}
	base, err := CurrentSequence(ctx, f.st)
	if err != nil {
		t.Fatal(err)
	}
	if base != 1 {
		t.Fatalf("sequence after one provision: %d", base)
	}
	l := &Layout{Seed: "test", Instances: 250, Bindings: 3, SeqBase: base}
	var done []int
	if err := Seed(ctx, f.st, l, tmpl, f.sealer, 100, func(n int) { done = append(done, n) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, []int{100, 200, 250}) {
		t.Errorf("progress %v", done)
	}
	if base, _ := CurrentSequence(ctx, f.st); base != 251 {
		t.Errorf("sequence after seeding: %d, want 251", base)
	}

	for _, i := range []int{0, 101, 249} {
		for j := 0; j < l.Bindings; j++ {
			spec := l.SeededBinding(i, j)
			res, err := f.b.GetBinding(ctx, spec.InstanceID, spec.ID, domain.FetchBindingDetails{})
			if err != nil {
				t.Fatalf("fetch %d/%d: %v", i, j, err)
			}
			got := credentialsMap(t, res.Credentials)
			if got["clientsecret"] != l.Secret(i, j) || got["clientid"] != l.ClientID(i) || got["serviceInstanceId"] != l.InstanceID(i) {
				t.Errorf("fetch %d/%d: %v", i, j, got)
			}
			_, bd := f.records(t, spec.InstanceID, spec.ID)
			if !credentials.SecretHash(bd.SecretHash).Matches(l.Secret(i, j)) {
				t.Errorf("binding %d/%d: stored hash does not match the derived secret", i, j)
			}
		}
		fresh := f.bind(t, BindingSpec{ID: "fresh-" + l.InstanceID(i), InstanceID: l.InstanceID(i)})
		seeded, err := f.b.GetBinding(ctx, l.InstanceID(i), l.BindingID(i, 0), domain.FetchBindingDetails{})
		if err != nil {
			t.Fatal(err)
		}
		old := credentialsMap(t, seeded.Credentials)
		if fresh["clientsecret"] == old["clientsecret"] {
			t.Error("a new bind got a seeded secret")
		}
		delete(fresh, "clientsecret")
		delete(old, "clientsecret")
		if !reflect.DeepEqual(fresh, old) {
			t.Errorf("instance %d: new bind\n%v\nseeded\n%v", i, fresh, old)
		}
	}

	// A provision referencing a seeded app goes through; one referencing
	// an app that was not seeded is refused, so the references are checked.
	org, space := l.OrgGUID(150), l.SpaceGUID(150)
	ok := InstanceSpec{ID: "new-1", Org: org, Space: space, Name: "new-1", Params: NewAppXsSecurity("new1", AppName(150), InstanceName(150))}
	if err := f.provision(t, ok); err != nil {
		t.Errorf("provision referencing a seeded app: %v", err)
	}
	for k, params := range [][]byte{
		NewAppXsSecurity("new2", AppName(l.Instances), InstanceName(150)), // no such app
		NewAppXsSecurity("new2", AppName(150), "no-such-instance"),        // no such instance in the space
		NewAppXsSecurity("new2", AppName(50), InstanceName(150)),          // app of another org
	} {
		bad := InstanceSpec{ID: "new-2", Org: org, Space: space, Name: "new-2", Params: params}
		if err := f.provision(t, bad); err == nil {
			t.Errorf("provision %d with a reference that does not resolve was accepted", k)
		}
	}
	// Seeded xsappnames are taken.
	dup := InstanceSpec{ID: "new-3", Org: "o", Space: "s", Name: "new-3", Params: XsSecurity(7)}
	if err := f.provision(t, dup); err == nil {
		t.Error("provision with a seeded xsappname was accepted")
	}

	var apps []grants.App
	err = f.st.View(ctx, func(tx store.Tx) error {
		all, err := tx.ListInstances()
		for _, in := range all {
			a, err := broker.AppOf(in)
			if err != nil {
				return err
			}
			apps = append(apps, a)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := grants.NewDirectory(apps)
	for _, r := range []int{0, 100, 200} {
		app, ok := dir.Lookup(l.InstanceID(r))
		if !ok {
			t.Fatalf("instance %d not in directory", r)
		}
		got := dir.Authorities(app)
		want := l.FullAppName(r+1) + ".Read"
		if !slices.Contains(got, want) {
			t.Errorf("authorities of %d: %v, want %s granted", r, got, want)
		}
		if !slices.Contains(got, l.FullAppName(r)+".Admin") {
			t.Errorf("authorities of %d: %v, want its own Admin", r, got)
		}
	}
	// Non-recipients get nothing granted.
	app, _ := dir.Lookup(l.InstanceID(5))
	for _, a := range dir.Authorities(app) {
		if a != grants.ScopeResource && a != l.FullAppName(5)+".Admin" {
			t.Errorf("authorities of 5 include %s", a)
		}
	}
}

func TestLayoutDistinct(t *testing.T) {
	l := &Layout{Seed: "x", Instances: 300, Bindings: 10, SeqBase: 4}
	seen := map[string]bool{}
	for i := 0; i < l.Instances; i++ {
		for _, id := range []string{l.InstanceID(i), l.ClientID(i), l.BindingID(i, 0), l.BindingID(i, 9), l.Secret(i, 3)} {
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
		}
	}
	if l.SpaceGUID(0) != l.SpaceGUID(99) || l.SpaceGUID(99) == l.SpaceGUID(100) {
		t.Error("not 100 instances per space")
	}
	if l.FullAppName(0) != "app000000!t5" {
		t.Errorf("full app name %s", l.FullAppName(0))
	}
}

// Package broker implements the Open Service Broker API (brokerapi's
// domain.ServiceBroker) for the xsuaa and identity offerings: provisioning
// validates and stores the configuration, binding issues a per-binding
// client secret or X.509 certificate, unbinding deletes it for good.
//
// Every operation completes synchronously (201/200, never 202): all work is
// local and fast except RSA key generation, which runs outside the store's
// write transaction.
package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"
	"github.com/pivotal-cf/brokerapi/v10/domain/apiresponses"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
)

// Zone is the identity zone (XSUAA) / tenant (IAS) of this broker
// deployment. Multi-tenant subscriber zones would add more of these; every
// instance belongs to the deployment's zone for now.
type Zone struct {
	Name string `json:"name"` // subdomain: identityzone, ext_attr.zdn
	ID   string `json:"id"`   // zid, identityzoneid, tenantid, subaccountid, app_tid
}

// VerificationKeys yields the PEM of the current token signing key, which
// xsuaa credentials carry as verificationkey.
type VerificationKeys interface {
	VerificationKeyPEM() string
}

// Config wires a Broker.
type Config struct {
	Store   store.Store
	Catalog *Catalog
	Sealer  *credentials.Sealer
	CA      *credentials.CA
	Keys    VerificationKeys
	Zone    Zone
	// XsuaaURL is the public base URL of the xsuaa endpoints
	// (BROKER_PUBLIC_URL); IdentityURL that of the identity endpoints
	// (BROKER_IDENTITY_URL). Both without path.
	XsuaaURL    *url.URL
	IdentityURL *url.URL
	Logger      lager.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyPool supplies pre-generated RSA keys for X.509 bindings; nil
	// generates each key during the bind.
	KeyPool *credentials.KeyPool
	// Changed is called with the instance id after every committed change
	// of an instance or of its bindings, so caches (the token server's
	// client table) can refresh that one instance rather than the zone.
	Changed func(instanceID string)
}

// Broker implements domain.ServiceBroker.
type Broker struct {
	cfg Config
}

var _ domain.ServiceBroker = (*Broker)(nil)

// New returns a Broker for cfg.
func New(cfg Config) *Broker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Changed == nil {
		cfg.Changed = func(string) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = lager.NewLogger("broker")
	}
	return &Broker{cfg: cfg}
}

// Services implements domain.ServiceBroker.
func (b *Broker) Services(context.Context) ([]domain.Service, error) {
	return b.cfg.Catalog.Services, nil
}

// requestContext is the part of the OSB context object the broker uses.
type requestContext struct {
	Platform     string `json:"platform"`
	InstanceName string `json:"instance_name"`
	SpaceGUID    string `json:"space_guid"`
}

func parseContext(raw json.RawMessage) requestContext {
	var c requestContext
	// Unknown or malformed context never fails a request (OSB X4).
	_ = json.Unmarshal(raw, &c)
	return c
}

// CanonicalParams validates that raw is absent, null or a JSON object and
// returns it compacted with sorted keys, so that "identical request" checks
// do not depend on whitespace or key order. Absent, null and {} all yield nil.
func CanonicalParams(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, badRequest("parameters: not valid JSON: %v", err)
	}
	// One value only: brokerapi hands over a single RawMessage, but a
	// caller with raw bytes must not get "{} x" accepted as {}.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("parameters: not valid JSON: data after the object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("parameters: must be a JSON object")
	}
	if len(obj) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, badRequest("parameters: %v", err)
	}
	return out, nil
}

// checkID refuses an instance or binding id that is not valid UTF-8. Records
// are stored as JSON, which would turn such an id into another one (U+FFFD
// for each bad byte): the record would no longer match its key, the
// credentials sealed for the id would no longer open, and bindings would
// no longer find their instance.
func checkID(key, id string) error {
	if !utf8.ValidString(id) {
		return badRequest("%s: must be valid UTF-8", key)
	}
	// Platforms use GUIDs; a bound keeps every id storable (PostgreSQL
	// index rows, bbolt keys) so an odd id gets 400, not a 500 that Cloud
	// Controller would answer with orphan mitigation.
	if len(id) > MaxIDBytes {
		return badRequest("%s: at most %d bytes", key, MaxIDBytes)
	}
	return nil
}

// MaxIDBytes bounds instance and binding ids.
const MaxIDBytes = 255

func (b *Broker) checkPlan(serviceID, planID string) (domain.Service, domain.ServicePlan, error) {
	if !b.cfg.Catalog.HasService(serviceID) {
		return domain.Service{}, domain.ServicePlan{}, badRequest("service_id: unknown service offering %q", serviceID)
	}
	s, p, ok := b.cfg.Catalog.Plan(serviceID, planID)
	if !ok {
		return s, p, badRequest("plan_id: plan %q does not belong to service offering %q", planID, serviceID)
	}
	return s, p, nil
}

func checkMaintenanceInfo(requested *domain.MaintenanceInfo, plan domain.ServicePlan) error {
	if requested == nil {
		return nil
	}
	if plan.MaintenanceInfo == nil {
		if requested.Version == "" {
			return nil
		}
		return apiresponses.ErrMaintenanceInfoNilConflict
	}
	if requested.Version != plan.MaintenanceInfo.Version {
		return apiresponses.ErrMaintenanceInfoConflict
	}
	return nil
}

// Provision implements domain.ServiceBroker.
func (b *Broker) Provision(ctx context.Context, id string, d domain.ProvisionDetails, _ bool) (domain.ProvisionedServiceSpec, error) {
	if err := checkID("instance_id", id); err != nil {
		return domain.ProvisionedServiceSpec{}, err
	}
	svc, plan, err := b.checkPlan(d.ServiceID, d.PlanID)
	if err != nil {
		return domain.ProvisionedServiceSpec{}, err
	}
	if d.OrganizationGUID == "" {
		return domain.ProvisionedServiceSpec{}, badRequest("organization_guid: must not be empty")
	}
	if d.SpaceGUID == "" {
		return domain.ProvisionedServiceSpec{}, badRequest("space_guid: must not be empty")
	}
	if err := checkMaintenanceInfo(d.MaintenanceInfo, plan); err != nil {
		return domain.ProvisionedServiceSpec{}, err
	}
	params, err := CanonicalParams(d.RawParameters)
	if err != nil {
		return domain.ProvisionedServiceSpec{}, err
	}
	rc := parseContext(d.RawContext)
	now := b.cfg.Now().UTC()
	var spec domain.ProvisionedServiceSpec
	err = b.cfg.Store.Update(ctx, func(tx store.Tx) error {
		existing, err := tx.GetInstance(id)
		switch {
		case err == nil:
			if existing.ServiceID == d.ServiceID && existing.PlanID == d.PlanID &&
				existing.OrganizationGUID == d.OrganizationGUID && existing.SpaceGUID == d.SpaceGUID &&
				bytes.Equal(existing.Parameters, params) {
				spec.AlreadyExists = true
				return nil
			}
			return apiresponses.ErrInstanceAlreadyExists
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		in := &store.Instance{
			ID: id, Service: svc.Name, Plan: plan.Name, ServiceID: d.ServiceID, PlanID: d.PlanID,
			OrganizationGUID: d.OrganizationGUID, SpaceGUID: d.SpaceGUID, InstanceName: rc.InstanceName,
			Context: d.RawContext, Parameters: params, CreatedAt: now, UpdatedAt: now,
		}
		switch svc.Name {
		case ServiceXsuaa:
			err = b.configureXsuaa(tx, in, params, nil)
		case ServiceIdentity:
			err = b.configureIdentity(tx, in, params)
		default:
			err = fmt.Errorf("catalog offering %q has no implementation", svc.Name)
		}
		if err != nil {
			return err
		}
		return tx.CreateInstance(in)
	})
	if err != nil {
		return domain.ProvisionedServiceSpec{}, osbError(err)
	}
	if !spec.AlreadyExists {
		b.cfg.Changed(id)
	}
	return spec, nil
}

// Update implements domain.ServiceBroker.
func (b *Broker) Update(ctx context.Context, id string, d domain.UpdateDetails, _ bool) (domain.UpdateServiceSpec, error) {
	params, err := CanonicalParams(d.RawParameters)
	if err != nil {
		return domain.UpdateServiceSpec{}, err
	}
	rc := parseContext(d.RawContext)
	err = b.cfg.Store.Update(ctx, func(tx store.Tx) error {
		in, err := tx.GetInstance(id)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("service instance %s does not exist", id)
		}
		if err != nil {
			return err
		}
		if d.ServiceID != in.ServiceID {
			return badRequest("service_id: %q is not the service offering of this instance", d.ServiceID)
		}
		if d.PlanID != "" && d.PlanID != in.PlanID {
			// The plan is part of the xsappname suffix and the client id,
			// which every existing binding and token carries.
			return badRequest("plan_id: changing the plan of an instance is not supported (the plan determines the xsappname suffix and client id); create a new instance instead")
		}
		_, plan, err := b.checkPlan(in.ServiceID, in.PlanID)
		if err != nil {
			return err
		}
		if err := checkMaintenanceInfo(d.MaintenanceInfo, plan); err != nil {
			return err
		}
		if rc.InstanceName != "" && rc.InstanceName != in.InstanceName {
			in.InstanceName = rc.InstanceName
			in.Context = d.RawContext
		}
		if params != nil {
			switch in.Service {
			case ServiceXsuaa:
				var old descriptor.Descriptor
				if err := json.Unmarshal(in.Config, &old); err != nil {
					return err
				}
				err = b.configureXsuaa(tx, in, params, &old)
			case ServiceIdentity:
				err = b.configureIdentity(tx, in, params)
			}
			if err != nil {
				return err
			}
			in.Parameters = params
		}
		// A rename alone is not re-validated: Cloud Controller expects a
		// context-only update to succeed (osb.md U10), and re-checking the
		// unchanged descriptor would refuse it as soon as an instance it
		// references had been deleted in the meantime.
		in.UpdatedAt = b.cfg.Now().UTC()
		return tx.PutInstance(in)
	})
	if err != nil {
		return domain.UpdateServiceSpec{}, osbError(err)
	}
	b.cfg.Changed(id)
	return domain.UpdateServiceSpec{}, nil
}

// Deprovision implements domain.ServiceBroker. Bindings still present are
// removed with the instance, which kills their credentials.
func (b *Broker) Deprovision(ctx context.Context, id string, _ domain.DeprovisionDetails, _ bool) (domain.DeprovisionServiceSpec, error) {
	var removed []*store.Binding
	err := b.cfg.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		removed, err = tx.DeleteInstance(id)
		if errors.Is(err, store.ErrNotFound) {
			return apiresponses.ErrInstanceDoesNotExist
		}
		return err
	})
	if err != nil {
		return domain.DeprovisionServiceSpec{}, osbError(err)
	}
	if len(removed) > 0 {
		b.cfg.Logger.Info("deprovision-removed-bindings", lager.Data{"instance_id": id, "bindings": len(removed)})
	}
	b.cfg.Changed(id)
	return domain.DeprovisionServiceSpec{}, nil
}

// GetInstance implements domain.ServiceBroker.
func (b *Broker) GetInstance(ctx context.Context, id string, _ domain.FetchInstanceDetails) (domain.GetInstanceDetailsSpec, error) {
	var in *store.Instance
	err := b.cfg.Store.View(ctx, func(tx store.Tx) error {
		var err error
		in, err = tx.GetInstance(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return domain.GetInstanceDetailsSpec{}, notFound("service instance %s does not exist", id)
	}
	if err != nil {
		return domain.GetInstanceDetailsSpec{}, err
	}
	var params any = map[string]any{}
	if in.Parameters != nil {
		params = in.Parameters
	}
	return domain.GetInstanceDetailsSpec{ServiceID: in.ServiceID, PlanID: in.PlanID, Parameters: params}, nil
}

// LastOperation implements domain.ServiceBroker. Operations are synchronous,
// so an existing instance has always succeeded.
func (b *Broker) LastOperation(ctx context.Context, id string, _ domain.PollDetails) (domain.LastOperation, error) {
	err := b.cfg.Store.View(ctx, func(tx store.Tx) error {
		_, err := tx.GetInstance(id)
		return err
	})
	return lastOperation(err, "service instance "+id)
}

// lastOperation answers a poll: every operation is synchronous, so a
// resource that exists has succeeded, and one that does not is unknown.
func lastOperation(err error, what string) (domain.LastOperation, error) {
	if errors.Is(err, store.ErrNotFound) {
		return domain.LastOperation{}, notFound("%s does not exist", what)
	}
	if err != nil {
		return domain.LastOperation{}, err
	}
	return domain.LastOperation{State: domain.Succeeded, Description: "done"}, nil
}

// EnsureZone loads the zone called name, creating its id on first use.
func EnsureZone(ctx context.Context, s store.Store, name string) (Zone, error) {
	var z Zone
	err := s.Update(ctx, func(tx store.Tx) error {
		raw, err := tx.GetMeta("zone/" + name)
		if err == nil {
			return json.Unmarshal(raw, &z)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		z = Zone{Name: name, ID: credentials.NewID()}
		raw, err = json.Marshal(z)
		if err != nil {
			return err
		}
		return tx.PutMeta("zone/"+name, raw)
	})
	return z, err
}

// hostPort returns u's host with its port, as it appears in uaadomain and
// identity domains.
func hostPort(u *url.URL) string { return u.Host }

// trimURL renders u without a trailing slash.
func trimURL(u *url.URL) string { return strings.TrimSuffix(u.String(), "/") }

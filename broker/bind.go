package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"
	"github.com/pivotal-cf/brokerapi/v10/domain/apiresponses"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
)

// Bind implements domain.ServiceBroker. Service keys (no app_guid) are
// bindings like any other.
func (b *Broker) Bind(ctx context.Context, instanceID, bindingID string, d domain.BindDetails, _ bool) (domain.Binding, error) {
	if err := checkID("binding_id", bindingID); err != nil {
		return domain.Binding{}, err
	}
	if _, _, err := b.checkPlan(d.ServiceID, d.PlanID); err != nil {
		return domain.Binding{}, err
	}
	params, err := CanonicalParams(d.RawParameters)
	if err != nil {
		return domain.Binding{}, err
	}
	var bindRes json.RawMessage
	if d.BindResource != nil {
		bindRes, _ = json.Marshal(d.BindResource)
	}
	want := &store.Binding{
		ID: bindingID, InstanceID: instanceID, ServiceID: d.ServiceID, PlanID: d.PlanID,
		AppGUID: d.AppGUID, BindResource: bindRes, Parameters: params,
	}
	if want.AppGUID == "" && d.BindResource != nil {
		want.AppGUID = d.BindResource.AppGuid
	}

	// Look before generating: key generation is slow and must not run
	// inside the store's write transaction.
	var in *store.Instance
	var existing *store.Binding
	err = b.cfg.Store.View(ctx, func(tx store.Tx) error {
		var err error
		if in, err = tx.GetInstance(instanceID); err != nil {
			return err
		}
		existing, err = tx.GetBinding(bindingID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return domain.Binding{}, apiresponses.ErrInstanceDoesNotExist
	}
	if err != nil {
		return domain.Binding{}, err
	}
	if existing != nil {
		return b.rebind(existing, want)
	}
	if in.ServiceID != d.ServiceID || in.PlanID != d.PlanID {
		return domain.Binding{}, badRequest("plan_id: the instance has service offering %q and plan %q", in.ServiceID, in.PlanID)
	}

	now := b.cfg.Now().UTC()
	want.CreatedAt = now
	var creds map[string]any
	var needInstanceSecret bool
	switch in.Service {
	case ServiceXsuaa:
		creds, needInstanceSecret, err = b.issueXsuaa(in, want, params, now)
	case ServiceIdentity:
		creds, err = b.issueIdentity(in, want, params, now)
	}
	if err != nil {
		return domain.Binding{}, osbError(err)
	}

	var result domain.Binding
	err = b.cfg.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.GetInstance(instanceID)
		if err != nil {
			return err
		}
		if raced, err := tx.GetBinding(bindingID); err == nil {
			result, err = b.rebind(raced, want)
			return err
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if needInstanceSecret {
			secret, err := b.instanceSecret(tx, cur)
			if err != nil {
				return err
			}
			creds["clientsecret"] = secret
			want.SecretHash = hashOf(secret)
		}
		raw, err := json.Marshal(creds)
		if err != nil {
			return err
		}
		if want.SealedCredentials, err = b.cfg.Sealer.Seal(raw, bindingAAD(bindingID)); err != nil {
			return err
		}
		if err := tx.CreateBinding(want); err != nil {
			if errors.Is(err, store.ErrExists) && want.Cert != nil {
				return badRequest("certificate: this certificate is already registered for another binding; certificates must be unique")
			}
			return err
		}
		result = domain.Binding{Credentials: json.RawMessage(raw)}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return domain.Binding{}, apiresponses.ErrInstanceDoesNotExist
	}
	if err != nil {
		return domain.Binding{}, osbError(err)
	}
	b.cfg.Changed(instanceID)
	return result, nil
}

// rebind answers a bind for an id that already exists: the same request gets
// the same credentials (200), a different one 409.
func (b *Broker) rebind(existing, want *store.Binding) (domain.Binding, error) {
	if existing.InstanceID != want.InstanceID || existing.ServiceID != want.ServiceID || existing.PlanID != want.PlanID ||
		existing.AppGUID != want.AppGUID || !bytes.Equal(existing.Parameters, want.Parameters) {
		return domain.Binding{}, apiresponses.ErrBindingAlreadyExists
	}
	raw, err := b.cfg.Sealer.Open(existing.SealedCredentials, bindingAAD(existing.ID))
	if err != nil {
		return domain.Binding{}, err
	}
	return domain.Binding{AlreadyExists: true, Credentials: json.RawMessage(raw)}, nil
}

func bindingAAD(id string) []byte { return []byte("binding:" + id) }

func hashOf(secret string) []byte {
	h := credentials.HashSecret(secret)
	return h[:]
}

// instanceSecret returns the instance's legacy shared secret, creating it
// on first use.
func (b *Broker) instanceSecret(tx store.Tx, in *store.Instance) (string, error) {
	aad := []byte("instance-secret:" + in.ID)
	if in.InstanceSecret != nil {
		raw, err := b.cfg.Sealer.Open(in.InstanceSecret.Sealed, aad)
		return string(raw), err
	}
	secret, err := credentials.NewXsuaaSecret()
	if err != nil {
		return "", err
	}
	sealed, err := b.cfg.Sealer.Seal([]byte(secret), aad)
	if err != nil {
		return "", err
	}
	in.InstanceSecret = &store.SecretRecord{Hash: hashOf(secret), Sealed: sealed}
	return secret, tx.PutInstance(in)
}

// Unbind implements domain.ServiceBroker. The credential is deleted in the
// same transaction, so it is dead as soon as the 200 is sent.
func (b *Broker) Unbind(ctx context.Context, instanceID, bindingID string, _ domain.UnbindDetails, _ bool) (domain.UnbindSpec, error) {
	err := b.cfg.Store.Update(ctx, func(tx store.Tx) error {
		bd, err := tx.GetBinding(bindingID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && bd.InstanceID != instanceID) {
			return apiresponses.ErrBindingDoesNotExist
		}
		if err != nil {
			return err
		}
		_, err = tx.DeleteBinding(bindingID)
		return err
	})
	if err != nil {
		return domain.UnbindSpec{}, osbError(err)
	}
	b.cfg.Logger.Info("unbind", lager.Data{"instance_id": instanceID, "binding_id": bindingID})
	b.cfg.Changed(instanceID)
	return domain.UnbindSpec{}, nil
}

// GetBinding implements domain.ServiceBroker.
func (b *Broker) GetBinding(ctx context.Context, instanceID, bindingID string, _ domain.FetchBindingDetails) (domain.GetBindingSpec, error) {
	var bd *store.Binding
	err := b.cfg.Store.View(ctx, func(tx store.Tx) error {
		var err error
		bd, err = tx.GetBinding(bindingID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && bd.InstanceID != instanceID) {
		return domain.GetBindingSpec{}, apiresponses.ErrBindingNotFound
	}
	if err != nil {
		return domain.GetBindingSpec{}, err
	}
	raw, err := b.cfg.Sealer.Open(bd.SealedCredentials, bindingAAD(bd.ID))
	if err != nil {
		return domain.GetBindingSpec{}, err
	}
	var params any = map[string]any{}
	if bd.Parameters != nil {
		params = bd.Parameters
	}
	return domain.GetBindingSpec{Credentials: json.RawMessage(raw), Parameters: params}, nil
}

// LastBindingOperation implements domain.ServiceBroker.
func (b *Broker) LastBindingOperation(ctx context.Context, instanceID, bindingID string, _ domain.PollDetails) (domain.LastOperation, error) {
	err := b.cfg.Store.View(ctx, func(tx store.Tx) error {
		bd, err := tx.GetBinding(bindingID)
		if err == nil && bd.InstanceID != instanceID {
			return store.ErrNotFound
		}
		return err
	})
	return lastOperation(err, "service binding "+bindingID)
}

// certRecord describes an issued or provided certificate for the store.
func certRecord(leaf *x509.Certificate, pinned, provided bool) *store.CertRecord {
	return &store.CertRecord{
		Fingerprint: credentials.Fingerprint(leaf),
		Subject:     leaf.Subject.String(),
		Issuer:      leaf.Issuer.String(),
		NotAfter:    leaf.NotAfter.UTC(),
		Pinned:      pinned,
		Provided:    provided,
	}
}

// issueXsuaa creates the credential of an xsuaa binding and fills want's
// verification fields. needInstanceSecret asks the caller to add the
// instance's shared secret inside its transaction.
func (b *Broker) issueXsuaa(in *store.Instance, want *store.Binding, params []byte, now time.Time) (creds map[string]any, needInstanceSecret bool, err error) {
	var d descriptor.Descriptor
	if err := json.Unmarshal(in.Config, &d); err != nil {
		return nil, false, err
	}
	p, err := descriptor.ParseXsuaaBinding(params, d.CredentialTypes())
	if err != nil {
		return nil, false, badRequest("%v", err)
	}
	want.CredentialType = p.CredentialType
	creds = b.xsuaaCredentials(in, &d)
	creds["credential-type"] = p.CredentialType
	switch p.CredentialType {
	case "binding-secret":
		secret, err := credentials.NewXsuaaSecret()
		if err != nil {
			return nil, false, err
		}
		want.SecretHash = hashOf(secret)
		if !p.HideSecret {
			creds["clientsecret"] = secret
		}
	case "instance-secret":
		needInstanceSecret = true
	case "x509":
		creds["certurl"] = b.certURL()
		creds["certificate-pinning"] = p.X509.CertificatePinning
		if p.X509.Certificate != "" {
			leaf, err := credentials.ParseCertificatePEM(p.X509.Certificate)
			if err != nil {
				return nil, false, badRequest("x509.certificate: %v", err)
			}
			want.Cert = certRecord(leaf, p.X509.CertificatePinning, true)
			if !p.X509.HideCertificate {
				creds["certificate"] = p.X509.Certificate
			}
			break
		}
		key, err := b.clientKey(p.X509.KeyLength)
		if err != nil {
			return nil, false, err
		}
		cert, err := b.cfg.CA.IssueClientCertificate(credentials.ClientCertRequest{
			Key:      key,
			KeyBits:  p.X509.KeyLength,
			NotAfter: now.AddDate(0, 0, p.X509.Validity),
			Subject:  credentials.ClientSubject(certOrg, b.cfg.Zone.Name, b.cfg.Zone.ID, "broker-uaa", commonName(want.ID, "")),
		}, now)
		if err != nil {
			return nil, false, err
		}
		want.Cert = certRecord(cert.Leaf, true, false)
		creds["certificate"] = cert.CertificatePEM
		creds["key"] = cert.KeyPEM
		creds["certificate_expires_at"] = cert.NotAfter.UTC().Format(time.RFC3339)
	}
	return creds, false || needInstanceSecret, nil
}

// maxCommonName is the RFC 5280 upper bound of a CN, which the CA enforces.
const maxCommonName = 64

// commonName returns id+suffix as a certificate CN. OSB ids are opaque and
// may be longer than a CN allows; such an id is replaced by as much of its
// hex SHA-256 as fits, which keeps it stable (the subject of app-identifier
// certificates must not change between binds) and distinct. The suffix, at
// most 21 characters, is kept readable.
func commonName(id, suffix string) string {
	n := utf8.RuneCountInString(suffix)
	if utf8.RuneCountInString(id)+n <= maxCommonName {
		return id + suffix
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])[:maxCommonName-n] + suffix
}

// certOrg is the O= of certificates the broker issues.
const certOrg = "Open Service Broker"

// issueIdentity creates the credential of an identity binding.
func (b *Broker) issueIdentity(in *store.Instance, want *store.Binding, params []byte, now time.Time) (map[string]any, error) {
	var cfg descriptor.IdentityConfig
	if err := json.Unmarshal(in.Config, &cfg); err != nil {
		return nil, err
	}
	p, err := descriptor.ParseIdentityBinding(params, now)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if p.CredentialType == "SECRET" && cfg.MultiTenant {
		return nil, badRequest("credential-type: SECRET bindings are not allowed on multi-tenant instances; use X509_GENERATED with an app-identifier")
	}
	if p.CredentialType == "X509_GENERATED" && cfg.MultiTenant && p.AppIdentifier == "" {
		return nil, badRequest("app-identifier: required for X509_GENERATED bindings of multi-tenant instances")
	}
	want.CredentialType = p.CredentialType
	creds := b.identityCredentials(in)
	creds["credential-type"] = p.CredentialType
	switch p.CredentialType {
	case "SECRET":
		secret, err := credentials.NewIdentitySecret()
		if err != nil {
			return nil, err
		}
		want.SecretHash = hashOf(secret)
		creds["clientsecret"] = secret
	case "X509_GENERATED":
		// With an app-identifier the subject stays the same across
		// rebinds; each certificate is still pinned by fingerprint, so an
		// unbind kills exactly its own certificate.
		cn := commonName(want.ID, "")
		if p.AppIdentifier != "" {
			cn = commonName(in.ID, "/"+p.AppIdentifier)
		}
		key, err := b.clientKey(p.KeyLength)
		if err != nil {
			return nil, err
		}
		cert, err := b.cfg.CA.IssueClientCertificate(credentials.ClientCertRequest{
			Key:      key,
			KeyBits:  p.KeyLength,
			NotAfter: p.NotAfter(now),
			Subject:  credentials.ClientSubject(certOrg, b.cfg.Zone.Name, b.cfg.Zone.ID, b.cfg.IdentityURL.Hostname(), cn),
		}, now)
		if err != nil {
			return nil, err
		}
		want.Cert = certRecord(cert.Leaf, true, false)
		creds["certificate"] = cert.CertificatePEM
		creds["key"] = cert.KeyPEM
		creds["certificate_expires_at"] = cert.NotAfter.UTC().Format(time.RFC3339)
	case "X509_PROVIDED":
		leaf, err := credentials.ParseCertificatePEM(p.Certificate)
		if err != nil {
			return nil, badRequest("certificate: %v", err)
		}
		want.Cert = certRecord(leaf, true, true)
		creds["certificate"] = p.Certificate
		creds["certificate_expires_at"] = leaf.NotAfter.UTC().Format(time.RFC3339)
	case "NONE":
	}
	return creds, nil
}

// clientKey returns an RSA key for a generated client certificate, from
// the pre-generated pool when the broker has one.
func (b *Broker) clientKey(bits int) (*rsa.PrivateKey, error) {
	if bits == 0 {
		bits = 2048
	}
	if b.cfg.KeyPool != nil {
		return b.cfg.KeyPool.Get(bits)
	}
	return rsa.GenerateKey(rand.Reader, bits)
}

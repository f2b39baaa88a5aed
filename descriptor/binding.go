package descriptor

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// XsuaaBinding holds the bind / service-key parameters of an xsuaa instance
// (xsuaa.md §1.5) with defaults applied. Fields that do not apply to the
// chosen credential type (X509 for binding-secret, HideSecret for x509) are
// validated but have no effect.
type XsuaaBinding struct {
	CredentialType string     `json:"credential-type"` // binding-secret, x509 or instance-secret
	HideSecret     bool       `json:"hide-secret,omitempty"`
	X509           X509Params `json:"x509"`
}

// X509Params are the "x509" binding parameters of xsuaa.
type X509Params struct {
	KeyLength          int    `json:"key-length"`            // RSA bits: 2048, 4096 or 8192
	Validity           int    `json:"validity"`              // in ValidityType units, 1..30
	ValidityType       string `json:"validity-type"`         // DAYS
	Certificate        string `json:"certificate,omitempty"` // self-managed PEM; no key is generated then
	EnsureUniqueness   bool   `json:"ensure-uniqueness,omitempty"`
	CertificatePinning bool   `json:"certificate-pinning"`
	HideCertificate    bool   `json:"hide-certificate,omitempty"`
}

// Xsuaa binding defaults and limits (xsuaa.md §1.5).
const (
	DefaultX509KeyLength = 2048
	DefaultX509Validity  = 7
	maxX509Validity      = 30
)

var xsuaaKeyLengths = []int{2048, 4096, 8192}

// x509Keys are the keys of the "x509" object, also accepted at top level
// (the Job Scheduling documentation shows a flat variant).
var x509Keys = []string{"key-length", "validity", "validity-type", "certificate", "ensure-uniqueness", "certificate-pinning", "hide-certificate"}

// ParseXsuaaBinding decodes and validates xsuaa bind parameters. allowedTypes
// is the instance's oauth2-configuration.credential-types (nil when not
// declared): its first entry is the default credential type (else
// binding-secret), a non-empty list restricts the choice, and instance-secret
// is only available when the list names it. Parameters may be wrapped as
// {"xsuaa": {...}} (services embedding xsuaa do that); x509 parameters may be
// nested under "x509" or given flat, nested ones winning.
func ParseXsuaaBinding(raw []byte, allowedTypes []string) (*XsuaaBinding, error) {
	ms, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	prefix := ""
	for _, m := range ms {
		if m.key == "xsuaa" {
			prefix = "xsuaa"
			if ms, err = object(m.val, prefix); err != nil {
				return nil, err
			}
			break
		}
	}
	b := &XsuaaBinding{X509: X509Params{
		KeyLength:          DefaultX509KeyLength,
		Validity:           DefaultX509Validity,
		ValidityType:       "DAYS",
		CertificatePinning: true,
	}}
	var nested []member
	for _, m := range ms {
		p := child(prefix, m.key)
		switch {
		case m.key == "credential-type":
			b.CredentialType, err = str(m.val, p)
		case m.key == "hide-secret":
			var hide *bool
			hide, err = boolish(m.val, p)
			b.HideSecret = hide != nil && *hide
		case m.key == "x509":
			nested, err = members(m.val, p)
		case slices.Contains(x509Keys, m.key):
			err = b.X509.set(m, prefix)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, m := range nested {
		if err := b.X509.set(m, child(prefix, "x509")); err != nil {
			return nil, err
		}
	}
	key := child(prefix, "credential-type")
	if b.CredentialType == "" {
		b.CredentialType = "binding-secret"
		if len(allowedTypes) > 0 {
			b.CredentialType = allowedTypes[0]
		}
	}
	switch ct := b.CredentialType; {
	case !oneOf(ct, credentialTypes...):
		return nil, errorf(key, "must be one of %s, got %q", strings.Join(credentialTypes, ", "), ct)
	case len(allowedTypes) > 0 && !oneOf(ct, allowedTypes...):
		return nil, errorf(key, "%q is not allowed by the instance's oauth2-configuration.credential-types (%s)", ct, strings.Join(allowedTypes, ", "))
	case ct == "instance-secret" && !oneOf(ct, allowedTypes...):
		return nil, errorf(key, "instance-secret is only available when the instance's oauth2-configuration.credential-types lists it; use binding-secret or x509")
	}
	return b, nil
}

// set decodes and checks one x509 parameter.
func (x *X509Params) set(m member, path string) error {
	p := child(path, m.key)
	var err error
	var flag *bool
	switch m.key {
	case "key-length":
		var n int
		var given bool
		if n, given, err = integer(m.val, p); err == nil && given {
			if !slices.Contains(xsuaaKeyLengths, n) {
				return errorf(p, "must be 2048, 4096 or 8192, got %d", n)
			}
			x.KeyLength = n
		}
	case "validity":
		var n int
		var given bool
		if n, given, err = integer(m.val, p); err == nil && given {
			if n < 1 || n > maxX509Validity {
				return errorf(p, "must be between 1 and %d, got %d", maxX509Validity, n)
			}
			x.Validity = n
		}
	case "validity-type":
		var s string
		if s, err = str(m.val, p); err == nil && s != "" {
			if s != "DAYS" {
				return errorf(p, "must be DAYS, got %q", s)
			}
			x.ValidityType = s
		}
	case "certificate":
		if x.Certificate, err = str(m.val, p); err == nil && x.Certificate != "" {
			_, err = parseCertificates(x.Certificate, p)
		}
	case "ensure-uniqueness":
		if flag, err = boolish(m.val, p); flag != nil {
			x.EnsureUniqueness = *flag
		}
	case "certificate-pinning":
		if flag, err = boolish(m.val, p); flag != nil {
			x.CertificatePinning = *flag
		}
	case "hide-certificate":
		if flag, err = boolish(m.val, p); flag != nil {
			x.HideCertificate = *flag
		}
	}
	return err
}

// parseCertificates parses a PEM bundle that must hold only CERTIFICATE
// blocks, at least one; the first is the leaf.
func parseCertificates(s, key string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, errorf(key, "contains a %q PEM block; only CERTIFICATE blocks are allowed", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, errorf(key, "certificate %d cannot be parsed: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errorf(key, "is not a PEM certificate (the line breaks after -----BEGIN CERTIFICATE----- and before -----END CERTIFICATE----- are required)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errorf(key, "has unparseable data after the last certificate")
	}
	return certs, nil
}

// IdentityBinding holds the bind / service-key parameters of an identity
// instance (identity.md §2.2) with defaults applied. KeyLength, Validity,
// ValidityType and AppIdentifier matter for X509_GENERATED only, Certificate
// for X509_PROVIDED only; given values are checked for every type.
type IdentityBinding struct {
	CredentialType string `json:"credential-type"` // SECRET, X509_GENERATED, X509_PROVIDED or NONE
	KeyLength      int    `json:"key-length"`
	Validity       int    `json:"validity"`
	ValidityType   string `json:"validity-type"` // DAYS, MONTHS or YEARS
	AppIdentifier  string `json:"app-identifier,omitempty"`
	Certificate    string `json:"certificate,omitempty"`
}

// Identity binding defaults and limits.
const (
	DefaultIdentityKeyLength = 2048
	DefaultIdentityValidity  = 30
	maxAppIdentifier         = 20
)

var (
	identityCredentialTypes = []string{"SECRET", "X509_GENERATED", "X509_PROVIDED", "NONE"}
	identityKeyLengths      = []int{2048, 4096}
	// maxValidity is "at most one year" in each unit (identity.md §2.2
	// recommendation; the optional strict 30-day mode is left out).
	maxValidity = map[string]int{"DAYS": 365, "MONTHS": 12, "YEARS": 1}
)

// ParseIdentityBinding decodes and validates identity bind parameters, a flat
// object. now is needed to refuse an expired X509_PROVIDED certificate.
// X509_ATTESTED and JWT_CLIENT_AUTH exist in SAP's service but are refused
// here; unknown keys are ignored.
func ParseIdentityBinding(raw []byte, now time.Time) (*IdentityBinding, error) {
	ms, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	b := &IdentityBinding{
		CredentialType: "SECRET",
		KeyLength:      DefaultIdentityKeyLength,
		Validity:       DefaultIdentityValidity,
		ValidityType:   "DAYS",
	}
	var certs []*x509.Certificate
	for _, m := range ms {
		k := m.key
		var n int
		var given bool
		var s string
		switch k {
		case "credential-type":
			if s, err = str(m.val, k); err == nil && s != "" {
				switch {
				case s == "X509_ATTESTED" || s == "JWT_CLIENT_AUTH":
					err = errorf(k, "%s is not supported by this broker; use SECRET, X509_GENERATED, X509_PROVIDED or NONE", s)
				case !oneOf(s, identityCredentialTypes...):
					err = errorf(k, "must be one of %s, got %q", strings.Join(identityCredentialTypes, ", "), s)
				}
				b.CredentialType = s
			}
		case "key-length":
			if n, given, err = integer(m.val, k); err == nil && given {
				if !slices.Contains(identityKeyLengths, n) {
					err = errorf(k, "must be 2048 or 4096, got %d", n)
				}
				b.KeyLength = n
			}
		case "validity":
			if n, given, err = integer(m.val, k); err == nil && given {
				if n < 1 {
					err = errorf(k, "must be at least 1, got %d", n)
				}
				b.Validity = n
			}
		case "validity-type":
			if s, err = str(m.val, k); err == nil && s != "" {
				if _, ok := maxValidity[s]; !ok {
					err = errorf(k, "must be DAYS, MONTHS or YEARS, got %q", s)
				}
				b.ValidityType = s
			}
		case "app-identifier":
			if b.AppIdentifier, err = str(m.val, k); err == nil {
				err = checkAppIdentifier(b.AppIdentifier, k)
			}
		case "certificate":
			if b.Certificate, err = str(m.val, k); err == nil && b.Certificate != "" {
				certs, err = parseCertificates(b.Certificate, k)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if limit := maxValidity[b.ValidityType]; b.Validity > limit {
		return nil, errorf("validity", "%d %s exceeds the maximum of one year (%d %s)", b.Validity, b.ValidityType, limit, b.ValidityType)
	}
	if b.CredentialType == "X509_PROVIDED" {
		if len(certs) == 0 {
			return nil, errorf("certificate", "is required for credential-type X509_PROVIDED")
		}
		if leaf := certs[0]; now.After(leaf.NotAfter) {
			return nil, errorf("certificate", "expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return b, nil
}

func checkAppIdentifier(s, key string) error {
	if n := utf8.RuneCountInString(s); n > maxAppIdentifier {
		return errorf(key, "is %d characters long; at most %d are allowed", n, maxAppIdentifier)
	}
	for _, r := range s {
		// It ends up in the certificate subject; keep it printable.
		if !unicode.IsPrint(r) {
			return errorf(key, "must contain printable characters only")
		}
	}
	return nil
}

// NotAfter returns the end of the validity of a certificate generated at now:
// now plus Validity days, calendar months or calendar years.
func (b IdentityBinding) NotAfter(now time.Time) time.Time {
	switch b.ValidityType {
	case "MONTHS":
		return now.AddDate(0, b.Validity, 0)
	case "YEARS":
		return now.AddDate(b.Validity, 0, 0)
	default:
		return now.AddDate(0, 0, b.Validity)
	}
}

// CheckInstance applies the rules that need the instance configuration
// (identity.md §2.1, multi-tenant): SECRET bindings are forbidden on
// multi-tenant instances, and X509_GENERATED needs an app-identifier there so
// that the certificate subject stays stable.
func (b IdentityBinding) CheckInstance(c *IdentityConfig) error {
	if c == nil || !c.MultiTenant {
		return nil
	}
	switch {
	case b.CredentialType == "SECRET":
		return errorf("credential-type", "SECRET is not allowed on a multi-tenant instance; use X509_GENERATED with app-identifier or X509_PROVIDED")
	case b.CredentialType == "X509_GENERATED" && b.AppIdentifier == "":
		return errorf("app-identifier", "is required for X509_GENERATED on a multi-tenant instance")
	}
	return nil
}

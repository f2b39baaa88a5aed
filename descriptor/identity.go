package descriptor

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// IdentityConfig holds the provision/update parameters of an identity
// instance (identity.md §2.1). ParseIdentity fills in every default, so the
// fields are the effective configuration, except Name: its default is the
// instance id, which only the broker knows.
type IdentityConfig struct {
	Name                  string                `json:"name,omitempty"`
	DisplayName           string                `json:"display-name,omitempty"`
	MultiTenant           bool                  `json:"multi-tenant,omitempty"`
	OAuth2Configuration   IdentityOAuth2        `json:"oauth2-configuration"`
	ConsumedServices      []ConsumedService     `json:"consumed-services,omitempty"`
	XsuaaCrossConsumption bool                  `json:"xsuaa-cross-consumption,omitempty"`
	ProvidedAPIs          []ProvidedAPI         `json:"provided-apis,omitempty"`
	SubjectNameIdentifier SubjectNameIdentifier `json:"subject-name-identifier"`
	HomeURL               string                `json:"home-url,omitempty"`    // may contain $BTP_SUBDOMAIN
	UserAccess            string                `json:"user-access,omitempty"` // public, internal, private or empty
	// DefaultAttributes maps token attribute names to fixed values.
	DefaultAttributes map[string]string `json:"default-attributes,omitempty"`
	// AssertionAttributes maps token attribute names to user attributes.
	AssertionAttributes map[string]string `json:"assertion-attributes"`
}

// IdentityOAuth2 is "oauth2-configuration" of an identity instance.
type IdentityOAuth2 struct {
	RedirectURIs           []string    `json:"redirect-uris,omitempty"`
	PostLogoutRedirectURIs []string    `json:"post-logout-redirect-uris,omitempty"`
	FrontChannelLogoutURIs []string    `json:"front-channel-logout-uris,omitempty"`
	BackChannelLogoutURIs  []string    `json:"back-channel-logout-uris,omitempty"`
	PublicClient           bool        `json:"public-client,omitempty"`
	GrantTypes             []string    `json:"grant-types"`
	TokenPolicy            TokenPolicy `json:"token-policy"`
}

// TokenPolicy is "oauth2-configuration.token-policy".
type TokenPolicy struct {
	TokenValidity            int    `json:"token-validity"`   // seconds
	RefreshValidity          int    `json:"refresh-validity"` // seconds; 0 disables refresh tokens
	RefreshParallel          int    `json:"refresh-parallel"`
	RefreshUsageAfterRenewal string `json:"refresh-usage-after-renewal"` // off, online, mobile
	AccessTokenFormat        string `json:"access-token-format"`         // default, jwt, opaque
}

// ConsumedService is one entry of "consumed-services".
type ConsumedService struct {
	ServiceInstanceName string `json:"service-instance-name"`
}

// ProvidedAPI is one entry of "provided-apis".
type ProvidedAPI struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type,omitempty"` // public, internal or empty
}

// SubjectNameIdentifier is "subject-name-identifier": which user attribute
// fills the sub claim.
type SubjectNameIdentifier struct {
	Attribute         string `json:"attribute"`
	FallbackAttribute string `json:"fallback-attribute,omitempty"` // empty: none configured
}

// Identity defaults and limits (identity.md §2.1).
const (
	DefaultIdentityTokenValidity   = 3600
	DefaultIdentityRefreshValidity = 43200
	maxDisplayName                 = 99
	maxIdentityURIs                = 20
	maxIdentityURILength           = 499
	minIdentityTokenValidity       = 60
	maxIdentityTokenValidity       = 43200
	minIdentityRefreshValidity     = 3600
	maxIdentityRefreshValidity     = 15552000
	maxRefreshParallel             = 10
	maxConsumedServices            = 400
	maxProvidedAPIs                = 50
	maxProvidedAPIName             = 50
)

var (
	identityGrantTypes = []string{
		"client_credentials", "password", "authorization_code", "refresh_token",
		"urn:ietf:params:oauth:grant-type:token-exchange",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"implicit", "authorization_code_pkce_s256",
	}
	// defaultIdentityGrantTypes follows the recommendation of identity.md
	// §2.1: jwt-bearer and token-exchange are on because xssec, approuter
	// and the Cloud SDK use them and xssec refuses grants the server does
	// not advertise.
	defaultIdentityGrantTypes = []string{
		"client_credentials", "password", "authorization_code", "refresh_token",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:token-exchange",
	}
	subjectAttributes         = []string{"userUuid", "uid", "mail", "displayName", "loginName", "personnelNumber"}
	defaultAssertionAttrs     = map[string]string{"groups": "companyGroups", "given_name": "firstName", "family_name": "lastName", "email": "mail", "user_uuid": "userUuid"}
	refreshUsageAfterRenewals = []string{"off", "online", "mobile"}
	accessTokenFormats        = []string{"default", "jwt", "opaque"}
	userAccessValues          = []string{"public", "internal", "private"}
	providedAPITypes          = []string{"public", "internal"}
)

// ParseIdentity decodes and validates identity instance parameters. Empty
// input, null and {} give the default configuration; defaultDisplayName
// (the instance name) is used when display-name is absent or empty, cut to
// 99 characters. Unknown keys, and the documented but unsupported catalog,
// authorization and blank-attribute-names, are ignored. Keys are checked in
// document order and the first problem is returned as *Error.
func ParseIdentity(raw []byte, defaultDisplayName string) (*IdentityConfig, error) {
	ms, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	// Defaults first: decoding overwrites only what is given, which keeps
	// refresh-validity 0 (no refresh tokens) apart from absent.
	c := &IdentityConfig{OAuth2Configuration: IdentityOAuth2{TokenPolicy: TokenPolicy{
		TokenValidity:            DefaultIdentityTokenValidity,
		RefreshValidity:          DefaultIdentityRefreshValidity,
		RefreshParallel:          1,
		RefreshUsageAfterRenewal: "off",
		AccessTokenFormat:        "default",
	}}}
	for _, m := range ms {
		if err := c.decode(m); err != nil {
			return nil, err
		}
	}
	if c.DisplayName == "" {
		c.DisplayName = truncateRunes(defaultDisplayName, maxDisplayName)
	}
	o := &c.OAuth2Configuration
	if len(o.GrantTypes) == 0 {
		o.GrantTypes = slices.Clone(defaultIdentityGrantTypes)
	}
	if c.SubjectNameIdentifier.Attribute == "" {
		c.SubjectNameIdentifier.Attribute = "userUuid"
	}
	if c.AssertionAttributes == nil {
		c.AssertionAttributes = maps.Clone(defaultAssertionAttrs)
	}
	return c, nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func (c *IdentityConfig) decode(m member) error {
	var err error
	k := m.key
	switch k {
	case "name":
		c.Name, err = str(m.val, k)
	case "display-name":
		c.DisplayName, err = str(m.val, k)
		if n := utf8.RuneCountInString(c.DisplayName); err == nil && n > maxDisplayName {
			err = errorf(k, "is %d characters long; at most %d are allowed", n, maxDisplayName)
		}
	case "multi-tenant":
		c.MultiTenant, err = flag(m.val, k)
	case "oauth2-configuration":
		err = c.OAuth2Configuration.decode(m.val, k)
	case "consumed-services":
		c.ConsumedServices, err = decodeList(m.val, k, decodeConsumedService)
		if err == nil && len(c.ConsumedServices) > maxConsumedServices {
			err = errorf(k, "at most %d consumed services are allowed, got %d", maxConsumedServices, len(c.ConsumedServices))
		}
	case "xsuaa-cross-consumption":
		c.XsuaaCrossConsumption, err = flag(m.val, k)
	case "provided-apis":
		c.ProvidedAPIs, err = decodeList(m.val, k, decodeProvidedAPI)
		if err == nil {
			err = checkProvidedAPIs(c.ProvidedAPIs)
		}
	case "subject-name-identifier":
		err = c.SubjectNameIdentifier.decode(m.val, k)
	case "home-url":
		c.HomeURL, err = str(m.val, k)
	case "user-access":
		c.UserAccess, err = str(m.val, k)
		if err == nil && c.UserAccess != "" && !oneOf(c.UserAccess, userAccessValues...) {
			err = errorf(k, "must be one of %s, got %q", strings.Join(userAccessValues, ", "), c.UserAccess)
		}
	case "default-attributes":
		c.DefaultAttributes, err = stringMap(m.val, k)
	case "assertion-attributes":
		c.AssertionAttributes, err = stringMap(m.val, k)
	}
	return err
}

// flag decodes an optional JSON boolean; null means false.
func flag(raw json.RawMessage, path string) (bool, error) {
	b, err := boolean(raw, path)
	return b != nil && *b, err
}

func (o *IdentityOAuth2) decode(raw json.RawMessage, path string) error {
	ms, err := members(raw, path)
	if err != nil {
		return err
	}
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "redirect-uris":
			o.RedirectURIs, err = identityURIs(m.val, p)
		case "post-logout-redirect-uris":
			o.PostLogoutRedirectURIs, err = identityURIs(m.val, p)
		case "front-channel-logout-uris":
			o.FrontChannelLogoutURIs, err = identityURIs(m.val, p)
		case "back-channel-logout-uris":
			o.BackChannelLogoutURIs, err = identityURIs(m.val, p)
		case "public-client":
			o.PublicClient, err = flag(m.val, p)
		case "grant-types":
			o.GrantTypes, err = strList(m.val, p)
			if err == nil {
				err = checkEnumList(o.GrantTypes, p, identityGrantTypes, false)
			}
			o.GrantTypes = nilIfEmpty(o.GrantTypes)
		case "token-policy":
			err = o.TokenPolicy.decode(m.val, p)
		}
		if err != nil {
			return err
		}
	}
	if len(o.FrontChannelLogoutURIs) > 0 && len(o.BackChannelLogoutURIs) > 0 {
		return errorf(child(path, "back-channel-logout-uris"), "cannot be combined with front-channel-logout-uris; use one kind of logout URI")
	}
	return nil
}

// identityURIs decodes and checks one of the URI lists of an identity
// instance.
func identityURIs(raw json.RawMessage, path string) ([]string, error) {
	list, err := strList(raw, path)
	if err != nil {
		return nil, err
	}
	if len(list) > maxIdentityURIs {
		return nil, errorf(path, "at most %d URIs are allowed, got %d", maxIdentityURIs, len(list))
	}
	for i, u := range list {
		if n := utf8.RuneCountInString(u); n > maxIdentityURILength {
			return nil, errorf(elem(path, i), "is %d characters long; at most %d are allowed", n, maxIdentityURILength)
		}
		if err := checkIdentityURI(u); err != nil {
			return nil, errorf(elem(path, i), "%q %v", u, err)
		}
	}
	return nilIfEmpty(list), nil
}

func (p *TokenPolicy) decode(raw json.RawMessage, path string) error {
	ms, err := members(raw, path)
	if err != nil {
		return err
	}
	for _, m := range ms {
		key := child(path, m.key)
		var n int
		var given bool
		switch m.key {
		case "token-validity":
			if n, given, err = integer(m.val, key); err == nil && given {
				if n < minIdentityTokenValidity || n > maxIdentityTokenValidity {
					err = errorf(key, "must be between %d and %d seconds, got %d", minIdentityTokenValidity, maxIdentityTokenValidity, n)
				}
				p.TokenValidity = n
			}
		case "refresh-validity":
			if n, given, err = integer(m.val, key); err == nil && given {
				if n != 0 && (n < minIdentityRefreshValidity || n > maxIdentityRefreshValidity) {
					err = errorf(key, "must be 0 (no refresh tokens) or between %d and %d seconds, got %d", minIdentityRefreshValidity, maxIdentityRefreshValidity, n)
				}
				p.RefreshValidity = n
			}
		case "refresh-parallel":
			if n, given, err = integer(m.val, key); err == nil && given {
				if n < 1 || n > maxRefreshParallel {
					err = errorf(key, "must be between 1 and %d, got %d", maxRefreshParallel, n)
				}
				p.RefreshParallel = n
			}
		case "refresh-usage-after-renewal":
			err = setEnum(&p.RefreshUsageAfterRenewal, m.val, key, refreshUsageAfterRenewals)
		case "access-token-format":
			err = setEnum(&p.AccessTokenFormat, m.val, key, accessTokenFormats)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// enum decodes an optional string that must be one of allowed.
func enum(raw json.RawMessage, path string, allowed []string) (string, error) {
	s, err := str(raw, path)
	if err == nil && s != "" && !oneOf(s, allowed...) {
		err = errorf(path, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
	}
	return s, err
}

// setEnum overwrites *dst with an enum value if one is given.
func setEnum(dst *string, raw json.RawMessage, path string, allowed []string) error {
	s, err := enum(raw, path, allowed)
	if err == nil && s != "" {
		*dst = s
	}
	return err
}

func decodeConsumedService(ms []member, path string) (ConsumedService, error) {
	var s ConsumedService
	var err error
	for _, m := range ms {
		if m.key == "service-instance-name" {
			if s.ServiceInstanceName, err = str(m.val, child(path, m.key)); err != nil {
				return s, err
			}
		}
	}
	if s.ServiceInstanceName == "" {
		return s, errorf(child(path, "service-instance-name"), "is required")
	}
	return s, nil
}

func decodeProvidedAPI(ms []member, path string) (ProvidedAPI, error) {
	var a ProvidedAPI
	var err error
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			a.Name, err = str(m.val, p)
		case "description":
			a.Description, err = str(m.val, p)
		case "type":
			a.Type, err = enum(m.val, p, providedAPITypes)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

func checkProvidedAPIs(apis []ProvidedAPI) error {
	if len(apis) > maxProvidedAPIs {
		return errorf("provided-apis", "at most %d provided APIs are allowed, got %d", maxProvidedAPIs, len(apis))
	}
	seen := map[string]int{}
	for i, a := range apis {
		key := child(elem("provided-apis", i), "name")
		if a.Name == "" {
			return errorf(key, "is required")
		}
		if n := utf8.RuneCountInString(a.Name); n > maxProvidedAPIName {
			return errorf(key, "is %d characters long; at most %d are allowed", n, maxProvidedAPIName)
		}
		if j, dup := seen[a.Name]; dup {
			return errorf(key, "API %q is declared twice (also provided-apis[%d])", a.Name, j)
		}
		seen[a.Name] = i
	}
	return nil
}

func (s *SubjectNameIdentifier) decode(raw json.RawMessage, path string) error {
	ms, err := members(raw, path)
	if err != nil {
		return err
	}
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "attribute":
			s.Attribute, err = enum(m.val, p, subjectAttributes)
		case "fallback-attribute":
			s.FallbackAttribute, err = enum(m.val, p, append(slices.Clone(subjectAttributes), "none"))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

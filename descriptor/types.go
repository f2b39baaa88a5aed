// Package descriptor parses and validates the parameters users send to the
// broker: xs-security.json for xsuaa instances, the identity instance
// parameters, and the binding parameters of both offerings. It is pure: no
// I/O, no clock, no randomness. Cross-instance references are parsed into Ref
// values here and resolved elsewhere (package grants, the broker's store),
// because what they point at can change after the descriptor was accepted.
package descriptor

// Descriptor is a parsed xs-security.json. Names keep their symbolic form
// ($XSAPPNAME.x, $XSAPPNAME(plan,app).y, $XSSERVICENAME(n).z): resolution
// needs the instance's full xsappname and the other instances, which this
// package does not know.
type Descriptor struct {
	XSAppName              string               `json:"xsappname"`
	TenantMode             string               `json:"tenant-mode,omitempty"`
	Description            string               `json:"description,omitempty"`
	Scopes                 []Scope              `json:"scopes,omitempty"`
	Attributes             []Attribute          `json:"attributes,omitempty"`
	RoleTemplates          []RoleTemplate       `json:"role-templates,omitempty"`
	RoleCollections        []RoleCollection     `json:"role-collections,omitempty"`
	Authorities            []string             `json:"authorities,omitempty"`
	AuthoritiesInheritance *bool                `json:"authorities-inheritance,omitempty"`
	ForeignScopeReferences []string             `json:"foreign-scope-references,omitempty"`
	OAuth2Configuration    *OAuth2Configuration `json:"oauth2-configuration,omitempty"`
	XSEnableAsyncService   string               `json:"xsenableasyncservice,omitempty"`
}

// Scope is one entry of "scopes".
type Scope struct {
	Name                   string   `json:"name"`
	Description            string   `json:"description,omitempty"`
	GrantedApps            []string `json:"granted-apps,omitempty"`
	GrantAsAuthorityToApps []string `json:"grant-as-authority-to-apps,omitempty"`
}

// Attribute is one entry of "attributes".
type Attribute struct {
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	ValueType     string `json:"valueType,omitempty"`     // string (or s), int, date; empty means string
	ValueRequired *bool  `json:"valueRequired,omitempty"` // nil means true
}

// RoleTemplate is one entry of "role-templates".
type RoleTemplate struct {
	Name                string         `json:"name"`
	Description         string         `json:"description,omitempty"`
	DefaultRoleName     string         `json:"default-role-name,omitempty"`
	ScopeReferences     []string       `json:"scope-references,omitempty"`
	AttributeReferences []AttributeRef `json:"attribute-references,omitempty"`
}

// AttributeRef is an attribute reference of a role template. In JSON it is
// either a plain string (the attribute name) or {name, default-values}.
type AttributeRef struct {
	Name          string   `json:"name"`
	DefaultValues []string `json:"default-values,omitempty"`
}

// RoleCollection is one entry of "role-collections".
type RoleCollection struct {
	Name                   string   `json:"name"`
	Description            string   `json:"description,omitempty"`
	RoleTemplateReferences []string `json:"role-template-references"`
}

// OAuth2Configuration is "oauth2-configuration".
type OAuth2Configuration struct {
	TokenValidity        int      `json:"token-validity,omitempty"`         // seconds; 0 means the default
	RefreshTokenValidity int      `json:"refresh-token-validity,omitempty"` // seconds; 0 means the default
	RedirectURIs         []string `json:"redirect-uris,omitempty"`
	CredentialTypes      []string `json:"credential-types,omitempty"`
	GrantTypes           []string `json:"grant-types,omitempty"`
	Autoapprove          string   `json:"autoapprove,omitempty"`
	SystemAttributes     []string `json:"system-attributes"` // nil: absent (both); []: none. No omitempty so [] survives a round trip
	AllowedProviders     []string `json:"allowedproviders,omitempty"`
}

// Defaults of oauth2-configuration (xsuaa.md §2.2).
const (
	DefaultTokenValidity        = 43200   // 12 h
	DefaultRefreshTokenValidity = 2419200 // 28 days
)

package descriptor

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Options carries what Parse needs to know about the instance beyond the
// parameters themselves.
type Options struct {
	// DefaultXSAppName is used when the parameters do not name an xsappname
	// (the real service accepts a create without parameters). The broker
	// passes the instance name; Parse sanitizes it with SanitizeAppName.
	DefaultXSAppName string
	// AppSuffix is what the broker appends to the xsappname ("!t12"). Scope
	// names are limited including the full application name.
	AppSuffix string
}

// Limits of xsuaa.md §2.2 and §2.4.
const (
	maxXSAppName          = 128
	maxScopeName          = 193
	maxAttributeName      = 64
	maxRoleTemplateName   = 64
	maxDefaultRoleName    = 255
	maxRoleCollectionName = 64
	maxRoleCollectionDesc = 1000
	maxAttributes         = 50
	maxRoleCollections    = 250
	maxRoleTemplates      = 500
	maxScopes             = 500
	maxGrantedScopes      = 250
	minTokenValidity      = 300
	minRefreshValidity    = 600
	maxTokenValidity      = 99999999
)

// Allowed values of xs-security.json enumerations.
var (
	tenantModes      = []string{"dedicated", "shared", "external"}
	valueTypes       = []string{"string", "s", "int", "date"}
	credentialTypes  = []string{"binding-secret", "x509", "instance-secret"}
	systemAttributes = []string{"groups", "rolecollections"}
	xsuaaGrantTypes  = []string{
		"authorization_code", "client_credentials", "password", "refresh_token",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:saml2-bearer",
		"user_token", "implicit",
	}
	// defaultGrantTypes is the client's grant list when the descriptor does
	// not restrict it (xsuaa.md §2.7): all of the above except implicit.
	defaultGrantTypes = []string{
		"authorization_code", "client_credentials", "password", "refresh_token",
		"urn:ietf:params:oauth:grant-type:jwt-bearer",
		"urn:ietf:params:oauth:grant-type:saml2-bearer",
		"user_token",
	}
)

func isAppNameChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '_' || c == '/' || c == '\\'
}

func isScopeChar(c byte) bool { return isAppNameChar(c) || c == ':' || c == '.' }

func isAttributeChar(c byte) bool { return isAlnum(c) || c == '_' }

func isRoleTemplateChar(c byte) bool { return isAlnum(c) || c == '.' || c == '-' || c == '_' }

// SanitizeAppName turns an arbitrary name (the instance name) into a valid
// xsappname: every character outside A-Z a-z 0-9 - _ / \ becomes '-', and
// the result is cut to 128 characters.
func SanitizeAppName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() == maxXSAppName {
			break
		}
		if r < utf8.RuneSelf && isAppNameChar(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Parse decodes and validates xs-security.json given as OSB provision or
// update parameters. Empty input, null and {} give a descriptor with the
// default xsappname. Unknown keys are ignored; keys are trimmed. The first
// problem found is returned as *Error: shape errors (wrong JSON types) in
// document order first, then rule violations in the document order of the
// top-level keys.
func Parse(raw []byte, o Options) (*Descriptor, error) {
	ms, err := topLevel(raw)
	if err != nil {
		return nil, err
	}
	d := &Descriptor{}
	named := false
	for _, m := range ms {
		if err := decodeTop(d, m); err != nil {
			return nil, err
		}
		if m.key == "xsappname" && kindOf(m.val) != kindNull {
			named = true
		}
	}
	v := newValidator(d, o.AppSuffix)
	if !named {
		d.XSAppName = SanitizeAppName(o.DefaultXSAppName)
		v.full = d.XSAppName + o.AppSuffix
		if d.XSAppName == "" {
			return nil, errorf("xsappname", "is required")
		}
	}
	for _, m := range ms {
		if err := v.check(m.key); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// decodeTop decodes one top-level member into d, checking JSON types only.
func decodeTop(d *Descriptor, m member) error {
	var err error
	switch k := m.key; k {
	case "xsappname":
		d.XSAppName, err = str(m.val, k)
	case "tenant-mode":
		d.TenantMode, err = str(m.val, k)
	case "description":
		d.Description, err = str(m.val, k)
	case "scopes":
		d.Scopes, err = decodeList(m.val, k, decodeScope)
	case "attributes":
		d.Attributes, err = decodeList(m.val, k, decodeAttribute)
	case "role-templates":
		d.RoleTemplates, err = decodeList(m.val, k, decodeRoleTemplate)
	case "role-collections":
		d.RoleCollections, err = decodeList(m.val, k, decodeRoleCollection)
	case "authorities":
		d.Authorities, err = strList(m.val, k)
		d.Authorities = nilIfEmpty(d.Authorities)
	case "authorities-inheritance":
		d.AuthoritiesInheritance, err = boolean(m.val, k)
	case "foreign-scope-references":
		d.ForeignScopeReferences, err = strList(m.val, k)
		d.ForeignScopeReferences = nilIfEmpty(d.ForeignScopeReferences)
	case "oauth2-configuration":
		d.OAuth2Configuration, err = decodeOAuth2(m.val, k)
	case "xsenableasyncservice":
		d.XSEnableAsyncService, err = boolString(m.val, k)
	}
	return err
}

// decodeList decodes an array of objects with one element decoder.
func decodeList[T any](raw json.RawMessage, path string, one func([]member, string) (T, error)) ([]T, error) {
	elems, err := array(raw, path)
	if err != nil {
		return nil, err
	}
	var out []T
	for i, e := range elems {
		p := elem(path, i)
		ms, err := object(e, p)
		if err != nil {
			return nil, err
		}
		t, err := one(ms, p)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func decodeScope(ms []member, path string) (Scope, error) {
	var s Scope
	var err error
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			s.Name, err = str(m.val, p)
		case "description":
			s.Description, err = str(m.val, p)
		case "granted-apps":
			s.GrantedApps, err = strList(m.val, p)
			s.GrantedApps = nilIfEmpty(s.GrantedApps)
		case "grant-as-authority-to-apps":
			s.GrantAsAuthorityToApps, err = strList(m.val, p)
			s.GrantAsAuthorityToApps = nilIfEmpty(s.GrantAsAuthorityToApps)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

func decodeAttribute(ms []member, path string) (Attribute, error) {
	var a Attribute
	var err error
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			a.Name, err = str(m.val, p)
		case "description":
			a.Description, err = str(m.val, p)
		case "valueType":
			a.ValueType, err = str(m.val, p)
		case "valueRequired":
			a.ValueRequired, err = boolish(m.val, p)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

func decodeRoleTemplate(ms []member, path string) (RoleTemplate, error) {
	var t RoleTemplate
	var err error
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			t.Name, err = str(m.val, p)
		case "description":
			t.Description, err = str(m.val, p)
		case "default-role-name":
			t.DefaultRoleName, err = str(m.val, p)
		case "scope-references":
			t.ScopeReferences, err = strList(m.val, p)
			t.ScopeReferences = nilIfEmpty(t.ScopeReferences)
		case "attribute-references":
			var elems []json.RawMessage
			elems, err = array(m.val, p)
			for i, e := range elems {
				if err != nil {
					break
				}
				var ar AttributeRef
				ar, err = decodeAttributeRef(e, elem(p, i))
				t.AttributeReferences = append(t.AttributeReferences, ar)
			}
		}
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// decodeAttributeRef accepts "Name" and {"name": "Name", "default-values": [...]}.
func decodeAttributeRef(raw json.RawMessage, path string) (AttributeRef, error) {
	var ar AttributeRef
	switch kindOf(raw) {
	case kindString:
		s, err := str(raw, path)
		ar.Name = s
		return ar, err
	case kindObject:
	default:
		return ar, errorf(path, "must be an attribute name or an object with name and default-values, not %s", kindOf(raw))
	}
	ms, err := members(raw, path)
	if err != nil {
		return ar, err
	}
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			ar.Name, err = str(m.val, p)
		case "default-values":
			ar.DefaultValues, err = strList(m.val, p)
			ar.DefaultValues = nilIfEmpty(ar.DefaultValues)
		}
		if err != nil {
			return ar, err
		}
	}
	return ar, nil
}

// UnmarshalJSON accepts both JSON forms of an attribute reference: a plain
// attribute name or {name, default-values}.
func (a *AttributeRef) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		return &Error{Reason: "attribute reference is not valid JSON"}
	}
	ar, err := decodeAttributeRef(b, "")
	if err != nil {
		return err
	}
	*a = ar
	return nil
}

func decodeRoleCollection(ms []member, path string) (RoleCollection, error) {
	var c RoleCollection
	var err error
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "name":
			c.Name, err = str(m.val, p)
		case "description":
			c.Description, err = str(m.val, p)
		case "role-template-references":
			c.RoleTemplateReferences, err = strList(m.val, p)
		}
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func decodeOAuth2(raw json.RawMessage, path string) (*OAuth2Configuration, error) {
	if kindOf(raw) == kindNull {
		return nil, nil
	}
	ms, err := members(raw, path)
	if err != nil {
		return nil, err
	}
	c := &OAuth2Configuration{}
	for _, m := range ms {
		p := child(path, m.key)
		switch m.key {
		case "token-validity":
			c.TokenValidity, _, err = integer(m.val, p)
		case "refresh-token-validity":
			c.RefreshTokenValidity, _, err = integer(m.val, p)
		case "redirect-uris":
			c.RedirectURIs, err = strList(m.val, p)
			c.RedirectURIs = nilIfEmpty(c.RedirectURIs)
		case "credential-types":
			c.CredentialTypes, err = strList(m.val, p)
			c.CredentialTypes = nilIfEmpty(c.CredentialTypes)
		case "grant-types":
			c.GrantTypes, err = strList(m.val, p)
			c.GrantTypes = nilIfEmpty(c.GrantTypes)
		case "autoapprove":
			c.Autoapprove, err = boolString(m.val, p)
		case "system-attributes":
			// [] (no system attributes) differs from absent (both).
			c.SystemAttributes, err = strList(m.val, p)
		case "allowedproviders":
			c.AllowedProviders, err = strList(m.val, p)
			c.AllowedProviders = nilIfEmpty(c.AllowedProviders)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// boolString decodes a boolean flag documented as the string "true"/"false"
// and keeps it in that string form; JSON booleans are accepted too.
func boolString(raw json.RawMessage, path string) (string, error) {
	b, err := boolish(raw, path)
	if err != nil || b == nil {
		return "", err
	}
	return fmt.Sprint(*b), nil
}

// validator checks the rules of xsuaa.md §2.2–§2.4 on a decoded descriptor.
type validator struct {
	d           *Descriptor
	full        string          // full xsappname including the broker's suffix
	localScopes map[string]bool // suffixes of $XSAPPNAME.<x> scopes
	attributes  map[string]Attribute
	templates   map[string]RoleTemplate
}

func newValidator(d *Descriptor, suffix string) *validator {
	v := &validator{
		d:           d,
		full:        d.XSAppName + suffix,
		localScopes: map[string]bool{},
		attributes:  map[string]Attribute{},
		templates:   map[string]RoleTemplate{},
	}
	for _, s := range d.Scopes {
		if r, err := ParseRef(s.Name); err == nil && r.Kind == Self {
			v.localScopes[r.Suffix] = true
		}
	}
	for _, a := range d.Attributes {
		v.attributes[a.Name] = a
	}
	for _, t := range d.RoleTemplates {
		v.templates[t.Name] = t
	}
	return v
}

// check validates the part of the descriptor under one top-level key.
func (v *validator) check(key string) error {
	switch key {
	case "xsappname":
		return v.xsappname()
	case "tenant-mode":
		if m := v.d.TenantMode; m != "" && !oneOf(m, tenantModes...) {
			return errorf(key, "must be one of %s, got %q", strings.Join(tenantModes, ", "), m)
		}
	case "scopes":
		return v.scopes()
	case "attributes":
		return v.attributesRule()
	case "role-templates":
		return v.roleTemplates()
	case "role-collections":
		return v.roleCollections()
	case "authorities":
		for i, a := range v.d.Authorities {
			if _, err := checkScopeRef(a, elem(key, i), AcceptGrantedAuthorities); err != nil {
				return err
			}
		}
	case "foreign-scope-references":
		for i, a := range v.d.ForeignScopeReferences {
			if _, err := checkScopeRef(a, elem(key, i), AcceptGrantedScopes); err != nil {
				return err
			}
		}
	case "oauth2-configuration":
		return v.oauth2()
	}
	return nil
}

func (v *validator) xsappname() error {
	n := v.d.XSAppName
	switch {
	case n == "":
		return errorf("xsappname", "must not be empty")
	case !onlyChars(n, isAppNameChar):
		return errorf("xsappname", `%q contains characters other than A-Z a-z 0-9 - _ / \`, n)
	case len(n) > maxXSAppName:
		return errorf("xsappname", "is %d characters long; at most %d are allowed", len(n), maxXSAppName)
	}
	return nil
}

func (v *validator) scopes() error {
	ss := v.d.Scopes
	if len(ss) > maxScopes {
		return errorf("scopes", "at most %d scopes are allowed, got %d", maxScopes, len(ss))
	}
	granted := 0
	for _, s := range ss {
		if len(s.GrantedApps) > 0 || len(s.GrantAsAuthorityToApps) > 0 {
			granted++
		}
	}
	if granted > maxGrantedScopes {
		return errorf("scopes", "at most %d scopes may have granted-apps or grant-as-authority-to-apps, got %d", maxGrantedScopes, granted)
	}
	seen := map[string]int{}
	for i, s := range ss {
		p := elem("scopes", i)
		full, err := v.scopeName(s.Name, child(p, "name"))
		if err != nil {
			return err
		}
		if j, dup := seen[full]; dup {
			return errorf(child(p, "name"), "scope %q is declared twice (also scopes[%d])", s.Name, j)
		}
		seen[full] = i
		for j, a := range s.GrantedApps {
			if err := checkAppRef(a, elem(child(p, "granted-apps"), j), false); err != nil {
				return err
			}
		}
		for j, a := range s.GrantAsAuthorityToApps {
			if err := checkAppRef(a, elem(child(p, "grant-as-authority-to-apps"), j), true); err != nil {
				return err
			}
		}
	}
	return nil
}

// scopeName checks a declared scope name and returns it expanded with the
// full application name.
func (v *validator) scopeName(name, key string) (string, error) {
	if name == "" {
		return "", errorf(key, "is required")
	}
	r, err := ParseRef(name)
	if err != nil {
		return "", errorf(key, "%v", err)
	}
	var local string
	switch r.Kind {
	case Literal:
		local = r.Suffix
	case Self:
		if r.Suffix == "" {
			return "", errorf(key, "must name a scope after $XSAPPNAME, e.g. $XSAPPNAME.Display")
		}
		local = r.Suffix
	default:
		return "", errorf(key, "%q: a scope name may only use $XSAPPNAME to refer to this application", name)
	}
	if err := checkScopeLocal(local, key); err != nil {
		return "", err
	}
	full := r.Expand(v.full)
	if len(full) > maxScopeName {
		return "", errorf(key, "%q is %d characters long with the full application name; at most %d are allowed", full, len(full), maxScopeName)
	}
	return full, nil
}

// checkScopeLocal checks the part of a scope name after the application.
func checkScopeLocal(local, key string) error {
	if !onlyChars(local, isScopeChar) {
		return errorf(key, `scope name %q contains characters other than A-Z a-z 0-9 - _ / \ : .`, local)
	}
	if strings.HasPrefix(local, ".") {
		return errorf(key, "scope name %q must not start with '.'", local)
	}
	return nil
}

// acceptPlace names the only place each accept-all keyword may appear.
var acceptPlace = map[RefKind]string{
	AcceptGrantedAuthorities: "$ACCEPT_GRANTED_AUTHORITIES is only allowed in authorities",
	AcceptGrantedScopes:      "$ACCEPT_GRANTED_SCOPES is only allowed in foreign-scope-references",
}

// checkAppRef checks an entry of granted-apps / grant-as-authority-to-apps:
// it names an application, not a scope.
func checkAppRef(s, key string, allowExtra bool) error {
	if s == "" {
		return errorf(key, "must not be empty")
	}
	r, err := ParseRef(s)
	if err != nil {
		return errorf(key, "%v", err)
	}
	switch r.Kind {
	case AcceptGrantedAuthorities, AcceptGrantedScopes:
		return errorf(key, "%s", acceptPlace[r.Kind])
	case Self, App, Service:
		if r.Suffix != "" {
			return errorf(key, "%q must name an application, not a scope", s)
		}
		if r.Extra != "" && !allowExtra {
			return errorf(key, "%q: the three-argument form of $XSAPPNAME is only allowed in grant-as-authority-to-apps", s)
		}
	}
	return nil
}

// checkScopeRef checks a reference to a scope (authorities,
// foreign-scope-references, scope-references). accept is the one accept-all
// keyword allowed in that place, or Literal for none.
func checkScopeRef(s, key string, accept RefKind) (Ref, error) {
	if s == "" {
		return Ref{}, errorf(key, "must not be empty")
	}
	r, err := ParseRef(s)
	if err != nil {
		return r, errorf(key, "%v", err)
	}
	switch r.Kind {
	case AcceptGrantedAuthorities, AcceptGrantedScopes:
		if r.Kind != accept {
			return r, errorf(key, "%s", acceptPlace[r.Kind])
		}
	case Self, App, Service:
		if r.Extra != "" {
			return r, errorf(key, "%q: the three-argument form of $XSAPPNAME is only allowed in grant-as-authority-to-apps", s)
		}
		if r.Suffix == "" {
			return r, errorf(key, "%q must name a scope, e.g. %s.Display", s, s)
		}
		if err := checkScopeLocal(r.Suffix, key); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (v *validator) attributesRule() error {
	as := v.d.Attributes
	if len(as) > maxAttributes {
		return errorf("attributes", "at most %d attributes are allowed, got %d", maxAttributes, len(as))
	}
	seen := map[string]int{}
	for i, a := range as {
		p := elem("attributes", i)
		switch {
		case a.Name == "":
			return errorf(child(p, "name"), "is required")
		case !onlyChars(a.Name, isAttributeChar):
			return errorf(child(p, "name"), "attribute name %q contains characters other than A-Z a-z 0-9 _", a.Name)
		case len(a.Name) > maxAttributeName:
			return errorf(child(p, "name"), "attribute name %q is longer than %d characters", a.Name, maxAttributeName)
		}
		if j, dup := seen[a.Name]; dup {
			return errorf(child(p, "name"), "attribute %q is declared twice (also attributes[%d])", a.Name, j)
		}
		seen[a.Name] = i
		if a.ValueType != "" && !oneOf(a.ValueType, valueTypes...) {
			return errorf(child(p, "valueType"), "must be one of %s, got %q", strings.Join(valueTypes, ", "), a.ValueType)
		}
	}
	return nil
}

func (v *validator) roleTemplates() error {
	ts := v.d.RoleTemplates
	if len(ts) > maxRoleTemplates {
		return errorf("role-templates", "at most %d role templates are allowed, got %d", maxRoleTemplates, len(ts))
	}
	seen := map[string]int{}
	for i, t := range ts {
		p := elem("role-templates", i)
		if err := checkTemplateName(t.Name, child(p, "name")); err != nil {
			return err
		}
		if j, dup := seen[t.Name]; dup {
			return errorf(child(p, "name"), "role template %q is declared twice (also role-templates[%d])", t.Name, j)
		}
		seen[t.Name] = i
		if n := utf8.RuneCountInString(t.DefaultRoleName); n > maxDefaultRoleName {
			return errorf(child(p, "default-role-name"), "is %d characters long; at most %d are allowed", n, maxDefaultRoleName)
		}
		for j, s := range t.ScopeReferences {
			key := elem(child(p, "scope-references"), j)
			r, err := checkScopeRef(s, key, Literal)
			if err != nil {
				return err
			}
			if r.Kind == Self && !v.localScopes[r.Suffix] {
				return errorf(key, "%q is not declared in scopes", s)
			}
		}
		for j, a := range t.AttributeReferences {
			key := elem(child(p, "attribute-references"), j)
			if a.Name == "" {
				return errorf(key, "needs an attribute name")
			}
			if _, ok := v.attributes[a.Name]; !ok {
				return errorf(key, "attribute %q is not declared in attributes", a.Name)
			}
		}
	}
	return nil
}

func checkTemplateName(name, key string) error {
	switch {
	case name == "":
		return errorf(key, "is required")
	case !onlyChars(name, isRoleTemplateChar):
		return errorf(key, "role template name %q contains characters other than A-Z a-z 0-9 . - _", name)
	case len(name) > maxRoleTemplateName:
		return errorf(key, "role template name %q is longer than %d characters", name, maxRoleTemplateName)
	}
	return nil
}

// defaultRoleBlocker returns the first attribute that keeps template t from
// getting a default role: a referenced attribute without default-values whose
// value is required. Empty means a default role can be created.
func (v *validator) defaultRoleBlocker(t RoleTemplate) string {
	for _, a := range t.AttributeReferences {
		if len(a.DefaultValues) > 0 {
			continue
		}
		if req := v.attributes[a.Name].ValueRequired; req != nil && !*req {
			continue
		}
		return a.Name
	}
	return ""
}

func (v *validator) roleCollections() error {
	cs := v.d.RoleCollections
	if len(cs) > maxRoleCollections {
		return errorf("role-collections", "at most %d role collections are allowed, got %d", maxRoleCollections, len(cs))
	}
	seen := map[string]int{}
	for i, c := range cs {
		p := elem("role-collections", i)
		if c.Name == "" {
			return errorf(child(p, "name"), "is required")
		}
		if n := utf8.RuneCountInString(c.Name); n > maxRoleCollectionName {
			return errorf(child(p, "name"), "is %d characters long; at most %d are allowed", n, maxRoleCollectionName)
		}
		if j, dup := seen[c.Name]; dup {
			return errorf(child(p, "name"), "role collection %q is declared twice (also role-collections[%d])", c.Name, j)
		}
		seen[c.Name] = i
		if n := utf8.RuneCountInString(c.Description); n > maxRoleCollectionDesc {
			return errorf(child(p, "description"), "is %d characters long; at most %d are allowed", n, maxRoleCollectionDesc)
		}
		refsKey := child(p, "role-template-references")
		if len(c.RoleTemplateReferences) == 0 {
			return errorf(refsKey, "is required and must name at least one role template")
		}
		for j, s := range c.RoleTemplateReferences {
			if err := v.templateRef(s, elem(refsKey, j)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *validator) templateRef(s, key string) error {
	if s == "" {
		return errorf(key, "must not be empty")
	}
	r, err := ParseRef(s)
	if err != nil {
		return errorf(key, "%v", err)
	}
	switch r.Kind {
	case Self, App, Service:
	case AcceptGrantedAuthorities, AcceptGrantedScopes:
		return errorf(key, "%s", acceptPlace[r.Kind])
	default:
		return errorf(key, "%q must be $XSAPPNAME.<template> or $XSAPPNAME(application,<app>).<template>", s)
	}
	if r.Extra != "" {
		return errorf(key, "%q: the three-argument form of $XSAPPNAME is only allowed in grant-as-authority-to-apps", s)
	}
	if r.Suffix == "" {
		return errorf(key, "%q must name a role template, e.g. %s.Viewer", s, s)
	}
	if err := checkTemplateName(r.Suffix, key); err != nil {
		return err
	}
	if r.Kind != Self {
		return nil
	}
	t, ok := v.templates[r.Suffix]
	if !ok {
		return errorf(key, "role template %q is not declared in role-templates", r.Suffix)
	}
	if a := v.defaultRoleBlocker(t); a != "" {
		return errorf(key, "role template %q cannot have a default role: attribute %q needs default-values or valueRequired false", t.Name, a)
	}
	return nil
}

func (v *validator) oauth2() error {
	c := v.d.OAuth2Configuration
	if c == nil {
		return nil
	}
	const p = "oauth2-configuration"
	if n := c.TokenValidity; n != 0 && (n < minTokenValidity || n > maxTokenValidity) {
		return errorf(child(p, "token-validity"), "must be between %d and %d seconds, got %d", minTokenValidity, maxTokenValidity, n)
	}
	if n := c.RefreshTokenValidity; n != 0 && (n < minRefreshValidity || n > maxTokenValidity) {
		return errorf(child(p, "refresh-token-validity"), "must be between %d and %d seconds, got %d", minRefreshValidity, maxTokenValidity, n)
	}
	for i, u := range c.RedirectURIs {
		if _, err := parseURIPattern(u); err != nil {
			return errorf(elem(child(p, "redirect-uris"), i), "%q %v", u, err)
		}
	}
	if err := checkEnumList(c.CredentialTypes, child(p, "credential-types"), credentialTypes, true); err != nil {
		return err
	}
	if err := checkEnumList(c.GrantTypes, child(p, "grant-types"), xsuaaGrantTypes, false); err != nil {
		return err
	}
	return checkEnumList(c.SystemAttributes, child(p, "system-attributes"), systemAttributes, false)
}

// checkEnumList checks that every entry is one of allowed and, if unique is
// set, that no entry repeats.
func checkEnumList(list []string, key string, allowed []string, unique bool) error {
	for i, s := range list {
		if !oneOf(s, allowed...) {
			return errorf(elem(key, i), "must be one of %s, got %q", strings.Join(allowed, ", "), s)
		}
		if unique && slices.Index(list, s) != i {
			return errorf(elem(key, i), "%q is listed twice", s)
		}
	}
	return nil
}

// LocatedRef is a cross-instance reference together with the JSON path where
// it appears, so the broker can name the key when the target is missing.
type LocatedRef struct {
	Key string
	Ref Ref
}

// CrossInstanceRefs lists every $XSAPPNAME(plan,app) and $XSSERVICENAME(name)
// reference of an accepted descriptor.
func (d *Descriptor) CrossInstanceRefs() []LocatedRef {
	var out []LocatedRef
	add := func(key string, list []string) {
		for i, s := range list {
			if r, err := ParseRef(s); err == nil && r.IsCrossInstance() {
				out = append(out, LocatedRef{Key: elem(key, i), Ref: r})
			}
		}
	}
	for i, s := range d.Scopes {
		p := elem("scopes", i)
		add(child(p, "granted-apps"), s.GrantedApps)
		add(child(p, "grant-as-authority-to-apps"), s.GrantAsAuthorityToApps)
	}
	for i, t := range d.RoleTemplates {
		add(child(elem("role-templates", i), "scope-references"), t.ScopeReferences)
	}
	for i, c := range d.RoleCollections {
		add(child(elem("role-collections", i), "role-template-references"), c.RoleTemplateReferences)
	}
	add("authorities", d.Authorities)
	add("foreign-scope-references", d.ForeignScopeReferences)
	return out
}

// CheckUpdate applies the update rules of xsuaa.md §2.5 to an accepted
// descriptor (old) and its replacement (updated), both already parsed:
//   - xsappname must not change (client id and scope prefixes hang on it);
//   - an attribute's valueType must not change;
//   - a role template may lose attribute references but not gain new ones
//     (existing roles would lack values for them);
//   - tenant-mode must not change: it decides whether one client serves all
//     subscribers or each gets its own, and the binding's tenantmode, so
//     existing bindings and subscriptions would silently change meaning.
//     The documentation does not list it among the compatible changes.
func CheckUpdate(old, updated *Descriptor) error {
	if old == nil || updated == nil {
		return nil
	}
	if old.XSAppName != updated.XSAppName {
		return errorf("xsappname", "must not change on update (was %q, now %q)", old.XSAppName, updated.XSAppName)
	}
	if a, b := old.TenantModeOrDefault(), updated.TenantModeOrDefault(); a != b {
		return errorf("tenant-mode", "must not change on update (was %q, now %q)", a, b)
	}
	oldTypes := map[string]string{}
	for _, a := range old.Attributes {
		oldTypes[a.Name] = normValueType(a.ValueType)
	}
	for i, a := range updated.Attributes {
		if t, ok := oldTypes[a.Name]; ok && t != normValueType(a.ValueType) {
			return errorf(child(elem("attributes", i), "valueType"), "valueType of attribute %q must not change on update (was %q, now %q)", a.Name, t, normValueType(a.ValueType))
		}
	}
	oldRefs := map[string]map[string]bool{}
	for _, t := range old.RoleTemplates {
		refs := map[string]bool{}
		for _, a := range t.AttributeReferences {
			refs[a.Name] = true
		}
		oldRefs[t.Name] = refs
	}
	for i, t := range updated.RoleTemplates {
		refs, ok := oldRefs[t.Name]
		if !ok {
			continue
		}
		for j, a := range t.AttributeReferences {
			if !refs[a.Name] {
				return errorf(elem(child(elem("role-templates", i), "attribute-references"), j),
					"attribute references of existing role template %q may only be removed, not added (%q is new)", t.Name, a.Name)
			}
		}
	}
	return nil
}

// normValueType maps the spellings of one value type to one name.
func normValueType(t string) string {
	if t == "" || t == "s" {
		return "string"
	}
	return t
}

// TenantModeOrDefault returns tenant-mode, "dedicated" when not set.
func (d *Descriptor) TenantModeOrDefault() string {
	if d.TenantMode == "" {
		return "dedicated"
	}
	return d.TenantMode
}

// TokenValidity returns the access token lifetime in seconds.
func (d *Descriptor) TokenValidity() int {
	if c := d.OAuth2Configuration; c != nil && c.TokenValidity > 0 {
		return c.TokenValidity
	}
	return DefaultTokenValidity
}

// RefreshTokenValidity returns the refresh token lifetime in seconds.
func (d *Descriptor) RefreshTokenValidity() int {
	if c := d.OAuth2Configuration; c != nil && c.RefreshTokenValidity > 0 {
		return c.RefreshTokenValidity
	}
	return DefaultRefreshTokenValidity
}

// CredentialTypes returns oauth2-configuration.credential-types as declared
// (nil when not declared); the first entry is the binding default.
func (d *Descriptor) CredentialTypes() []string {
	if c := d.OAuth2Configuration; c != nil {
		return slices.Clone(c.CredentialTypes)
	}
	return nil
}

// GrantTypes returns the grant types of the instance's client: the declared
// list, or all grant types of xsuaa.md §2.7 except implicit.
func (d *Descriptor) GrantTypes() []string {
	if c := d.OAuth2Configuration; c != nil && len(c.GrantTypes) > 0 {
		return slices.Clone(c.GrantTypes)
	}
	return slices.Clone(defaultGrantTypes)
}

// SystemAttributes returns which system attributes go into tokens: the
// declared list (possibly empty), or both "groups" and "rolecollections"
// when oauth2-configuration.system-attributes is absent.
func (d *Descriptor) SystemAttributes() []string {
	if c := d.OAuth2Configuration; c != nil && c.SystemAttributes != nil {
		return slices.Clone(c.SystemAttributes)
	}
	return slices.Clone(systemAttributes)
}

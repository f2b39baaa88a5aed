package descriptor

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// smallDescriptor is what most apps send: a name, one scope, one template.
const smallDescriptor = `{
  "xsappname": "orders",
  "tenant-mode": "dedicated",
  "scopes": [{ "name": "$XSAPPNAME.Read", "description": "read" }],
  "role-templates": [{ "name": "Reader", "scope-references": ["$XSAPPNAME.Read"] }]
}`

// largeDescriptor builds a descriptor of a big business application:
// scopes (some granted to other apps as user scopes or authorities),
// attributes, role templates referencing own and foreign scopes and
// attributes, role collections, authorities, foreign scope references and a
// full oauth2-configuration. The sizes are well inside the limits of
// xsuaa.md §2.4 (500 scopes, 50 attributes, 500 templates, 250 collections).
func largeDescriptor(scopes, attributes, templates, collections int) string {
	var b strings.Builder
	b.WriteString(`{"xsappname":"procurement-suite","tenant-mode":"shared","description":"Procurement suite",`)
	b.WriteString(`"scopes":[`)
	for i := range scopes {
		if i > 0 {
			b.WriteByte(',')
		}
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, `{"name":"$XSAPPNAME.Scope%d","description":"scope %d","granted-apps":["$XSAPPNAME(application,procurement-ui)","$XSSERVICENAME(reporting-uaa)"]}`, i, i)
		case 1:
			fmt.Fprintf(&b, `{"name":"$XSAPPNAME.Scope%d","description":"scope %d","grant-as-authority-to-apps":["$XSAPPNAME(application,jobs)","$XSAPPNAME(application,xsuaa-broker,tenant-onboarding)"]}`, i, i)
		default:
			fmt.Fprintf(&b, `{"name":"$XSAPPNAME.Scope%d","description":"scope %d"}`, i, i)
		}
	}
	b.WriteString(`,{"name":"uaa.user","description":"token exchange"}],"attributes":[`)
	for i := range attributes {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"Attr%d","description":"attribute %d","valueType":"%s","valueRequired":false}`, i, i, []string{"string", "int", "date"}[i%3])
	}
	b.WriteString(`],"role-templates":[`)
	for i := range templates {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"Role%d","description":"role %d","default-role-name":"Role %d (default)",`+
			`"scope-references":["$XSAPPNAME.Scope%d","$XSAPPNAME.Scope%d","$XSAPPNAME(application,catalog).Read","uaa.user"],`+
			`"attribute-references":["Attr%d",{"name":"Attr%d","default-values":["DE","US"]}]}`,
			i, i, i, i%scopes, (i+1)%scopes, i%attributes, (i+1)%attributes)
	}
	b.WriteString(`],"role-collections":[`)
	for i := range collections {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"Collection %d","description":"collection %d","role-template-references":["$XSAPPNAME.Role%d","$XSAPPNAME.Role%d"]}`,
			i, i, i%templates, (i+1)%templates)
	}
	b.WriteString(`],"authorities":["$ACCEPT_GRANTED_AUTHORITIES","$XSAPPNAME.Scope0","$XSAPPNAME(application,catalog).Admin"],`)
	b.WriteString(`"foreign-scope-references":["$ACCEPT_GRANTED_SCOPES","$XSAPPNAME(application,catalog).Read"],`)
	b.WriteString(`"oauth2-configuration":{"token-validity":43200,"refresh-token-validity":2419200,` +
		`"redirect-uris":["https://*.cfapps.eu10.hana.ondemand.com/**","http://localhost:5000/**"],` +
		`"credential-types":["binding-secret","x509"],` +
		`"grant-types":["authorization_code","client_credentials","refresh_token","urn:ietf:params:oauth:grant-type:jwt-bearer","password","user_token"],` +
		`"autoapprove":"true","system-attributes":["groups","rolecollections"],"allowedproviders":["sap.default"]}}`)
	return b.String()
}

// BenchmarkParse measures Parse (decoding and every validation rule), which
// runs on each provision and update, for descriptors of growing size. The
// sizes are checked once, so a descriptor that stopped parsing (or parses
// to something else) fails instead of measuring an early error return.
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name                                      string
		raw                                       string
		scopes, attributes, templates, collection int
	}{
		{"Small", smallDescriptor, 1, 0, 1, 0},
		{"DocsExample", fullExample, 4, 2, 3, 1},
		{"Large", largeDescriptor(100, 10, 50, 20), 101, 10, 50, 20},
		{"NearLimits", largeDescriptor(400, 40, 400, 200), 401, 40, 400, 200},
	}
	opts := Options{AppSuffix: "!t12"}
	for _, c := range cases {
		raw := []byte(c.raw)
		d, err := Parse(raw, opts)
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		if len(d.Scopes) != c.scopes || len(d.Attributes) != c.attributes || len(d.RoleTemplates) != c.templates || len(d.RoleCollections) != c.collection {
			b.Fatalf("%s: parsed %d scopes, %d attributes, %d templates, %d collections", c.name,
				len(d.Scopes), len(d.Attributes), len(d.RoleTemplates), len(d.RoleCollections))
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(raw, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUnmarshalStored measures decoding the stored, already validated
// form of a descriptor (store.Instance.Config) with encoding/json, which
// the token server does for every xsuaa instance when it rebuilds its
// client table.
func BenchmarkUnmarshalStored(b *testing.B) {
	cases := []struct{ name, raw string }{
		{"Small", smallDescriptor},
		{"Large", largeDescriptor(100, 10, 50, 20)},
	}
	for _, c := range cases {
		d, err := Parse([]byte(c.raw), Options{AppSuffix: "!t12"})
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		stored, err := json.Marshal(d)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(stored)))
			b.ReportAllocs()
			for b.Loop() {
				var got Descriptor
				if err := json.Unmarshal(stored, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

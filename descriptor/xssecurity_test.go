package descriptor

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fullExample is the full example of xsuaa.md §2.1.
const fullExample = `{
  "xsappname": "bookshop",
  "tenant-mode": "dedicated",
  "description": "Bookshop security profile",
  "scopes": [
    { "name": "$XSAPPNAME.Display", "description": "display" },
    { "name": "$XSAPPNAME.Admin", "description": "administer",
      "granted-apps": ["$XSAPPNAME(application,bookshop-ui)"] },
    { "name": "$XSAPPNAME.Callback", "description": "jobs may call us",
      "grant-as-authority-to-apps": ["$XSAPPNAME(application,jobs)", "$XSSERVICENAME(my-jobscheduler)"] },
    { "name": "uaa.user", "description": "token exchange" }
  ],
  "attributes": [
    { "name": "Country", "description": "Country", "valueType": "string", "valueRequired": false },
    { "name": "CostCenter", "description": "Cost center", "valueType": "int" }
  ],
  "role-templates": [
    { "name": "Viewer", "description": "read", "default-role-name": "Viewer: read all books",
      "scope-references": ["$XSAPPNAME.Display", "$XSAPPNAME(application,catalog).Read"],
      "attribute-references": [ { "name": "Country", "default-values": ["DE", "US"] } ] },
    { "name": "Admin", "description": "admin",
      "scope-references": ["$XSAPPNAME.Admin", "$XSAPPNAME.Display"],
      "attribute-references": ["CostCenter"] },
    { "name": "Token_Exchange", "description": "UAA", "scope-references": ["uaa.user"] }
  ],
  "role-collections": [
    { "name": "Bookshop Viewer", "description": "viewers",
      "role-template-references": ["$XSAPPNAME.Viewer", "$XSAPPNAME.Token_Exchange"] }
  ],
  "authorities": ["$ACCEPT_GRANTED_AUTHORITIES"],
  "authorities-inheritance": false,
  "foreign-scope-references": ["$ACCEPT_GRANTED_SCOPES"],
  "oauth2-configuration": {
    "token-validity": 43200,
    "refresh-token-validity": 2419200,
    "redirect-uris": ["https://*.cfapps.eu10.hana.ondemand.com/**", "http://localhost:5000/**"],
    "credential-types": ["binding-secret", "x509"],
    "grant-types": ["authorization_code", "client_credentials", "refresh_token",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer", "password", "user_token"],
    "autoapprove": "true",
    "system-attributes": ["groups", "rolecollections"],
    "allowedproviders": ["sap.default"]
  },
  "xsenableasyncservice": "false"
}`

// docsTypos is the example with the trailing-space keys of SAP's docs.
var docsTypos = strings.NewReplacer(`"system-attributes"`, `"system-attributes "`, `"allowedproviders"`, `"allowedproviders "`).Replace(fullExample)

// app wraps top-level members into a descriptor named "app".
func app(members string) string { return `{"xsappname":"app",` + members + `}` }

// decl declares scopes, attributes and templates for reference tests.
const decl = `"scopes":[{"name":"$XSAPPNAME.Read"}],
 "attributes":[{"name":"Req"},{"name":"Opt","valueRequired":false}],`

func repeat(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ",")
}

func scopes(n int, granted int) string {
	return `"scopes":[` + repeat(n, func(i int) string {
		if i < granted {
			return fmt.Sprintf(`{"name":"$XSAPPNAME.s%d","granted-apps":["$XSAPPNAME(application,x)"]}`, i)
		}
		return fmt.Sprintf(`{"name":"$XSAPPNAME.s%d"}`, i)
	}) + `]`
}

type parseCase struct {
	name string
	in   string
	opts Options
	ok   bool
	key  string // expected Error.Key when !ok
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse([]byte(c.in), c.opts)
			if c.ok {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				if d == nil {
					t.Fatal("nil descriptor without error")
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error with key %q, got %v", c.key, err)
			}
			if e.Key != c.key {
				t.Fatalf("want key %q, got %q (%v)", c.key, e.Key, err)
			}
		})
	}
}

func TestParseDocument(t *testing.T) {
	def := Options{DefaultXSAppName: "my-instance"}
	runParseCases(t, []parseCase{
		{name: "full example", in: fullExample, ok: true},
		{name: "full example with docs typos", in: docsTypos, ok: true},
		{name: "nil", in: "", opts: def, ok: true},
		{name: "null", in: "null", opts: def, ok: true},
		{name: "empty object", in: " {} ", opts: def, ok: true},
		{name: "only description", in: `{"description":"x"}`, opts: def, ok: true},
		{name: "xsappname null uses default", in: `{"xsappname":null}`, opts: def, ok: true},
		{name: "no xsappname and no default", in: `{}`, key: "xsappname"},
		{name: "unknown keys ignored", in: app(`"foo":{"bar":1},"x-y":[1]`), ok: true},
		{name: "syntax error", in: `{"xsappname":`, key: ""},
		{name: "array", in: `[1]`, key: ""},
		{name: "string", in: `"bookshop"`, key: ""},
		{name: "trailing garbage", in: `{"xsappname":"a"} x`, key: ""},
		{name: "duplicate key", in: `{"xsappname":"a","xsappname":"b"}`, key: "xsappname"},
		{name: "duplicate key after trimming", in: `{"xsappname":"a","xsappname ":"a"}`, key: "xsappname"},
	})
}

func TestParseXSAppNameAndTenantMode(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "all allowed chars", in: `{"xsappname":"Ab0-_/\\z"}`, ok: true},
		{name: "128 chars", in: `{"xsappname":"` + strings.Repeat("a", 128) + `"}`, ok: true},
		{name: "129 chars", in: `{"xsappname":"` + strings.Repeat("a", 129) + `"}`, key: "xsappname"},
		{name: "space", in: `{"xsappname":"book shop"}`, key: "xsappname"},
		{name: "bang", in: `{"xsappname":"bookshop!t1"}`, key: "xsappname"},
		{name: "dot", in: `{"xsappname":"book.shop"}`, key: "xsappname"},
		{name: "non-ascii", in: `{"xsappname":"bücher"}`, key: "xsappname"},
		{name: "empty", in: `{"xsappname":""}`, opts: Options{DefaultXSAppName: "x"}, key: "xsappname"},
		{name: "number", in: `{"xsappname":5}`, key: "xsappname"},
		{name: "tenant-mode shared", in: app(`"tenant-mode":"shared"`), ok: true},
		{name: "tenant-mode external", in: app(`"tenant-mode":"external"`), ok: true},
		{name: "tenant-mode dedicated", in: app(`"tenant-mode":"dedicated"`), ok: true},
		{name: "tenant-mode unknown", in: app(`"tenant-mode":"multi"`), key: "tenant-mode"},
		{name: "tenant-mode type", in: app(`"tenant-mode":true`), key: "tenant-mode"},
		{name: "description type", in: app(`"description":1`), key: "description"},
	})
}

func TestDefaultXSAppName(t *testing.T) {
	d, err := Parse(nil, Options{DefaultXSAppName: "my instance!ü", AppSuffix: "!t1"})
	if err != nil {
		t.Fatal(err)
	}
	if d.XSAppName != "my-instance--" {
		t.Fatalf("xsappname = %q", d.XSAppName)
	}
	long := strings.Repeat("x", 200)
	if got := SanitizeAppName(long); len(got) != 128 {
		t.Fatalf("len = %d", len(got))
	}
	if got := SanitizeAppName("a/b\\c_d-e"); got != "a/b\\c_d-e" {
		t.Fatalf("got %q", got)
	}
}

func TestParseScopes(t *testing.T) {
	// full name with suffix "!t12": "a!t12." is 6 characters.
	long := func(n int) string { return strings.Repeat("x", n) }
	sfx := Options{AppSuffix: "!t12"}
	runParseCases(t, []parseCase{
		{name: "not an array", in: app(`"scopes":{}`), key: "scopes"},
		{name: "element not an object", in: app(`"scopes":["$XSAPPNAME.x"]`), key: "scopes[0]"},
		{name: "element null", in: app(`"scopes":[null]`), key: "scopes[0]"},
		{name: "name missing", in: app(`"scopes":[{"description":"d"}]`), key: "scopes[0].name"},
		{name: "name type", in: app(`"scopes":[{"name":1}]`), key: "scopes[0].name"},
		{name: "description type", in: app(`"scopes":[{"name":"$XSAPPNAME.x","description":[]}]`), key: "scopes[0].description"},
		{name: "all allowed chars", in: app(`"scopes":[{"name":"$XSAPPNAME.aZ0-_/\\:.x"}]`), ok: true},
		{name: "literal", in: app(`"scopes":[{"name":"uaa.user"}]`), ok: true},
		{name: "space", in: app(`"scopes":[{"name":"$XSAPPNAME.a b"}]`), key: "scopes[0].name"},
		{name: "starts with dot", in: app(`"scopes":[{"name":".x"}]`), key: "scopes[0].name"},
		{name: "local part starts with dot", in: app(`"scopes":[{"name":"$XSAPPNAME..x"}]`), key: "scopes[0].name"},
		{name: "bare $XSAPPNAME", in: app(`"scopes":[{"name":"$XSAPPNAME"}]`), key: "scopes[0].name"},
		{name: "foreign app", in: app(`"scopes":[{"name":"$XSAPPNAME(application,b).x"}]`), key: "scopes[0].name"},
		{name: "unknown $ word", in: app(`"scopes":[{"name":"$XSAPP.x"}]`), key: "scopes[0].name"},
		{name: "duplicate", in: app(`"scopes":[{"name":"$XSAPPNAME.x"},{"name":"$XSAPPNAME.x"}]`), key: "scopes[1].name"},
		{name: "193 with full app name", in: `{"xsappname":"a","scopes":[{"name":"$XSAPPNAME.` + long(193-6) + `"}]}`, opts: sfx, ok: true},
		{name: "194 with full app name", in: `{"xsappname":"a","scopes":[{"name":"$XSAPPNAME.` + long(194-6) + `"}]}`, opts: sfx, key: "scopes[0].name"},
		{name: "literal 194", in: `{"xsappname":"a","scopes":[{"name":"` + long(194) + `"}]}`, opts: sfx, key: "scopes[0].name"},
		{name: "500 scopes", in: app(scopes(500, 0)), ok: true},
		{name: "501 scopes", in: app(scopes(501, 0)), key: "scopes"},
		{name: "250 granted scopes", in: app(scopes(260, 250)), ok: true},
		{name: "251 granted scopes", in: app(scopes(260, 251)), key: "scopes"},
		{name: "granted-apps forms", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$XSAPPNAME(application,ui)","$XSSERVICENAME(svc)","$XSAPPNAME","other!t5"]}]`), ok: true},
		{name: "granted-apps with scope", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$XSAPPNAME(application,ui).y"]}]`), key: "scopes[0].granted-apps[0]"},
		{name: "granted-apps three args", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$XSAPPNAME(application,a,b)"]}]`), key: "scopes[0].granted-apps[0]"},
		{name: "granted-apps accept keyword", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$ACCEPT_GRANTED_SCOPES"]}]`), key: "scopes[0].granted-apps[0]"},
		{name: "granted-apps empty entry", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["a",""]}]`), key: "scopes[0].granted-apps[1]"},
		{name: "granted-apps malformed", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$XSAPPNAME(application"]}]`), key: "scopes[0].granted-apps[0]"},
		{name: "granted-apps type", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":"ui"}]`), key: "scopes[0].granted-apps"},
		{name: "granted-apps element type", in: app(`"scopes":[{"name":"$XSAPPNAME.x","granted-apps":[1]}]`), key: "scopes[0].granted-apps[0]"},
		{name: "grant-as-authority three args", in: app(`"scopes":[{"name":"$XSAPPNAME.x","grant-as-authority-to-apps":["$XSAPPNAME(application,sap-provisioning,tenant-onboarding)"]}]`), ok: true},
		{name: "grant-as-authority accept keyword", in: app(`"scopes":[{"name":"$XSAPPNAME.x","grant-as-authority-to-apps":["$ACCEPT_GRANTED_AUTHORITIES"]}]`), key: "scopes[0].grant-as-authority-to-apps[0]"},
		{name: "grant-as-authority with scope", in: app(`"scopes":[{"name":"$XSAPPNAME.x","grant-as-authority-to-apps":["$XSSERVICENAME(j).y"]}]`), key: "scopes[0].grant-as-authority-to-apps[0]"},
	})
}

func TestParseAttributes(t *testing.T) {
	attrs := func(n int) string {
		return `"attributes":[` + repeat(n, func(i int) string { return fmt.Sprintf(`{"name":"a%d"}`, i) }) + `]`
	}
	runParseCases(t, []parseCase{
		{name: "valid", in: app(`"attributes":[{"name":"Cost_Center1","valueType":"int","valueRequired":true}]`), ok: true},
		{name: "value types", in: app(`"attributes":[{"name":"a","valueType":"string"},{"name":"b","valueType":"s"},{"name":"c","valueType":"date"},{"name":"d"}]`), ok: true},
		{name: "dash", in: app(`"attributes":[{"name":"Cost-Center"}]`), key: "attributes[0].name"},
		{name: "missing name", in: app(`"attributes":[{"valueType":"int"}]`), key: "attributes[0].name"},
		{name: "64 chars", in: app(`"attributes":[{"name":"` + strings.Repeat("a", 64) + `"}]`), ok: true},
		{name: "65 chars", in: app(`"attributes":[{"name":"` + strings.Repeat("a", 65) + `"}]`), key: "attributes[0].name"},
		{name: "duplicate", in: app(`"attributes":[{"name":"a"},{"name":"b"},{"name":"a"}]`), key: "attributes[2].name"},
		{name: "bad valueType", in: app(`"attributes":[{"name":"a","valueType":"bool"}]`), key: "attributes[0].valueType"},
		{name: "valueRequired string", in: app(`"attributes":[{"name":"a","valueRequired":"false"}]`), ok: true},
		{name: "valueRequired bad", in: app(`"attributes":[{"name":"a","valueRequired":"no"}]`), key: "attributes[0].valueRequired"},
		{name: "50 attributes", in: app(attrs(50)), ok: true},
		{name: "51 attributes", in: app(attrs(51)), key: "attributes"},
		{name: "not an array", in: app(`"attributes":"a"`), key: "attributes"},
	})
}

func TestParseRoleTemplates(t *testing.T) {
	tpl := func(s string) string { return app(decl + `"role-templates":[` + s + `]`) }
	many := func(n int) string {
		return tpl(repeat(n, func(i int) string { return fmt.Sprintf(`{"name":"t%d"}`, i) }))
	}
	runParseCases(t, []parseCase{
		{name: "valid name chars", in: tpl(`{"name":"a.B-c_9"}`), ok: true},
		{name: "missing name", in: tpl(`{"description":"x"}`), key: "role-templates[0].name"},
		{name: "space in name", in: tpl(`{"name":"a b"}`), key: "role-templates[0].name"},
		{name: "64 chars", in: tpl(`{"name":"` + strings.Repeat("t", 64) + `"}`), ok: true},
		{name: "65 chars", in: tpl(`{"name":"` + strings.Repeat("t", 65) + `"}`), key: "role-templates[0].name"},
		{name: "duplicate", in: tpl(`{"name":"a"},{"name":"a"}`), key: "role-templates[1].name"},
		{name: "default-role-name 255 runes", in: tpl(`{"name":"a","default-role-name":"` + strings.Repeat("ä", 255) + `"}`), ok: true},
		{name: "default-role-name 256 runes", in: tpl(`{"name":"a","default-role-name":"` + strings.Repeat("ä", 256) + `"}`), key: "role-templates[0].default-role-name"},
		{name: "scope refs valid", in: tpl(`{"name":"a","scope-references":["$XSAPPNAME.Read","$XSAPPNAME(application,b).W","$XSSERVICENAME(s).X","uaa.user"]}`), ok: true},
		{name: "local scope undeclared", in: tpl(`{"name":"a","scope-references":["$XSAPPNAME.Read","$XSAPPNAME.Write"]}`), key: "role-templates[0].scope-references[1]"},
		{name: "scope ref accept keyword", in: tpl(`{"name":"a","scope-references":["$ACCEPT_GRANTED_AUTHORITIES"]}`), key: "role-templates[0].scope-references[0]"},
		{name: "scope ref without scope", in: tpl(`{"name":"a","scope-references":["$XSAPPNAME(application,b)"]}`), key: "role-templates[0].scope-references[0]"},
		{name: "scope ref three args", in: tpl(`{"name":"a","scope-references":["$XSAPPNAME(application,b,c).x"]}`), key: "role-templates[0].scope-references[0]"},
		{name: "scope ref malformed", in: tpl(`{"name":"a","scope-references":["$XSSERVICENAME().x"]}`), key: "role-templates[0].scope-references[0]"},
		{name: "scope refs type", in: tpl(`{"name":"a","scope-references":"$XSAPPNAME.Read"}`), key: "role-templates[0].scope-references"},
		{name: "attribute refs both forms", in: tpl(`{"name":"a","attribute-references":["Req",{"name":"Opt","default-values":["1"]}]}`), ok: true},
		{name: "attribute ref undeclared", in: tpl(`{"name":"a","attribute-references":["Req","Nope"]}`), key: "role-templates[0].attribute-references[1]"},
		{name: "attribute ref object undeclared", in: tpl(`{"name":"a","attribute-references":[{"name":"Nope"}]}`), key: "role-templates[0].attribute-references[0]"},
		{name: "attribute ref without name", in: tpl(`{"name":"a","attribute-references":[{"default-values":["x"]}]}`), key: "role-templates[0].attribute-references[0]"},
		{name: "attribute ref type", in: tpl(`{"name":"a","attribute-references":[1]}`), key: "role-templates[0].attribute-references[0]"},
		{name: "default-values type", in: tpl(`{"name":"a","attribute-references":[{"name":"Req","default-values":"x"}]}`), key: "role-templates[0].attribute-references[0].default-values"},
		{name: "500 templates", in: many(500), ok: true},
		{name: "501 templates", in: many(501), key: "role-templates"},
	})
}

func TestParseRoleCollections(t *testing.T) {
	const tpls = `"role-templates":[{"name":"Free"},{"name":"Blocked","attribute-references":["Req"]},
	 {"name":"Defaulted","attribute-references":[{"name":"Req","default-values":["x"]}]},{"name":"Optional","attribute-references":["Opt"]}],`
	rc := func(s string) string { return app(decl + tpls + `"role-collections":[` + s + `]`) }
	many := func(n int) string {
		return rc(repeat(n, func(i int) string {
			return fmt.Sprintf(`{"name":"c%d","role-template-references":["$XSAPPNAME.Free"]}`, i)
		}))
	}
	runParseCases(t, []parseCase{
		{name: "valid", in: rc(`{"name":"Any name, really!","description":"d","role-template-references":["$XSAPPNAME.Free","$XSAPPNAME(application,b).T","$XSSERVICENAME(s).T"]}`), ok: true},
		{name: "default values make default role", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME.Defaulted","$XSAPPNAME.Optional"]}`), ok: true},
		{name: "required attribute blocks default role", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME.Free","$XSAPPNAME.Blocked"]}`), key: "role-collections[0].role-template-references[1]"},
		{name: "undeclared template", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME.Nope"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "literal reference", in: rc(`{"name":"c","role-template-references":["Free"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "bare $XSAPPNAME", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "accept keyword", in: rc(`{"name":"c","role-template-references":["$ACCEPT_GRANTED_SCOPES"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "bad template name in foreign ref", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME(application,b).a b"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "three args", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME(application,b,c).T"]}`), key: "role-collections[0].role-template-references[0]"},
		{name: "missing references", in: rc(`{"name":"c"}`), key: "role-collections[0].role-template-references"},
		{name: "empty references", in: rc(`{"name":"c","role-template-references":[]}`), key: "role-collections[0].role-template-references"},
		{name: "missing name", in: rc(`{"role-template-references":["$XSAPPNAME.Free"]}`), key: "role-collections[0].name"},
		{name: "name 64 runes", in: rc(`{"name":"` + strings.Repeat("ö", 64) + `","role-template-references":["$XSAPPNAME.Free"]}`), ok: true},
		{name: "name 65 runes", in: rc(`{"name":"` + strings.Repeat("ö", 65) + `","role-template-references":["$XSAPPNAME.Free"]}`), key: "role-collections[0].name"},
		{name: "description 1000", in: rc(`{"name":"c","description":"` + strings.Repeat("d", 1000) + `","role-template-references":["$XSAPPNAME.Free"]}`), ok: true},
		{name: "description 1001", in: rc(`{"name":"c","description":"` + strings.Repeat("d", 1001) + `","role-template-references":["$XSAPPNAME.Free"]}`), key: "role-collections[0].description"},
		{name: "duplicate", in: rc(`{"name":"c","role-template-references":["$XSAPPNAME.Free"]},{"name":"c","role-template-references":["$XSAPPNAME.Free"]}`), key: "role-collections[1].name"},
		{name: "250 collections", in: many(250), ok: true},
		{name: "251 collections", in: many(251), key: "role-collections"},
	})
}

func TestParseAuthoritiesAndForeignScopes(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "authorities forms", in: app(`"authorities":["$ACCEPT_GRANTED_AUTHORITIES","$XSAPPNAME.cds.Subscriber","$XSAPPNAME(application,b).Create","$XSSERVICENAME(s).X","uaa.resource"]`), ok: true},
		{name: "authorities accept scopes", in: app(`"authorities":["$ACCEPT_GRANTED_SCOPES"]`), key: "authorities[0]"},
		{name: "authorities app without scope", in: app(`"authorities":["x","$XSAPPNAME(application,b)"]`), key: "authorities[1]"},
		{name: "authorities malformed", in: app(`"authorities":["$XSAPPNAME(application,b"]`), key: "authorities[0]"},
		{name: "authorities empty entry", in: app(`"authorities":[""]`), key: "authorities[0]"},
		{name: "authorities type", in: app(`"authorities":"$ACCEPT_GRANTED_AUTHORITIES"`), key: "authorities"},
		{name: "foreign forms", in: app(`"foreign-scope-references":["$ACCEPT_GRANTED_SCOPES","uaa.user","$XSAPPNAME(application,b).Read"]`), ok: true},
		{name: "foreign accept authorities", in: app(`"foreign-scope-references":["$ACCEPT_GRANTED_AUTHORITIES"]`), key: "foreign-scope-references[0]"},
		{name: "foreign three args", in: app(`"foreign-scope-references":["$XSAPPNAME(application,a,b).x"]`), key: "foreign-scope-references[0]"},
		{name: "authorities-inheritance bool", in: app(`"authorities-inheritance":true`), ok: true},
		{name: "authorities-inheritance string", in: app(`"authorities-inheritance":"false"`), key: "authorities-inheritance"},
	})
}

func TestParseOAuth2Configuration(t *testing.T) {
	o := func(s string) string { return app(`"oauth2-configuration":{` + s + `}`) }
	const p = "oauth2-configuration."
	runParseCases(t, []parseCase{
		{name: "not an object", in: app(`"oauth2-configuration":[]`), key: "oauth2-configuration"},
		{name: "null", in: app(`"oauth2-configuration":null`), ok: true},
		{name: "token-validity min", in: o(`"token-validity":300`), ok: true},
		{name: "token-validity max", in: o(`"token-validity":99999999`), ok: true},
		{name: "token-validity zero is default", in: o(`"token-validity":0`), ok: true},
		{name: "token-validity too small", in: o(`"token-validity":299`), key: p + "token-validity"},
		{name: "token-validity too big", in: o(`"token-validity":100000000`), key: p + "token-validity"},
		{name: "token-validity negative", in: o(`"token-validity":-1`), key: p + "token-validity"},
		{name: "token-validity string", in: o(`"token-validity":"3600"`), key: p + "token-validity"},
		{name: "token-validity fraction", in: o(`"token-validity":3600.5`), key: p + "token-validity"},
		{name: "token-validity huge", in: o(`"token-validity":1e300`), key: p + "token-validity"},
		{name: "refresh min", in: o(`"refresh-token-validity":600`), ok: true},
		{name: "refresh too small", in: o(`"refresh-token-validity":599`), key: p + "refresh-token-validity"},
		{name: "refresh too big", in: o(`"refresh-token-validity":100000000`), key: p + "refresh-token-validity"},
		{name: "credential types", in: o(`"credential-types":["x509","binding-secret","instance-secret"]`), ok: true},
		{name: "credential type unknown", in: o(`"credential-types":["x509","secret"]`), key: p + "credential-types[1]"},
		{name: "credential type twice", in: o(`"credential-types":["x509","x509"]`), key: p + "credential-types[1]"},
		{name: "grant types", in: o(`"grant-types":["implicit","user_token","urn:ietf:params:oauth:grant-type:saml2-bearer"]`), ok: true},
		{name: "grant type unknown", in: o(`"grant-types":["client_credentials","urn:ietf:params:oauth:grant-type:token-exchange"]`), key: p + "grant-types[1]"},
		{name: "redirect uris", in: o(`"redirect-uris":["https://*.example.com/**","http://localhost:*/cb","https://u:p@h.example.com:8443/a/*/b?x=1","myapp://callback","https://[::1]:8080/x"]`), ok: true},
		{name: "redirect relative", in: o(`"redirect-uris":["/callback"]`), key: p + "redirect-uris[0]"},
		{name: "redirect no host", in: o(`"redirect-uris":["https:///x"]`), key: p + "redirect-uris[0]"},
		{name: "redirect space", in: o(`"redirect-uris":["https://a.example.com/a b"]`), key: p + "redirect-uris[0]"},
		{name: "redirect bad port", in: o(`"redirect-uris":["https://a.example.com:99999/"]`), key: p + "redirect-uris[0]"},
		{name: "redirect bad host", in: o(`"redirect-uris":["https://a%b/"]`), key: p + "redirect-uris[0]"},
		{name: "system attributes empty", in: o(`"system-attributes":[]`), ok: true},
		{name: "system attributes unknown", in: o(`"system-attributes":["groups","roles"]`), key: p + "system-attributes[1]"},
		{name: "autoapprove bool", in: o(`"autoapprove":true`), ok: true},
		{name: "autoapprove bad", in: o(`"autoapprove":"yes"`), key: p + "autoapprove"},
		{name: "allowedproviders type", in: o(`"allowedproviders":"sap.default"`), key: p + "allowedproviders"},
		{name: "async string", in: app(`"xsenableasyncservice":"true"`), ok: true},
		{name: "async bool", in: app(`"xsenableasyncservice":false`), ok: true},
		{name: "async bad string", in: app(`"xsenableasyncservice":"maybe"`), key: "xsenableasyncservice"},
		{name: "async number", in: app(`"xsenableasyncservice":1`), key: "xsenableasyncservice"},
	})
}

// TestParseFirstErrorInDocumentOrder checks that with several problems the
// one appearing first is reported, and that type errors come before rule
// errors.
func TestParseFirstErrorInDocumentOrder(t *testing.T) {
	runParseCases(t, []parseCase{
		{name: "tenant-mode before xsappname", in: `{"tenant-mode":"x","xsappname":"a b"}`, key: "tenant-mode"},
		{name: "xsappname before tenant-mode", in: `{"xsappname":"a b","tenant-mode":"x"}`, key: "xsappname"},
		{name: "type error wins", in: `{"xsappname":"a b","scopes":5}`, key: "scopes"},
	})
}

func TestParseValues(t *testing.T) {
	d, err := Parse([]byte(docsTypos), Options{AppSuffix: "!t1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.OAuth2Configuration.SystemAttributes; !slices.Equal(got, []string{"groups", "rolecollections"}) {
		t.Errorf("system-attributes = %v", got)
	}
	if got := d.OAuth2Configuration.AllowedProviders; !slices.Equal(got, []string{"sap.default"}) {
		t.Errorf("allowedproviders = %v", got)
	}
	want := []AttributeRef{{Name: "Country", DefaultValues: []string{"DE", "US"}}}
	if got := d.RoleTemplates[0].AttributeReferences; !reflect.DeepEqual(got, want) {
		t.Errorf("attribute-references = %+v", got)
	}
	if got := d.RoleTemplates[1].AttributeReferences; !reflect.DeepEqual(got, []AttributeRef{{Name: "CostCenter"}}) {
		t.Errorf("attribute-references = %+v", got)
	}
	if d.XSEnableAsyncService != "false" || d.OAuth2Configuration.Autoapprove != "true" {
		t.Errorf("flags = %q %q", d.XSEnableAsyncService, d.OAuth2Configuration.Autoapprove)
	}
	if d.AuthoritiesInheritance == nil || *d.AuthoritiesInheritance {
		t.Errorf("authorities-inheritance = %v", d.AuthoritiesInheritance)
	}

	d, err = Parse([]byte(app(`"oauth2-configuration":{"system-attributes":[]},"xsenableasyncservice":true`)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.SystemAttributes(); got == nil || len(got) != 0 {
		t.Errorf("SystemAttributes() = %#v, want empty", got)
	}
	if d.XSEnableAsyncService != "true" {
		t.Errorf("xsenableasyncservice = %q", d.XSEnableAsyncService)
	}
}

func TestDescriptorDefaults(t *testing.T) {
	bare, err := Parse([]byte(`{"xsappname":"a"}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := Parse([]byte(app(`"tenant-mode":"shared","oauth2-configuration":{"token-validity":600,"refresh-token-validity":7200,
		"credential-types":["x509"],"grant-types":["client_credentials"],"system-attributes":["groups"]}`)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"default tenant mode", bare.TenantModeOrDefault(), "dedicated"},
		{"tenant mode", full.TenantModeOrDefault(), "shared"},
		{"default token validity", bare.TokenValidity(), 43200},
		{"token validity", full.TokenValidity(), 600},
		{"default refresh validity", bare.RefreshTokenValidity(), 2419200},
		{"refresh validity", full.RefreshTokenValidity(), 7200},
		{"no credential types", bare.CredentialTypes(), []string(nil)},
		{"credential types", full.CredentialTypes(), []string{"x509"}},
		{"default grant types", bare.GrantTypes(), defaultGrantTypes},
		{"grant types", full.GrantTypes(), []string{"client_credentials"}},
		{"default system attributes", bare.SystemAttributes(), []string{"groups", "rolecollections"}},
		{"system attributes", full.SystemAttributes(), []string{"groups"}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if slices.Contains(bare.GrantTypes(), "implicit") {
		t.Error("implicit must not be a default grant type")
	}
}

func TestCrossInstanceRefs(t *testing.T) {
	d, err := Parse([]byte(fullExample), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range d.CrossInstanceRefs() {
		got = append(got, r.Key+"="+r.Ref.App+r.Ref.Service)
	}
	want := []string{
		"scopes[1].granted-apps[0]=bookshop-ui",
		"scopes[2].grant-as-authority-to-apps[0]=jobs",
		"scopes[2].grant-as-authority-to-apps[1]=my-jobscheduler",
		"role-templates[0].scope-references[1]=catalog",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	d, err = Parse([]byte(app(`"authorities":["$XSSERVICENAME(s).A"],"foreign-scope-references":["$XSAPPNAME(application,f).B"],
		"role-templates":[{"name":"T"}],"role-collections":[{"name":"c","role-template-references":["$XSAPPNAME.T","$XSAPPNAME(application,o).T"]}]`)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range d.CrossInstanceRefs() {
		got = append(got, r.Key)
	}
	want = []string{"role-collections[0].role-template-references[1]", "authorities[0]", "foreign-scope-references[0]"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestCheckUpdate(t *testing.T) {
	const base = `{"xsappname":"a","attributes":[{"name":"A","valueType":"int"},{"name":"S"}],
		"role-templates":[{"name":"T","attribute-references":["A"]}]}`
	tests := []struct {
		name    string
		old     string
		updated string
		key     string // "" means accepted
	}{
		{"unchanged", base, base, ""},
		{"add scope and description", base, `{"xsappname":"a","description":"new","scopes":[{"name":"$XSAPPNAME.x"}],
			"attributes":[{"name":"A","valueType":"int","description":"d"},{"name":"S"}],"role-templates":[{"name":"T","attribute-references":["A"]}]}`, ""},
		{"xsappname changed", base, `{"xsappname":"b"}`, "xsappname"},
		{"tenant-mode default to explicit dedicated", base, `{"xsappname":"a","tenant-mode":"dedicated"}`, ""},
		{"tenant-mode changed", base, `{"xsappname":"a","tenant-mode":"shared"}`, "tenant-mode"},
		{"valueType changed", base, `{"xsappname":"a","attributes":[{"name":"S"},{"name":"A","valueType":"string"}]}`, "attributes[1].valueType"},
		{"valueType spelling", base, `{"xsappname":"a","attributes":[{"name":"A","valueType":"int"},{"name":"S","valueType":"s"}]}`, ""},
		{"attribute deleted then re-added type", base, `{"xsappname":"a","attributes":[{"name":"B","valueType":"date"}]}`, ""},
		{"attribute reference removed", base, `{"xsappname":"a","attributes":[{"name":"A","valueType":"int"},{"name":"S"}],"role-templates":[{"name":"T"}]}`, ""},
		{"attribute reference added", base, `{"xsappname":"a","attributes":[{"name":"A","valueType":"int"},{"name":"S"}],
			"role-templates":[{"name":"T","attribute-references":["A","S"]}]}`, "role-templates[0].attribute-references[1]"},
		{"new template with references", base, `{"xsappname":"a","attributes":[{"name":"A","valueType":"int"},{"name":"S"}],
			"role-templates":[{"name":"T","attribute-references":["A"]},{"name":"U","attribute-references":["S"]}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse([]byte(tt.old), Options{})
			if err != nil {
				t.Fatal(err)
			}
			u, err := Parse([]byte(tt.updated), Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = CheckUpdate(o, u)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Key != tt.key {
				t.Fatalf("want key %q, got %v", tt.key, err)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	_, err := Parse([]byte(app(`"oauth2-configuration":{"token-validity":"x"}`)), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "oauth2-configuration.token-validity: ") {
		t.Fatalf("got %v", err)
	}
	_, err = Parse([]byte(`{`), Options{})
	if err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("got %v", err)
	}
}

func TestAttributeRefUnmarshalJSON(t *testing.T) {
	var refs []AttributeRef
	if err := json.Unmarshal([]byte(`["A",{"name":"B","default-values":["1"]}]`), &refs); err != nil {
		t.Fatal(err)
	}
	want := []AttributeRef{{Name: "A"}, {Name: "B", DefaultValues: []string{"1"}}}
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("got %+v", refs)
	}
	if err := json.Unmarshal([]byte(`[1]`), &refs); err == nil {
		t.Fatal("number accepted as attribute reference")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fullExample))
	f.Add([]byte(docsTypos))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"xsappname":"a","scopes":[{"name":"$XSAPPNAME.x","granted-apps":["$XSAPPNAME(application,b)"]}],"oauth2-configuration":{"system-attributes":[]}}`))
	f.Add([]byte(`{"xsappname":"a","attributes":[{"name":"A","valueRequired":"false"}],"role-templates":[{"name":"T","attribute-references":["A"]}],"role-collections":[{"name":"c","role-template-references":["$XSAPPNAME.T"]}]}`))
	f.Add([]byte(`{"xsappname":"a","authorities":["$ACCEPT_GRANTED_AUTHORITIES"],"xsenableasyncservice":true,"oauth2-configuration":{"token-validity":300.0}}`))
	opts := Options{DefaultXSAppName: "fuzz instance", AppSuffix: "!t7"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := Parse(raw, opts)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error is %T, not *Error: %v", err, err)
			}
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(b, opts)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip changed the descriptor:\n%+v\n%+v", d, d2)
		}
	})
}

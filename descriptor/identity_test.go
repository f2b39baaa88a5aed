package descriptor

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// identityExample is the example of SAP's identity broker README with every
// key of identity.md §2.1.
const identityExample = `{
  "name": "sap-product-technical-name",
  "oauth2-configuration": {
    "redirect-uris": ["https://myapp.mydomain.com/callback/**", "http://localhost:*/login/callback"],
    "post-logout-redirect-uris": ["https://myapp.mydomain.com/logout/**"],
    "front-channel-logout-uris": ["https://*.mydomain.com/fc-logout"],
    "public-client": false,
    "token-policy": {
      "token-validity": 1800,
      "refresh-validity": 7776000,
      "refresh-parallel": 3,
      "refresh-usage-after-renewal": "online",
      "access-token-format": "jwt"
    },
    "grant-types": ["client_credentials", "authorization_code"]
  },
  "consumed-services": [{"service-instance-name": "al4webapp"}],
  "xsuaa-cross-consumption": true,
  "display-name": "SAP Product Name",
  "home-url": "https://$BTP_SUBDOMAIN.cfapps.sap.hana.ondemand.com",
  "multi-tenant": true,
  "user-access": "private",
  "catalog": {"services": [{"name": "reuse-service", "plans": [{"name": "reuse-plan"}]}]},
  "authorization": {"enabled": false},
  "subject-name-identifier": {"attribute": "mail", "fallback-attribute": "uid"},
  "provided-apis": [{"name": "write-access", "description": "grants access to write APIs", "type": "public"}],
  "default-attributes": {"app_att": "123"},
  "assertion-attributes": {"email": "mail", "groups": "companyGroups"},
  "blank-attribute-names": ["predefined-attribute"]
}`

func TestParseIdentity(t *testing.T) {
	o := func(s string) string { return `{"oauth2-configuration":{` + s + `}}` }
	tp := func(s string) string { return o(`"token-policy":{` + s + `}`) }
	uris := func(n, length int) string {
		list := make([]string, n)
		for i := range list {
			u := fmt.Sprintf("https://h%d.example.com/", i)
			list[i] = `"` + u + strings.Repeat("p", length-len(u)) + `"`
		}
		return "[" + strings.Join(list, ",") + "]"
	}
	listOf := func(n int, f string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(f, i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	const p = "oauth2-configuration."
	tests := []struct {
		name string
		in   string
		ok   bool
		key  string
	}{
		{name: "example", in: identityExample, ok: true},
		{name: "empty", in: ``, ok: true},
		{name: "null", in: `null`, ok: true},
		{name: "unknown key", in: `{"whatever":[1]}`, ok: true},
		{name: "not an object", in: `[]`, key: ""},
		{name: "not JSON", in: `{"name":`, key: ""},
		{name: "name type", in: `{"name":1}`, key: "name"},
		{name: "display-name 99", in: `{"display-name":"` + strings.Repeat("é", 99) + `"}`, ok: true},
		{name: "display-name 100", in: `{"display-name":"` + strings.Repeat("é", 100) + `"}`, key: "display-name"},
		{name: "multi-tenant type", in: `{"multi-tenant":"true"}`, key: "multi-tenant"},
		{name: "oauth2 type", in: `{"oauth2-configuration":[]}`, key: "oauth2-configuration"},
		{name: "20 redirect uris of 499", in: o(`"redirect-uris":` + uris(20, 499)), ok: true},
		{name: "21 redirect uris", in: o(`"redirect-uris":` + uris(21, 40)), key: p + "redirect-uris"},
		{name: "redirect uri 500", in: o(`"redirect-uris":` + uris(1, 500)), key: p + "redirect-uris[0]"},
		{name: "http localhost", in: o(`"redirect-uris":["http://localhost:8080/cb","http://127.0.0.1/cb","http://localhost:*/x"]`), ok: true},
		{name: "http elsewhere", in: o(`"redirect-uris":["http://app.example.com/cb"]`), key: p + "redirect-uris[0]"},
		{name: "custom scheme", in: o(`"redirect-uris":["myapp://cb"]`), key: p + "redirect-uris[0]"},
		{name: "port wildcard elsewhere", in: o(`"redirect-uris":["https://app.example.com:*/cb"]`), key: p + "redirect-uris[0]"},
		{name: "wildcards", in: o(`"redirect-uris":["https://*.example.com/a/*/b/**"]`), ok: true},
		{name: "partial host wildcard", in: o(`"redirect-uris":["https://app-*.example.com/"]`), key: p + "redirect-uris[0]"},
		{name: "double star mid path", in: o(`"redirect-uris":["https://a.example.com/**/x"]`), key: p + "redirect-uris[0]"},
		{name: "relative", in: o(`"redirect-uris":["/cb"]`), key: p + "redirect-uris[0]"},
		{name: "post-logout 21", in: o(`"post-logout-redirect-uris":` + uris(21, 40)), key: p + "post-logout-redirect-uris"},
		{name: "post-logout http", in: o(`"post-logout-redirect-uris":["http://a.example.com/"]`), key: p + "post-logout-redirect-uris[0]"},
		{name: "back-channel only", in: o(`"back-channel-logout-uris":["https://a.example.com/bc"]`), ok: true},
		{name: "front and back", in: o(`"front-channel-logout-uris":["https://a.example.com/fc"],"back-channel-logout-uris":["https://a.example.com/bc"]`), key: p + "back-channel-logout-uris"},
		{name: "front-channel 21", in: o(`"front-channel-logout-uris":` + uris(21, 40)), key: p + "front-channel-logout-uris"},
		{name: "public-client type", in: o(`"public-client":1`), key: p + "public-client"},
		{name: "all grant types", in: o(`"grant-types":["client_credentials","password","authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:token-exchange","urn:ietf:params:oauth:grant-type:jwt-bearer","implicit","authorization_code_pkce_s256"]`), ok: true},
		{name: "grant type unknown", in: o(`"grant-types":["user_token"]`), key: p + "grant-types[0]"},
		{name: "token-validity range", in: tp(`"token-validity":60`), ok: true},
		{name: "token-validity max", in: tp(`"token-validity":43200`), ok: true},
		{name: "token-validity 59", in: tp(`"token-validity":59`), key: p + "token-policy.token-validity"},
		{name: "token-validity 43201", in: tp(`"token-validity":43201`), key: p + "token-policy.token-validity"},
		{name: "token-validity string", in: tp(`"token-validity":"60"`), key: p + "token-policy.token-validity"},
		{name: "refresh-validity 0", in: tp(`"refresh-validity":0`), ok: true},
		{name: "refresh-validity min/max", in: tp(`"refresh-validity":3600`), ok: true},
		{name: "refresh-validity max", in: tp(`"refresh-validity":15552000`), ok: true},
		{name: "refresh-validity 3599", in: tp(`"refresh-validity":3599`), key: p + "token-policy.refresh-validity"},
		{name: "refresh-validity too big", in: tp(`"refresh-validity":15552001`), key: p + "token-policy.refresh-validity"},
		{name: "refresh-parallel 10", in: tp(`"refresh-parallel":10`), ok: true},
		{name: "refresh-parallel 0", in: tp(`"refresh-parallel":0`), key: p + "token-policy.refresh-parallel"},
		{name: "refresh-parallel 11", in: tp(`"refresh-parallel":11`), key: p + "token-policy.refresh-parallel"},
		{name: "refresh-usage mobile", in: tp(`"refresh-usage-after-renewal":"mobile"`), ok: true},
		{name: "refresh-usage bad", in: tp(`"refresh-usage-after-renewal":"always"`), key: p + "token-policy.refresh-usage-after-renewal"},
		{name: "access-token-format opaque", in: tp(`"access-token-format":"opaque"`), ok: true},
		{name: "access-token-format bad", in: tp(`"access-token-format":"saml"`), key: p + "token-policy.access-token-format"},
		{name: "token-policy type", in: o(`"token-policy":1`), key: p + "token-policy"},
		{name: "400 consumed services", in: `{"consumed-services":` + listOf(400, `{"service-instance-name":"s%d"}`) + `}`, ok: true},
		{name: "401 consumed services", in: `{"consumed-services":` + listOf(401, `{"service-instance-name":"s%d"}`) + `}`, key: "consumed-services"},
		{name: "consumed service without name", in: `{"consumed-services":[{"service-instance-name":"a"},{}]}`, key: "consumed-services[1].service-instance-name"},
		{name: "consumed service element type", in: `{"consumed-services":["a"]}`, key: "consumed-services[0]"},
		{name: "xsuaa-cross-consumption type", in: `{"xsuaa-cross-consumption":"yes"}`, key: "xsuaa-cross-consumption"},
		{name: "50 provided apis", in: `{"provided-apis":` + listOf(50, `{"name":"api%d","type":"internal"}`) + `}`, ok: true},
		{name: "51 provided apis", in: `{"provided-apis":` + listOf(51, `{"name":"api%d"}`) + `}`, key: "provided-apis"},
		{name: "api name 50", in: `{"provided-apis":[{"name":"` + strings.Repeat("n", 50) + `"}]}`, ok: true},
		{name: "api name 51", in: `{"provided-apis":[{"name":"` + strings.Repeat("n", 51) + `"}]}`, key: "provided-apis[0].name"},
		{name: "api without name", in: `{"provided-apis":[{"description":"d"}]}`, key: "provided-apis[0].name"},
		{name: "api duplicate", in: `{"provided-apis":[{"name":"a"},{"name":"a"}]}`, key: "provided-apis[1].name"},
		{name: "api type bad", in: `{"provided-apis":[{"name":"a","type":"private"}]}`, key: "provided-apis[0].type"},
		{name: "subject attribute", in: `{"subject-name-identifier":{"attribute":"personnelNumber","fallback-attribute":"none"}}`, ok: true},
		{name: "subject attribute bad", in: `{"subject-name-identifier":{"attribute":"email"}}`, key: "subject-name-identifier.attribute"},
		{name: "subject fallback bad", in: `{"subject-name-identifier":{"fallback-attribute":"email"}}`, key: "subject-name-identifier.fallback-attribute"},
		{name: "user-access bad", in: `{"user-access":"everyone"}`, key: "user-access"},
		{name: "home-url type", in: `{"home-url":[]}`, key: "home-url"},
		{name: "default-attributes value type", in: `{"default-attributes":{"a":1}}`, key: "default-attributes.a"},
		{name: "assertion-attributes type", in: `{"assertion-attributes":["mail"]}`, key: "assertion-attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseIdentity([]byte(tt.in), "my-instance")
			if tt.ok {
				if err != nil || c == nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want *Error with key %q, got %v", tt.key, err)
			}
			if e.Key != tt.key {
				t.Fatalf("want key %q, got %q (%v)", tt.key, e.Key, err)
			}
		})
	}
}

func TestParseIdentityDefaults(t *testing.T) {
	c, err := ParseIdentity(nil, strings.Repeat("n", 120))
	if err != nil {
		t.Fatal(err)
	}
	want := &IdentityConfig{
		DisplayName: strings.Repeat("n", 99),
		OAuth2Configuration: IdentityOAuth2{
			GrantTypes: []string{"client_credentials", "password", "authorization_code", "refresh_token",
				"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"},
			TokenPolicy: TokenPolicy{TokenValidity: 3600, RefreshValidity: 43200, RefreshParallel: 1,
				RefreshUsageAfterRenewal: "off", AccessTokenFormat: "default"},
		},
		SubjectNameIdentifier: SubjectNameIdentifier{Attribute: "userUuid"},
		AssertionAttributes: map[string]string{"groups": "companyGroups", "given_name": "firstName",
			"family_name": "lastName", "email": "mail", "user_uuid": "userUuid"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}

	c, err = ParseIdentity([]byte(`{"display-name":"","oauth2-configuration":{"token-policy":{"refresh-validity":0}},"assertion-attributes":{}}`), "inst")
	if err != nil {
		t.Fatal(err)
	}
	if c.DisplayName != "inst" || c.OAuth2Configuration.TokenPolicy.RefreshValidity != 0 || len(c.AssertionAttributes) != 0 {
		t.Fatalf("got %+v", c)
	}

	c, err = ParseIdentity([]byte(identityExample), "inst")
	if err != nil {
		t.Fatal(err)
	}
	if c.DisplayName != "SAP Product Name" || !c.MultiTenant || !c.XsuaaCrossConsumption ||
		c.OAuth2Configuration.TokenPolicy != (TokenPolicy{1800, 7776000, 3, "online", "jwt"}) ||
		len(c.OAuth2Configuration.GrantTypes) != 2 || c.SubjectNameIdentifier.Attribute != "mail" ||
		c.DefaultAttributes["app_att"] != "123" || c.AssertionAttributes["groups"] != "companyGroups" || len(c.AssertionAttributes) != 2 {
		t.Fatalf("got %+v", c)
	}
	// The effective configuration survives a JSON round trip unchanged.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseIdentity(b, "other")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip:\n%+v\n%+v", c, c2)
	}
}

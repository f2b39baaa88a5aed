package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// osbWorld is the real OSB handler (Handler) of a Broker on a real bbolt
// store, with a fixed base state that requests can refer to: an xsuaa
// instance "bookshop" with a secret binding, a second xsuaa instance
// "reviews", and two identity instances, the second consuming the first.
// Requests go straight to the handler (no listener), so a fuzz target can
// send many of them.
type osbWorld struct {
	tb testing.TB
	st *bolt.Store
	b  *Broker
	h  http.Handler

	xsService, xsApp, xsBrokerPlan string // catalog ids
	iasService, iasApp             string
}

// Base state ids.
const (
	worldOrg       = "org-guid-1"
	worldSpace     = "space-guid-1"
	baseXs         = "base-xsuaa"
	baseXsBinding  = "base-xsuaa-binding"
	baseReviews    = "base-reviews"
	baseIas        = "base-identity"
	baseIasBinding = "base-identity-binding"
	baseConsumer   = "base-consumer"
	osbUser        = "cc"
	osbPassword    = "osb-password"
)

// bookshopDescriptor is the xs-security.json of the base xsuaa instance.
const bookshopDescriptor = `{
	"xsappname": "bookshop",
	"tenant-mode": "dedicated",
	"scopes": [
		{"name": "$XSAPPNAME.Read", "description": "read"},
		{"name": "$XSAPPNAME.Write", "description": "write", "granted-apps": ["$XSAPPNAME(application,reviews)"]}
	],
	"attributes": [{"name": "Country", "description": "country", "valueType": "string"}],
	"role-templates": [
		{"name": "Viewer", "scope-references": ["$XSAPPNAME.Read"], "attribute-references": [{"name": "Country", "default-values": ["DE"]}]},
		{"name": "Editor", "scope-references": ["$XSAPPNAME.Read", "$XSAPPNAME.Write"]}
	],
	"role-collections": [{"name": "Bookshop Viewer", "role-template-references": ["$XSAPPNAME.Viewer"]}],
	"authorities": ["$XSAPPNAME.Read"],
	"oauth2-configuration": {
		"token-validity": 900,
		"redirect-uris": ["https://bookshop.example.com/**"],
		"credential-types": ["binding-secret", "x509", "instance-secret"]
	}
}`

// reviewsDescriptor is the xs-security.json of the second xsuaa instance.
const reviewsDescriptor = `{"xsappname": "reviews", "scopes": [{"name": "$XSAPPNAME.Moderate", "description": "m"}]}`

// providedCertPEM is a self-signed client certificate valid until 2125, for
// X509_PROVIDED and self-managed x509 bindings (its key is not kept).
const providedCertPEM = `-----BEGIN CERTIFICATE-----
MIIBZjCCAQygAwIBAgIBBzAKBggqhkjOPQQDAjAnMQ0wCwYDVQQKEwRGdXp6MRYw
FAYDVQQDEw1mdXp6LXByb3ZpZGVkMCAXDTI1MDEwMTAwMDAwMFoYDzIxMjUwMTAx
MDAwMDAwWjAnMQ0wCwYDVQQKEwRGdXp6MRYwFAYDVQQDEw1mdXp6LXByb3ZpZGVk
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdjvthXEClvkiFL9efr/MC0GbvFNr
DsIeVIGNAOaPaZEogajWT8eKt9KlS3zHpGz28JhG2BbltoJsAntt8fnnlaMnMCUw
DgYDVR0PAQH/BAQDAgeAMBMGA1UdJQQMMAoGCCsGAQUFBwMCMAoGCCqGSM49BAMC
A0gAMEUCIQDwiV4Zm02y8b+Jl0GutiN0JfaAx4YRN3PZHH/SvRS/JAIgAacHpHOt
3TI9hxfIloHQYfIuXPu5wMBLgBGq5eWshKs=
-----END CERTIFICATE-----
`

// fixedKeys stands in for the token server's keys: the broker only copies
// the PEM into xsuaa credentials.
type fixedKeys struct{}

func (fixedKeys) VerificationKeyPEM() string {
	return "-----BEGIN PUBLIC KEY-----\nnot-a-real-key\n-----END PUBLIC KEY-----\n"
}

func newOSBWorld(tb testing.TB) *osbWorld {
	tb.Helper()
	sealer, err := credentials.NewSealer("0123456789abcdef0123456789abcdef01234567")
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := credentials.NewCA("OSB Test")
	if err != nil {
		tb.Fatal(err)
	}
	cat, err := ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "broker.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	zone, err := EnsureZone(context.Background(), st, "acme")
	if err != nil {
		tb.Fatal(err)
	}
	xsURL, _ := url.Parse("https://acme.authentication.test.local")
	iasURL, _ := url.Parse("https://acme.accounts.test.local")
	logger := lager.NewLogger("osb-test") // no sink: silent
	b := New(Config{
		Store: st, Catalog: cat, Sealer: sealer, CA: ca, Keys: fixedKeys{}, Zone: zone,
		XsuaaURL: xsURL, IdentityURL: iasURL, Logger: logger,
	})
	w := &osbWorld{tb: tb, st: st, b: b, h: Handler(b, Credentials{Username: osbUser, Password: osbPassword}, logger)}
	for _, s := range cat.Services {
		for _, p := range s.Plans {
			switch {
			case s.Name == ServiceXsuaa && p.Name == "application":
				w.xsService, w.xsApp = s.ID, p.ID
			case s.Name == ServiceXsuaa && p.Name == "broker":
				w.xsBrokerPlan = p.ID
			case s.Name == ServiceIdentity && p.Name == "application":
				w.iasService, w.iasApp = s.ID, p.ID
			}
		}
	}
	w.mustProvision(baseReviews, "reviews", w.xsService, w.xsApp, reviewsDescriptor)
	w.mustProvision(baseXs, "bookshop", w.xsService, w.xsApp, bookshopDescriptor)
	w.mustProvision(baseIas, "provider", w.iasService, w.iasApp, `{"provided-apis": [{"name": "read", "description": "r"}]}`)
	w.mustProvision(baseConsumer, "consumer", w.iasService, w.iasApp, `{"consumed-services": [{"service-instance-name": "provider"}]}`)
	w.mustBind(baseXs, baseXsBinding, w.xsService, w.xsApp, "")
	w.mustBind(baseXs, "base-instance-secret", w.xsService, w.xsApp, `{"credential-type": "instance-secret"}`)
	w.mustBind(baseIas, baseIasBinding, w.iasService, w.iasApp, "")
	return w
}

// isBase reports whether id names an instance or binding of the base state.
func isBase(id string) bool {
	switch id {
	case baseXs, baseXsBinding, baseReviews, baseIas, baseIasBinding, baseConsumer, "base-instance-secret":
		return true
	}
	return false
}

func (w *osbWorld) mustProvision(id, name, serviceID, planID, params string) {
	w.tb.Helper()
	rc, _ := json.Marshal(map[string]string{"platform": "cloudfoundry", "instance_name": name, "space_guid": worldSpace})
	_, err := w.b.Provision(context.Background(), id, domain.ProvisionDetails{
		ServiceID: serviceID, PlanID: planID, OrganizationGUID: worldOrg, SpaceGUID: worldSpace,
		RawContext: rc, RawParameters: json.RawMessage(params),
	}, false)
	if err != nil {
		w.tb.Fatalf("provision %s: %v", id, err)
	}
}

func (w *osbWorld) mustBind(instanceID, bindingID, serviceID, planID, params string) {
	w.tb.Helper()
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	_, err := w.b.Bind(context.Background(), instanceID, bindingID, domain.BindDetails{
		AppGUID: "app-" + bindingID, ServiceID: serviceID, PlanID: planID, RawParameters: raw,
	}, false)
	if err != nil {
		w.tb.Fatalf("bind %s: %v", bindingID, err)
	}
}

// deprovision removes an instance the test created.
func (w *osbWorld) deprovision(id string) {
	w.tb.Helper()
	if _, err := w.b.Deprovision(context.Background(), id, domain.DeprovisionDetails{}, false); err != nil {
		w.tb.Fatalf("clean-up deprovision %q: %v", id, err)
	}
}

// unbind removes a binding the test created.
func (w *osbWorld) unbind(instanceID, bindingID string) {
	w.tb.Helper()
	if _, err := w.b.Unbind(context.Background(), instanceID, bindingID, domain.UnbindDetails{}, false); err != nil {
		w.tb.Fatalf("clean-up unbind %q: %v", bindingID, err)
	}
}

// undo removes what a successful PUT to path (as instancePath or
// bindingPath build it) created. The ids are taken from the path as
// brokerapi's router takes them: from the escaped form whenever the URL has
// one, and then not unescaped ("a%3Bb" is the id, not "a;b").
func (w *osbWorld) undo(path string) {
	w.tb.Helper()
	u, err := url.Parse(path)
	if err != nil {
		w.tb.Fatalf("undo %s: %v", path, err)
	}
	p := u.RawPath
	if p == "" {
		p = u.Path
	}
	seg := strings.Split(p, "/") // "", v2, service_instances, id[, service_bindings, id]
	if len(seg) == 6 {
		w.unbind(seg[3], seg[5])
		return
	}
	w.deprovision(seg[3])
}

// digest is the SHA-256 of the store file. bbolt writes the file only when
// a transaction commits, so equal digests mean the request changed nothing
// (not even a rolled-back sequence number or an unchanged record rewritten).
func (w *osbWorld) digest() [32]byte {
	w.tb.Helper()
	raw, err := os.ReadFile(w.st.Path())
	if err != nil {
		w.tb.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// dump lists every record the store can enumerate, for a readable diff
// when the digests differ.
func (w *osbWorld) dump() string {
	var out strings.Builder
	_ = w.st.View(context.Background(), func(tx store.Tx) error {
		ins, _ := tx.ListInstances()
		for _, in := range ins {
			j, _ := json.Marshal(in)
			out.Write(j)
			out.WriteByte('\n')
			bs, _ := tx.ListBindings(in.ID)
			for _, b := range bs {
				j, _ := json.Marshal(b)
				out.Write(j)
				out.WriteByte('\n')
			}
		}
		rcs, _ := tx.ListRoleCollections()
		for _, rc := range rcs {
			j, _ := json.Marshal(rc)
			out.Write(j)
			out.WriteByte('\n')
		}
		return nil
	})
	return out.String()
}

// osbRequest is one call to the OSB API, as Cloud Controller sends it
// unless a field says otherwise.
type osbRequest struct {
	method string
	path   string // already escaped
	body   string
	// version is X-Broker-API-Version; "" means 2.15, "-" none at all.
	version string
	// auth is the Authorization header; "" means the right credentials,
	// "-" none at all.
	auth string
}

func (w *osbWorld) serve(r osbRequest) *httptest.ResponseRecorder {
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	switch r.version {
	case "":
		req.Header.Set("X-Broker-API-Version", "2.15")
	case "-":
	default:
		req.Header.Set("X-Broker-API-Version", r.version)
	}
	switch r.auth {
	case "":
		req.SetBasicAuth(osbUser, osbPassword)
	case "-":
	default:
		req.Header.Set("Authorization", r.auth)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Broker-API-Request-Identity", "req-1")
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, req)
	return rec
}

func instancePath(id string) string { return "/v2/service_instances/" + url.PathEscape(id) }

func bindingPath(instanceID, bindingID string) string {
	return instancePath(instanceID) + "/service_bindings/" + url.PathEscape(bindingID)
}

// provisionBody is a provision request body; params "" leaves parameters
// out.
func provisionBody(serviceID, planID, params string) string {
	p := ""
	if params != "" {
		p = `,"parameters":` + params
	}
	return `{"service_id":"` + serviceID + `","plan_id":"` + planID + `","organization_guid":"` + worldOrg +
		`","space_guid":"` + worldSpace + `","context":{"platform":"cloudfoundry","instance_name":"fresh"}` + p + `}`
}

// bindBody is a bind request body; params "" leaves parameters out.
func bindBody(serviceID, planID, params string) string {
	p := ""
	if params != "" {
		p = `,"parameters":` + params
	}
	return `{"service_id":"` + serviceID + `","plan_id":"` + planID + `","app_guid":"app-1","bind_resource":{"app_guid":"app-1"}` + p + `}`
}

// TestMalformedOSBRequests lists malformed OSB requests with the exact
// status and body each gets, and checks that none of them changes the
// store: the store file is byte-for-byte the same afterwards.
func TestMalformedOSBRequests(t *testing.T) {
	w := newOSBWorld(t)
	xs, xsApp, ias, iasApp := w.xsService, w.xsApp, w.iasService, w.iasApp
	fresh := instancePath("fresh-instance")
	xsBind := bindingPath(baseXs, "fresh-binding")
	iasBind := bindingPath(baseIas, "fresh-binding")
	badReq := func(desc string) map[string]string {
		return map[string]string{"error": "BadRequest", "description": desc}
	}
	desc := func(d string) map[string]string { return map[string]string{"description": d} }
	unauthorized := map[string]string{"error": "Unauthorized", "description": "missing or wrong broker credentials"}
	version := func(v string) map[string]string {
		return map[string]string{"error": "PreconditionFailed", "description": `X-Broker-API-Version "` + v +
			`" is not supported: this broker implements 2.14 to 2.17 (Cloud Foundry sends 2.15)`}
	}
	xsProvision := func(params string) osbRequest {
		return osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, xsApp, params)}
	}
	iasProvision := func(params string) osbRequest {
		return osbRequest{method: "PUT", path: fresh, body: provisionBody(ias, iasApp, params)}
	}
	xsBindReq := func(params string) osbRequest {
		return osbRequest{method: "PUT", path: xsBind, body: bindBody(xs, xsApp, params)}
	}
	iasBindReq := func(params string) osbRequest {
		return osbRequest{method: "PUT", path: iasBind, body: bindBody(ias, iasApp, params)}
	}
	update := func(id, body string) osbRequest {
		return osbRequest{method: "PATCH", path: instancePath(id), body: body}
	}
	big := `{"service_id":"` + xs + `","plan_id":"` + xsApp + `","parameters":{"description":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	corrupt := strings.Replace(providedCertPEM, "MIIBZjCCAQygAwIBAgIBBzAKBggqhkjOPQQDAjAnMQ0wCwYDVQQKEwRGdXp6MRYw", "MIIBZjCCAQygAwIBAgIBBzAKBggqhkjOPQQDAjAnMQ0wCwYDVQQKEwRGdXp6MRYx", 1)

	cases := []struct {
		name   string
		req    osbRequest
		status int
		body   map[string]string
	}{
		// Authentication and API version, before anything else.
		{"no credentials", osbRequest{method: "GET", path: "/v2/catalog", auth: "-"}, 401, unauthorized},
		{"wrong password", osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, xsApp, ""), auth: "Basic Y2M6d3Jvbmc="}, 401, unauthorized},
		{"wrong user", osbRequest{method: "DELETE", path: instancePath(baseXs) + "?service_id=" + xs + "&plan_id=" + xsApp, auth: "Basic eDpvc2ItcGFzc3dvcmQ="}, 401, unauthorized},
		{"basic not base64", osbRequest{method: "GET", path: "/v2/catalog", auth: "Basic !!!"}, 401, unauthorized},
		{"basic without colon", osbRequest{method: "GET", path: "/v2/catalog", auth: "Basic Y2M="}, 401, unauthorized},
		{"bearer instead of basic", osbRequest{method: "GET", path: "/v2/catalog", auth: "Bearer osb-password"}, 401, unauthorized},
		{"no API version", osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, xsApp, ""), version: "-"}, 412, version("")},
		{"API version too old", osbRequest{method: "GET", path: "/v2/catalog", version: "2.13"}, 412, version("2.13")},
		{"API version 3", osbRequest{method: "GET", path: "/v2/catalog", version: "3.0"}, 412, version("3.0")},
		{"API version not a number", osbRequest{method: "GET", path: "/v2/catalog", version: "2.x"}, 412, version("2.x")},

		// Bodies that are not the JSON object of the operation.
		{"provision empty body", osbRequest{method: "PUT", path: fresh}, 400, badReq("request body is not a JSON object: unexpected end of JSON input")},
		{"provision not JSON", osbRequest{method: "PUT", path: fresh, body: `{"service_id":`}, 400, badReq("request body is not a JSON object: unexpected end of JSON input")},
		{"provision JSON array", osbRequest{method: "PUT", path: fresh, body: `[1]`}, 400, badReq("request body is not a JSON object: json: cannot unmarshal array into Go value of type map[string]json.RawMessage")},
		{"provision JSON null", osbRequest{method: "PUT", path: fresh, body: `null`}, 400, desc("service_id missing")},
		{"provision trailing garbage", osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, xsApp, "") + "x"}, 400, badReq("request body is not a JSON object: invalid character 'x' after top-level value")},
		{"provision service_id a number", osbRequest{method: "PUT", path: fresh, body: `{"service_id":5,"plan_id":"p"}`}, 400, badReq("request body: json: cannot unmarshal number into Go struct field ProvisionDetails.service_id of type string")},
		{"provision context a string", osbRequest{method: "PUT", path: fresh, body: `{"service_id":"s","maintenance_info":"1.0"}`}, 400, badReq("request body: json: cannot unmarshal string into Go struct field ProvisionDetails.maintenance_info of type domain.MaintenanceInfo")},
		{"provision id that looks like a binding path", osbRequest{method: "PUT", path: instancePath("x/service_bindings/y"), body: `{"service_id":"s","plan_id":"p","organization_guid":5}`}, 400,
			badReq("request body: json: cannot unmarshal number into Go struct field ProvisionDetails.organization_guid of type string")},
		{"provision id not UTF-8", osbRequest{method: "PUT", path: instancePath("\xa3g"), body: provisionBody(xs, xsApp, "")}, 400, badReq("instance_id: must be valid UTF-8")},
		{"bind id not UTF-8", osbRequest{method: "PUT", path: bindingPath(baseXs, "\xa3g"), body: bindBody(xs, xsApp, "")}, 400, badReq("binding_id: must be valid UTF-8")},
		{"provision id too long", osbRequest{method: "PUT", path: instancePath(strings.Repeat("i", MaxIDBytes+1)), body: provisionBody(xs, xsApp, "")}, 400, badReq("instance_id: at most 255 bytes")},
		{"bind id too long", osbRequest{method: "PUT", path: bindingPath(baseXs, strings.Repeat("b", MaxIDBytes+1)), body: bindBody(xs, xsApp, "")}, 400, badReq("binding_id: at most 255 bytes")},
		{"provision parameters a string", xsProvision(`"x"`), 400, badReq("parameters: must be a JSON object")},
		{"provision parameters an array", xsProvision(`[{"xsappname":"a"}]`), 400, badReq("parameters: must be a JSON object")},
		{"provision oversize body", osbRequest{method: "PUT", path: fresh, body: big}, 400, badReq("request body: http: request body too large")},
		{"update not JSON", update(baseXs, `{`), 400, badReq("request body is not a JSON object: unexpected end of JSON input")},
		{"update previous_values a string", update(baseXs, `{"service_id":"`+xs+`","previous_values":"x"}`), 400, badReq("request body: json: cannot unmarshal string into Go struct field UpdateDetails.previous_values of type domain.PreviousValues")},
		{"bind bind_resource an array", osbRequest{method: "PUT", path: xsBind, body: `{"service_id":"s","plan_id":"p","bind_resource":[1]}`}, 400, badReq("request body: json: cannot unmarshal array into Go struct field BindDetails.bind_resource of type domain.BindResource")},
		{"bind parameters a number", xsBindReq(`5`), 400, badReq("parameters: must be a JSON object")},

		// Missing, unknown and mismatched ids.
		{"provision without service_id", osbRequest{method: "PUT", path: fresh, body: `{"plan_id":"` + xsApp + `","organization_guid":"o","space_guid":"s"}`}, 400, desc("service_id missing")},
		{"provision without plan_id", osbRequest{method: "PUT", path: fresh, body: `{"service_id":"` + xs + `","organization_guid":"o","space_guid":"s"}`}, 400, desc("plan_id missing")},
		{"provision unknown service_id", osbRequest{method: "PUT", path: fresh, body: provisionBody("no-such-service", xsApp, "")}, 400, desc("service-id not in the catalog")},
		{"provision unknown plan_id", osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, "no-such-plan", "")}, 400, desc("plan-id not in the catalog")},
		{"provision plan of the other offering", osbRequest{method: "PUT", path: fresh, body: provisionBody(xs, iasApp, "")}, 400, badReq(`plan_id: plan "` + iasApp + `" does not belong to service offering "` + xs + `"`)},
		{"provision without organization_guid", osbRequest{method: "PUT", path: fresh, body: `{"service_id":"` + xs + `","plan_id":"` + xsApp + `","space_guid":"s"}`}, 400, badReq("organization_guid: must not be empty")},
		{"provision without space_guid", osbRequest{method: "PUT", path: fresh, body: `{"service_id":"` + xs + `","plan_id":"` + xsApp + `","organization_guid":"o"}`}, 400, badReq("space_guid: must not be empty")},
		{"provision maintenance_info the catalog lacks", osbRequest{method: "PUT", path: fresh, body: `{"service_id":"` + xs + `","plan_id":"` + xsApp + `","organization_guid":"o","space_guid":"s","maintenance_info":{"version":"1.0.0"}}`}, 422,
			map[string]string{"error": "MaintenanceInfoConflict", "description": "maintenance_info was passed, but the broker catalog contains no maintenance_info"}},
		{"provision existing id, other parameters", osbRequest{method: "PUT", path: instancePath(baseXs), body: provisionBody(xs, xsApp, `{"xsappname":"bookshop"}`)}, 409, map[string]string{}},
		{"provision existing id, other plan", osbRequest{method: "PUT", path: instancePath(baseXs), body: provisionBody(xs, w.xsBrokerPlan, bookshopDescriptor)}, 409, map[string]string{}},
		{"update unknown instance", update("no-such-instance", `{"service_id":"`+xs+`"}`), 404, map[string]string{"error": "NotFound", "description": "service instance no-such-instance does not exist"}},
		{"update without service_id", update(baseXs, `{"parameters":{}}`), 400, desc("service_id missing")},
		{"update service_id of the other offering", update(baseXs, `{"service_id":"`+ias+`"}`), 400, badReq(`service_id: "` + ias + `" is not the service offering of this instance`)},
		{"update plan change", update(baseXs, `{"service_id":"`+xs+`","plan_id":"`+w.xsBrokerPlan+`"}`), 400, badReq("plan_id: changing the plan of an instance is not supported (the plan determines the xsappname suffix and client id); create a new instance instead")},
		{"update maintenance_info the catalog lacks", update(baseXs, `{"service_id":"`+xs+`","maintenance_info":{"version":"2.0.0"}}`), 422,
			map[string]string{"error": "MaintenanceInfoConflict", "description": "maintenance_info was passed, but the broker catalog contains no maintenance_info"}},
		{"bind unknown instance", osbRequest{method: "PUT", path: bindingPath("no-such-instance", "b"), body: bindBody(xs, xsApp, "")}, 404, desc("instance does not exist")},
		{"bind without service_id", osbRequest{method: "PUT", path: xsBind, body: `{"plan_id":"` + xsApp + `"}`}, 400, desc("service_id missing")},
		{"bind without plan_id", osbRequest{method: "PUT", path: xsBind, body: `{"service_id":"` + xs + `"}`}, 400, desc("plan_id missing")},
		{"bind unknown service_id", osbRequest{method: "PUT", path: xsBind, body: bindBody("no-such-service", xsApp, "")}, 400, badReq(`service_id: unknown service offering "no-such-service"`)},
		{"bind plan of another instance", osbRequest{method: "PUT", path: xsBind, body: bindBody(xs, w.xsBrokerPlan, "")}, 400, badReq(`plan_id: the instance has service offering "` + xs + `" and plan "` + xsApp + `"`)},
		{"bind existing id, other parameters", osbRequest{method: "PUT", path: bindingPath(baseXs, baseXsBinding), body: bindBody(xs, xsApp, `{"credential-type":"x509"}`)}, 409, desc("binding already exists")},
		{"bind existing id of another instance", osbRequest{method: "PUT", path: bindingPath(baseReviews, baseXsBinding), body: bindBody(xs, xsApp, "")}, 409, desc("binding already exists")},
		{"unbind unknown binding", osbRequest{method: "DELETE", path: bindingPath(baseXs, "no-such-binding") + "?service_id=" + xs + "&plan_id=" + xsApp}, 410, map[string]string{}},
		{"unbind binding of another instance", osbRequest{method: "DELETE", path: bindingPath(baseReviews, baseXsBinding) + "?service_id=" + xs + "&plan_id=" + xsApp}, 410, map[string]string{}},
		{"unbind without service_id", osbRequest{method: "DELETE", path: bindingPath(baseXs, baseXsBinding) + "?plan_id=" + xsApp}, 400, desc("service_id missing")},
		{"unbind without plan_id", osbRequest{method: "DELETE", path: bindingPath(baseXs, baseXsBinding) + "?service_id=" + xs}, 400, desc("plan_id missing")},
		{"deprovision unknown instance", osbRequest{method: "DELETE", path: instancePath("no-such-instance") + "?service_id=" + xs + "&plan_id=" + xsApp}, 410, map[string]string{}},
		{"deprovision without service_id", osbRequest{method: "DELETE", path: instancePath(baseXs) + "?plan_id=" + xsApp}, 400, desc("service_id missing")},
		{"deprovision without plan_id", osbRequest{method: "DELETE", path: instancePath(baseXs) + "?service_id=" + xs}, 400, desc("plan_id missing")},
		{"get unknown instance", osbRequest{method: "GET", path: instancePath("no-such-instance")}, 404, map[string]string{"error": "NotFound", "description": "service instance no-such-instance does not exist"}},
		{"get unknown binding", osbRequest{method: "GET", path: bindingPath(baseXs, "no-such-binding")}, 404, map[string]string{}},
		{"get binding of another instance", osbRequest{method: "GET", path: bindingPath(baseReviews, baseXsBinding)}, 404, map[string]string{}},
		{"last operation of unknown instance", osbRequest{method: "GET", path: instancePath("no-such-instance") + "/last_operation"}, 404, map[string]string{"error": "NotFound", "description": "service instance no-such-instance does not exist"}},

		// xsuaa instance parameters (xs-security.json).
		{"xsuaa xsappname a number", xsProvision(`{"xsappname":5}`), 400, badReq("xsappname: must be a string, not a number")},
		{"xsuaa scopes an object", xsProvision(`{"xsappname":"a","scopes":{}}`), 400, badReq("scopes: must be an array, not an object")},
		{"xsuaa scope without name", xsProvision(`{"xsappname":"a","scopes":[{"description":"d"}]}`), 400, badReq("scopes[0].name: is required")},
		{"xsuaa duplicate scope", xsProvision(`{"xsappname":"a","scopes":[{"name":"$XSAPPNAME.x"},{"name":"$XSAPPNAME.x"}]}`), 400, badReq(`scopes[1].name: scope "$XSAPPNAME.x" is declared twice (also scopes[0])`)},
		{"xsuaa unknown tenant-mode", xsProvision(`{"xsappname":"a","tenant-mode":"cloud"}`), 400, badReq(`tenant-mode: must be one of dedicated, shared, external, got "cloud"`)},
		{"xsuaa token-validity too long", xsProvision(`{"xsappname":"a","oauth2-configuration":{"token-validity":100000000}}`), 400, badReq("oauth2-configuration.token-validity: must be between 300 and 99999999 seconds, got 100000000")},
		{"xsuaa role template with unknown scope", xsProvision(`{"xsappname":"a","role-templates":[{"name":"T","scope-references":["$XSAPPNAME.nope"]}]}`), 400, badReq(`role-templates[0].scope-references[0]: "$XSAPPNAME.nope" is not declared in scopes`)},
		{"xsuaa role collection name taken", xsProvision(`{"xsappname":"other","scopes":[{"name":"$XSAPPNAME.r"}],"role-templates":[{"name":"T","scope-references":["$XSAPPNAME.r"]}],"role-collections":[{"name":"Bookshop Viewer","role-template-references":["$XSAPPNAME.T"]}]}`), 400,
			badReq(`role-collections[0].name: role collection "Bookshop Viewer" already exists in this zone (declared by instance "bookshop"); role-collection names are zone-wide`)},
		{"xsuaa xsappname taken", xsProvision(`{"xsappname":"bookshop"}`), 400, badReq(`xsappname: an instance with xsappname "bookshop" and plan "application" already exists in this zone (instance "bookshop")`)},
		{"xsuaa reference to a missing app", xsProvision(`{"xsappname":"a","foreign-scope-references":["$XSAPPNAME(application,nope).Read"]}`), 400, badReq(`foreign-scope-references[0]: $XSAPPNAME(application,nope) does not name an existing xsuaa instance of plan "application" with xsappname "nope"`)},
		{"xsuaa update changes xsappname", update(baseXs, `{"service_id":"`+xs+`","parameters":{"xsappname":"renamed"}}`), 400, badReq(`xsappname: must not change on update (was "bookshop", now "renamed")`)},
		{"xsuaa update with broken descriptor", update(baseXs, `{"service_id":"`+xs+`","parameters":{"scopes":"x"}}`), 400, badReq("scopes: must be an array, not a string")},

		// identity instance parameters.
		{"identity display-name a number", iasProvision(`{"display-name":5}`), 400, badReq("display-name: must be a string, not a number")},
		{"identity display-name too long", iasProvision(`{"display-name":"` + strings.Repeat("d", 100) + `"}`), 400, badReq("display-name: is 100 characters long; at most 99 are allowed")},
		{"identity unknown grant type", iasProvision(`{"oauth2-configuration":{"grant-types":["saml2-bearer"]}}`), 400, badReq(`oauth2-configuration.grant-types[0]: must be one of client_credentials, password, authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer, implicit, authorization_code_pkce_s256, got "saml2-bearer"`)},
		{"identity redirect-uri not absolute", iasProvision(`{"oauth2-configuration":{"redirect-uris":["/callback"]}}`), 400, badReq(`oauth2-configuration.redirect-uris[0]: "/callback" must be an absolute URL of the form scheme://host[/path]`)},
		{"identity consumed service unknown", iasProvision(`{"consumed-services":[{"service-instance-name":"nope"}]}`), 400, badReq(`consumed-services[0].service-instance-name: no identity instance named "nope" in this space`)},
		{"identity multi-tenant a string", iasProvision(`{"multi-tenant":"yes"}`), 400, badReq("multi-tenant: must be a boolean, not a string")},
		{"identity update with bad token-policy", update(baseIas, `{"service_id":"`+ias+`","parameters":{"oauth2-configuration":{"token-policy":{"token-validity":1}}}}`), 400, badReq("oauth2-configuration.token-policy.token-validity: must be between 60 and 43200 seconds, got 1")},

		// xsuaa bind parameters.
		{"xsuaa bind unknown credential-type", xsBindReq(`{"credential-type":"password"}`), 400, badReq(`credential-type: must be one of binding-secret, x509, instance-secret, got "password"`)},
		{"xsuaa bind credential-type a number", xsBindReq(`{"credential-type":1}`), 400, badReq("credential-type: must be a string, not a number")},
		{"xsuaa bind x509 key-length 1024", xsBindReq(`{"credential-type":"x509","x509":{"key-length":1024}}`), 400, badReq("x509.key-length: must be 2048, 4096 or 8192, got 1024")},
		{"xsuaa bind x509 validity 31", xsBindReq(`{"credential-type":"x509","x509":{"validity":31}}`), 400, badReq("x509.validity: must be between 1 and 30, got 31")},
		{"xsuaa bind x509 validity-type MONTHS", xsBindReq(`{"credential-type":"x509","x509":{"validity-type":"MONTHS"}}`), 400, badReq(`x509.validity-type: must be DAYS, got "MONTHS"`)},
		{"xsuaa bind x509 certificate garbage", xsBindReq(`{"credential-type":"x509","x509":{"certificate":"garbage"}}`), 400, badReq("x509.certificate: is not a PEM certificate (the line breaks after -----BEGIN CERTIFICATE----- and before -----END CERTIFICATE----- are required)")},
		{"xsuaa bind x509 private key as certificate", xsBindReq(`{"credential-type":"x509","x509":{"certificate":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}}`), 400, badReq(`x509.certificate: contains a "PRIVATE KEY" PEM block; only CERTIFICATE blocks are allowed`)},
		{"xsuaa bind x509 certificate corrupt", xsBindReq(`{"credential-type":"x509","x509":` + mustJSON(t, map[string]string{"certificate": corrupt}) + `}`), 400, badReq("x509.certificate: certificate 1 cannot be parsed: x509: invalid RDNSequence: invalid attribute")},
		{"xsuaa bind hide-secret a number", xsBindReq(`{"hide-secret":2}`), 400, badReq("hide-secret: must be true or false, not a number")},
		{"xsuaa bind x509 an array", xsBindReq(`{"x509":[]}`), 400, badReq("x509: must be an object, not an array")},

		// identity bind parameters.
		{"identity bind unknown credential-type", iasBindReq(`{"credential-type":"X509"}`), 400, badReq(`credential-type: must be one of SECRET, X509_GENERATED, X509_PROVIDED, NONE, got "X509"`)},
		{"identity bind X509_ATTESTED", iasBindReq(`{"credential-type":"X509_ATTESTED"}`), 400, badReq("credential-type: X509_ATTESTED is not supported by this broker; use SECRET, X509_GENERATED, X509_PROVIDED or NONE")},
		{"identity bind X509_PROVIDED without certificate", iasBindReq(`{"credential-type":"X509_PROVIDED"}`), 400, badReq("certificate: is required for credential-type X509_PROVIDED")},
		{"identity bind key-length 1024", iasBindReq(`{"credential-type":"X509_GENERATED","key-length":1024}`), 400, badReq("key-length: must be 2048 or 4096, got 1024")},
		{"identity bind validity 0", iasBindReq(`{"credential-type":"X509_GENERATED","validity":0}`), 400, badReq("validity: must be at least 1, got 0")},
		{"identity bind validity over a year", iasBindReq(`{"credential-type":"X509_GENERATED","validity":2,"validity-type":"YEARS"}`), 400, badReq("validity: 2 YEARS exceeds the maximum of one year (1 YEARS)")},
		{"identity bind validity a string", iasBindReq(`{"validity":"7"}`), 400, badReq("validity: must be an integer, not a string")},
		{"identity bind app-identifier too long", iasBindReq(`{"credential-type":"X509_GENERATED","app-identifier":"` + strings.Repeat("a", 21) + `"}`), 400, badReq("app-identifier: is 21 characters long; at most 20 are allowed")},
		{"identity bind certificate of the wrong type", iasBindReq(`{"credential-type":"X509_PROVIDED","certificate":5}`), 400, badReq("certificate: must be a string, not a number")},
	}
	// The check can fail: a request that does write changes the digest.
	before := w.digest()
	if rec := w.serve(xsProvision(`{"xsappname":"probe"}`)); rec.Code != http.StatusCreated {
		t.Fatalf("probe provision: %d %s", rec.Code, rec.Body)
	}
	w.deprovision("fresh-instance")
	if w.digest() == before {
		t.Fatal("a provision and deprovision left the store file as it was: the digest cannot see changes")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, dump := w.digest(), w.dump()
			rec := w.serve(c.req)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var got map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body is not a JSON object of strings: %v: %s", err, rec.Body)
			}
			if !reflect.DeepEqual(got, c.body) {
				t.Errorf("body\n got %q\nwant %q", got, c.body)
			}
			if w.digest() != before {
				t.Errorf("the request changed the store:\nbefore:\n%s\nafter:\n%s", dump, w.dump())
			}
			if rec.Code < 300 && c.req.method == http.MethodPut {
				w.undo(c.req.path) // keep the other cases independent
			}
		})
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

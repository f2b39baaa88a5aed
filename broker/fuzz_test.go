package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10/domain"
	"github.com/pivotal-cf/brokerapi/v10/domain/apiresponses"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// FuzzCanonicalParams checks CanonicalParams on its own: it refuses
// anything but absent, null or one JSON object with a 400, and what it
// accepts comes out as the same value, compacted, and stable under a second
// pass (the identical-request checks compare these bytes).
func FuzzCanonicalParams(f *testing.F) {
	for _, s := range []string{
		``, `null`, ` null `, `{}`, `{ }`, `{"b":1,"a":[true,null,"x"]}`, bookshopDescriptor,
		`{"a":1.50,"b":1e400}`, `{"a":"\ud800"}`, `{"a":1,"a":2}`, `[]`, `"x"`, `5`, `{`, `{} x`, `{}{}`,
		`{"a":{"b":{"c":{"d":[[[[]]]]}}}}`, "{\"\xff\":1}", `{"<>&":"\u2028"}`,
	} {
		f.Add([]byte(s))
	}
	logger := lager.NewLogger("fuzz")
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := CanonicalParams(raw)
		if err != nil {
			var fr *apiresponses.FailureResponse
			if !errors.As(err, &fr) || fr.ValidatedStatusCode(logger) != http.StatusBadRequest {
				t.Fatalf("error %T %v is not a 400", err, err)
			}
			return
		}
		trimmed := bytes.TrimSpace(raw)
		if len(trimmed) > 0 && !json.Valid(trimmed) {
			t.Fatalf("accepted invalid JSON %q as %q", raw, out)
		}
		if out == nil {
			if v := decodeAny(t, trimmed); v != nil && !reflect.DeepEqual(v, map[string]any{}) {
				t.Fatalf("%q became nil", raw)
			}
			return
		}
		if !json.Valid(out) || out[0] != '{' {
			t.Fatalf("output %q is not a JSON object", out)
		}
		if !reflect.DeepEqual(decodeAny(t, trimmed), decodeAny(t, out)) {
			t.Fatalf("value changed: %q became %q", raw, out)
		}
		again, err := CanonicalParams(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second pass: %q, %v; first %q", again, err, out)
		}
	})
}

// decodeAny decodes JSON with numbers kept as written; nil for null.
func decodeAny(t *testing.T, raw []byte) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}

// Operations of FuzzOSBBody: what the fuzzed body is sent as.
const (
	opProvision   = iota // PUT a new (or, with a base id, an existing) instance
	opUpdateXsuaa        // PATCH a scratch xsuaa instance made for the call
	opUpdateIas          // PATCH a scratch identity instance made for the call
	opUpdateID           // PATCH the instance the id names (never a base one)
	opBindXsuaa          // PUT a binding of the base xsuaa instance
	opBindIas            // PUT a binding of the base identity instance
	opBindID             // PUT binding "b" of the instance the id names
	numOps
)

// Scratch instances of the update operations.
const (
	scratchXs  = "scratch-xsuaa"
	scratchIas = "scratch-identity"
)

// FuzzOSBBody sends a fuzzed body as a provision, update or bind through the
// real OSB handler, which runs checkBody, brokerapi's decoding,
// CanonicalParams and the descriptor parsers (xs-security.json, identity
// parameters, bind parameters of both offerings). Whatever the body:
//   - no panic, and the answer is one of the statuses the operation may give
//     (never a 5xx, never a 422 except MaintenanceInfoConflict);
//   - every error answer is a JSON object with a description;
//   - a 4xx leaves the store file byte-for-byte unchanged;
//   - a 201 is idempotent: the same request again gets 200.
//
// Whatever a call creates is removed again, so every input starts from the
// same state. Binds that would generate an RSA key of more than 2048 bits
// are not sent (seconds each); their parameters are still parsed.
func FuzzOSBBody(f *testing.F) {
	w := newOSBWorld(f)
	xs, xsApp, ias, iasApp := w.xsService, w.xsApp, w.iasService, w.iasApp
	certJSON := mustJSON(f, providedCertPEM)
	seeds := []struct {
		op   uint8
		id   string
		body string
	}{
		{opProvision, "", provisionBody(xs, xsApp, `{"xsappname":"fuzz","scopes":[{"name":"$XSAPPNAME.a"}],"role-templates":[{"name":"T","scope-references":["$XSAPPNAME.a"]}],"role-collections":[{"name":"Fuzz RC","role-template-references":["$XSAPPNAME.T"]}]}`)},
		{opProvision, "", provisionBody(xs, w.xsBrokerPlan, `{"xsappname":"fuzz","foreign-scope-references":["$XSAPPNAME(application,bookshop).Write"],"authorities":["$XSAPPNAME(application,bookshop).Read"],"oauth2-configuration":{"grant-types":["client_credentials"],"credential-types":["x509"]}}`)},
		{opProvision, "", provisionBody(xs, xsApp, bookshopDescriptor)},
		{opProvision, "", provisionBody(xs, xsApp, `{"xsappname":"x","scopes":[{"name":"$XSAPPNAME.a","granted-apps":["$XSSERVICENAME(nope)"]}]}`)},
		{opProvision, "", provisionBody(ias, iasApp, `{"display-name":"d","multi-tenant":true,"oauth2-configuration":{"redirect-uris":["https://a.example.com/cb"],"grant-types":["authorization_code","implicit"],"token-policy":{"token-validity":600,"refresh-validity":7200}},"consumed-services":[{"service-instance-name":"provider"}],"provided-apis":[{"name":"x"}],"subject-name-identifier":{"attribute":"mail","fallback-attribute":"userUuid"},"home-url":"https://$BTP_SUBDOMAIN.example.com"}`)},
		{opProvision, "", provisionBody(ias, iasApp, "")},
		{opProvision, baseXs, provisionBody(xs, xsApp, bookshopDescriptor)},
		{opProvision, "x/service_bindings/y", `{"service_id":"s","plan_id":"p","organization_guid":5}`},
		{opProvision, "", `{"service_id":"` + xs + `","plan_id":"` + xsApp + `","organization_guid":"o","space_guid":"s","maintenance_info":{"version":"1"}}`},
		{opProvision, "", `{"service_id":5}`},
		{opProvision, "", `[]`},
		{opProvision, "", `{"parameters":"x"}`},
		{opUpdateXsuaa, "", `{"service_id":"` + xs + `","parameters":{"xsappname":"scratch","scopes":[{"name":"$XSAPPNAME.b"}]},"context":{"instance_name":"renamed"}}`},
		{opUpdateXsuaa, "", `{"service_id":"` + xs + `","plan_id":"` + w.xsBrokerPlan + `"}`},
		{opUpdateXsuaa, "", `{"service_id":"` + xs + `","previous_values":{"plan_id":"x"},"parameters":null}`},
		{opUpdateIas, "", `{"service_id":"` + ias + `","parameters":{"display-name":"new","consumed-services":[{"service-instance-name":"provider"}]}}`},
		{opUpdateID, "no-such-instance", `{"service_id":"` + xs + `"}`},
		{opBindXsuaa, "", bindBody(xs, xsApp, `{"credential-type":"binding-secret","hide-secret":"true"}`)},
		{opBindXsuaa, "", bindBody(xs, xsApp, `{"credential-type":"x509","x509":{"certificate":`+certJSON+`,"certificate-pinning":false}}`)},
		{opBindXsuaa, "", bindBody(xs, xsApp, `{"xsuaa":{"credential-type":"x509","key-length":2048,"validity":3,"x509":{"validity-type":"DAYS"}}}`)},
		{opBindXsuaa, "", bindBody(xs, xsApp, `{"credential-type":"instance-secret"}`)},
		{opBindXsuaa, baseXsBinding, bindBody(xs, xsApp, "")},
		{opBindIas, "", bindBody(ias, iasApp, `{"credential-type":"X509_PROVIDED","certificate":`+certJSON+`}`)},
		{opBindIas, "", bindBody(ias, iasApp, `{"credential-type":"X509_GENERATED","app-identifier":"srv","validity":2,"validity-type":"MONTHS"}`)},
		{opBindIas, "", bindBody(ias, iasApp, `{"credential-type":"NONE"}`)},
		{opBindIas, "", bindBody(ias, iasApp, `{"credential-type":"SECRET","key-length":4096}`)},
		{opBindID, baseConsumer, bindBody(ias, iasApp, "")},
		{opBindID, "no-such-instance", bindBody(xs, xsApp, "")},
	}
	for _, s := range seeds {
		f.Add(s.op, s.id, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, op uint8, id string, body []byte) {
		w.tb = t
		if id == "" {
			id = "fuzz-id"
		}
		var path, instance string
		var isBind bool
		method := http.MethodPut
		switch op % numOps {
		case opProvision:
			path, instance = instancePath(id), id
		case opUpdateXsuaa:
			w.mustProvision(scratchXs, "scratch", xs, xsApp, `{"xsappname":"scratch","scopes":[{"name":"$XSAPPNAME.a"}]}`)
			defer w.deprovision(scratchXs)
			method, path, instance = http.MethodPatch, instancePath(scratchXs), scratchXs
		case opUpdateIas:
			w.mustProvision(scratchIas, "scratch", ias, iasApp, `{"consumed-services":[{"service-instance-name":"provider"}]}`)
			defer w.deprovision(scratchIas)
			method, path, instance = http.MethodPatch, instancePath(scratchIas), scratchIas
		case opUpdateID:
			if isBase(id) {
				return // the base state must stay as it is
			}
			method, path, instance = http.MethodPatch, instancePath(id), id
		case opBindXsuaa:
			path, instance, isBind = bindingPath(baseXs, id), baseXs, true
		case opBindIas:
			path, instance, isBind = bindingPath(baseIas, id), baseIas, true
		case opBindID:
			path, instance, isBind = bindingPath(id, "b"), id, true
		}
		if isBind && generatesBigKey(instance, body) {
			return
		}
		before := w.digest()
		req := osbRequest{method: method, path: path, body: string(body)}
		rec := w.serve(req)
		checkOSBAnswer(t, method, isBind, rec.Code, rec.Body.Bytes())
		if rec.Code >= 400 {
			if w.digest() != before {
				t.Fatalf("%s %s answered %d but changed the store; now:\n%s", method, path, rec.Code, w.dump())
			}
			return
		}
		if rec.Code != http.StatusCreated {
			return
		}
		again := w.serve(req)
		if again.Code != http.StatusOK {
			t.Errorf("identical %s %s again: %d %s, want 200", method, path, again.Code, again.Body)
		}
		if isBind && !sameCredentials(t, rec.Body.Bytes(), again.Body.Bytes()) {
			t.Errorf("identical bind again: other credentials\n%s\n%s", rec.Body, again.Body)
		}
		w.undo(path)
	})
}

// checkOSBAnswer checks the status and body of a provision, update or bind.
func checkOSBAnswer(t *testing.T, method string, isBind bool, status int, body []byte) {
	t.Helper()
	allowed := map[int]bool{200: true, 201: true, 400: true, 409: true, 422: true}
	switch {
	case method == http.MethodPatch:
		allowed = map[int]bool{200: true, 400: true, 404: true, 422: true}
	case isBind:
		allowed[404] = true
	}
	if !allowed[status] {
		t.Fatalf("%s answered %d: %s", method, status, body)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("%d answer is not a JSON object: %v: %q", status, err, body)
	}
	if status == http.StatusUnprocessableEntity && obj["error"] != "MaintenanceInfoConflict" {
		t.Fatalf("422 for something other than maintenance_info: %s", body)
	}
	if d, _ := obj["description"].(string); status >= 400 && status != http.StatusConflict && d == "" {
		t.Fatalf("%d answer without description: %s", status, body)
	}
}

// sameCredentials compares the credentials of two bind answers.
func sameCredentials(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y struct {
		Credentials map[string]any `json:"credentials"`
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x.Credentials, y.Credentials)
}

// generatesBigKey reports whether a bind body, as the broker will read it,
// asks for a generated client certificate with a key of more than 2048
// bits. The descriptor parsers decide, not a string match.
func generatesBigKey(instance string, body []byte) bool {
	var d domain.BindDetails
	if json.Unmarshal(body, &d) != nil {
		return false
	}
	params, err := CanonicalParams(d.RawParameters)
	if err != nil {
		return false
	}
	switch instance {
	case baseXs, baseReviews:
		var types []string
		if instance == baseXs {
			types = []string{"binding-secret", "x509", "instance-secret"} // bookshopDescriptor's
		}
		p, err := descriptor.ParseXsuaaBinding(params, types)
		return err == nil && p.CredentialType == "x509" && p.X509.Certificate == "" && p.X509.KeyLength > 2048
	case baseIas, baseConsumer:
		p, err := descriptor.ParseIdentityBinding(params, time.Now())
		return err == nil && p.CredentialType == "X509_GENERATED" && p.KeyLength > 2048
	}
	return false
}

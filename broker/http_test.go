package broker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// reached is a next handler that answers 299, so a test can tell whether a
// middleware let the request through.
var reached = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })

func TestCheckVersion(t *testing.T) {
	for v, want := range map[string]int{
		"": 412, "1.0": 412, "3.0": 412, "abc": 412, "2": 412, "2.13": 412, "2.x": 412,
		"2.14": 299, "2.15": 299, "2.16": 299, "2.17": 299,
	} {
		req := httptest.NewRequest(http.MethodGet, "/v2/catalog", nil)
		if v != "" {
			req.Header.Set("X-Broker-API-Version", v)
		}
		rec := httptest.NewRecorder()
		checkVersion(reached).ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("version %q: %d, want %d", v, rec.Code, want)
		}
		if want == 412 {
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["description"] == "" {
				t.Errorf("version %q: body %s has no description", v, rec.Body)
			}
		}
	}
}

func TestCheckBody(t *testing.T) {
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"provision ok", "PUT", "/v2/service_instances/i", `{"service_id":"s","plan_id":"p","parameters":{"a":1}}`, 299},
		{"null parameters", "PUT", "/v2/service_instances/i", `{"service_id":"s","parameters":null}`, 299},
		{"not JSON", "PUT", "/v2/service_instances/i", `{"service_id":`, 400},
		{"not an object", "PUT", "/v2/service_instances/i", `["x"]`, 400},
		{"parameters string", "PUT", "/v2/service_instances/i", `{"parameters":"x"}`, 400},
		{"parameters array", "PATCH", "/v2/service_instances/i", `{"parameters":[]}`, 400},
		{"provision field type", "PUT", "/v2/service_instances/i", `{"service_id":5}`, 400},
		{"provision context type", "PUT", "/v2/service_instances/i", `{"maintenance_info":"1.0"}`, 400},
		{"update field type", "PATCH", "/v2/service_instances/i", `{"previous_values":"x"}`, 400},
		{"bind field type", "PUT", "/v2/service_instances/i/service_bindings/b", `{"bind_resource":[1]}`, 400},
		{"bind ok", "PUT", "/v2/service_instances/i/service_bindings/b", `{"service_id":"s","bind_resource":{"app_guid":"a"}}`, 299},
		{"GET untouched", "GET", "/v2/service_instances/i", `garbage`, 299},
		{"DELETE untouched", "DELETE", "/v2/service_instances/i", ``, 299},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		rec := httptest.NewRecorder()
		checkBody(reached).ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, rec.Code, c.want, rec.Body)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	h := echoRequestIdentity(BasicAuth(Credentials{Username: "u", Password: "p"}, reached))
	for name, c := range map[string]struct {
		user, pass string
		set        bool
		want       int
	}{
		"right":          {"u", "p", true, 299},
		"wrong password": {"u", "x", true, 401},
		"wrong user":     {"x", "p", true, 401},
		"missing":        {"", "", false, 401},
	} {
		req := httptest.NewRequest(http.MethodGet, "/v2/catalog", nil)
		req.Header.Set("X-Broker-API-Request-Identity", "rid")
		if c.set {
			req.SetBasicAuth(c.user, c.pass)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d", name, rec.Code, c.want)
		}
		if rec.Header().Get("X-Broker-API-Request-Identity") != "rid" {
			t.Errorf("%s: request identity not echoed", name)
		}
		if c.want == 401 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s: 401 is not JSON", name)
		}
	}
}

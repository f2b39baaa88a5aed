package observe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"code.cloudfoundry.org/lager/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOSBOperation(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", "/v2/catalog", "catalog"},
		{"PUT", "/v2/service_instances/i", "provision"},
		{"PATCH", "/v2/service_instances/i", "update"},
		{"DELETE", "/v2/service_instances/i", "deprovision"},
		{"GET", "/v2/service_instances/i", "fetch_instance"},
		{"GET", "/v2/service_instances/i/last_operation", "last_operation"},
		{"PUT", "/v2/service_instances/i/service_bindings/b", "bind"},
		{"DELETE", "/v2/service_instances/i/service_bindings/b", "unbind"},
		{"GET", "/v2/service_instances/i/service_bindings/b", "fetch_binding"},
		{"GET", "/v2/service_instances/i/service_bindings/b/last_operation", "last_binding_operation"},
		{"GET", "/v2/nonsense/a/b/c/d/e/f", "other"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := osbOperation(r); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestRequestID(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Vcap-Request-Id", "abc-123")
	if got := requestID(r); got != "abc-123" {
		t.Fatalf("platform id not taken: %q", got)
	}
	r.Header.Set("X-Vcap-Request-Id", "bad value with spaces")
	if got := requestID(r); got == "bad value with spaces" || len(got) != 24 {
		t.Fatalf("unsafe id taken or no fresh one made: %q", got)
	}
}

// TestMiddleware checks the request id header, the token metric labels
// (grant from the form, status) and that the log line holds neither the
// query nor the form.
func TestMiddleware(t *testing.T) {
	m := NewMetrics()
	logs := &strings.Builder{}
	logger := lager.NewLogger("t")
	logger.RegisterSink(lager.NewWriterSink(logs, lager.DEBUG))
	h := m.Middleware(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.PostForm.Get("client_secret") == "right" {
			io.WriteString(w, "{}")
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	}))
	send := func(secret string) *httptest.ResponseRecorder {
		form := url.Values{"grant_type": {"client_credentials"}, "client_secret": {secret}}
		r := httptest.NewRequest("POST", "/oauth/token?code=query-secret", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := send("right"); w.Header().Get("X-Request-Id") == "" || w.Code != 200 {
		t.Fatalf("response %d, id %q", w.Code, w.Header().Get("X-Request-Id"))
	}
	send("wrong-secret-value")
	if got := testutil.ToFloat64(m.tokenRequests.WithLabelValues("xsuaa", "client_credentials", "200")); got != 1 {
		t.Fatalf("200 counter %v", got)
	}
	if got := testutil.ToFloat64(m.tokenRequests.WithLabelValues("xsuaa", "client_credentials", "401")); got != 1 {
		t.Fatalf("401 counter %v", got)
	}
	for _, secret := range []string{"right", "wrong-secret-value", "query-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs.String(), `"path":"/oauth/token"`) {
		t.Fatalf("no request line:\n%s", logs)
	}
}

func TestGrantLabelIsBounded(t *testing.T) {
	if grantLabel("anything-an-attacker-sends") != "other" || grantLabel("password") != "password" {
		t.Fatal("grant label not bounded")
	}
}

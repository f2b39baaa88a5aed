package broker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSlowBindOutlivesWriteTimeout: a bind that takes longer than the
// server's WriteTimeout (an RSA-8192 key generated on demand) still gets
// its response written; other requests keep the server's timeout.
func TestSlowBindOutlivesWriteTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * timeout)
		_, _ = io.WriteString(w, `{"credentials":{}}`)
	})
	srv := httptest.NewUnstartedServer(allowSlowBinds(slow))
	srv.Config.WriteTimeout = timeout
	srv.Start()
	defer srv.Close()

	do := func(method, path string) (int, error) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		if _, err := io.ReadAll(res.Body); err != nil {
			return 0, err
		}
		return res.StatusCode, nil
	}
	if status, err := do(http.MethodPut, "/v2/service_instances/i/service_bindings/b"); err != nil || status != 200 {
		t.Fatalf("slow bind: status %d, err %v; want 200", status, err)
	}
	// The control: without the lift the same handler's answer is lost.
	if _, err := do(http.MethodPut, "/v2/service_instances/i"); err == nil {
		t.Fatal("slow provision answered despite the WriteTimeout: the test does not test the lift")
	}
}

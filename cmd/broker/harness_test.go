package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The harness runs the real broker in-process and speaks OSB to it the way
// Cloud Controller does. Tests of other parts (the token server) reuse it:
//
//	tb := startBroker(t, nil)                    // fresh data dir, free port
//	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "my-uaa")
//	tb.mustProvision(t, in, bookshop("bookshop")) // 201 or t.Fatal
//	creds := tb.mustBind(t, in, newUUID(), "", nil)
//	resp, err := tb.client().Get(tb.env["BROKER_PUBLIC_URL"] + "/oauth/token")
//
// tb.client() trusts only <datadir>/ca.pem and sends no client certificate;
// for mTLS build a client from tb.caPEM(t) and the binding's certificate.
// tb.osb/do/try send CC's headers and never fail the test by themselves;
// the must* helpers take the (sub)test's t.

// Catalog ids from catalog.yml. They are stable forever, so the tests may
// name them.
const (
	xsuaaServiceID      = "94b57714-eb17-42a9-bb73-659a953e7531"
	xsuaaApplicationID  = "c274f824-9b3a-4a8d-b607-0b01d3992fe5"
	xsuaaBrokerPlanID   = "4a9b1437-658d-4844-a09c-17b8695b67ce"
	xsuaaAPIAccessID    = "50b21a7c-d2dc-47bf-aaf5-25d8d5a68bdb"
	identityServiceID   = "47e9b017-269b-4453-b3da-a8bc37cdbb2b"
	identityApplication = "16aa84a1-e5a1-4e0b-9eb2-c87bb2bba66b"
)

// Defaults of the test environment.
const (
	testUsername      = "cc-broker-user"
	testPassword      = "Pa55w0rd-that-must-never-reach-the-disk"
	testEncryptionKey = "0123456789abcdef0123456789abcdef01234567" // 40 characters
	testOrg           = "org-guid-1"
	testOrgName       = "acme"
	testSpace         = "space-guid-1"
	testSpaceName     = "dev"
	testUser          = "user-guid-1"
	// startTries bounds the /healthz polling of a starting broker (the
	// first start creates a CA and an RSA signing key).
	startTries    = 600
	startInterval = 25 * time.Millisecond
)

// testBroker is the real broker (run "serve") running in-process on a free
// local port, spoken to over HTTPS the way Cloud Controller does.
type testBroker struct {
	t       *testing.T
	env     map[string]string
	dataDir string
	base    string // https://127.0.0.1:<port>

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
	http   *http.Client
	logs   *lockedBuffer
}

// lockedBuffer collects the broker's log lines; run writes from several
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a port that was free a moment ago: listen on :0, close.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startBroker starts a broker with a fresh data directory and free port;
// entries of env override or (with value "") remove the defaults. The broker
// is stopped when the test ends.
func startBroker(t *testing.T, env map[string]string) *testBroker {
	t.Helper()
	port := freePort(t)
	full := map[string]string{
		"BROKER_DATA_DIR":       t.TempDir(),
		"BROKER_ADDR":           "127.0.0.1:" + port,
		"BROKER_USERNAME":       testUsername,
		"BROKER_PASSWORD":       testPassword,
		"BROKER_ENCRYPTION_KEY": testEncryptionKey,
		"BROKER_PUBLIC_URL":     "https://localhost:" + port,
		"BROKER_IDENTITY_URL":   "https://127.0.0.1:" + port,
	}
	for k, v := range env {
		if v == "" {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	tb := &testBroker{
		t:       t,
		env:     full,
		dataDir: full["BROKER_DATA_DIR"],
		base:    "https://" + full["BROKER_ADDR"],
		logs:    &lockedBuffer{},
	}
	t.Cleanup(func() {
		tb.stop()
		if t.Failed() {
			logs := tb.logs.String()
			if len(logs) > 6000 {
				logs = "…" + logs[len(logs)-6000:]
			}
			t.Logf("broker log:\n%s", logs)
		}
	})
	tb.start(t)
	return tb
}

// start runs the broker and waits until /healthz answers 200.
func (tb *testBroker) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	getenv := func(k string) string { return tb.env[k] }
	go func() { done <- run(ctx, []string{"serve"}, getenv, tb.logs, tb.logs) }()
	tb.mu.Lock()
	tb.cancel, tb.done, tb.http = cancel, done, nil
	tb.mu.Unlock()

	caPath := filepath.Join(tb.dataDir, caFile)
	var lastErr error
	for range startTries {
		select {
		case err := <-done:
			tb.mu.Lock()
			tb.cancel, tb.done = nil, nil
			tb.mu.Unlock()
			cancel()
			t.Fatalf("broker exited during start: %v\n%s", err, tb.logs.String())
		default:
		}
		if tb.client() == nil {
			if pem, err := os.ReadFile(caPath); err == nil {
				c := newHTTPSClient(t, pem)
				tb.mu.Lock()
				tb.http = c
				tb.mu.Unlock()
			}
		}
		if c := tb.client(); c != nil {
			resp, err := c.Get(tb.base + "/healthz")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
				err = fmt.Errorf("healthz: %s", resp.Status)
			}
			lastErr = err
		}
		time.Sleep(startInterval)
	}
	t.Fatalf("broker did not become healthy: %v\n%s", lastErr, tb.logs.String())
}

// newHTTPSClient trusts only the broker's CA root.
func newHTTPSClient(t *testing.T, caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.pem holds no certificate")
	}
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 32,
		},
		// Longer than any bind (a 4096-bit key), shorter than the test
		// timeout, so a hang shows up as a failure with a message.
		Timeout: 2 * time.Minute,
	}
}

// stop cancels the broker's context and waits for run to return.
func (tb *testBroker) stop() {
	tb.mu.Lock()
	cancel, done, client := tb.cancel, tb.done, tb.http
	tb.cancel, tb.done = nil, nil
	tb.mu.Unlock()
	if cancel == nil {
		return
	}
	if client != nil {
		client.CloseIdleConnections()
	}
	cancel()
	if err := <-done; err != nil {
		tb.t.Errorf("broker run returned %v", err)
	}
}

// restart stops the broker and starts it again on the same data directory
// and port.
func (tb *testBroker) restart(t *testing.T) {
	t.Helper()
	tb.stop()
	tb.start(t)
}

// client returns an HTTPS client that trusts the broker's CA.
func (tb *testBroker) client() *http.Client {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.http
}

// caPEM returns the current content of <datadir>/ca.pem.
func (tb *testBroker) caPEM(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tb.dataDir, caFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newUUID returns a random v4 UUID, as CC uses for every guid.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ccHeaders are the headers Cloud Controller sends with every request
// (osb.md B.1).
func ccHeaders(method string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(testUsername+":"+testPassword)))
	h.Set("X-Broker-API-Version", "2.15")
	h.Set("X-Broker-API-Request-Identity", newUUID())
	h.Set("X-Vcap-Request-Id", newUUID())
	h.Set("X-Api-Info-Location", "api.example.test/v2/info")
	h.Set("Accept", "application/json")
	identity, _ := json.Marshal(map[string]string{"user_id": testUser})
	h.Set("X-Broker-API-Originating-Identity", "cloudfoundry "+base64.StdEncoding.EncodeToString(identity))
	if method == http.MethodPut || method == http.MethodPatch {
		h.Set("Content-Type", "application/json")
	}
	return h
}

// osbResponse is what a test needs from an OSB answer.
type osbResponse struct {
	Status int
	Body   []byte
	Header http.Header
}

// do sends one OSB request with CC's headers (see try). A transport error
// yields status 0 with the error text as body, so that the caller's status
// assertion fails in the right (sub)test.
func (tb *testBroker) do(method, path string, body any, headers ...string) osbResponse {
	r, err := tb.try(method, path, body, headers...)
	if err != nil {
		return osbResponse{Body: []byte(err.Error())}
	}
	return r
}

// try sends one OSB request with CC's headers. body is marshalled to JSON
// unless it is []byte or string (sent as is) or nil (no body). headers are
// name/value pairs that override the defaults; an empty value removes the
// header. PUT, PATCH and DELETE get accepts_incomplete=true, as CC v3 always
// sends it, unless the path already carries that parameter. try never calls
// t.Fatal, so other goroutines may use it.
func (tb *testBroker) try(method, path string, body any, headers ...string) (osbResponse, error) {
	if len(headers)%2 != 0 {
		return osbResponse{}, fmt.Errorf("headers must be name/value pairs: %q", headers)
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return osbResponse{}, err
		}
		rd = bytes.NewReader(raw)
	}
	if method != http.MethodGet && !strings.Contains(path, "accepts_incomplete=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "accepts_incomplete=true"
	}
	req, err := http.NewRequest(method, tb.base+path, rd)
	if err != nil {
		return osbResponse{}, err
	}
	req.Header = ccHeaders(method)
	for i := 0; i < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := tb.client().Do(req)
	if err != nil {
		return osbResponse{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return osbResponse{}, fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return osbResponse{Status: resp.StatusCode, Body: raw, Header: resp.Header}, nil
}

// osb is do without the response headers.
func (tb *testBroker) osb(method, path string, body any, headers ...string) (int, []byte) {
	r := tb.do(method, path, body, headers...)
	return r.Status, r.Body
}

// instance describes a service instance as CC knows it.
type instance struct {
	ID        string
	ServiceID string
	PlanID    string
	Name      string
	OrgGUID   string
	SpaceGUID string
}

// newInstance returns an instance of the plan with a fresh id in the
// default org and space.
func newInstance(serviceID, planID, name string) instance {
	return instance{ID: newUUID(), ServiceID: serviceID, PlanID: planID, Name: name, OrgGUID: testOrg, SpaceGUID: testSpace}
}

// ccContext is the context object of provision and update requests.
func (in instance) ccContext() map[string]any {
	return map[string]any{
		"platform":                 "cloudfoundry",
		"organization_guid":        in.OrgGUID,
		"organization_name":        testOrgName,
		"space_guid":               in.SpaceGUID,
		"space_name":               testSpaceName,
		"organization_annotations": map[string]any{"example.com/cost-center": "42"},
		"space_annotations":        map[string]any{},
		"instance_name":            in.Name,
		"instance_annotations":     map[string]any{},
	}
}

// provisionBody is the body of cf create-service (osb.md B.2); params nil
// means "no -c", which CC then leaves out.
func (in instance) provisionBody(params any) map[string]any {
	b := map[string]any{
		"service_id":        in.ServiceID,
		"plan_id":           in.PlanID,
		"organization_guid": in.OrgGUID,
		"space_guid":        in.SpaceGUID,
		"context":           in.ccContext(),
	}
	if params != nil {
		b["parameters"] = params
	}
	return b
}

// updateBody is the body of cf update-service: parameters are always
// present ({} without -c) and plan_id is the current plan.
func (in instance) updateBody(params any) map[string]any {
	if params == nil {
		params = map[string]any{}
	}
	ctx := in.ccContext()
	delete(ctx, "instance_annotations")
	return map[string]any{
		"service_id": in.ServiceID,
		"plan_id":    in.PlanID,
		"previous_values": map[string]any{
			"plan_id": in.PlanID, "service_id": in.ServiceID,
			"organization_id": in.OrgGUID, "space_id": in.SpaceGUID, "maintenance_info": nil,
		},
		"context":    ctx,
		"parameters": params,
	}
}

func (in instance) path() string { return "/v2/service_instances/" + url.PathEscape(in.ID) }

// query is the service_id/plan_id query CC adds to DELETE and GET.
func (in instance) query() string {
	return "plan_id=" + url.QueryEscape(in.PlanID) + "&service_id=" + url.QueryEscape(in.ServiceID)
}

func (tb *testBroker) provision(in instance, params any) (int, []byte) {
	return tb.osb(http.MethodPut, in.path(), in.provisionBody(params))
}

// mustProvision provisions and requires 201 {}.
func (tb *testBroker) mustProvision(t *testing.T, in instance, params any) {
	t.Helper()
	status, body := tb.provision(in, params)
	if status != http.StatusCreated || string(bytes.TrimSpace(body)) != "{}" {
		t.Fatalf("provision %s: %d %s", in.Name, status, body)
	}
}

func (tb *testBroker) update(in instance, params any) (int, []byte) {
	return tb.osb(http.MethodPatch, in.path(), in.updateBody(params))
}

func (tb *testBroker) deprovision(in instance) (int, []byte) {
	return tb.osb(http.MethodDelete, in.path()+"?accepts_incomplete=true&"+in.query(), nil)
}

func (tb *testBroker) getInstance(in instance) (int, []byte) {
	return tb.osb(http.MethodGet, in.path()+"?"+in.query(), nil)
}

func bindingPath(in instance, bindingID string) string {
	return in.path() + "/service_bindings/" + url.PathEscape(bindingID)
}

// appBindBody is the body of cf bind-service; params nil leaves them out.
func (in instance) appBindBody(appGUID string, params any) map[string]any {
	ctx := in.ccContext()
	delete(ctx, "instance_name")
	delete(ctx, "instance_annotations")
	b := map[string]any{
		"service_id": in.ServiceID,
		"plan_id":    in.PlanID,
		"app_guid":   appGUID,
		"bind_resource": map[string]any{
			"app_guid": appGUID, "space_guid": in.SpaceGUID, "app_annotations": map[string]any{},
		},
		"context": ctx,
	}
	if params != nil {
		b["parameters"] = params
	}
	return b
}

// keyBindBody is the body of cf create-service-key: no app_guid.
func (in instance) keyBindBody(params any) map[string]any {
	b := in.appBindBody("", params)
	delete(b, "app_guid")
	b["bind_resource"] = map[string]any{"credential_client_id": "cc_service_key_client"}
	return b
}

func (tb *testBroker) bind(in instance, bindingID string, body any) (int, []byte) {
	return tb.osb(http.MethodPut, bindingPath(in, bindingID), body)
}

// mustBind binds (as a service key when appGUID is empty), requires 201 and
// returns the credentials.
func (tb *testBroker) mustBind(t *testing.T, in instance, bindingID, appGUID string, params any) map[string]any {
	t.Helper()
	body := in.keyBindBody(params)
	if appGUID != "" {
		body = in.appBindBody(appGUID, params)
	}
	status, raw := tb.bind(in, bindingID, body)
	if status != http.StatusCreated {
		t.Fatalf("bind %s to %s: %d %s", bindingID, in.Name, status, raw)
	}
	return credentialsOf(t, raw)
}

func (tb *testBroker) unbind(in instance, bindingID string) (int, []byte) {
	return tb.osb(http.MethodDelete, bindingPath(in, bindingID)+"?accepts_incomplete=true&"+in.query(), nil)
}

func (tb *testBroker) getBinding(in instance, bindingID string) (int, []byte) {
	return tb.osb(http.MethodGet, bindingPath(in, bindingID)+"?"+in.query(), nil)
}

// credentialsOf decodes {"credentials": {...}} and requires an object.
func credentialsOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var resp struct {
		Credentials map[string]any `json:"credentials"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil || resp.Credentials == nil {
		t.Fatalf("response has no credentials object: %v: %s", err, raw)
	}
	return resp.Credentials
}

// decodeObject decodes a JSON object answer.
func decodeObject(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, raw)
	}
	return m
}

// expectStatus fails unless status is want.
func expectStatus(t *testing.T, what string, status int, body []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("%s: status %d, want %d; body %s", what, status, want, body)
	}
}

// expectEmptyObject fails unless body is the JSON object {}.
func expectEmptyObject(t *testing.T, what string, body []byte) {
	t.Helper()
	if m := decodeObject(t, body); len(m) != 0 {
		t.Fatalf("%s: body %s, want {}", what, body)
	}
}

// expectError fails unless status is want and the body is an OSB error
// whose lower-case description contains every one of mentions.
func expectError(t *testing.T, what string, status int, body []byte, want int, mentions ...string) {
	t.Helper()
	expectStatus(t, what, status, body, want)
	m := decodeObject(t, body)
	desc, _ := m["description"].(string)
	if desc == "" {
		t.Fatalf("%s: no lower-case description in %s", what, body)
	}
	for _, s := range mentions {
		if !strings.Contains(desc, s) {
			t.Fatalf("%s: description %q does not mention %q", what, desc, s)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The cf-style subcommands are driven through run, as a user would, against
// the real broker (TestCC*Broker) and against a recording fake broker that
// checks what goes over the wire (TestCCWire*).

var ccUUIDRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ccEnv is the environment of the CLI: the broker, and a state file in a
// fresh directory.
func ccEnv(t *testing.T, url, ca, user, pass string) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"BROKER_URL":      url,
		"BROKER_CA":       ca,
		"BROKER_USERNAME": user,
		"BROKER_PASSWORD": pass,
		"BROKER_CF_STATE": filepath.Join(dir, "cf", "state.json"),
		"HOME":            dir,
	}
}

func ccBrokerEnv(t *testing.T, tb *testBroker) map[string]string {
	return ccEnv(t, tb.base, filepath.Join(tb.dataDir, caFile), testUsername, testPassword)
}

// ccRun runs 'broker args…' and returns standard output and the error.
func ccRun(env map[string]string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return stdout.String(), err
}

func ccMust(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, err := ccRun(env, args...)
	if err != nil {
		t.Fatalf("broker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// ccDecode decodes the JSON output of a subcommand.
func ccDecode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, out)
	}
	return v
}

func ccLoad(t *testing.T, env map[string]string) *ccState {
	t.Helper()
	st, err := loadCCState(env["BROKER_CF_STATE"])
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// ccHarnessInstance is the harness's view of a state instance, for GET
// requests to the broker.
func ccHarnessInstance(t *testing.T, env map[string]string, name string) (instance, *ccInstance) {
	t.Helper()
	in := ccLoad(t, env).instance(name)
	if in == nil {
		t.Fatalf("state has no instance %s", name)
	}
	return instance{ID: in.GUID, ServiceID: in.ServiceID, PlanID: in.PlanID, Name: in.Name}, in
}

// objectKeys returns the member names of a JSON object in document order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// vcapEntries decodes VCAP_SERVICES[label] of an env document.
func vcapEntries(t *testing.T, doc []byte, label string) []map[string]any {
	t.Helper()
	var env struct {
		VCAPServices map[string][]map[string]any `json:"VCAP_SERVICES"`
	}
	if err := json.Unmarshal(doc, &env); err != nil {
		t.Fatalf("env output: %v\n%s", err, doc)
	}
	return env.VCAPServices[label]
}

var ccVCAPKeyOrder = []string{"name", "instance_guid", "instance_name", "binding_guid", "binding_name", "credentials",
	"syslog_drain_url", "volume_mounts", "label", "provider", "plan", "tags"}

func TestCCXsuaaBroker(t *testing.T) {
	tb := startBroker(t, nil)
	env := ccBrokerEnv(t, tb)
	dir := t.TempDir()
	xsSecurity := filepath.Join(dir, "xs-security.json")
	desc := bookshop("cc-bookshop")
	raw, _ := json.Marshal(desc)
	if err := os.WriteFile(xsSecurity, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	ccMust(t, env, "create-service", "xsuaa", "application", "my-uaa", "-c", xsSecurity, "-t", "web, ui,xsuaa")

	t.Run("state file", func(t *testing.T) {
		fi, err := os.Stat(env["BROKER_CF_STATE"])
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
		}
		st := ccLoad(t, env)
		if len(st.Orgs) != 1 || st.Orgs[0].Name != ccDefaultOrg || len(st.Orgs[0].Spaces) != 1 || st.Orgs[0].Spaces[0].Name != ccDefaultSpace {
			t.Errorf("orgs %+v, want one org local with space dev", st.Orgs)
		}
		if !ccUUIDRE.MatchString(st.UserGUID) {
			t.Errorf("user guid %q", st.UserGUID)
		}
	})

	t.Run("broker has the instance", func(t *testing.T) {
		hin, _ := ccHarnessInstance(t, env, "my-uaa")
		if got := instanceParams(t, tb, hin); !jsonEqual(t, got, desc) {
			t.Errorf("broker parameters %v, want the xs-security.json", got)
		}
	})

	t.Run("services", func(t *testing.T) {
		out := ccMust(t, env, "services")
		if !strings.Contains(out, "my-uaa") || !strings.Contains(out, "xsuaa") || !strings.Contains(out, "application") {
			t.Errorf("services:\n%s", out)
		}
		views := ccDecode[[]ccInstanceView](t, ccMust(t, env, "services", "--json"))
		if len(views) != 1 || views[0].Name != "my-uaa" || views[0].Plan != "application" ||
			!slices.Equal(views[0].Tags, []string{"xsuaa", "web", "ui"}) ||
			views[0].LastOperation != (ccLastOperation{Type: "create", State: "succeeded"}) {
			t.Errorf("services --json: %+v", views)
		}
	})

	t.Run("create again is a no-op", func(t *testing.T) {
		out := ccMust(t, env, "create-service", "xsuaa", "application", "my-uaa")
		if !strings.Contains(out, "already exists") {
			t.Errorf("output %q", out)
		}
		if n := len(ccLoad(t, env).Instances); n != 1 {
			t.Errorf("%d instances", n)
		}
	})

	ccMust(t, env, "bind", "my-uaa", "my-app")
	ccMust(t, env, "create-service-key", "my-uaa", "my-key")

	t.Run("second bind is refused", func(t *testing.T) {
		_, err := ccRun(env, "bind", "my-uaa", "my-app")
		if err == nil || !strings.Contains(err.Error(), "already bound") {
			t.Fatalf("second bind: %v", err)
		}
		if n := len(ccLoad(t, env).instance("my-uaa").Bindings); n != 1 {
			t.Errorf("%d bindings after a refused bind", n)
		}
	})

	var appBindingGUID string
	t.Run("env", func(t *testing.T) {
		out := ccMust(t, env, "env", "my-app")
		if keys := objectKeys(t, []byte(out)); !slices.Equal(keys, []string{"VCAP_SERVICES", "VCAP_APPLICATION"}) {
			t.Errorf("env keys %v", keys)
		}
		entries := vcapEntries(t, []byte(out), "xsuaa")
		if len(entries) != 1 {
			t.Fatalf("VCAP_SERVICES.xsuaa has %d entries, want 1 (no service key):\n%s", len(entries), out)
		}
		e := entries[0]
		st := ccLoad(t, env)
		in := st.instance("my-uaa")
		appBindingGUID = in.Bindings[0].GUID
		if e["label"] != "xsuaa" || e["plan"] != "application" || e["name"] != "my-uaa" || e["instance_name"] != "my-uaa" ||
			e["instance_guid"] != in.GUID || e["binding_guid"] != appBindingGUID || e["binding_name"] != nil ||
			e["provider"] != nil || e["syslog_drain_url"] != nil {
			t.Errorf("entry %v", e)
		}
		if !reflect.DeepEqual(e["tags"], []any{"xsuaa", "web", "ui"}) {
			t.Errorf("tags %v, want [xsuaa web ui]", e["tags"])
		}
		if vm, ok := e["volume_mounts"].([]any); !ok || len(vm) != 0 {
			t.Errorf("volume_mounts %v, want []", e["volume_mounts"])
		}
		creds, _ := e["credentials"].(map[string]any)
		if id, _ := creds["clientid"].(string); !strings.HasPrefix(id, "sb-cc-bookshop!t") {
			t.Errorf("credentials.clientid %q", id)
		}
		if in.Keys[0].GUID == appBindingGUID {
			t.Error("the key and the binding share a guid")
		}
		var doc struct {
			App vcapApplication `json:"VCAP_APPLICATION"`
		}
		_ = json.Unmarshal([]byte(out), &doc)
		if doc.App.ApplicationName != "my-app" || doc.App.ApplicationID != st.app("my-app").GUID || doc.App.SpaceName != "dev" || doc.App.OrganizationName != "local" {
			t.Errorf("VCAP_APPLICATION %+v", doc.App)
		}
	})

	t.Run("service key", func(t *testing.T) {
		out := ccMust(t, env, "service-key", "my-uaa", "my-key")
		creds := ccDecode[map[string]any](t, out)
		if id, _ := creds["clientid"].(string); !strings.HasPrefix(id, "sb-cc-bookshop!t") {
			t.Errorf("key credentials %v", creds)
		}
		hin, in := ccHarnessInstance(t, env, "my-uaa")
		status, body := tb.getBinding(hin, in.Keys[0].GUID)
		expectStatus(t, "GET key binding", status, body, http.StatusOK)
	})

	t.Run("default-env", func(t *testing.T) {
		file := filepath.Join(dir, "default-env.json")
		if err := os.WriteFile(file, []byte(`{"destinations": [{"name": "srv", "url": "http://localhost:4004"}], "PORT": 5000}`), 0o644); err != nil {
			t.Fatal(err)
		}
		ccMust(t, env, "default-env", "my-app", "-o", file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if keys := objectKeys(t, raw); !slices.Equal(keys, []string{"destinations", "PORT", "VCAP_SERVICES", "VCAP_APPLICATION"}) {
			t.Errorf("default-env.json keys %v: other members must stay", keys)
		}
		var doc struct {
			VCAPServices map[string][]json.RawMessage `json:"VCAP_SERVICES"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.VCAPServices["xsuaa"]) != 1 {
			t.Fatalf("default-env.json VCAP_SERVICES: %s", raw)
		}
		if keys := objectKeys(t, doc.VCAPServices["xsuaa"][0]); !slices.Equal(keys, ccVCAPKeyOrder) {
			t.Errorf("VCAP_SERVICES.xsuaa[0] keys\n %v, want CC's order\n %v", keys, ccVCAPKeyOrder)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Errorf("default-env.json mode %v, want 0600 (credentials)", fi.Mode().Perm())
		}
	})

	t.Run("update-service adds a scope", func(t *testing.T) {
		next := bookshop("cc-bookshop")
		next["scopes"] = append(next["scopes"].([]any), map[string]any{"name": "$XSAPPNAME.Delete", "description": "delete"})
		raw, _ := json.Marshal(next)
		ccMust(t, env, "update-service", "my-uaa", "-c", string(raw))
		hin, in := ccHarnessInstance(t, env, "my-uaa")
		if got := instanceParams(t, tb, hin); !jsonEqual(t, got, next) {
			t.Errorf("broker parameters after update: %v", got)
		}
		if !jsonEqual(t, json.RawMessage(in.Parameters), next) || in.LastOperation.Type != "update" {
			t.Errorf("state after update: %s %+v", in.Parameters, in.LastOperation)
		}
		if out := ccMust(t, env, "update-service", "my-uaa"); !strings.Contains(out, "No changes") {
			t.Errorf("update without flags: %q", out)
		}
		_, err := ccRun(env, "update-service", "my-uaa", "-p", "broker")
		if err == nil || !strings.Contains(err.Error(), "changing plans") {
			t.Errorf("plan change of a non-updateable plan: %v", err)
		}
	})

	t.Run("unbind", func(t *testing.T) {
		ccMust(t, env, "unbind", "my-uaa", "my-app")
		hin, in := ccHarnessInstance(t, env, "my-uaa")
		status, body := tb.getBinding(hin, appBindingGUID)
		expectStatus(t, "GET binding after unbind", status, body, http.StatusNotFound)
		if len(in.Bindings) != 0 || len(in.Keys) != 1 {
			t.Errorf("state after unbind: %d bindings, %d keys", len(in.Bindings), len(in.Keys))
		}
		if e := vcapEntries(t, []byte(ccMust(t, env, "env", "my-app")), "xsuaa"); len(e) != 0 {
			t.Errorf("VCAP_SERVICES after unbind: %v", e)
		}
		if out := ccMust(t, env, "unbind", "my-uaa", "my-app"); !strings.Contains(out, "did not exist") {
			t.Errorf("second unbind: %q", out)
		}
	})

	t.Run("delete-service unbinds first", func(t *testing.T) {
		ccMust(t, env, "bind", "my-uaa", "my-app", "--binding-name", "uaa")
		hin, in := ccHarnessInstance(t, env, "my-uaa")
		if e := vcapEntries(t, []byte(ccMust(t, env, "env", "my-app")), "xsuaa"); len(e) != 1 || e[0]["name"] != "uaa" || e[0]["binding_name"] != "uaa" {
			t.Errorf("entry with --binding-name: %v", e)
		}
		bindingGUID, keyGUID := in.Bindings[0].GUID, in.Keys[0].GUID

		var stdout bytes.Buffer
		if err := deleteServiceCmd(context.Background(), []string{"my-uaa"}, func(k string) string { return env[k] },
			strings.NewReader("n\n"), &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "cancelled") {
			t.Fatalf("delete answered n: %v %q", err, stdout.String())
		}
		status, body := tb.getInstance(hin)
		expectStatus(t, "GET instance after a cancelled delete", status, body, http.StatusOK)

		ccMust(t, env, "delete-service", "my-uaa", "-f")
		for _, id := range []string{bindingGUID, keyGUID} {
			status, body := tb.getBinding(hin, id)
			expectStatus(t, "GET binding after delete-service", status, body, http.StatusNotFound)
		}
		status, body = tb.getInstance(hin)
		expectStatus(t, "GET instance after delete-service", status, body, http.StatusNotFound)
		if out := ccMust(t, env, "services"); !strings.Contains(out, "No service instances") {
			t.Errorf("services after delete:\n%s", out)
		}
	})

	t.Run("broker error", func(t *testing.T) {
		_, err := ccRun(env, "create-service", "xsuaa", "application", "bad-uaa", "-c", `{"xsappname": "book!shop"}`)
		if err == nil || !strings.Contains(err.Error(), "xsappname") || !strings.Contains(err.Error(), "400") {
			t.Fatalf("invalid xsappname: %v", err)
		}
		if ccLoad(t, env).instance("bad-uaa") != nil {
			t.Error("a rejected instance is in the state")
		}
		_, err = ccRun(env, "create-service", "xsuaa", "no-such-plan", "x")
		if err == nil || !strings.Contains(err.Error(), "no-such-plan") {
			t.Errorf("unknown plan: %v", err)
		}
		_, err = ccRun(env, "create-service", "xsuaa", "application", "x", "-c", `[1]`)
		if err == nil || !strings.Contains(err.Error(), "-c") {
			t.Errorf("-c with an array: %v", err)
		}
	})
}

func TestCCIdentityBroker(t *testing.T) {
	tb := startBroker(t, nil)
	env := ccBrokerEnv(t, tb)
	ccMust(t, env, "create-service", "xsuaa", "application", "app-uaa", "-c", `{"xsappname": "cc-ias-app"}`)
	ccMust(t, env, "create-service", "identity", "application", "app-ias", "-space", "qa", "-org", "acme")
	// Apps live in one space; the identity instance is in another.
	if _, err := ccRun(env, "bind", "app-ias", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := ccRun(env, "bind", "app-uaa", "web"); err == nil || !strings.Contains(err.Error(), "space") {
		t.Fatalf("bind across spaces: %v", err)
	}
	out := ccMust(t, env, "env", "web", "--json")
	entries := vcapEntries(t, []byte(out), "identity")
	if len(entries) != 1 {
		t.Fatalf("VCAP_SERVICES: %s", out)
	}
	e := entries[0]
	if e["label"] != "identity" || e["plan"] != "application" || !reflect.DeepEqual(e["tags"], []any{"ias"}) {
		t.Errorf("identity entry %v", e)
	}
	creds, _ := e["credentials"].(map[string]any)
	if id, _ := creds["clientid"].(string); !ccUUIDRE.MatchString(id) {
		t.Errorf("identity clientid %v", creds["clientid"])
	}
	var doc struct {
		App vcapApplication `json:"VCAP_APPLICATION"`
	}
	_ = json.Unmarshal([]byte(out), &doc)
	if doc.App.SpaceName != "qa" || doc.App.OrganizationName != "acme" {
		t.Errorf("VCAP_APPLICATION %+v, want space qa in org acme", doc.App)
	}
	hin, _ := ccHarnessInstance(t, env, "app-ias")
	status, body := tb.getInstance(hin)
	expectStatus(t, "GET identity instance", status, body, http.StatusOK)
}

// ccRecorded is one request the fake broker saw.
type ccRecorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// String keeps failure messages readable.
func (r ccRecorded) String() string {
	return r.Method + " " + r.Path + "?" + r.RawQuery + " " + string(r.Body)
}

// ccFake is a broker that records requests and answers from a script.
type ccFake struct {
	mu   sync.Mutex
	reqs []ccRecorded
	// answer overrides the default answer when it returns a status.
	answer func(r ccRecorded, n int) (status int, body string, header http.Header)
	srv    *httptest.Server
}

const ccFakeCatalog = `{"services": [{"id": "svc-id", "name": "svc", "description": "d", "bindable": true,
  "bindings_retrievable": true, "instances_retrievable": true, "plan_updateable": true, "tags": ["t1", "t2"],
  "plans": [
    {"id": "plan-a", "name": "small", "description": "d", "maintenance_info": {"version": "1.2.3", "description": "mi a"}, "maximum_polling_duration": 60},
    {"id": "plan-b", "name": "large", "description": "d", "maintenance_info": {"version": "2.0.0", "description": "mi b"}},
    {"id": "plan-c", "name": "plain", "description": "d"}]}]}`

func newCCFake(t *testing.T) *ccFake {
	f := &ccFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := ccRecorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		n := len(f.reqs)
		answer := f.answer
		f.mu.Unlock()
		if answer != nil {
			if status, b, h := answer(rec, n); status != 0 {
				for k, v := range h {
					w.Header()[k] = v
				}
				w.WriteHeader(status)
				io.WriteString(w, b)
				return
			}
		}
		isBinding := strings.Contains(r.URL.Path, "/service_bindings/")
		switch {
		case r.URL.Path == "/v2/catalog":
			io.WriteString(w, ccFakeCatalog)
		case strings.HasSuffix(r.URL.Path, "/last_operation"):
			io.WriteString(w, `{"state": "succeeded"}`)
		case r.Method == http.MethodPut && isBinding:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"credentials": {"user": "u", "uri": "https://x.example/?a=1&b=2"}}`)
		case r.Method == http.MethodGet && isBinding:
			io.WriteString(w, `{"credentials": {"user": "fetched"}}`)
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{}`)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// take returns the requests recorded since the last take, without catalog
// requests.
func (f *ccFake) take() []ccRecorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ccRecorded
	for _, r := range f.reqs {
		if r.Path != "/v2/catalog" {
			out = append(out, r)
		}
	}
	f.reqs = nil
	return out
}

func (f *ccFake) setAnswer(a func(r ccRecorded, n int) (int, string, http.Header)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func ccFakeEnv(t *testing.T, f *ccFake) map[string]string {
	return ccEnv(t, f.srv.URL, "", "cc-user", "cc-pass")
}

// checkCCHeaders asserts the headers of osb.md B.1.
func checkCCHeaders(t *testing.T, r ccRecorded, userGUID string, identity bool) {
	t.Helper()
	h := r.Header
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("cc-user:cc-pass"))
	if h.Get("Authorization") != want {
		t.Errorf("%s %s: Authorization %q", r.Method, r.Path, h.Get("Authorization"))
	}
	if h.Get("X-Broker-Api-Version") != "2.15" {
		t.Errorf("%s %s: X-Broker-API-Version %q, want 2.15", r.Method, r.Path, h.Get("X-Broker-Api-Version"))
	}
	if !ccUUIDRE.MatchString(h.Get("X-Broker-Api-Request-Identity")) {
		t.Errorf("%s %s: X-Broker-API-Request-Identity %q is not a uuid", r.Method, r.Path, h.Get("X-Broker-Api-Request-Identity"))
	}
	if h.Get("X-Api-Info-Location") == "" || h.Get("Accept") != "application/json" || h.Get("X-Vcap-Request-Id") == "" {
		t.Errorf("%s %s: headers %v", r.Method, r.Path, h)
	}
	wantCT := ""
	if r.Method == http.MethodPut || r.Method == http.MethodPatch {
		wantCT = "application/json"
	}
	if h.Get("Content-Type") != wantCT {
		t.Errorf("%s %s: Content-Type %q, want %q", r.Method, r.Path, h.Get("Content-Type"), wantCT)
	}
	oi := h.Get("X-Broker-Api-Originating-Identity")
	if !identity {
		if oi != "" {
			t.Errorf("%s %s: originating identity %q on orphan mitigation", r.Method, r.Path, oi)
		}
		return
	}
	platform, value, _ := strings.Cut(oi, " ")
	raw, err := base64.StdEncoding.Strict().DecodeString(value)
	if platform != "cloudfoundry" || err != nil || string(raw) != `{"user_id":"`+userGUID+`"}` {
		t.Errorf("%s %s: X-Broker-API-Originating-Identity %q (%s)", r.Method, r.Path, oi, raw)
	}
}

// bodyEqual compares a request body with the expected JSON.
func bodyEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: body %s: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: want %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: body\n %s\nwant\n %s", what, got, want)
	}
}

func expand(s string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(s)
}

func TestCCWireRequests(t *testing.T) {
	f := newCCFake(t)
	env := ccFakeEnv(t, f)
	seen := map[string]bool{}
	check := func(t *testing.T, reqs []ccRecorded, user string) {
		t.Helper()
		for _, r := range reqs {
			checkCCHeaders(t, r, user, true)
			id := r.Header.Get("X-Broker-Api-Request-Identity")
			if seen[id] {
				t.Errorf("request identity %s used twice", id)
			}
			seen[id] = true
		}
	}

	ccMust(t, env, "create-service", "svc", "small", "si", "-t", "mine")
	st := ccLoad(t, env)
	in := st.instance("si")
	org, space, _ := st.spaceByGUID(in.SpaceGUID)
	ids := []string{"$SI", in.GUID, "$ORG", org.GUID, "$SPACE", space.GUID}

	t.Run("provision", func(t *testing.T) {
		reqs := f.take()
		check(t, reqs, st.UserGUID)
		if len(reqs) != 1 || reqs[0].Method != http.MethodPut || reqs[0].Path != "/v2/service_instances/"+in.GUID || reqs[0].RawQuery != "accepts_incomplete=true" {
			t.Fatalf("requests %+v", reqs)
		}
		if !ccUUIDRE.MatchString(in.GUID) {
			t.Errorf("instance guid %q", in.GUID)
		}
		bodyEqual(t, "provision", reqs[0].Body, expand(`{"service_id": "svc-id", "plan_id": "plan-a",
			"organization_guid": "$ORG", "space_guid": "$SPACE",
			"context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE",
				"organization_name": "local", "space_name": "dev", "organization_annotations": {}, "space_annotations": {},
				"instance_name": "si", "instance_annotations": {}},
			"maintenance_info": {"version": "1.2.3", "description": "mi a"}}`, ids...))
	})

	t.Run("provision with parameters", func(t *testing.T) {
		ccMust(t, env, "create-service", "svc", "plain", "si2", "-c", `{"a": [1, 2]}`)
		ccMust(t, env, "create-service", "svc", "plain", "si3", "-c", `{}`)
		reqs := f.take()
		if len(reqs) != 2 {
			t.Fatalf("requests %+v", reqs)
		}
		var b1, b2 map[string]any
		_ = json.Unmarshal(reqs[0].Body, &b1)
		_ = json.Unmarshal(reqs[1].Body, &b2)
		if !reflect.DeepEqual(b1["parameters"], map[string]any{"a": []any{1.0, 2.0}}) {
			t.Errorf("parameters %v", b1["parameters"])
		}
		if _, ok := b2["parameters"]; ok {
			t.Error("-c {} sent parameters; CC leaves empty parameters out")
		}
		if _, ok := b1["maintenance_info"]; ok {
			t.Error("maintenance_info sent for a plan without one")
		}
	})

	t.Run("bind", func(t *testing.T) {
		ccMust(t, env, "bind", "si", "app1", "-c", `{"x": 1}`)
		st := ccLoad(t, env)
		app := st.app("app1")
		b := st.instance("si").Bindings[0]
		reqs := f.take()
		check(t, reqs, st.UserGUID)
		if len(reqs) != 1 || reqs[0].Path != "/v2/service_instances/"+in.GUID+"/service_bindings/"+b.GUID || reqs[0].RawQuery != "accepts_incomplete=true" {
			t.Fatalf("requests %+v", reqs)
		}
		bodyEqual(t, "bind", reqs[0].Body, expand(`{"service_id": "svc-id", "plan_id": "plan-a", "app_guid": "$APP",
			"bind_resource": {"app_guid": "$APP", "space_guid": "$SPACE", "app_annotations": {}},
			"context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE",
				"organization_name": "local", "space_name": "dev", "organization_annotations": {}, "space_annotations": {}},
			"parameters": {"x": 1}}`, append(ids, "$APP", app.GUID)...))
	})

	t.Run("service key", func(t *testing.T) {
		ccMust(t, env, "create-service-key", "si", "k1")
		reqs := f.take()
		check(t, reqs, st.UserGUID)
		if len(reqs) != 1 {
			t.Fatalf("requests %+v", reqs)
		}
		bodyEqual(t, "service key", reqs[0].Body, expand(`{"service_id": "svc-id", "plan_id": "plan-a",
			"bind_resource": {"credential_client_id": "cc_service_key_client"},
			"context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE",
				"organization_name": "local", "space_name": "dev", "organization_annotations": {}, "space_annotations": {}}}`, ids...))
		if out := ccMust(t, env, "service-key", "si", "k1"); !strings.Contains(out, `"uri": "https://x.example/?a=1&b=2"`) {
			t.Errorf("service-key output (no HTML escaping expected):\n%s", out)
		}
		if reqs := f.take(); len(reqs) != 0 {
			t.Errorf("service-key with stored credentials asked the broker: %+v", reqs)
		}
		// Without stored credentials the key is fetched from the broker.
		st := ccLoad(t, env)
		key := st.instance("si").Keys[0]
		key.Credentials = nil
		if err := st.save(env["BROKER_CF_STATE"]); err != nil {
			t.Fatal(err)
		}
		if out := ccMust(t, env, "service-key", "si", "k1"); !strings.Contains(out, "fetched") {
			t.Errorf("service-key output %s, want the credentials of GET binding", out)
		}
		reqs = f.take()
		if len(reqs) != 1 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/v2/service_instances/"+in.GUID+"/service_bindings/"+key.GUID ||
			reqs[0].RawQuery != "plan_id=plan-a&service_id=svc-id" {
			t.Errorf("service-key fetch: %+v", reqs)
		}
		checkCCHeaders(t, reqs[0], st.UserGUID, true)
		if got := ccLoad(t, env).instance("si").Keys[0].Credentials; !strings.Contains(string(got), "fetched") {
			t.Errorf("fetched credentials not kept: %s", got)
		}
		if e := vcapEntries(t, []byte(ccMust(t, env, "env", "app1")), "svc"); len(e) != 1 ||
			!reflect.DeepEqual(e[0]["tags"], []any{"t1", "t2", "mine"}) {
			t.Errorf("VCAP_SERVICES.svc %v", e)
		}
	})

	t.Run("update", func(t *testing.T) {
		ccMust(t, env, "update-service", "si", "-p", "large")
		reqs := f.take()
		check(t, reqs, st.UserGUID)
		if len(reqs) != 1 || reqs[0].Method != http.MethodPatch || reqs[0].RawQuery != "accepts_incomplete=true" {
			t.Fatalf("requests %+v", reqs)
		}
		bodyEqual(t, "update", reqs[0].Body, expand(`{"service_id": "svc-id", "plan_id": "plan-b",
			"previous_values": {"plan_id": "plan-a", "service_id": "svc-id", "organization_id": "$ORG", "space_id": "$SPACE",
				"maintenance_info": {"version": "1.2.3", "description": "mi a"}},
			"context": {"platform": "cloudfoundry", "organization_guid": "$ORG", "space_guid": "$SPACE",
				"organization_name": "local", "space_name": "dev", "organization_annotations": {}, "space_annotations": {},
				"instance_name": "si"},
			"parameters": {},
			"maintenance_info": {"version": "2.0.0"}}`, ids...))
		if got := ccLoad(t, env).instance("si"); got.PlanName != "large" || got.PlanID != "plan-b" {
			t.Errorf("state plan %s/%s", got.PlanName, got.PlanID)
		}

		ccMust(t, env, "update-service", "si", "-c", `{"y": true}`)
		reqs = f.take()
		if len(reqs) != 1 {
			t.Fatalf("requests %+v", reqs)
		}
		var b map[string]any
		_ = json.Unmarshal(reqs[0].Body, &b)
		if b["plan_id"] != "plan-b" || !reflect.DeepEqual(b["parameters"], map[string]any{"y": true}) || b["maintenance_info"] != nil {
			t.Errorf("update with -c: %s", reqs[0].Body)
		}
		if pv, _ := b["previous_values"].(map[string]any); pv["maintenance_info"].(map[string]any)["version"] != "2.0.0" {
			t.Errorf("previous_values %v", pv)
		}
	})

	t.Run("delete-service", func(t *testing.T) {
		st := ccLoad(t, env)
		si := st.instance("si")
		bGUID, kGUID := si.Bindings[0].GUID, si.Keys[0].GUID
		ccMust(t, env, "delete-service", "si", "-f")
		reqs := f.take()
		check(t, reqs, st.UserGUID)
		query := "accepts_incomplete=true&plan_id=plan-b&service_id=svc-id"
		base := "/v2/service_instances/" + in.GUID
		want := []string{
			"DELETE " + base + "/service_bindings/" + bGUID + "?" + query,
			"DELETE " + base + "/service_bindings/" + kGUID + "?" + query,
			"DELETE " + base + "?" + query,
		}
		var got []string
		for _, r := range reqs {
			got = append(got, r.Method+" "+r.Path+"?"+r.RawQuery)
			if len(r.Body) != 0 {
				t.Errorf("DELETE with a body: %s", r.Body)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("requests\n %q\nwant\n %q", got, want)
		}
		if ccLoad(t, env).instance("si") != nil {
			t.Error("deleted instance still in the state")
		}
	})

	t.Run("broker errors", func(t *testing.T) {
		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			if r.Method == http.MethodPut {
				return http.StatusBadRequest, `{"error": "BadRequest", "description": "parameter x is wrong"}`, nil
			}
			return 0, "", nil
		})
		defer f.setAnswer(nil)
		_, err := ccRun(env, "create-service", "svc", "small", "bad")
		if err == nil || !strings.Contains(err.Error(), "parameter x is wrong") {
			t.Errorf("error %v, want the broker's description", err)
		}
		if reqs := f.take(); len(reqs) != 1 {
			t.Errorf("a 400 triggered more requests (no orphan mitigation after 4xx): %+v", reqs)
		}

		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			if r.Method == http.MethodPut {
				return http.StatusInternalServerError, `{"description": "boom"}`, nil
			}
			return 0, "", nil
		})
		_, err = ccRun(env, "create-service", "svc", "small", "bad")
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("error %v", err)
		}
		reqs := f.take()
		if len(reqs) != 2 || reqs[1].Method != http.MethodDelete || reqs[1].Path != reqs[0].Path ||
			reqs[1].RawQuery != "accepts_incomplete=true&plan_id=plan-a&service_id=svc-id" {
			t.Fatalf("after a 500 CC orphan-mitigates: %+v", reqs)
		}
		checkCCHeaders(t, reqs[1], "", false)
		if ccLoad(t, env).instance("bad") != nil {
			t.Error("failed instance in the state")
		}
	})
}

// ccRecordSleeps replaces the poll sleep for the test.
func ccRecordSleeps(t *testing.T) *[]time.Duration {
	var mu sync.Mutex
	var slept []time.Duration
	old := ccSleep
	ccSleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return nil
	}
	t.Cleanup(func() { ccSleep = old })
	return &slept
}

func TestCCWireAsync(t *testing.T) {
	slept := ccRecordSleeps(t)
	f := newCCFake(t)
	env := ccFakeEnv(t, f)

	t.Run("provision", func(t *testing.T) {
		*slept = nil
		polls := 0
		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			switch {
			case r.Method == http.MethodPut:
				return http.StatusAccepted, `{"operation": "op 1"}`, nil
			case strings.HasSuffix(r.Path, "/last_operation"):
				polls++
				if polls == 1 {
					return http.StatusOK, `{"state": "in progress"}`, http.Header{"Retry-After": {"30"}}
				}
				if polls == 2 {
					return http.StatusNotFound, `{}`, nil // CC keeps polling
				}
				return http.StatusOK, `{"state": "succeeded"}`, nil
			}
			return 0, "", nil
		})
		ccMust(t, env, "create-service", "svc", "small", "async-si")
		st := ccLoad(t, env)
		in := st.instance("async-si")
		if in.LastOperation != (ccLastOperation{Type: "create", State: "succeeded"}) || in.Operation != "" {
			t.Errorf("last operation %+v", in.LastOperation)
		}
		reqs := f.take()
		if len(reqs) != 4 {
			t.Fatalf("requests %+v", reqs)
		}
		for _, r := range reqs[1:] {
			checkCCHeaders(t, r, st.UserGUID, true)
			if r.Method != http.MethodGet || r.Path != "/v2/service_instances/"+in.GUID+"/last_operation" ||
				r.RawQuery != "operation=op+1&plan_id=plan-a&service_id=svc-id" {
				t.Errorf("poll %s %s?%s", r.Method, r.Path, r.RawQuery)
			}
		}
		// First poll at once, then Retry-After, then the interval.
		if want := []time.Duration{30 * time.Second, ccPollInterval}; !slices.Equal(*slept, want) {
			t.Errorf("waits %v, want %v", *slept, want)
		}
	})

	t.Run("failed provision is replaced", func(t *testing.T) {
		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			switch {
			case r.Method == http.MethodPut:
				return http.StatusAccepted, `{}`, nil
			case strings.HasSuffix(r.Path, "/last_operation"):
				return http.StatusOK, `{"state": "failed", "description": "quota exceeded"}`, nil
			}
			return 0, "", nil
		})
		_, err := ccRun(env, "create-service", "svc", "small", "doomed")
		if err == nil || !strings.Contains(err.Error(), "quota exceeded") {
			t.Fatalf("error %v", err)
		}
		in := ccLoad(t, env).instance("doomed")
		if in == nil || in.LastOperation != (ccLastOperation{Type: "create", State: "failed", Description: "quota exceeded"}) {
			t.Fatalf("failed instance in the state: %+v", in)
		}
		if out := ccMust(t, env, "services"); !strings.Contains(out, "create failed") {
			t.Errorf("services:\n%s", out)
		}
		f.take()
		f.setAnswer(nil)
		ccMust(t, env, "create-service", "svc", "small", "doomed")
		reqs := f.take()
		if len(reqs) != 2 || reqs[0].Method != http.MethodDelete || reqs[0].Path != "/v2/service_instances/"+in.GUID || reqs[1].Method != http.MethodPut {
			t.Fatalf("re-create after failure: %+v", reqs)
		}
		checkCCHeaders(t, reqs[0], "", false)
		if got := ccLoad(t, env).instance("doomed"); got.GUID == in.GUID || got.LastOperation.State != "succeeded" {
			t.Errorf("re-created instance %+v", got)
		}
	})

	t.Run("polling is bounded", func(t *testing.T) {
		*slept = nil
		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			switch {
			case r.Method == http.MethodPut:
				return http.StatusAccepted, `{}`, nil
			case strings.HasSuffix(r.Path, "/last_operation"):
				return http.StatusOK, `{"state": "in progress"}`, http.Header{"Retry-After": {"20"}}
			}
			return 0, "", nil
		})
		defer f.setAnswer(nil)
		_, err := ccRun(env, "create-service", "svc", "small", "slow")
		if err == nil || !strings.Contains(err.Error(), "1m0s") {
			t.Fatalf("error %v, want a timeout after the plan's maximum_polling_duration", err)
		}
		if want := []time.Duration{20 * time.Second, 20 * time.Second, 20 * time.Second}; !slices.Equal(*slept, want) {
			t.Errorf("waits %v, want %v", *slept, want)
		}
		reqs := f.take()
		if last := reqs[len(reqs)-1]; last.Method != http.MethodDelete {
			t.Errorf("no orphan mitigation after the polling timeout: %+v", last)
		}
		if in := ccLoad(t, env).instance("slow"); in == nil || in.LastOperation.State != "failed" {
			t.Errorf("state %+v", in)
		}
	})

	t.Run("bind and unbind", func(t *testing.T) {
		var polls []string
		f.setAnswer(func(r ccRecorded, n int) (int, string, http.Header) {
			switch {
			case r.Method == http.MethodPut && strings.Contains(r.Path, "/service_bindings/"):
				return http.StatusAccepted, `{"operation": "bind-op"}`, nil
			case r.Method == http.MethodDelete && strings.Contains(r.Path, "/service_bindings/"):
				return http.StatusAccepted, `{"operation": "unbind-op"}`, nil
			case strings.HasSuffix(r.Path, "/last_operation"):
				polls = append(polls, r.RawQuery)
				if strings.Contains(r.RawQuery, "unbind-op") {
					return http.StatusGone, `{}`, nil // gone = done while deleting
				}
			}
			return 0, "", nil
		})
		defer f.setAnswer(nil)
		ccMust(t, env, "bind", "async-si", "app")
		in := ccLoad(t, env).instance("async-si")
		reqs := f.take()
		if len(reqs) != 3 || reqs[2].Method != http.MethodGet || reqs[2].Path != "/v2/service_instances/"+in.GUID+"/service_bindings/"+in.Bindings[0].GUID {
			t.Fatalf("async bind requests %+v", reqs)
		}
		bodyEqual(t, "credentials after an async bind", in.Bindings[0].Credentials, `{"user": "fetched"}`)
		ccMust(t, env, "unbind", "async-si", "app")
		if in := ccLoad(t, env).instance("async-si"); len(in.Bindings) != 0 {
			t.Errorf("bindings after async unbind: %+v", in.Bindings)
		}
		if want := []string{"operation=bind-op&plan_id=plan-a&service_id=svc-id", "operation=unbind-op&plan_id=plan-a&service_id=svc-id"}; !slices.Equal(polls, want) {
			t.Errorf("polls %q, want %q", polls, want)
		}
	})
}

func TestPollDelay(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", ccPollInterval},
		{"0", ccPollInterval},
		{"1", ccPollInterval},
		{"30", 30 * time.Second},
		{" 45 ", 45 * time.Second},
		{"12abc", 12 * time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", ccPollInterval},
		{"-5", ccPollInterval},
		{"999999", 86400 * time.Second},
	} {
		if got := pollDelay(tc.header, ccPollInterval); got != tc.want {
			t.Errorf("pollDelay(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestReadMutation(t *testing.T) {
	for _, tc := range []struct {
		kind   ccCall
		status int
		body   string
		ok     bool
		async  bool
		gone   bool
		om     bool
	}{
		{callProvision, 201, `{}`, true, false, false, false},
		{callProvision, 200, `{}`, true, false, false, false},
		{callProvision, 202, `{"operation": "x"}`, true, true, false, false},
		{callProvision, 409, `{}`, false, false, false, false},
		{callProvision, 410, `{}`, false, false, false, true},
		{callProvision, 422, `{"error": "ConcurrencyError"}`, false, false, false, false},
		{callProvision, 422, `{"error": "Other"}`, false, false, false, true},
		{callProvision, 500, `{}`, false, false, false, true},
		{callProvision, 201, `not json`, false, false, false, true},
		{callProvision, 200, `not json`, false, false, false, false},
		{callProvision, 204, ``, false, false, false, true},
		{callUpdate, 200, `{}`, true, false, false, false},
		{callUpdate, 201, `{}`, false, false, false, false},
		{callUpdate, 500, `{}`, false, false, false, false},
		{callDeprovision, 500, `{}`, false, false, false, false},
		{callUpdate, 202, `{}`, true, true, false, false},
		{callDeprovision, 410, ``, true, false, true, false},
		{callUnbind, 410, ``, true, false, true, false},
		{callUnbind, 200, `{}`, true, false, false, false},
		{callBind, 201, `{"credentials": {"a": 1}}`, true, false, false, false},
		{callBind, 201, `{"credentials": "a"}`, false, false, false, true},
		{callBind, 201, `{}`, false, false, false, true},
		{callBind, 202, `{}`, true, true, false, false},
		{callBind, 400, `{"description": "bad"}`, false, false, false, false},
	} {
		r := ccResponse{Status: tc.status, Body: []byte(tc.body)}
		res, err := readMutation(tc.kind, r)
		if (err == nil) != tc.ok || res.Async != tc.async || res.Gone != tc.gone {
			t.Errorf("kind %d status %d %s: %+v %v", tc.kind, tc.status, tc.body, res, err)
		}
		if err != nil {
			if om := needsOrphanMitigation(tc.kind, r); om != tc.om {
				t.Errorf("kind %d status %d %s: orphan mitigation %v, want %v", tc.kind, tc.status, tc.body, om, tc.om)
			}
		}
	}
}

func TestReadParams(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.json")
	if err := os.WriteFile(file, []byte("{\n  \"xsappname\": \"a\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{`{"a": 1}`, `{"a":1}`, true},
		{file, `{"xsappname":"a"}`, true},
		{`{}`, `{}`, true},
		{`[1]`, "", false},
		{`null`, "", false},
		{`"s"`, "", false},
		{filepath.Join(dir, "missing.json"), "", false},
		{`{"a": `, "", false},
	} {
		got, err := readParams(tc.in)
		if (err == nil) != tc.ok || string(got) != tc.want {
			t.Errorf("readParams(%q) = %s, %v", tc.in, got, err)
		}
	}
}

func TestTags(t *testing.T) {
	if got := splitTags(" a, b,,a ,c "); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("splitTags: %q", got)
	}
	for _, tc := range []struct{ offering, user, want []string }{
		{nil, nil, []string{}},
		{[]string{"xsuaa"}, nil, []string{"xsuaa"}},
		{[]string{"xsuaa"}, []string{"web", "xsuaa"}, []string{"xsuaa", "web"}},
		{[]string{"ias"}, []string{"a", "a"}, []string{"ias", "a"}},
	} {
		if got := mergeTags(tc.offering, tc.user); !slices.Equal(got, tc.want) {
			t.Errorf("mergeTags(%q, %q) = %q, want %q", tc.offering, tc.user, got, tc.want)
		}
	}
}

func TestBuildAppEnv(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &ccState{}
	org, space := st.space("o", "s")
	app := &ccApp{Name: "a", GUID: "app-guid", SpaceGUID: space.GUID}
	other := &ccApp{Name: "b", GUID: "other-guid", SpaceGUID: space.GUID}
	st.Apps = []*ccApp{app, other}
	mk := func(name, label string, bindings ...*ccBinding) *ccInstance {
		return &ccInstance{Name: name, GUID: name + "-guid", ServiceName: label, PlanName: "p", OfferingTags: []string{label},
			SpaceGUID: space.GUID, OrgGUID: org.GUID, Bindings: bindings}
	}
	ok := ccLastOperation{Type: "create", State: "succeeded"}
	st.Instances = []*ccInstance{
		mk("later", "xsuaa", &ccBinding{GUID: "b1", AppGUID: app.GUID, Credentials: json.RawMessage(`{"n":1}`), CreatedAt: t0.Add(3 * time.Hour), LastOperation: ok}),
		mk("ias", "identity",
			&ccBinding{GUID: "old", AppGUID: app.GUID, Credentials: json.RawMessage(`{"n":2}`), CreatedAt: t0, LastOperation: ok},
			&ccBinding{GUID: "new", AppGUID: app.GUID, Credentials: json.RawMessage(`{"n":3}`), CreatedAt: t0.Add(time.Hour), LastOperation: ok},
			&ccBinding{GUID: "pending", AppGUID: app.GUID, CreatedAt: t0.Add(5 * time.Hour), LastOperation: ccLastOperation{Type: "create", State: "in progress"}},
			&ccBinding{GUID: "foreign", AppGUID: other.GUID, Credentials: json.RawMessage(`{"n":4}`), CreatedAt: t0.Add(time.Hour), LastOperation: ok}),
		mk("earlier", "xsuaa", &ccBinding{GUID: "b2", Name: "bn", AppGUID: app.GUID, Credentials: json.RawMessage(`{"n":5}`),
			VolumeMounts: json.RawMessage(`[{"container_dir": "/d", "mode": "r", "device_type": "shared", "device": {"volume_id": "v"}}]`),
			CreatedAt:    t0.Add(2 * time.Hour), LastOperation: ok}),
	}
	st.Instances[0].Keys = []*ccBinding{{GUID: "key", Name: "k", Credentials: json.RawMessage(`{}`), CreatedAt: t0.Add(9 * time.Hour), LastOperation: ok}}

	env, err := buildAppEnv(st, app)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := writeJSON(&b, env); err != nil {
		t.Fatal(err)
	}
	if keys := objectKeys(t, b.Bytes()); !slices.Equal(keys, []string{"VCAP_SERVICES", "VCAP_APPLICATION"}) {
		t.Fatalf("keys %v", keys)
	}
	var doc struct {
		VCAPServices json.RawMessage `json:"VCAP_SERVICES"`
	}
	_ = json.Unmarshal(b.Bytes(), &doc)
	// Groups in the order of their first binding: identity (t0+1h), then xsuaa (t0+2h).
	if keys := objectKeys(t, doc.VCAPServices); !slices.Equal(keys, []string{"identity", "xsuaa"}) {
		t.Errorf("labels %v", keys)
	}
	want := `{"identity":[{"name":"ias","instance_guid":"ias-guid","instance_name":"ias","binding_guid":"new","binding_name":null,` +
		`"credentials":{"n":3},"syslog_drain_url":null,"volume_mounts":[],"label":"identity","provider":null,"plan":"p","tags":["identity"]}],` +
		`"xsuaa":[{"name":"bn","instance_guid":"earlier-guid","instance_name":"earlier","binding_guid":"b2","binding_name":"bn",` +
		`"credentials":{"n":5},"syslog_drain_url":null,"volume_mounts":[{"container_dir":"/d","mode":"r","device_type":"shared"}],"label":"xsuaa","provider":null,"plan":"p","tags":["xsuaa"]},` +
		`{"name":"later","instance_guid":"later-guid","instance_name":"later","binding_guid":"b1","binding_name":null,` +
		`"credentials":{"n":1},"syslog_drain_url":null,"volume_mounts":[],"label":"xsuaa","provider":null,"plan":"p","tags":["xsuaa"]}]}`
	var compact bytes.Buffer
	_ = json.Compact(&compact, doc.VCAPServices)
	if compact.String() != want {
		t.Errorf("VCAP_SERVICES\n %s\nwant\n %s", compact.String(), want)
	}
}

func TestMergeDefaultEnv(t *testing.T) {
	env := appEnv{VCAPServices: orderedObject{}}
	for _, tc := range []struct {
		existing string
		keys     []string
		ok       bool
	}{
		{"", []string{"VCAP_SERVICES", "VCAP_APPLICATION"}, true},
		{`{"destinations": [], "VCAP_SERVICES": {"old": []}}`, []string{"destinations", "VCAP_SERVICES", "VCAP_APPLICATION"}, true},
		{`[]`, nil, false},
		{`{"a": 1} {}`, nil, false},
	} {
		got, err := mergeDefaultEnv([]byte(tc.existing), env)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.existing, err)
			continue
		}
		if err == nil {
			if keys := objectKeys(t, got); !slices.Equal(keys, tc.keys) {
				t.Errorf("%q: keys %v, want %v", tc.existing, keys, tc.keys)
			}
			if strings.Contains(string(got), "old") {
				t.Errorf("%q: old VCAP_SERVICES kept: %s", tc.existing, got)
			}
		}
	}
}

func TestCCStatePath(t *testing.T) {
	for _, tc := range []struct {
		flag string
		env  map[string]string
		want string
	}{
		{"/f.json", map[string]string{"BROKER_CF_STATE": "/e.json"}, "/f.json"},
		{"", map[string]string{"BROKER_CF_STATE": "/e.json", "HOME": "/h"}, "/e.json"},
		{"", map[string]string{"HOME": "/h"}, "/h/.config/btp-security-broker/cf-state.json"},
		{"", map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/x"}, "/x/btp-security-broker/cf-state.json"},
	} {
		got, err := ccStatePath(tc.flag, func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("ccStatePath(%q, %v) = %q, %v; want %q", tc.flag, tc.env, got, err, tc.want)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fixed settings of every broker the tool starts.
const (
	encryptionKey = "scaletest-encryption-key-0123456789abcdef"
	osbUser       = "scaletest"
	osbPassword   = "scaletest-password"
)

// brokerProc is a running broker binary.
type brokerProc struct {
	cmd     *exec.Cmd
	done    chan error
	dataDir string
	base    string
	started time.Time
	client  *http.Client // trusts the broker's CA, once it is written
}

// startBroker starts bin on dataDir, listening on a free loopback port.
// With cpu set, the broker runs on that core alone (taskset, GOMAXPROCS=1),
// as scripts/load-token.sh runs it.
func startBroker(bin, dataDir, logPath, cpu string) (*brokerProc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		// Only the settings below: an inherited BROKER_DATABASE_URL would
		// measure another store.
		if !strings.HasPrefix(kv, "BROKER_") && !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "VCAP_") {
			env = append(env, kv)
		}
	}
	env = append(env, "BROKER_DATA_DIR="+dataDir, "BROKER_ADDR="+addr,
		"BROKER_USERNAME="+osbUser, "BROKER_PASSWORD="+osbPassword, "BROKER_ENCRYPTION_KEY="+encryptionKey)
	name, args := bin, []string{}
	if cpu != "" {
		env = append(env, "GOMAXPROCS=1")
		name, args = "taskset", []string{"-c", cpu, bin}
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &brokerProc{cmd: cmd, done: make(chan error, 1), dataDir: dataDir, base: "https://localhost:" + portOf(addr)}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	return p, nil
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// pid is the broker's process id (taskset execs the broker in place).
func (p *brokerProc) pid() int { return p.cmd.Process.Pid }

// stop ends the broker with SIGTERM (a graceful shutdown), SIGKILL after
// 30 s.
func (p *brokerProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHealthy polls /healthz every few milliseconds and returns the time
// from process start to the first 200. Until the broker has written its CA
// the poll cannot verify the certificate; it only asks whether the
// process answers.
func (p *brokerProc) waitHealthy(timeout time.Duration) (time.Duration, error) {
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}
	deadline := p.started.Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			return 0, fmt.Errorf("broker exited: %v", err)
		default:
		}
		resp, err := probe.Get(p.base + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				took := time.Since(p.started)
				return took, p.trustCA()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no /healthz 200 within %v", timeout)
}

func (p *brokerProc) trustCA() error {
	pem, err := os.ReadFile(filepath.Join(p.dataDir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("ca.pem: no certificate")
	}
	p.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 4}}
	return nil
}

// token requests a client_credentials token and returns its claims.
func (p *brokerProc) token(clientID, secret string) (map[string]any, int, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	resp, err := p.client.PostForm(p.base+"/oauth/token", form)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("token: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, resp.StatusCode, err
	}
	parts := strings.Split(tr.AccessToken, ".")
	if len(parts) != 3 {
		return nil, resp.StatusCode, errors.New("token: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, resp.StatusCode, err
	}
	var claims map[string]any
	return claims, resp.StatusCode, json.Unmarshal(payload, &claims)
}

// waitToken polls the token endpoint until clientID gets a token and
// returns the time since process start.
func (p *brokerProc) waitToken(clientID, secret string, timeout time.Duration) (time.Duration, map[string]any, error) {
	deadline := p.started.Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		claims, _, err := p.token(clientID, secret)
		if err == nil {
			return time.Since(p.started), claims, nil
		}
		last = err
		time.Sleep(5 * time.Millisecond)
	}
	return 0, nil, fmt.Errorf("no token within %v: %v", timeout, last)
}

// osb sends an OSB request and returns the status and body.
func (p *brokerProc) osb(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(osbUser, osbPassword)
	req.Header.Set("X-Broker-API-Version", "2.15")
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// provisionBody and bindBody are OSB request bodies as Cloud Controller
// sends them.
func provisionBody(spec InstanceSpec) map[string]any {
	return map[string]any{
		"service_id": xsuaaServiceID, "plan_id": xsuaaPlanID,
		"organization_guid": spec.Org, "space_guid": spec.Space,
		"context": ContextJSON(spec.Org, spec.Space, spec.Name), "parameters": json.RawMessage(spec.Params),
	}
}

func bindBody(spec BindingSpec) map[string]any {
	b := map[string]any{"service_id": xsuaaServiceID, "plan_id": xsuaaPlanID, "parameters": json.RawMessage(bindParams)}
	if r := spec.BindResource(); r != nil {
		b["app_guid"] = spec.AppGUID
		b["bind_resource"] = r
	}
	return b
}

func (p *brokerProc) provision(ctx context.Context, spec InstanceSpec) error {
	code, body, err := p.osb(ctx, http.MethodPut, "/v2/service_instances/"+spec.ID, provisionBody(spec))
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("provision %s: %d %s", spec.ID, code, bytes.TrimSpace(body))
	}
	return nil
}

func (p *brokerProc) bind(ctx context.Context, spec BindingSpec) (map[string]any, error) {
	code, body, err := p.osb(ctx, http.MethodPut, "/v2/service_instances/"+spec.InstanceID+"/service_bindings/"+spec.ID, bindBody(spec))
	if err != nil {
		return nil, err
	}
	if code != http.StatusCreated {
		return nil, fmt.Errorf("bind %s: %d %s", spec.ID, code, bytes.TrimSpace(body))
	}
	var res struct {
		Credentials map[string]any `json:"credentials"`
	}
	return res.Credentials, json.Unmarshal(body, &res)
}

// fetchBinding is the OSB fetch binding (GET) of a binding's credentials.
func (p *brokerProc) fetchBinding(ctx context.Context, instanceID, bindingID string) (map[string]any, error) {
	code, body, err := p.osb(ctx, http.MethodGet, "/v2/service_instances/"+instanceID+"/service_bindings/"+bindingID, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("fetch binding %s: %d %s", bindingID, code, bytes.TrimSpace(body))
	}
	var res struct {
		Credentials map[string]any `json:"credentials"`
	}
	return res.Credentials, json.Unmarshal(body, &res)
}

// poolDepths reads the key pool gauges from /metrics.
func (p *brokerProc) poolDepths() (map[int]int, error) {
	resp, err := p.client.Get(p.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[int]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "broker_key_pool_depth_")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 {
			continue
		}
		bits, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.ParseFloat(f[1], 64)
		if err1 == nil && err2 == nil {
			out[bits] = int(n)
		}
	}
	return out, sc.Err()
}

// waitPool waits (bounded) until the background key pool is full, so that
// its key generation does not share the server's core with the
// measurement. The targets are those of cmd/broker/serve.go.
func (p *brokerProc) waitPool(timeout time.Duration) string {
	target := map[int]int{2048: 32, 4096: 4, 8192: 1}
	deadline := time.Now().Add(timeout)
	for {
		d, err := p.poolDepths()
		full := err == nil
		for bits, n := range target {
			if d[bits] < n {
				full = false
			}
		}
		if full || time.Now().After(deadline) {
			return fmt.Sprintf("key pool 2048=%d 4096=%d 8192=%d (full: %v)", d[2048], d[4096], d[8192], full)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// memory is the broker's resident memory from /proc/<pid>/status, in KiB.
type memory struct {
	RSS, Anon, File, Peak int
}

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %s (anon %s, file-backed %s), peak VmHWM %s", mib(m.RSS), mib(m.Anon), mib(m.File), mib(m.Peak))
}

func mib(kib int) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func readMemory(pid int) (memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "VmRSS:":
			m.RSS = n
		case "RssAnon:":
			m.Anon = n
		case "RssFile:":
			m.File = n
		case "VmHWM:":
			m.Peak = n
		}
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, nil
}

// Command scaletest measures the broker with a large store (issue 7): it
// seeds a bbolt data dir with N xsuaa instances of M binding-secret
// bindings each, written through the store API exactly as the broker
// writes them (checked against a probe the real binary provisions and
// binds), then starts the real broker binary on it and prints start time,
// resident memory, token throughput and latency (tools/tokenload) and the
// latency of sequential OSB provisions and binds, each next to the same
// figure for a broker with an empty store measured in the same run.
//
// The broker runs pinned to one core (taskset, GOMAXPROCS=1); run the tool
// itself on another (scripts/load-scale.sh does).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"

	"github.com/ossbroker/btp-security-broker/tools/internal/stats"
)

const (
	layoutSeed   = "scaletest-layout-v1"
	manifestFile = "scaletest.json"
	storeFile    = "broker.db" // cmd/broker/serve.go
)

// manifest records a seeded data dir, so that -data can reuse it.
type manifest struct {
	Layout   Layout              `json:"layout"`
	Template CredentialsTemplate `json:"template"`
}

type options struct {
	instances, bindings, batch, ops, conc, rounds int
	data, brokerBin, tokenloadBin, cpu            string
	keep                                          bool
	tokenDur, poolWait                            time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.instances, "instances", 100000, "xsuaa instances to seed")
	flag.IntVar(&o.bindings, "bindings-per-instance", 10, "binding-secret bindings per seeded instance")
	flag.StringVar(&o.data, "data", "", "data dir: reused if it holds a seeded store ("+manifestFile+"), else seeded and kept")
	flag.BoolVar(&o.keep, "keep", false, "keep the seeded data dir (printed) instead of removing it")
	flag.StringVar(&o.brokerBin, "broker", "", "broker binary (go build ./cmd/broker)")
	flag.StringVar(&o.tokenloadBin, "tokenload", "", "tokenload binary (go build ./tools/tokenload)")
	flag.StringVar(&o.cpu, "server-cpu", "1", "core the broker is pinned to with taskset and GOMAXPROCS=1 (empty: not pinned)")
	flag.IntVar(&o.batch, "batch", 500, "instances (with their bindings) per seeding transaction")
	flag.IntVar(&o.ops, "ops", 200, "sequential provisions and binds measured")
	flag.IntVar(&o.conc, "c", 8, "token load concurrency")
	flag.IntVar(&o.rounds, "rounds", 3, "token load rounds")
	flag.DurationVar(&o.tokenDur, "d", 5*time.Second, "duration of one token load round")
	flag.DurationVar(&o.poolWait, "pool-wait", 5*time.Minute, "longest wait for the broker's key pool to fill before measuring")
	flag.Parse()
	if o.brokerBin == "" || o.tokenloadBin == "" {
		fail(errors.New("-broker and -tokenload are required"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scaletest:", err)
	os.Exit(1)
}

func run(ctx context.Context, o options) error {
	work, err := os.MkdirTemp("", "scaletest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	dataDir := o.data
	if dataDir == "" {
		dataDir = filepath.Join(work, "seeded")
		if o.keep {
			if dataDir, err = os.MkdirTemp("", "scaletest-data-"); err != nil {
				return err
			}
		}
	}
	m, err := loadManifest(dataDir)
	switch {
	case err == nil:
		fmt.Printf("reusing %s: %d instances × %d bindings (flags -instances/-bindings-per-instance ignored)\n",
			dataDir, m.Layout.Instances, m.Layout.Bindings)
	case errors.Is(err, os.ErrNotExist):
		if m, err = seedDir(ctx, o, dataDir, work); err != nil {
			return err
		}
		if o.keep || o.data != "" {
			fmt.Printf("seeded data dir kept: %s (reuse with -data %s)\n", dataDir, dataDir)
		}
	default:
		return err
	}
	if fi, err := os.Stat(filepath.Join(dataDir, storeFile)); err == nil {
		fmt.Printf("data file: %s %.0f MiB\n", storeFile, float64(fi.Size())/(1<<20))
	}

	checks := &checker{}
	seeded, empty, err := measure(ctx, o, dataDir, work, m, checks)
	if err != nil {
		return err
	}
	printSummary(&m.Layout, seeded, empty)
	if checks.failed > 0 {
		return fmt.Errorf("%d checks failed", checks.failed)
	}
	return nil
}

func loadManifest(dir string) (*manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestFile, err)
	}
	return &m, nil
}

// seedDir lets the real broker create the zone, CA, signing key and data
// key on an empty dir and checks, with a probe it provisions and binds,
// that the seeder writes the same records; then it seeds.
func seedDir(ctx context.Context, o options, dataDir, work string) (*manifest, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty and holds no %s", dataDir, manifestFile)
	}
	fmt.Printf("== bootstrap: real broker on the empty data dir ==\n")
	p, err := startBroker(o.brokerBin, dataDir, filepath.Join(work, "bootstrap.log"), "")
	if err != nil {
		return nil, err
	}
	probeIn := InstanceSpec{ID: "scaletest-probe", Org: "probe-org-guid", Space: "probe-space-guid", Name: "probe",
		Params: xsSecurity("scaletestprobe", "probe", map[string]any{"name": "$XSAPPNAME.Read", "description": "read"},
			[]string{"$XSAPPNAME.Admin", "$ACCEPT_GRANTED_AUTHORITIES"})}
	probeB := BindingSpec{ID: "scaletest-probe-binding", InstanceID: probeIn.ID, AppGUID: "probe-app-guid", Space: probeIn.Space}
	var creds map[string]any
	_, err = p.waitHealthy(60 * time.Second)
	if err == nil {
		if err = p.provision(ctx, probeIn); err == nil {
			creds, err = p.bind(ctx, probeB)
		}
	}
	p.stop()
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w (log: %s)", err, filepath.Join(work, "bootstrap.log"))
	}
	probeB.Secret, _ = creds["clientsecret"].(string)
	tmpl := NewCredentialsTemplate(creds)

	st, err := bolt.Open(filepath.Join(dataDir, storeFile))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	sealer, err := credentials.NewSealer(encryptionKey)
	if err != nil {
		return nil, err
	}
	if err := compareProbe(ctx, st, sealer, tmpl, probeIn, probeB); err != nil {
		return nil, fmt.Errorf("the seeder does not write what the broker writes: %w", err)
	}
	fmt.Println("check ok: seeder records equal the records the broker wrote for a probe provision and bind")
	// The probe goes as a deprovision would remove it.
	if err := st.Update(ctx, func(tx store.Tx) error { _, err := tx.DeleteInstance(probeIn.ID); return err }); err != nil {
		return nil, err
	}
	base, err := CurrentSequence(ctx, st)
	if err != nil {
		return nil, err
	}
	m := &manifest{Layout: Layout{Seed: layoutSeed, Instances: o.instances, Bindings: o.bindings, SeqBase: base}, Template: tmpl}

	fmt.Printf("== seeding %d instances × %d bindings (%d per transaction) ==\n", o.instances, o.bindings, o.batch)
	start := time.Now()
	next := 0.1
	err = Seed(ctx, st, &m.Layout, tmpl, sealer, o.batch, func(n int) {
		if float64(n) >= next*float64(o.instances) {
			fmt.Fprintf(os.Stderr, "  %d instances, %.0f s\n", n, time.Since(start).Seconds())
			next += 0.1
		}
	})
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	total := o.instances * (1 + o.bindings)
	fmt.Printf("seeding: %.1f s for %d instances + %d bindings (%.0f records/s)\n",
		took.Seconds(), o.instances, o.instances*o.bindings, float64(total)/took.Seconds())
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return m, os.WriteFile(filepath.Join(dataDir, manifestFile), raw, 0o600)
}

// compareProbe checks the broker's records of the probe against the
// seeder's records for the same requests.
func compareProbe(ctx context.Context, st store.Store, sealer *credentials.Sealer, tmpl CredentialsTemplate, in InstanceSpec, b BindingSpec) error {
	var gotIn *store.Instance
	var gotB *store.Binding
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		if gotIn, err = tx.GetInstance(in.ID); err != nil {
			return err
		}
		gotB, err = tx.GetBinding(b.ID)
		return err
	})
	if err != nil {
		return err
	}
	_, seqText, _ := strings.Cut(gotIn.XSAppName, planSuffix)
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return fmt.Errorf("probe xsappname %q: %w", gotIn.XSAppName, err)
	}
	wantIn, err := BuildInstance(in, seq, gotIn.CreatedAt)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(gotIn, wantIn) {
		return fmt.Errorf("instance record:\nbroker %+v\nseeder %+v", gotIn, wantIn)
	}
	wantB, err := BuildBinding(b, gotIn, tmpl, sealer, gotB.CreatedAt)
	if err != nil {
		return err
	}
	aad := []byte("binding:" + b.ID)
	gotCreds, err := sealer.Open(gotB.SealedCredentials, aad)
	if err != nil {
		return err
	}
	wantCreds, err := sealer.Open(wantB.SealedCredentials, aad)
	if err != nil {
		return err
	}
	if string(gotCreds) != string(wantCreds) {
		return fmt.Errorf("sealed credentials:\nbroker %s\nseeder %s", gotCreds, wantCreds)
	}
	gotB.SealedCredentials, wantB.SealedCredentials = nil, nil
	if !reflect.DeepEqual(gotB, wantB) {
		return fmt.Errorf("binding record:\nbroker %+v\nseeder %+v", gotB, wantB)
	}
	return nil
}

// checker counts failed checks; they are printed and fail the run at the
// end, after every figure has been printed.
type checker struct{ failed int }

func (c *checker) check(ok bool, what string, detail ...any) {
	if ok {
		fmt.Printf("check ok: %s\n", what)
		return
	}
	c.failed++
	fmt.Printf("check FAILED: %s %v\n", what, detail)
}

// result holds the figures of one broker.
type result struct {
	health, firstToken time.Duration
	memStart, memAfter memory
	rates, p50s, p99s  []float64 // per token load round
	tokenErrors        int
	prov, bind         []float64 // ms
}

// side is one of the two brokers measured side by side.
type side struct {
	name     string
	p        *brokerProc
	res      result
	clientID string
	secret   string
	prefix   string
	target   func(k int) opTarget
	afterOps func() // checks once the new instances exist
	logPath  string
}

// expectedCredentials is what fetching binding j of seeded instance i must
// return.
func expectedCredentials(m *manifest, i, j int) (map[string]any, error) {
	l := &m.Layout
	in, err := BuildInstance(l.SeededInstance(i), l.SeqBase+uint64(i)+1, time.Now())
	if err != nil {
		return nil, err
	}
	var d descriptor.Descriptor
	if err := json.Unmarshal(in.Config, &d); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(m.Template.Credentials(in, &d, "binding-secret", l.Secret(i, j)))
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}

func scopesOf(claims map[string]any) []string {
	var out []string
	if list, ok := claims["scope"].([]any); ok {
		for _, s := range list {
			if str, ok := s.(string); ok {
				out = append(out, str)
			}
		}
	}
	return out
}

// measure starts the broker on the seeded store, then one on an empty
// store, and measures both while both run: token load rounds and OSB
// requests alternate between them, so that a change in the load of this
// shared machine hits both alike and the ratios compare like with like.
func measure(ctx context.Context, o options, dataDir, work string, m *manifest, c *checker) (*result, *result, error) {
	seeded, err := startSeeded(ctx, o, dataDir, work, m, c)
	if err != nil {
		return nil, nil, err
	}
	defer seeded.p.stop()
	empty, err := startEmpty(ctx, o, work, c)
	if err != nil {
		return nil, nil, err
	}
	defer empty.p.stop()
	sides := []*side{seeded, empty}

	// Both pools fill on the same core at once: wait for both, so that
	// no key generation (an 8192-bit key takes minutes on one paced core)
	// runs under the measurement.
	deadline := time.Now().Add(o.poolWait)
	for _, sd := range sides {
		fmt.Printf("%s: %s\n", sd.name, sd.p.waitPool(time.Until(deadline)))
	}
	fmt.Printf("== token load: tokenload -c %d, %d rounds of %v per broker, alternating ==\n", o.conc, o.rounds, o.tokenDur)
	for r := 0; r < o.rounds; r++ {
		for _, sd := range sides {
			if err := tokenRound(ctx, o, sd); err != nil {
				return nil, nil, err
			}
		}
	}
	fmt.Printf("== %d sequential provisions, then %d binding-secret binds, per broker, alternating ==\n", o.ops, o.ops)
	if err := osbOps(ctx, o, sides); err != nil {
		return nil, nil, err
	}
	for _, sd := range sides {
		fmt.Printf("%s: provisions %s\n", sd.name, latencies(sd.res.prov))
		fmt.Printf("%s: binds      %s\n", sd.name, latencies(sd.res.bind))
		if sd.afterOps != nil {
			sd.afterOps()
		}
		if sd.res.memAfter, err = readMemory(sd.p.pid()); err != nil {
			return nil, nil, err
		}
		fmt.Printf("%s: memory after the load: %v\n", sd.name, sd.res.memAfter)
	}
	return &seeded.res, &empty.res, nil
}

func startSeeded(ctx context.Context, o options, dataDir, work string, m *manifest, c *checker) (*side, error) {
	l := &m.Layout
	fmt.Printf("== broker on the seeded store (%d instances, %d bindings) ==\n", l.Instances, l.Instances*l.Bindings)
	// The token client is a grant recipient in the middle of the store:
	// its token must carry the Read scope its neighbour grants it.
	r := (l.Instances / 2) / grantEvery * grantEvery
	if r+1 >= l.Instances {
		r = 0
	}
	sd := &side{name: "seeded", clientID: l.ClientID(r), secret: l.Secret(r, 0), logPath: filepath.Join(work, "seeded.log")}
	p, err := startBroker(o.brokerBin, dataDir, sd.logPath, o.cpu)
	if err != nil {
		return nil, err
	}
	sd.p = p
	res := &sd.res
	fail := func(err error) (*side, error) { p.stop(); return nil, fmt.Errorf("%w (log: %s)", err, sd.logPath) }
	if res.health, err = p.waitHealthy(5 * time.Minute); err != nil {
		return fail(err)
	}
	var claims map[string]any
	if res.firstToken, claims, err = p.waitToken(sd.clientID, sd.secret, 5*time.Minute); err != nil {
		return fail(err)
	}
	if res.memStart, err = readMemory(p.pid()); err != nil {
		return fail(err)
	}
	fmt.Printf("start → /healthz 200: %.3f s; start → first token for a seeded binding: %.3f s\n", res.health.Seconds(), res.firstToken.Seconds())
	fmt.Printf("memory after start: %v\n", res.memStart)

	if l.Instances > 1 {
		granted := l.FullAppName(r+1) + ".Read"
		c.check(slices.Contains(scopesOf(claims), granted), fmt.Sprintf("token of seeded instance %d carries %s, granted by seeded instance %d", r, granted, r+1), scopesOf(claims))
	}
	if l.Bindings > 0 {
		for _, ij := range [][2]int{{0, 0}, {r, 0}, {l.Instances - 1, l.Bindings - 1}} {
			i, j := ij[0], ij[1]
			got, err := p.fetchBinding(ctx, l.InstanceID(i), l.BindingID(i, j))
			want, werr := expectedCredentials(m, i, j)
			c.check(err == nil && werr == nil && reflect.DeepEqual(got, want), fmt.Sprintf("OSB fetch of seeded binding %d/%d returns its credentials", i, j), err, werr)
			_, _, err = p.token(l.ClientID(i), l.Secret(i, j))
			c.check(err == nil, fmt.Sprintf("token for seeded binding %d/%d", i, j), err)
		}
		_, code, _ := p.token(l.ClientID(r), l.Secret(r, 0)+"x")
		c.check(code == 401, "a wrong secret for a seeded client is refused (401)", code)
	}

	// New instances reference seeded apps spread over the whole store,
	// each created in its target's space.
	idx := func(k int) int { return (k*7919 + 1) % l.Instances }
	sd.target = func(k int) opTarget {
		i := idx(k)
		return opTarget{app: AppName(i), service: InstanceName(i), org: l.OrgGUID(i), space: l.SpaceGUID(i)}
	}
	sd.prefix = "s" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	sd.afterOps = func() {
		// The first new instance granted its Read scope to seeded app
		// idx(0), which accepts granted authorities: that client's next
		// token must carry it.
		t0 := idx(0)
		if l.Bindings == 0 || o.ops == 0 {
			return
		}
		claims, _, err := p.token(l.ClientID(t0), l.Secret(t0, 0))
		want := "n" + sd.prefix + "000" + planSuffix
		found := false
		for _, s := range scopesOf(claims) {
			found = found || (strings.HasPrefix(s, want) && strings.HasSuffix(s, ".Read"))
		}
		c.check(err == nil && found, fmt.Sprintf("token of seeded instance %d carries the Read scope a new instance granted it", t0), err, scopesOf(claims))
	}
	return sd, nil
}

func startEmpty(ctx context.Context, o options, work string, c *checker) (*side, error) {
	fmt.Printf("== broker on an empty store ==\n")
	sd := &side{name: "empty", prefix: "e", logPath: filepath.Join(work, "empty.log")}
	p, err := startBroker(o.brokerBin, filepath.Join(work, "empty"), sd.logPath, o.cpu)
	if err != nil {
		return nil, err
	}
	sd.p = p
	res := &sd.res
	fail := func(err error) (*side, error) { p.stop(); return nil, fmt.Errorf("%w (log: %s)", err, sd.logPath) }
	if res.health, err = p.waitHealthy(5 * time.Minute); err != nil {
		return fail(err)
	}
	if res.memStart, err = readMemory(p.pid()); err != nil {
		return fail(err)
	}
	fmt.Printf("start → /healthz 200: %.3f s\n", res.health.Seconds())
	fmt.Printf("memory after start: %v\n", res.memStart)
	// One app: the token client and the target of every reference.
	spec := InstanceSpec{ID: "empty-target", Org: "org-guid-empty", Space: "space-guid-empty", Name: "target",
		Params: xsSecurity("target", "target", map[string]any{"name": "$XSAPPNAME.Read", "description": "read"},
			[]string{"$XSAPPNAME.Admin", "$ACCEPT_GRANTED_AUTHORITIES"})}
	if err := p.provision(ctx, spec); err != nil {
		return fail(err)
	}
	creds, err := p.bind(ctx, BindingSpec{ID: "empty-target-b", InstanceID: spec.ID, AppGUID: "app-guid", Space: spec.Space})
	if err != nil {
		return fail(err)
	}
	sd.clientID, _ = creds["clientid"].(string)
	sd.secret, _ = creds["clientsecret"].(string)
	_, _, err = p.token(sd.clientID, sd.secret)
	c.check(err == nil, "token on the empty broker", err)
	tgt := opTarget{app: "target", service: spec.Name, org: spec.Org, space: spec.Space}
	sd.target = func(int) opTarget { return tgt }
	return sd, nil
}

var medianLine = regexp.MustCompile(`^median: c=\d+ tokens/s (\S+)\s+p50 (\S+) ms\s+p99 (\S+) ms\s+errors (\d+)`)

// tokenRound runs one round of tools/tokenload against sd's broker from
// this process's core.
func tokenRound(ctx context.Context, o options, sd *side) error {
	cmd := exec.CommandContext(ctx, o.tokenloadBin, "-url", sd.p.base+"/oauth/token", "-ca", filepath.Join(sd.p.dataDir, "ca.pem"),
		"-client-id", sd.clientID, "-client-secret", sd.secret, "-c", strconv.Itoa(o.conc), "-d", o.tokenDur.String(),
		"-rounds", "1", "-rsa", "0")
	out, err := cmd.CombinedOutput()
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		mm := medianLine.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		found = true
		rate, _ := strconv.ParseFloat(mm[1], 64)
		p50, _ := strconv.ParseFloat(mm[2], 64)
		p99, _ := strconv.ParseFloat(mm[3], 64)
		errs, _ := strconv.Atoi(mm[4])
		sd.res.rates = append(sd.res.rates, rate)
		sd.res.p50s = append(sd.res.p50s, p50)
		sd.res.p99s = append(sd.res.p99s, p99)
		sd.res.tokenErrors += errs
		fmt.Printf("%-6s round %d: c=%d %.0f tokens/s p50 %.2f ms p99 %.2f ms errors %d\n", sd.name, len(sd.res.rates), o.conc, rate, p50, p99, errs)
	}
	if !found {
		return fmt.Errorf("tokenload: %v: %s", err, out)
	}
	return nil
}

// opTarget is an existing instance a new one references.
type opTarget struct{ app, service, org, space string }

// osbOps provisions o.ops new instances on each broker, one request at a
// time, alternating between the brokers; each instance lives in the space
// of its side's target(k) and references it three times (a grant to it,
// its Read scope as an authority and as a foreign scope by instance name).
// Then it binds each new instance once with a binding secret, alike.
func osbOps(ctx context.Context, o options, sides []*side) error {
	id := func(sd *side, k int) string { return fmt.Sprintf("scaletest-%s-%03d", sd.prefix, k) }
	for k := 0; k < o.ops; k++ {
		for _, sd := range sides {
			t := sd.target(k)
			spec := InstanceSpec{ID: id(sd, k), Org: t.org, Space: t.space, Name: fmt.Sprintf("new-%s-%03d", sd.prefix, k),
				Params: NewAppXsSecurity(fmt.Sprintf("n%s%03d", sd.prefix, k), t.app, t.service)}
			t0 := time.Now()
			if err := sd.p.provision(ctx, spec); err != nil {
				return fmt.Errorf("%s: %w", sd.name, err)
			}
			sd.res.prov = append(sd.res.prov, msSince(t0))
		}
	}
	for k := 0; k < o.ops; k++ {
		for _, sd := range sides {
			iid := id(sd, k)
			spec := BindingSpec{ID: iid + "-b", InstanceID: iid, AppGUID: uuidOf([]byte(iid + "-app-guid-0123")), Space: sd.target(k).space}
			t0 := time.Now()
			if _, err := sd.p.bind(ctx, spec); err != nil {
				return fmt.Errorf("%s: %w", sd.name, err)
			}
			sd.res.bind = append(sd.res.bind, msSince(t0))
		}
	}
	return nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

func latencies(xs []float64) string {
	return fmt.Sprintf("p50 %.2f ms  p99 %.2f ms  max %.2f ms", stats.Percentile(xs, 0.5), stats.Percentile(xs, 0.99), stats.Percentile(xs, 1))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func printSummary(l *Layout, s, e *result) {
	fmt.Printf("\n== summary: seeded store (%d instances, %d bindings) vs empty store, same run ==\n", l.Instances, l.Instances*l.Bindings)
	row := func(name, a, b, r string) { fmt.Printf("%-34s %-30s %-30s %s\n", name, a, b, r) }
	row("", "seeded", "empty", "seeded/empty")
	row("start → /healthz 200", fmt.Sprintf("%.3f s", s.health.Seconds()), fmt.Sprintf("%.3f s", e.health.Seconds()), "")
	row("start → first seeded token", fmt.Sprintf("%.3f s", s.firstToken.Seconds()), "-", "")
	row("VmRSS after start", mib(s.memStart.RSS), mib(e.memStart.RSS), "")
	row("  anon / file-backed", mib(s.memStart.Anon)+" / "+mib(s.memStart.File), mib(e.memStart.Anon)+" / "+mib(e.memStart.File), "")
	row("VmRSS after load", mib(s.memAfter.RSS), mib(e.memAfter.RSS), "")
	row("  anon / file-backed", mib(s.memAfter.Anon)+" / "+mib(s.memAfter.File), mib(e.memAfter.Anon)+" / "+mib(e.memAfter.File), "")
	row("VmHWM (peak RSS)", mib(s.memAfter.Peak), mib(e.memAfter.Peak), "")
	sr, er := stats.Percentile(s.rates, 0.5), stats.Percentile(e.rates, 0.5)
	row("tokens/s (c=8, median of rounds)", fmt.Sprintf("%.0f", sr), fmt.Sprintf("%.0f", er), ratio(sr, er))
	row("token p50 (median of rounds)", fmt.Sprintf("%.2f ms", stats.Percentile(s.p50s, 0.5)), fmt.Sprintf("%.2f ms", stats.Percentile(e.p50s, 0.5)), ratio(stats.Percentile(s.p50s, 0.5), stats.Percentile(e.p50s, 0.5)))
	row("token p99 (median of rounds)", fmt.Sprintf("%.2f ms", stats.Percentile(s.p99s, 0.5)), fmt.Sprintf("%.2f ms", stats.Percentile(e.p99s, 0.5)), ratio(stats.Percentile(s.p99s, 0.5), stats.Percentile(e.p99s, 0.5)))
	row("token errors", strconv.Itoa(s.tokenErrors), strconv.Itoa(e.tokenErrors), "")
	for _, x := range []struct {
		name string
		a, b []float64
	}{{"provision", s.prov, e.prov}, {"bind (binding-secret)", s.bind, e.bind}} {
		row(x.name+" p50", fmt.Sprintf("%.2f ms", stats.Percentile(x.a, 0.5)), fmt.Sprintf("%.2f ms", stats.Percentile(x.b, 0.5)), ratio(stats.Percentile(x.a, 0.5), stats.Percentile(x.b, 0.5)))
		row(x.name+" p99", fmt.Sprintf("%.2f ms", stats.Percentile(x.a, 0.99)), fmt.Sprintf("%.2f ms", stats.Percentile(x.b, 0.99)), ratio(stats.Percentile(x.a, 0.99), stats.Percentile(x.b, 0.99)))
		row(x.name+" max", fmt.Sprintf("%.2f ms", stats.Percentile(x.a, 1)), fmt.Sprintf("%.2f ms", stats.Percentile(x.b, 1)), "")
	}
}

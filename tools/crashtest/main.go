// Command crashtest checks that the broker keeps every acknowledged write
// across a crash. It runs the broker binary as a separate process on one
// data directory, drives it with concurrent OSB calls (provision, bind with
// a secret or an x509 certificate, identical re-bind, unbind, deprovision),
// kills it with SIGKILL at seeded random moments, restarts it on the same
// data directory and checks:
//
//   - lost: a binding whose creation was acknowledged (2xx) and not undone
//     no longer authenticates (client_credentials token), or an acknowledged
//     instance is gone;
//   - resurrected: a binding or instance whose removal was acknowledged is
//     back (its secret gets a token, GET answers 200);
//   - partial: an instance that GET shows but whose identical re-provision
//     does not answer 200 (checked once per instance, a write transaction
//     each, and for all instances at the end), or a binding whose GET and
//     token disagree.
//
// A request that got no answer (the broker died under it) may or may not
// have happened; either is accepted, and GET tells which, so later cycles
// know the truth.
//
// The operations form one stream of -cycles × -ops requests; cycle c is
// the window [c·ops, (c+1)·ops) and holds one kill at a random operation of
// it (plus a random delay of up to 15 ms, so requests are in flight). After
// each kill the broker is restarted and everything ever created or removed
// is verified before the stream goes on; after the last operation the
// broker is killed (unless the last cycle's kill is still on its way) and
// verified once more. It prints a summary line and exits 1 on
// any loss, resurrection, partial state or unexpected answer.
//
// -rollback checks the checker: it puts back the store file as it was at
// the first kill before the last restart, as a broker that acknowledged
// writes it never made durable would, and the run must fail.
//
//	go build -o /tmp/broker ./cmd/broker
//	go run ./tools/crashtest -broker /tmp/broker -cycles 20 -ops 1000
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Catalog ids from catalog.yml (stable forever).
const (
	xsuaaServiceID     = "94b57714-eb17-42a9-bb73-659a953e7531"
	xsuaaApplicationID = "c274f824-9b3a-4a8d-b607-0b01d3992fe5"
)

// The broker's environment.
const (
	username      = "crash-broker-user"
	password      = "crash-Pa55w0rd"
	encryptionKey = "crashtest-0123456789abcdef0123456789abcd" // 40 characters
)

// storeFile is the broker's bbolt file in the data directory.
const storeFile = "broker.db"

// maxReports bounds the failure details printed.
const maxReports = 50

type options struct {
	cycles, ops, concurrency int
	broker, dir              string
	seed                     uint64
	keep                     bool
	rollback                 bool
}

func main() {
	var o options
	flag.IntVar(&o.cycles, "cycles", 20, "kill/restart cycles")
	flag.IntVar(&o.ops, "ops", 1000, "operations per cycle")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent workers")
	flag.StringVar(&o.broker, "broker", "", "path of the broker binary (go build -o <path> ./cmd/broker)")
	flag.StringVar(&o.dir, "dir", "", "work directory (data dir and broker log); default a new temporary one, removed after a clean run")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the kill points and the operation mix")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory after a clean run")
	flag.BoolVar(&o.rollback, "rollback", false, "self-check of the verification: put back the store file as it was at the first kill before the last restart (needs -cycles 2 or more); the run must then fail")
	flag.Parse()
	if o.broker == "" || o.cycles < 1 || o.ops < 1 || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "crashtest: -broker is required; -cycles, -ops and -concurrency must be positive")
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	dir, temp := o.dir, o.dir == ""
	if temp {
		var err error
		if dir, err = os.MkdirTemp("", "crashtest-"); err != nil {
			fmt.Fprintln(os.Stderr, "crashtest:", err)
			return 2
		}
	}
	bin, err := filepath.Abs(o.broker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 2
	}
	t, err := newTester(o, bin, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		return 2
	}
	err = t.run()
	t.p.stop()
	t.printSummary(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
	}
	if err != nil || t.failed() {
		fmt.Fprintf(os.Stderr, "crashtest: work directory kept: %s (broker log: %s)\n", dir, t.p.logPath)
		return 1
	}
	if temp && !o.keep {
		os.RemoveAll(dir)
	}
	return 0
}

// state is what the test knows of an instance or binding.
type state int

const (
	absent  state = iota // never created (or refused)
	live                 // exists: acknowledged or observed
	dead                 // removed: acknowledged or observed
	unknown              // a request for it got no answer
)

// instance is a service instance as the test knows it.
type instance struct {
	id    string
	x509  bool   // its descriptor allows x509 bindings
	body  []byte // the provision body; identical re-provision answers 200
	state state
	// pending is the request whose answer is missing while state is
	// unknown ("provision" or "deprovision").
	pending string
	// users counts binding requests in flight; busy marks a provision or
	// deprovision in flight. Deprovision waits for users == 0.
	users      int
	busy       bool
	unanswered bool // pending had no answer (rather than an unexpected one)
	flagged    bool // a failure was reported; not counted again
	// reprovisioned: an identical re-provision answered 200 after the
	// instance became live. It is a write transaction (an fsync), so it
	// runs once per instance and for all of them at the final check.
	reprovisioned bool
	bindings      []*binding
	history       []string
}

// binding is a service binding as the test knows it.
type binding struct {
	id         string
	in         *instance
	x509       bool
	body       []byte
	creds      *creds // nil until known
	state      state
	pending    string // "bind" or "unbind" while state is unknown
	unanswered bool   // pending had no answer (rather than an unexpected one)
	busy       bool
	flagged    bool
	history    []string
}

// creds is what authenticates a binding.
type creds struct {
	clientID, secret  string
	url, certURL      string
	cert              *tls.Certificate
	secretOrCertPrint string // compared on identical re-bind
}

// counts are the run's figures.
type counts struct {
	ops, provisions, binds, x509Binds, rebinds, unbinds, deprovisions int
	unanswered, happened, notHappened, rebindsUnanswered              int
	lost, resurrected, partialInstances, partialBindings              int
	kills                                                             int
	opsTime, verifyTime                                               time.Duration
}

// tester holds the model, the broker process and the clients.
type tester struct {
	o    options
	p    *process
	c    *client
	kill *rand.Rand // kill points and delays

	mu         sync.Mutex
	instances  []*instance
	bindings   []*binding
	live       []*instance // live instances, candidates of bind/deprovision
	bound      []*binding  // live bindings, candidates of unbind/re-bind
	n          counts
	unexpected map[string]int
	reports    []string
	cycle      int  // kills so far; names the verification in histories
	final      bool // the last verification, which re-provisions all
}

func newTester(o options, bin, dir string) (*tester, error) {
	data := filepath.Join(dir, "data")
	// A data directory of an earlier run holds the same (seeded) ids.
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: the run needs a fresh data directory", data)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + port
	p := &process{
		bin:     bin,
		dataDir: data,
		addr:    addr,
		logPath: filepath.Join(dir, "broker.log"),
		env: append(ownEnv(),
			"BROKER_DATA_DIR="+data,
			"BROKER_ADDR="+addr,
			"BROKER_PUBLIC_URL=https://localhost:"+port,
			"BROKER_IDENTITY_URL=https://127.0.0.1:"+port,
			"BROKER_USERNAME="+username,
			"BROKER_PASSWORD="+password,
			"BROKER_ENCRYPTION_KEY="+encryptionKey,
		),
	}
	return &tester{
		o:          o,
		p:          p,
		kill:       rand.New(rand.NewPCG(o.seed, 0)),
		unexpected: map[string]int{},
	}, nil
}

// ownEnv is the environment without the broker's and Cloud Foundry's
// variables, so that a database URL or VCAP_SERVICES of the caller cannot
// redirect the broker away from the test's data directory.
func ownEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BROKER_") && !strings.HasPrefix(kv, "VCAP_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// run drives the operation stream with one kill per cycle, then kills and
// verifies once more at the end.
func (t *tester) run() error {
	if err := t.restart(); err != nil {
		return err
	}
	total := t.o.cycles * t.o.ops
	jobs := make(chan int)
	var inflight, workers sync.WaitGroup
	for range t.o.concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range jobs {
				t.operate(i)
				inflight.Done()
			}
		}()
	}
	defer func() {
		close(jobs)
		workers.Wait()
	}()

	k := newKill()
	kills := 0     // kills done; the next one belongs to cycle kills
	armed := false // a goroutine is about to kill (k)
	killAt := t.nextKill(0, 0)
	started := time.Now()
	for i := 0; i < total; {
		select {
		case <-k.stop: // the kill wins over further dispatch
		default:
			inflight.Add(1)
			select {
			case jobs <- i:
				if i == killAt {
					armed = true
					go t.killAfter(time.Duration(t.kill.IntN(15_000))*time.Microsecond, k)
				}
				i++
				continue
			case <-k.stop:
				inflight.Done()
			}
		}
		// The broker is being killed: let the in-flight requests fail,
		// restart and verify, then go on towards the next kill point.
		inflight.Wait()
		<-k.done
		t.n.opsTime += time.Since(started)
		t.cycle = kills
		if err := t.restartAndVerify(); err != nil {
			return err
		}
		kills++
		k, armed = newKill(), false
		killAt = t.nextKill(kills, i)
		started = time.Now()
	}
	inflight.Wait()
	t.n.opsTime += time.Since(started)
	// The operations after the last kill: kill once more (unless the
	// last cycle's kill is still on its way) and verify.
	if armed {
		<-k.done
	} else {
		if err := t.p.kill(); err != nil {
			return err
		}
		t.mu.Lock()
		t.n.kills++
		t.mu.Unlock()
	}
	t.cycle, t.final = kills, true
	return t.restartAndVerify()
}

// nextKill returns the operation index at which cycle c's kill is armed:
// a random one of the cycle's window, but not before from (the previous
// kill may have come late, after a few operations of this window).
func (t *tester) nextKill(c, from int) int {
	if c >= t.o.cycles {
		return -1
	}
	return max(c*t.o.ops+t.kill.IntN(t.o.ops), from)
}

// kill is one pending kill: stop is closed when dispatch must stop (just
// before SIGKILL, so the requests in flight are the ones it hits), done
// when the process is gone.
type kill struct{ stop, done chan struct{} }

func newKill() kill { return kill{stop: make(chan struct{}), done: make(chan struct{})} }

func (t *tester) killAfter(d time.Duration, k kill) {
	time.Sleep(d)
	close(k.stop)
	if err := t.p.kill(); err != nil {
		fmt.Fprintln(os.Stderr, "crashtest: kill:", err)
	}
	t.mu.Lock()
	t.n.kills++
	t.mu.Unlock()
	close(k.done)
}

func (t *tester) restart() error {
	if t.c != nil {
		t.c.close()
	}
	if t.o.rollback {
		// Simulates a broker that acknowledges what it never makes
		// durable: everything after the first kill is forgotten.
		db := filepath.Join(t.p.dataDir, storeFile)
		var err error
		switch {
		case t.final && t.n.kills > 1:
			err = copyFile(db, db+".first-kill")
		case t.n.kills == 1:
			err = copyFile(db+".first-kill", db)
		}
		if err != nil {
			return err
		}
	}
	roots, err := t.p.start()
	if err != nil {
		return err
	}
	t.c = newClient(t.p.addr, roots)
	return nil
}

// copyFile copies src to dst.
func copyFile(dst, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

func (t *tester) restartAndVerify() error {
	if err := t.restart(); err != nil {
		return err
	}
	start := time.Now()
	err := t.verify()
	t.n.verifyTime += time.Since(start)
	return err
}

// failed reports whether anything was lost, resurrected, partial or
// unexpected.
func (t *tester) failed() bool {
	n := t.n
	return n.lost+n.resurrected+n.partialInstances+n.partialBindings > 0 || len(t.unexpected) > 0
}

func (t *tester) printSummary(w io.Writer) {
	n := t.n
	fmt.Fprintf(w, "crashtest: %d cycles, %d operations, %d acknowledged binds, %d acknowledged unbinds, %d lost, %d resurrected, %d partial instances\n",
		t.o.cycles, n.ops, n.binds, n.unbinds, n.lost, n.resurrected, n.partialInstances)
	fmt.Fprintf(w, "crashtest: %d kills (SIGKILL), %d provisions (%d instances live), %d deprovisions, %d x509 binds, %d identical re-binds, %d bindings live, %d partial bindings; %d requests unanswered (%d had happened, %d had not; and %d identical re-binds); operations %s, verification %s\n",
		n.kills, n.provisions, t.countLive(), n.deprovisions, n.x509Binds, n.rebinds, t.countBound(), n.partialBindings,
		n.unanswered, n.happened, n.notHappened, n.rebindsUnanswered, n.opsTime.Round(time.Millisecond), n.verifyTime.Round(time.Millisecond))
	if len(t.unexpected) > 0 {
		keys := make([]string, 0, len(t.unexpected))
		for k := range t.unexpected {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "crashtest: unexpected answer %s (%d times)\n", k, t.unexpected[k])
		}
	}
}

func (t *tester) countLive() int {
	n := 0
	for _, in := range t.instances {
		if in.state == live {
			n++
		}
	}
	return n
}

func (t *tester) countBound() int {
	n := 0
	for _, b := range t.bindings {
		if b.state == live {
			n++
		}
	}
	return n
}

// report records a failure of kind about an entity with its history.
// Callers hold t.mu.
func (t *tester) report(kind, what string, history []string) {
	line := fmt.Sprintf("crashtest: %s: %s\n    history: %s", kind, what, strings.Join(history, "; "))
	t.reports = append(t.reports, line)
	if len(t.reports) <= maxReports {
		fmt.Fprintln(os.Stderr, line)
	}
}

// noteUnexpected counts an answer outside the protocol. Callers hold t.mu.
func (t *tester) noteUnexpected(what string, a answer) {
	key := fmt.Sprintf("%s → %d", what, a.status)
	if t.unexpected[key] == 0 {
		fmt.Fprintf(os.Stderr, "crashtest: unexpected answer %s: %.300s\n", key, a.body)
	}
	t.unexpected[key]++
}

// ---------------------------------------------------------------------------
// Operations

type opKind int

const (
	opProvision opKind = iota
	opBind
	opRebind
	opUnbind
	opDeprovision
)

// op is one chosen operation with its reserved target.
type op struct {
	i    int
	kind opKind
	in   *instance
	b    *binding
}

// The operation mix in percent (cumulative): enough binds and unbinds to
// exercise the credential paths, few enough deprovisions to keep
// instances with several bindings around.
const (
	pctProvision   = 12
	pctBind        = pctProvision + 45
	pctRebind      = pctBind + 5
	pctUnbind      = pctRebind + 34
	pctDeprovision = 100
	// pctX509 of the binds on an x509-capable instance are x509 bindings
	// (an RSA key each, hence rare).
	pctX509 = 20
	// minLive instances are kept before anything else is done.
	minLive = 4
)

// operate runs operation i: choose and reserve under the lock, send
// without it, record the answer.
func (t *tester) operate(i int) {
	rng := rand.New(rand.NewPCG(t.o.seed, uint64(i)+1))
	o := t.pick(i, rng)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch o.kind {
	case opProvision:
		a, err := t.c.osb(ctx, http.MethodPut, instancePath(o.in), o.in.body)
		t.provisioned(o, a, err)
	case opBind, opRebind:
		a, err := t.c.osb(ctx, http.MethodPut, bindingPath(o.b), o.b.body)
		t.bindAnswered(o, a, err)
	case opUnbind:
		a, err := t.c.osb(ctx, http.MethodDelete, bindingPath(o.b), nil)
		t.unbound(o, a, err)
	case opDeprovision:
		a, err := t.c.osb(ctx, http.MethodDelete, instancePath(o.in), nil)
		t.deprovisioned(o, a, err)
	}
}

// pick chooses operation i and reserves its target.
func (t *tester) pick(i int, rng *rand.Rand) op {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n.ops++
	x := rng.IntN(100)
	if len(t.live) >= minLive {
		switch {
		case x < pctProvision:
		case x < pctBind:
			if in := t.randomInstance(rng, false); in != nil {
				return t.newBinding(i, rng, in)
			}
		case x < pctRebind:
			if b := t.randomBinding(rng); b != nil {
				b.busy = true
				b.in.users++
				return op{i: i, kind: opRebind, in: b.in, b: b}
			}
		case x < pctUnbind:
			if b := t.randomBinding(rng); b != nil {
				b.busy = true
				b.in.users++
				return op{i: i, kind: opUnbind, in: b.in, b: b}
			}
		default:
			if in := t.randomInstance(rng, true); in != nil {
				in.busy = true
				return op{i: i, kind: opDeprovision, in: in}
			}
		}
	}
	if x >= pctProvision && len(t.live) > 0 {
		// No free target for the chosen kind: bind instead.
		if in := t.randomInstance(rng, false); in != nil {
			return t.newBinding(i, rng, in)
		}
	}
	return t.newInstance(i, rng)
}

// randomInstance returns a live instance free for a bind, or for a
// deprovision (nothing in flight on it) when exclusive; nil if a few
// tries find none.
func (t *tester) randomInstance(rng *rand.Rand, exclusive bool) *instance {
	for range 8 {
		in := t.live[rng.IntN(len(t.live))]
		if in.busy || (exclusive && in.users > 0) {
			continue
		}
		return in
	}
	return nil
}

// randomBinding returns a live binding nobody is working on, or nil.
func (t *tester) randomBinding(rng *rand.Rand) *binding {
	if len(t.bound) == 0 {
		return nil
	}
	for range 8 {
		b := t.bound[rng.IntN(len(t.bound))]
		if b.busy || b.in.busy || b.in.state != live {
			continue
		}
		return b
	}
	return nil
}

func (t *tester) newInstance(i int, rng *rand.Rand) op {
	id := uuidFrom(rng)
	in := &instance{id: id, x509: rng.IntN(2) == 0, busy: true}
	in.body = provisionBody(in, "crash-"+id[:8])
	t.instances = append(t.instances, in)
	return op{i: i, kind: opProvision, in: in}
}

func (t *tester) newBinding(i int, rng *rand.Rand, in *instance) op {
	b := &binding{id: uuidFrom(rng), in: in}
	b.x509 = in.x509 && rng.IntN(100) < pctX509
	var params any
	if b.x509 {
		params = map[string]any{"credential-type": "x509", "x509": map[string]any{"key-length": 2048, "validity": 7, "validity-type": "DAYS"}}
	}
	app := ""
	if rng.IntN(2) == 0 {
		app = uuidFrom(rng)
	}
	b.body = bindBody(in, app, params)
	b.busy = true
	in.users++
	in.bindings = append(in.bindings, b)
	t.bindings = append(t.bindings, b)
	return op{i: i, kind: opBind, in: in, b: b}
}

// tag names operation o in a history: its cycle and index.
func (t *tester) tag(o op) string { return fmt.Sprintf("c%d#%d", o.i/t.o.ops, o.i) }

// provisioned records the answer to a provision.
func (t *tester) provisioned(o op, a answer, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := o.in
	in.busy = false
	switch {
	case err != nil:
		in.history = append(in.history, fmt.Sprintf("%s provision → no answer (%v)", t.tag(o), shortErr(err)))
		in.state, in.pending, in.unanswered = unknown, "provision", true
		t.n.unanswered++
	case a.status == http.StatusCreated:
		in.history = append(in.history, fmt.Sprintf("%s provision → 201", t.tag(o)))
		in.state = live
		t.live = append(t.live, in)
		t.n.provisions++
	default:
		in.history = append(in.history, fmt.Sprintf("%s provision → %d", t.tag(o), a.status))
		t.noteUnexpected("provision", a)
		in.state, in.pending = unknown, "provision" // GET tells
	}
}

// bindAnswered records the answer to a bind or an identical re-bind.
func (t *tester) bindAnswered(o op, a answer, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := o.b
	b.busy = false
	b.in.users--
	what := "bind"
	if o.kind == opRebind {
		what = "re-bind"
	}
	var cr *creds
	if err == nil && (a.status == http.StatusCreated || a.status == http.StatusOK) {
		cr, err = parseCreds(a.body)
	}
	switch {
	case err != nil:
		b.history = append(b.history, fmt.Sprintf("%s %s → no answer (%v)", t.tag(o), what, shortErr(err)))
		if o.kind == opRebind {
			// A re-bind cannot remove anything: the binding stays live
			// and the next verification checks it.
			t.n.rebindsUnanswered++
			return
		}
		t.n.unanswered++
		b.state, b.pending, b.unanswered = unknown, "bind", true
	case o.kind == opBind && a.status == http.StatusCreated:
		b.history = append(b.history, fmt.Sprintf("%s bind → 201", t.tag(o)))
		b.creds, b.state = cr, live
		t.bound = append(t.bound, b)
		t.n.binds++
		if b.x509 {
			t.n.x509Binds++
		}
	case o.kind == opRebind && a.status == http.StatusOK:
		b.history = append(b.history, fmt.Sprintf("%s re-bind → 200", t.tag(o)))
		t.n.rebinds++
		if cr.secretOrCertPrint != b.creds.secretOrCertPrint {
			t.n.partialBindings++
			b.flagged = true
			t.report("partial", fmt.Sprintf("binding %s of instance %s: identical re-bind returned other credentials", b.id, b.in.id), b.history)
		}
	case o.kind == opRebind && a.status == http.StatusCreated:
		b.history = append(b.history, fmt.Sprintf("%s re-bind → 201", t.tag(o)))
		t.n.lost++
		b.flagged = true
		t.report("lost", fmt.Sprintf("binding %s of instance %s: identical re-bind created it anew (201)", b.id, b.in.id), b.history)
		b.creds = cr
	default:
		b.history = append(b.history, fmt.Sprintf("%s %s → %d", t.tag(o), what, a.status))
		t.noteUnexpected(what, a)
		if o.kind == opBind {
			b.state, b.pending = unknown, "bind" // GET tells
		}
	}
}

// unbound records the answer to an unbind.
func (t *tester) unbound(o op, a answer, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := o.b
	b.busy = false
	b.in.users--
	switch {
	case err != nil:
		b.history = append(b.history, fmt.Sprintf("%s unbind → no answer (%v)", t.tag(o), shortErr(err)))
		b.state, b.pending, b.unanswered = unknown, "unbind", true
		t.n.unanswered++
		t.bound = remove(t.bound, b)
	case a.status == http.StatusOK:
		b.history = append(b.history, fmt.Sprintf("%s unbind → 200", t.tag(o)))
		b.state = dead
		t.bound = remove(t.bound, b)
		t.n.unbinds++
	case a.status == http.StatusGone:
		b.history = append(b.history, fmt.Sprintf("%s unbind → 410", t.tag(o)))
		b.state = dead
		t.bound = remove(t.bound, b)
		if !b.flagged {
			b.flagged = true
			t.n.lost++
			t.report("lost", fmt.Sprintf("binding %s of instance %s: unbind answered 410 Gone for a live binding", b.id, b.in.id), b.history)
		}
	default:
		b.history = append(b.history, fmt.Sprintf("%s unbind → %d", t.tag(o), a.status))
		t.noteUnexpected("unbind", a)
		b.state, b.pending = unknown, "unbind"
		t.bound = remove(t.bound, b)
	}
}

// deprovisioned records the answer to a deprovision.
func (t *tester) deprovisioned(o op, a answer, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	in := o.in
	in.busy = false
	switch {
	case err != nil:
		in.history = append(in.history, fmt.Sprintf("%s deprovision → no answer (%v)", t.tag(o), shortErr(err)))
		in.state, in.pending, in.unanswered = unknown, "deprovision", true
		t.n.unanswered++
		t.live = remove(t.live, in)
	case a.status == http.StatusOK:
		in.history = append(in.history, fmt.Sprintf("%s deprovision → 200", t.tag(o)))
		t.n.deprovisions++
		t.instanceGone(in)
	case a.status == http.StatusGone:
		in.history = append(in.history, fmt.Sprintf("%s deprovision → 410", t.tag(o)))
		if !in.flagged {
			in.flagged = true
			t.n.lost++
			t.report("lost", fmt.Sprintf("instance %s: deprovision answered 410 Gone for a live instance", in.id), in.history)
		}
		t.instanceGone(in)
	default:
		in.history = append(in.history, fmt.Sprintf("%s deprovision → %d", t.tag(o), a.status))
		t.noteUnexpected("deprovision", a)
		in.state, in.pending = unknown, "deprovision"
		t.live = remove(t.live, in)
	}
}

// instanceGone marks in and its bindings dead. Callers hold t.mu.
func (t *tester) instanceGone(in *instance) {
	in.state = dead
	t.live = remove(t.live, in)
	for _, b := range in.bindings {
		if b.state == live || b.state == unknown {
			b.state = dead
			b.history = append(b.history, "its instance was deprovisioned")
			t.bound = remove(t.bound, b)
		}
	}
}

func remove[T comparable](s []T, x T) []T {
	for i, y := range s {
		if y == x {
			s[i] = s[len(s)-1]
			return s[:len(s)-1]
		}
	}
	return s
}

// ---------------------------------------------------------------------------
// Verification

// verify runs after a restart with nothing in flight: first it resolves
// the unanswered requests by GET, then it checks every instance and
// binding ever created, concurrently.
func (t *tester) verify() error {
	var resolveInst, resolveBind []func() error
	for _, in := range t.instances {
		if in.state == unknown {
			resolveInst = append(resolveInst, func() error { return t.resolveInstance(in) })
		}
	}
	if err := t.parallel(resolveInst); err != nil {
		return err
	}
	for _, b := range t.bindings {
		if b.state == unknown {
			resolveBind = append(resolveBind, func() error { return t.resolveBinding(b) })
		}
	}
	if err := t.parallel(resolveBind); err != nil {
		return err
	}
	var checks []func() error
	for _, in := range t.instances {
		if !in.flagged {
			checks = append(checks, func() error { return t.checkInstance(in) })
		}
	}
	for _, b := range t.bindings {
		if !b.flagged {
			checks = append(checks, func() error { return t.checkBinding(b) })
		}
	}
	return t.parallel(checks)
}

// parallel runs jobs on -concurrency goroutines and returns the first
// error.
func (t *tester) parallel(jobs []func() error) error {
	ch := make(chan func() error)
	errs := make(chan error, t.o.concurrency)
	var wg sync.WaitGroup
	for range t.o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for j := range ch {
				if err := j(); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// retry sends a verification request up to five times: the broker has no
// reason to fail it, so a persistent transport error ends the run.
func retry[T any](f func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		v, err = f(ctx)
		cancel()
		if err == nil {
			return v, nil
		}
		time.Sleep(time.Duration(i+1) * 200 * time.Millisecond)
	}
	return v, err
}

func (t *tester) get(path string) (answer, error) {
	return retry(func(ctx context.Context) (answer, error) { return t.c.osb(ctx, http.MethodGet, path, nil) })
}

func (t *tester) token(cr *creds) (int, error) {
	return retry(func(ctx context.Context) (int, error) { return t.c.token(ctx, cr) })
}

func (t *tester) vtag() string { return fmt.Sprintf("c%d verify", t.cycle) }

// resolved counts the outcome of a request that got no answer. Callers
// hold t.mu.
func (t *tester) resolved(unanswered, happened bool) {
	switch {
	case !unanswered:
	case happened:
		t.n.happened++
	default:
		t.n.notHappened++
	}
}

// resolveInstance decides an unanswered provision or deprovision by GET.
func (t *tester) resolveInstance(in *instance) error {
	a, err := t.get(instancePath(in))
	if err != nil {
		return fmt.Errorf("GET instance %s: %w", in.id, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	in.history = append(in.history, fmt.Sprintf("%s GET → %d", t.vtag(), a.status))
	provision := in.pending == "provision"
	switch a.status {
	case http.StatusOK:
		t.resolved(in.unanswered, provision)
		in.state = live
		t.live = append(t.live, in)
	case http.StatusNotFound:
		t.resolved(in.unanswered, !provision)
		if provision {
			in.state = absent
		} else {
			t.instanceGone(in)
		}
	default:
		t.noteUnexpected("GET instance", a)
		return nil // stays unknown: asked again after the next kill
	}
	in.pending, in.unanswered = "", false
	return nil
}

// resolveBinding decides an unanswered bind or unbind by GET; a binding
// that exists yields its credentials.
func (t *tester) resolveBinding(b *binding) error {
	a, err := t.get(bindingPath(b))
	if err != nil {
		return fmt.Errorf("GET binding %s: %w", b.id, err)
	}
	var cr *creds
	var crErr error
	if a.status == http.StatusOK {
		cr, crErr = parseCreds(a.body)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b.history = append(b.history, fmt.Sprintf("%s GET → %d", t.vtag(), a.status))
	bind := b.pending == "bind"
	switch {
	case a.status == http.StatusOK && crErr != nil:
		t.n.partialBindings++
		b.flagged = true
		t.report("partial", fmt.Sprintf("binding %s of instance %s: GET answered 200 without usable credentials (%v)", b.id, b.in.id, crErr), b.history)
		return nil
	case a.status == http.StatusOK:
		t.resolved(b.unanswered, bind)
		if b.creds != nil && b.creds.secretOrCertPrint != cr.secretOrCertPrint {
			t.n.partialBindings++
			b.flagged = true
			t.report("partial", fmt.Sprintf("binding %s of instance %s: GET returned other credentials than the bind", b.id, b.in.id), b.history)
		}
		b.creds = cr
		b.state = live
		t.bound = append(t.bound, b)
	case a.status == http.StatusNotFound:
		t.resolved(b.unanswered, !bind)
		if bind {
			b.state = absent
		} else {
			b.state = dead
		}
	default:
		t.noteUnexpected("GET binding", a)
		return nil
	}
	b.pending, b.unanswered = "", false
	return nil
}

// checkInstance checks a live instance (GET 200, identical re-provision
// 200) or a removed or never created one (GET 404).
func (t *tester) checkInstance(in *instance) error {
	t.mu.Lock()
	st := in.state
	reprovision := !in.reprovisioned || t.final
	t.mu.Unlock()
	if st == unknown {
		return nil
	}
	a, err := t.get(instancePath(in))
	if err != nil {
		return fmt.Errorf("GET instance %s: %w", in.id, err)
	}
	re := answer{status: http.StatusOK}
	if st == live && a.status == http.StatusOK && reprovision {
		re, err = retry(func(ctx context.Context) (answer, error) {
			return t.c.osb(ctx, http.MethodPut, instancePath(in), in.body)
		})
		if err != nil {
			return fmt.Errorf("re-provision %s: %w", in.id, err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if reprovision && re.status == http.StatusOK {
		in.reprovisioned = true
	}
	switch {
	case st == live && a.status == http.StatusNotFound:
		in.history = append(in.history, fmt.Sprintf("%s GET → 404", t.vtag()))
		in.flagged = true
		t.n.lost++
		t.report("lost", fmt.Sprintf("instance %s: acknowledged, GET answers 404", in.id), in.history)
		t.instanceGone(in) // as the broker now sees it
	case st == live && a.status == http.StatusOK && re.status != http.StatusOK:
		in.history = append(in.history, fmt.Sprintf("%s GET → 200, identical re-provision → %d", t.vtag(), re.status))
		in.flagged = true
		if re.status == http.StatusCreated {
			t.n.lost++
			t.report("lost", fmt.Sprintf("instance %s: identical re-provision created it anew (201)", in.id), in.history)
		} else {
			t.n.partialInstances++
			t.report("partial", fmt.Sprintf("instance %s: GET 200 but identical re-provision answers %d: %.200s", in.id, re.status, re.body), in.history)
		}
	case st != live && a.status == http.StatusOK:
		in.history = append(in.history, fmt.Sprintf("%s GET → 200", t.vtag()))
		in.flagged = true
		if st == dead {
			t.n.resurrected++
			t.report("resurrected", fmt.Sprintf("instance %s: deprovisioned, GET answers 200", in.id), in.history)
		} else {
			t.n.partialInstances++
			t.report("partial", fmt.Sprintf("instance %s: its provision was refused or resolved as not happened, GET answers 200", in.id), in.history)
		}
	case a.status != http.StatusOK && a.status != http.StatusNotFound:
		t.noteUnexpected("GET instance", a)
	}
	return nil
}

// checkBinding checks a live binding (token 200, GET 200), a removed one
// (token refused, GET 404) or one never created (GET 404).
func (t *tester) checkBinding(b *binding) error {
	t.mu.Lock()
	st, cr := b.state, b.creds
	t.mu.Unlock()
	if st == unknown {
		return nil
	}
	a, err := t.get(bindingPath(b))
	if err != nil {
		return fmt.Errorf("GET binding %s: %w", b.id, err)
	}
	tok := 0
	if cr != nil && st != absent {
		if tok, err = t.token(cr); err != nil {
			return fmt.Errorf("token of binding %s: %w", b.id, err)
		}
	}
	// Refused: 401, or 429 once the failed attempts of one client id
	// exceed the limit (counted only after a failed check).
	authOK := tok == http.StatusOK
	refused := tok == http.StatusUnauthorized || tok == http.StatusTooManyRequests

	t.mu.Lock()
	defer t.mu.Unlock()
	note := func(kind, what string) {
		b.history = append(b.history, fmt.Sprintf("%s GET → %d, token → %d", t.vtag(), a.status, tok))
		b.flagged = true
		t.report(kind, fmt.Sprintf("binding %s of instance %s (x509 %v): %s", b.id, b.in.id, b.x509, what), b.history)
	}
	switch st {
	case live:
		switch {
		case !authOK:
			t.n.lost++
			note("lost", "acknowledged, does not authenticate")
			b.state = dead // as the broker now sees it
			t.bound = remove(t.bound, b)
		case a.status != http.StatusOK:
			t.n.partialBindings++
			note("partial", "authenticates but GET does not answer 200")
		}
	case dead:
		switch {
		case authOK:
			t.n.resurrected++
			note("resurrected", "removal acknowledged, authenticates again")
		case cr != nil && !refused:
			t.noteUnexpected("token", answer{status: tok})
		case a.status == http.StatusOK:
			t.n.resurrected++
			note("resurrected", "removal acknowledged, GET answers 200")
		}
	case absent:
		if a.status == http.StatusOK {
			t.n.partialBindings++
			note("partial", "bind refused or resolved as not happened, GET answers 200")
		}
	}
	if a.status != http.StatusOK && a.status != http.StatusNotFound {
		t.noteUnexpected("GET binding", a)
	}
	return nil
}

// ---------------------------------------------------------------------------
// OSB bodies and paths

func ccContext(withName string) map[string]any {
	c := map[string]any{
		"platform":          "cloudfoundry",
		"organization_guid": "org-crash",
		"organization_name": "crash",
		"space_guid":        "space-crash",
		"space_name":        "dev",
	}
	if withName != "" {
		c["instance_name"] = withName
	}
	return c
}

// provisionBody is cf create-service with a small xs-security.json; an
// x509-capable instance lists x509 in its credential types.
func provisionBody(in *instance, xsappname string) []byte {
	params := map[string]any{
		"xsappname":   xsappname,
		"tenant-mode": "dedicated",
		"description": "crash test",
		"scopes":      []any{map[string]any{"name": "$XSAPPNAME.Read", "description": "read"}},
		"authorities": []any{"$XSAPPNAME.Read"},
	}
	if in.x509 {
		params["oauth2-configuration"] = map[string]any{"credential-types": []any{"binding-secret", "x509"}}
	}
	return mustJSON(map[string]any{
		"service_id":        xsuaaServiceID,
		"plan_id":           xsuaaApplicationID,
		"organization_guid": "org-crash",
		"space_guid":        "space-crash",
		"context":           ccContext(xsappname),
		"parameters":        params,
	})
}

// bindBody is cf bind-service (app non-empty) or cf create-service-key.
func bindBody(in *instance, app string, params any) []byte {
	b := map[string]any{
		"service_id":    xsuaaServiceID,
		"plan_id":       xsuaaApplicationID,
		"context":       ccContext(""),
		"bind_resource": map[string]any{"credential_client_id": "cc_service_key_client"},
	}
	if app != "" {
		b["app_guid"] = app
		b["bind_resource"] = map[string]any{"app_guid": app, "space_guid": "space-crash"}
	}
	if params != nil {
		b["parameters"] = params
	}
	return mustJSON(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

const planQuery = "service_id=" + xsuaaServiceID + "&plan_id=" + xsuaaApplicationID

func instancePath(in *instance) string { return "/v2/service_instances/" + url.PathEscape(in.id) }

func bindingPath(b *binding) string {
	return instancePath(b.in) + "/service_bindings/" + url.PathEscape(b.id)
}

// uuidFrom returns a v4 UUID drawn from rng, so a seed names the ids.
func uuidFrom(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// parseCreds reads {"credentials": {...}} of a bind or GET binding answer.
func parseCreds(body []byte) (*creds, error) {
	var r struct {
		Credentials struct {
			ClientID     string `json:"clientid"`
			ClientSecret string `json:"clientsecret"`
			URL          string `json:"url"`
			CertURL      string `json:"certurl"`
			Certificate  string `json:"certificate"`
			Key          string `json:"key"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("bind answer: %w", err)
	}
	c := r.Credentials
	cr := &creds{clientID: c.ClientID, secret: c.ClientSecret, url: c.URL, certURL: c.CertURL}
	switch {
	case c.ClientID == "" || c.URL == "":
		return nil, errors.New("credentials without clientid or url")
	case c.ClientSecret != "":
		cr.secretOrCertPrint = c.ClientSecret
	case c.Certificate != "" && c.Key != "" && c.CertURL != "":
		cert, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		cr.cert = &cert
		cr.secretOrCertPrint = c.Certificate
	default:
		return nil, errors.New("credentials with neither a secret nor a certificate and key")
	}
	return cr, nil
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// ---------------------------------------------------------------------------
// HTTP

// answer is what the test needs of an HTTP answer.
type answer struct {
	status int
	body   []byte
}

// client speaks to the broker. Every connection goes to the broker's
// address whatever the URL's host: the credentials name
// https://localhost:<port>, which must reach the same listener.
type client struct {
	addr  string
	roots *x509.CertPool
	http  *http.Client
}

func newClient(addr string, roots *x509.CertPool) *client {
	c := &client{addr: addr, roots: roots}
	c.http = &http.Client{Transport: c.transport(nil, true)}
	return c
}

func (c *client) transport(cert *tls.Certificate, keepAlive bool) *http.Transport {
	cfg := &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	var d net.Dialer
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, c.addr)
		},
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: 64,
		DisableKeepAlives:   !keepAlive,
	}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// osb sends an OSB request with Cloud Controller's headers.
func (c *client) osb(ctx context.Context, method, path string, body []byte) (answer, error) {
	switch method {
	case http.MethodGet:
		path += "?" + planQuery
	case http.MethodDelete:
		path += "?accepts_incomplete=true&" + planQuery
	default:
		path += "?accepts_incomplete=true"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+c.addr+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.SetBasicAuth(username, password)
	req.Header.Set("X-Broker-API-Version", "2.15")
	req.Header.Set("Accept", "application/json")
	identity := base64.StdEncoding.EncodeToString([]byte(`{"user_id":"crash-user"}`))
	req.Header.Set("X-Broker-API-Originating-Identity", "cloudfoundry "+identity)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(c.http, req)
}

// token asks for a client_credentials token with the binding's secret, or
// over mTLS with its certificate, and returns the status.
func (c *client) token(ctx context.Context, cr *creds) (int, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cr.clientID}}
	hc, base := c.http, cr.url
	if cr.cert != nil {
		tr := c.transport(cr.cert, false)
		defer tr.CloseIdleConnections()
		hc, base = &http.Client{Transport: tr}, cr.certURL
	} else {
		form.Set("client_secret", cr.secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a, err := c.do(hc, req)
	return a.status, err
}

func (c *client) do(hc *http.Client, req *http.Request) (answer, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// A status without its whole body is no answer: a bind's
		// credentials would be missing.
		return answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return answer{status: resp.StatusCode, body: body}, nil
}

// ---------------------------------------------------------------------------
// The broker process

// process is the broker binary run on the test's data directory.
type process struct {
	bin, dataDir, addr, logPath string
	env                         []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// start runs the broker and waits until /healthz answers 200; it returns
// the broker's CA.
func (p *process) start() (*x509.CertPool, error) {
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "=== crashtest: starting the broker at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.log = cmd, exited, log
	p.mu.Unlock()

	// The first start creates the CA and the signing key; a restart
	// opens the store. Both are well under a minute on a loaded machine.
	deadline := time.Now().Add(2 * time.Minute)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, fmt.Errorf("the broker exited during start (%v); log: %s", cmd.ProcessState, p.logPath)
		default:
		}
		if pem, err := os.ReadFile(filepath.Join(p.dataDir, "ca.pem")); err == nil {
			roots := x509.NewCertPool()
			if roots.AppendCertsFromPEM(pem) {
				c := newClient(p.addr, roots)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.addr+"/healthz", nil)
				a, err := c.do(c.http, req)
				cancel()
				c.close()
				if err == nil && a.status == http.StatusOK {
					return roots, nil
				}
				lastErr = err
				if err == nil {
					lastErr = fmt.Errorf("healthz: %d", a.status)
				}
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("the broker did not become healthy: %v; log: %s", lastErr, p.logPath)
}

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill() error {
	p.mu.Lock()
	cmd, exited, log := p.cmd, p.exited, p.log
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("the broker is not running")
	}
	err := cmd.Process.Kill()
	<-exited
	fmt.Fprintf(log, "=== crashtest: SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
	log.Close()
	return err
}

// stop kills the broker if it runs (at the end of the run).
func (p *process) stop() {
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if running {
		p.kill()
	}
}

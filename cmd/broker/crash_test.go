package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// crashSummary matches the first summary line of tools/crashtest.
var crashSummary = regexp.MustCompile(`crashtest: (\d+) cycles, (\d+) operations, (\d+) acknowledged binds, (\d+) acknowledged unbinds, (\d+) lost, (\d+) resurrected, (\d+) partial instances`)

// TestCrashSafety builds the broker and tools/crashtest and runs a bounded
// crash test: concurrent provision/bind/unbind/deprovision calls against
// the broker as a separate process, SIGKILLed at seeded random points and
// restarted on the same data directory. Every acknowledged binding must
// still authenticate, every acknowledged unbind stay dead, no instance be
// partial. The second case checks the checker: a store file rolled back
// to an earlier kill must make the run fail.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash safety test skipped under -short: it builds the broker and kills it (SIGKILL) as a separate process")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := t.TempDir()
	broker, crashtest := filepath.Join(bin, "broker"), filepath.Join(bin, "crashtest")
	for out, pkg := range map[string]string{
		broker:    "github.com/ossbroker/btp-security-broker/cmd/broker",
		crashtest: "github.com/ossbroker/btp-security-broker/tools/crashtest",
	} {
		if b, err := exec.Command(goBin, "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}

	// The bounded size: 3 cycles × 150 operations take seconds; the
	// timeout only turns a hang into a failure with the output.
	bounded := []string{"-cycles", "3", "-ops", "150", "-concurrency", "8", "-seed", "1"}
	cases := []struct {
		name     string
		extra    []string
		wantExit int
		// wantLoss: the summary must report something lost or
		// resurrected (> 0); otherwise all three counts must be 0.
		wantLoss bool
	}{
		{name: "kill and restart", wantExit: 0},
		{name: "rolled back store is caught", extra: []string{"-rollback"}, wantExit: 1, wantLoss: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			args := append([]string{"-broker", broker, "-dir", t.TempDir()}, bounded...)
			args = append(args, c.extra...)
			out, err := exec.CommandContext(ctx, crashtest, args...).CombinedOutput()
			exit := 0
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				exit = ee.ExitCode()
			case err != nil:
				t.Fatalf("crashtest: %v\n%s", err, out)
			}
			if exit != c.wantExit {
				t.Fatalf("crashtest exited %d, want %d\n%s", exit, c.wantExit, tail(out, 6000))
			}
			m := crashSummary.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no summary line in\n%s", tail(out, 6000))
			}
			n := make([]int, len(m))
			for i := 1; i < len(m); i++ {
				n[i], _ = strconv.Atoi(string(m[i]))
			}
			cycles, ops, binds, unbinds, lost, resurrected, partial := n[1], n[2], n[3], n[4], n[5], n[6], n[7]
			if cycles != 3 || ops < 450 || binds == 0 || unbinds == 0 {
				t.Errorf("the run did too little: %s", m[0])
			}
			if c.wantLoss && lost+resurrected == 0 {
				t.Errorf("a rolled back store went unnoticed: %s", m[0])
			}
			if !c.wantLoss && lost+resurrected+partial != 0 {
				t.Errorf("%s", m[0])
			}
			t.Logf("%s", m[0])
		})
	}
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

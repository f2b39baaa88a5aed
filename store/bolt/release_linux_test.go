package bolt

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// mappedRSS sums the resident kB of this process's mappings of path
// (/proc/self/smaps).
func mappedRSS(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && strings.Join(fields[5:], " ") == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

// TestReleaseMappedPages: reading records maps the file's pages into the
// process; ReleaseMappedPages unmaps them, and the records still read the
// same afterwards.
func TestReleaseMappedPages(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "broker.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	config := `{"xsappname":"x","description":"` + strings.Repeat("d", 2000) + `"}`
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range 2000 {
			in := &store.Instance{ID: fmt.Sprintf("i-%05d", i), Service: "identity", ClientID: fmt.Sprintf("c-%05d", i), Config: []byte(config)}
			if err := tx.CreateInstance(in); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list := func() int {
		var n int
		if err := s.View(ctx, func(tx store.Tx) error {
			all, err := tx.ListInstances()
			n = len(all)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := list(); n != 2000 {
		t.Fatalf("listed %d instances, want 2000", n)
	}
	before := mappedRSS(t, path)
	if before < 1024 {
		t.Fatalf("only %d kB of %s resident after reading 4 MB of records: the test cannot see a release", before, path)
	}
	released, err := s.ReleaseMappedPages()
	if err != nil {
		t.Fatal(err)
	}
	if released <= 0 {
		t.Fatalf("released %d bytes of mappings, want the file's mapping", released)
	}
	if after := mappedRSS(t, path); after >= before/4 {
		t.Fatalf("%d kB resident after the release, %d kB before", after, before)
	}
	if n := list(); n != 2000 {
		t.Fatalf("after the release: listed %d instances, want 2000", n)
	}
}

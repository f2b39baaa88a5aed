package parallel

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestRanges: every index is visited exactly once, for short and long
// loops and any core count, and errors of all ranges come back.
func TestRanges(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3, 8} {
		runtime.GOMAXPROCS(procs)
		for _, n := range []int{0, 1, 5, 99, 100, 1001} {
			seen := make([]atomic.Int32, n)
			if err := Ranges(n, 10, func(lo, hi int) error {
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("GOMAXPROCS %d, n %d: index %d visited %d times", procs, n, i, c)
				}
			}
		}
	}
	runtime.GOMAXPROCS(4)
	boom := errors.New("boom")
	err := Ranges(1000, 10, func(lo, hi int) error {
		if lo > 0 {
			return fmt.Errorf("range %d: %w", lo, boom)
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the ranges' errors", err)
	}
}

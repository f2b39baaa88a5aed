// Package parallel splits a loop over n items across the available cores.
package parallel

import (
	"errors"
	"runtime"
	"sync"
)

// Ranges calls fn on consecutive ranges [lo, hi) that cover [0, n), one
// goroutine per range, with at most GOMAXPROCS ranges and at least perRange
// items in each (a short loop runs on the calling goroutine alone). It
// returns the errors of all ranges joined.
func Ranges(n, perRange int, fn func(lo, hi int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/max(perRange, 1))
	if workers <= 1 {
		return fn(0, n)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = fn(lo, hi)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

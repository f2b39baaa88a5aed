package credentials

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"sync/atomic"
	"testing"
	"time"
)

// testKey is generated once; the pool under test hands out copies of it so
// the test does not spend its time in key generation.
var testKey, _ = rsa.GenerateKey(rand.Reader, 1024)

func countingPool(target map[int]int) (*KeyPool, *atomic.Int64) {
	p := NewKeyPool(target)
	var n atomic.Int64
	p.generate = func(bits int) (*rsa.PrivateKey, error) {
		n.Add(1)
		k := *testKey
		return &k, nil
	}
	return p, &n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestKeyPoolFillsToTargetAndStops(t *testing.T) {
	p, generated := countingPool(map[int]int{2048: 3, 4096: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "pool to fill", func() bool { return p.Depth(2048) == 3 && p.Depth(4096) == 1 })
	time.Sleep(20 * time.Millisecond)
	if got := generated.Load(); got != 4 {
		t.Fatalf("generated %d keys for a target of 4: the pool must stop at its bound", got)
	}
}

func TestKeyPoolGetTakesFromStockAndRefills(t *testing.T) {
	p, generated := countingPool(map[int]int{2048: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "pool to fill", func() bool { return p.Depth(2048) == 2 })
	before := generated.Load()
	if _, err := p.Get(2048); err != nil {
		t.Fatal(err)
	}
	if p.Depth(2048) > 2 {
		t.Fatal("depth above target")
	}
	waitFor(t, "refill after Get", func() bool { return p.Depth(2048) == 2 })
	if generated.Load() != before+1 {
		t.Fatalf("a Get from stock should cost exactly one background generation, got %d", generated.Load()-before)
	}
}

func TestKeyPoolGeneratesWhenEmpty(t *testing.T) {
	p, generated := countingPool(map[int]int{2048: 1})
	// No Run: the pool is empty, Get must still return a key at once.
	k, err := p.Get(8192)
	if err != nil || k == nil {
		t.Fatalf("Get on an empty pool: %v", err)
	}
	if generated.Load() != 1 {
		t.Fatalf("generated %d", generated.Load())
	}
}

func TestKeyPoolKeysAreHandedOutOnce(t *testing.T) {
	p := NewKeyPool(map[int]int{1024: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	waitFor(t, "pool to fill", func() bool { return p.Depth(1024) == 4 })
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		k, err := p.Get(1024)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k.N.String()] {
			t.Fatal("the same key was handed out twice")
		}
		seen[k.N.String()] = true
	}
}

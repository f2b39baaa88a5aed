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

// TestKeyPoolWaitsForQuiet: after a key is taken the pool does not start
// generating until binds have been quiet for RefillQuiet, unless the size
// is running low (a quarter of its target or less), or empty.
func TestKeyPoolWaitsForQuiet(t *testing.T) {
	p := NewKeyPool(map[int]int{2048: 8, 4096: 2})
	key := &rsa.PrivateKey{}
	p.stock[2048] = []*rsa.PrivateKey{key, key, key, key, key, key, key, key}
	p.stock[4096] = []*rsa.PrivateKey{key, key}
	if _, _, ok := p.next(time.Now()); ok {
		t.Fatal("a full pool has something to generate")
	}
	if _, err := p.Get(2048); err != nil {
		t.Fatal(err)
	}
	taken := p.lastGet
	for _, tc := range []struct {
		after    time.Duration
		wantWait time.Duration
	}{
		{0, RefillQuiet},
		{RefillQuiet / 4, RefillQuiet * 3 / 4},
		{RefillQuiet, 0},
		{10 * RefillQuiet, 0},
	} {
		bits, wait, ok := p.next(taken.Add(tc.after))
		if !ok || bits != 2048 || wait != tc.wantWait {
			t.Errorf("%v after a Get: next = %d, %v, %v; want 2048, %v, true", tc.after, bits, wait, ok, tc.wantWait)
		}
	}
	// Down to a quarter of the target: refill at once, burst or not.
	for p.Depth(2048) > 2 {
		if _, err := p.Get(2048); err != nil {
			t.Fatal(err)
		}
	}
	if bits, wait, ok := p.next(p.lastGet); !ok || bits != 2048 || wait != 0 {
		t.Errorf("pool at a quarter: next = %d, %v, %v; want 2048, 0, true", bits, wait, ok)
	}
	// The smallest size below target comes first; 4096 waits for 2048.
	p.stock[2048] = append(p.stock[2048], key, key, key, key, key, key)
	if _, err := p.Get(4096); err != nil {
		t.Fatal(err)
	}
	if bits, wait, ok := p.next(p.lastGet.Add(RefillQuiet / 2)); !ok || bits != 4096 || wait != RefillQuiet/2 {
		t.Errorf("one 4096 key taken: next = %d, %v, %v; want 4096, %v, true", bits, wait, ok, RefillQuiet/2)
	}
}

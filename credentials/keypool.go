package credentials

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"runtime"
	"sync"
	"time"
)

// KeyPool keeps a bounded stock of pre-generated RSA keys per size, so an
// X.509 bind does not wait ~80 ms (2048 bits) or seconds (4096, 8192) for
// key generation. Keys live only in memory and are handed out once; a
// restart starts with an empty pool.
type KeyPool struct {
	mu     sync.Mutex
	stock  map[int][]*rsa.PrivateKey
	target map[int]int
	wake   chan struct{}
	// lastGet is when a key was last taken: refilling waits until binds
	// have been quiet for RefillQuiet.
	lastGet time.Time
	// generate is rsa.GenerateKey; tests replace it.
	generate func(bits int) (*rsa.PrivateKey, error)
}

// NewKeyPool returns a pool that keeps target[bits] keys of each size.
func NewKeyPool(target map[int]int) *KeyPool {
	t := map[int]int{}
	for bits, n := range target {
		t[bits] = n
	}
	return &KeyPool{
		stock:  map[int][]*rsa.PrivateKey{},
		target: t,
		wake:   make(chan struct{}, 1),
		generate: func(bits int) (*rsa.PrivateKey, error) {
			return rsa.GenerateKey(rand.Reader, bits)
		},
	}
}

// RefillQuiet is how long after the last Get the pool waits before it
// generates keys again, unless it is running low (below a quarter of its
// target). A burst of binds takes keys without key generation competing with
// it for the CPU: on one core Go's scheduler would slice a bind's request
// handling with a seconds-long generation in 10 ms turns.
const RefillQuiet = time.Second

// Get returns a pooled key of the size, or generates one now when the pool
// has none. Either way the pool is nudged to refill.
func (p *KeyPool) Get(bits int) (*rsa.PrivateKey, error) {
	p.mu.Lock()
	p.lastGet = time.Now()
	var k *rsa.PrivateKey
	if s := p.stock[bits]; len(s) > 0 {
		k, p.stock[bits] = s[len(s)-1], s[:len(s)-1]
	}
	p.mu.Unlock()
	p.nudge()
	if k != nil {
		return k, nil
	}
	return p.generate(bits)
}

// Depth returns how many keys of the size are ready.
func (p *KeyPool) Depth(bits int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stock[bits])
}

func (p *KeyPool) nudge() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// next returns a size that is below target, smallest first (the common
// 2048-bit keys are refilled before the expensive ones), and how long to
// wait before generating it: nothing if that size is running low, else
// until RefillQuiet has passed since the last Get.
func (p *KeyPool) next(now time.Time) (bits int, wait time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b, n := range p.target {
		if len(p.stock[b]) < n && (bits == 0 || b < bits) {
			bits = b
		}
	}
	if bits == 0 {
		return 0, 0, false
	}
	if low := p.target[bits] / 4; len(p.stock[bits]) > low {
		if since := now.Sub(p.lastGet); since < RefillQuiet {
			wait = RefillQuiet - since
		}
	}
	return bits, wait, true
}

// Run refills the pool until ctx ends. Go has no thread priorities, so
// "low priority" is pacing: nothing during a burst of binds (RefillQuiet),
// then one key at a time, and after each key a pause of three times its
// generation time, so refilling takes at most a quarter of one core from
// request handling — except while the pool of that size is empty, when
// binds are waiting and keys are made back to back.
func (p *KeyPool) Run(ctx context.Context) {
	for {
		bits, wait, ok := p.next(time.Now())
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
				continue
			}
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		start := time.Now()
		k, err := p.generate(bits)
		took := time.Since(start)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		p.mu.Lock()
		if len(p.stock[bits]) < p.target[bits] {
			p.stock[bits] = append(p.stock[bits], k)
		}
		urgent := len(p.stock[bits]) == 1 // it was empty: binds are waiting
		p.mu.Unlock()
		if urgent {
			runtime.Gosched()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * took):
		}
	}
}

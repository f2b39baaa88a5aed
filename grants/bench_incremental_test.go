package grants

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// These benchmarks measure keeping a Directory up to date in place (issue 7:
// a provision must not cost more in a zone of 100,000 instances) and the
// queries of the token server on a directory that was built that way.

// incZoneSizes are the zone sizes of these benchmarks: an update should cost
// the same in both.
var incZoneSizes = []int{1000, 100000}

// incGranters is how many apps grant the target an authority and a user
// scope, whatever the size of the zone.
const incGranters = 20

// incApp returns app i of a zone of n apps, in variant v: app 0 is the
// target, which accepts every granted authority and scope; apps 1..n-1
// each grant one scope of each kind to their neighbour and reference
// another app's scope in a role template; apps 1..incGranters also grant to
// the target. Variant 1 declares and grants one more scope, so that
// alternating variants changes the descriptor without changing what the
// target is granted.
func incApp(n, i, v int) App {
	if i == 0 {
		return app("target", descriptor.Descriptor{
			Scopes:                 []descriptor.Scope{scope("$XSAPPNAME.Own"), scope("uaa.user")},
			Authorities:            []string{"$ACCEPT_GRANTED_AUTHORITIES", "$XSAPPNAME.Own"},
			ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
		})
	}
	name := func(i int) string { return fmt.Sprintf("inc%d", i) }
	next := "$XSAPPNAME(application," + name(i%(n-1)+1) + ")"
	d := descriptor.Descriptor{
		Scopes: []descriptor.Scope{
			userGrant("$XSAPPNAME.S0", next),
			authGrant("$XSAPPNAME.S1", next),
			scope("$XSAPPNAME.S2"), scope("$XSAPPNAME.S3"), scope("$XSAPPNAME.S4"),
		},
		Authorities:            []string{"$XSAPPNAME.S2", "$ACCEPT_GRANTED_AUTHORITIES"},
		ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
		RoleTemplates: []descriptor.RoleTemplate{{
			Name:            "Viewer",
			ScopeReferences: []string{"$XSAPPNAME.S2", "$XSAPPNAME(application," + name((i+n-3)%(n-1)+1) + ").S0"},
		}},
	}
	if v == 1 {
		d.Scopes = append(d.Scopes, authGrant("$XSAPPNAME.Extra", next))
	}
	if i <= incGranters {
		d.Scopes = append(d.Scopes,
			userGrant("$XSAPPNAME.Granted", "$XSAPPNAME(application,target)"),
			authGrant("$XSAPPNAME.Authority", "$XSAPPNAME(application,target)"))
	}
	return app(name(i), d)
}

var incZones struct {
	sync.Mutex
	m map[int]*Directory
}

// incZone returns a directory of n apps built by Upsert alone, the target
// last so that every grant to it was filed before it existed. It is built
// once per size and test binary; benchmarks that update it leave it in an
// equivalent state (see incApp's variants).
func incZone(b *testing.B, n int) (*Directory, *App) {
	b.Helper()
	incZones.Lock()
	defer incZones.Unlock()
	d, ok := incZones.m[n]
	if !ok {
		d = NewDirectory(nil)
		for i := 1; i < n; i++ {
			d.Upsert(incApp(n, i, 0))
		}
		d.Upsert(incApp(n, 0, 0))
		if incZones.m == nil {
			incZones.m = map[int]*Directory{}
		}
		incZones.m[n] = d
	}
	target := mustLookupB(b, d, "id-target")
	// Check the shape, so that a benchmark cannot quietly measure a target
	// that got nothing granted or a zone an earlier benchmark broke.
	if got := len(d.Authorities(target)); got != 2+incGranters || d.Len() != n {
		b.Fatalf("zone of %d apps: target has %d authorities, want %d", d.Len(), got, 2+incGranters)
	}
	return d, target
}

func runIncZones(b *testing.B, fn func(b *testing.B, n int, d *Directory, target *App)) {
	for _, n := range incZoneSizes {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			d, target := incZone(b, n)
			b.ReportAllocs()
			fn(b, n, d, target)
		})
	}
}

// BenchmarkUpsertReplace measures updating an instance: replacing an
// existing app (a granter of its neighbour, some also of the target) by one
// with a changed descriptor. The apps are taken in a random order, so that
// the maps are not walked in cache-friendly sequence.
func BenchmarkUpsertReplace(b *testing.B) {
	runIncZones(b, func(b *testing.B, n int, d *Directory, _ *App) {
		r := rand.New(rand.NewPCG(1, 2))
		// Prepared outside the loop: building an App is the caller's cost.
		const prepared = 4096
		idx := make([]int, prepared)
		apps := make([]App, prepared)
		for k := range apps {
			idx[k] = 1 + r.IntN(n-1)
			apps[k] = incApp(n, idx[k], k%2)
		}
		k := 0
		for b.Loop() {
			d.Upsert(apps[k%prepared])
			k++
		}
		b.StopTimer()
		// Back to variant 0, the state incZone checks.
		for _, i := range idx {
			d.Upsert(incApp(n, i, 0))
		}
	})
}

// BenchmarkProvisionDeprovision measures one provision (Upsert of a new app
// granting to an existing one and to the target) followed by its
// deprovision (Remove); ns/op is for the pair.
func BenchmarkProvisionDeprovision(b *testing.B) {
	runIncZones(b, func(b *testing.B, n int, d *Directory, _ *App) {
		a := incApp(n, 1, 1)
		a.InstanceID, a.BaseName, a.FullName, a.InstanceName = "id-new", "new", "new!t3", "new-uaa"
		for b.Loop() {
			d.Upsert(a)
			d.Remove(a.InstanceID)
		}
	})
}

// BenchmarkIncrementalAuthorities measures the authorities of the target of
// a zone built by Upsert, granted by incGranters apps upserted before it.
func BenchmarkIncrementalAuthorities(b *testing.B) {
	runIncZones(b, func(b *testing.B, _ int, d *Directory, target *App) {
		for b.Loop() {
			d.Authorities(target)
		}
	})
}

// BenchmarkIncrementalClientScopes is BenchmarkIncrementalAuthorities for
// the scopes granted through granted-apps.
func BenchmarkIncrementalClientScopes(b *testing.B) {
	runIncZones(b, func(b *testing.B, _ int, d *Directory, target *App) {
		if got := len(d.ClientScopes(target)); got != 3+incGranters {
			b.Fatalf("target has %d client scopes, want %d", got, 3+incGranters)
		}
		for b.Loop() {
			d.ClientScopes(target)
		}
	})
}

// BenchmarkAuthoritiesDuringUpserts measures Authorities on parallel
// readers while one goroutine keeps replacing apps, the token server's
// situation in a busy zone: readers wait for the write lock only for the
// length of one Upsert.
func BenchmarkAuthoritiesDuringUpserts(b *testing.B) {
	runIncZones(b, func(b *testing.B, n int, d *Directory, target *App) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			// Each app is changed and changed back, so that the zone is
			// left as incZone built it.
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				d.Upsert(incApp(n, 1+k%(n-1), 1))
				d.Upsert(incApp(n, 1+k%(n-1), 0))
			}
		})
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Authorities(target)
			}
		})
		close(stop)
		wg.Wait()
	})
}

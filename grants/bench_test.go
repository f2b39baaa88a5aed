package grants

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// benchZoneSizes are the directory sizes every query benchmark runs at. A
// query should cost the same in both: it may depend on the app's own
// descriptor and on what was granted to it, not on the size of the zone.
var benchZoneSizes = []int{1000, 100000}

// benchGranters is how many apps grant scopes to the target, whatever the
// size of the zone.
const benchGranters = 20

// benchZone is a directory and its queried app.
type benchZone struct {
	dir    *Directory
	target *App
}

var benchZones struct {
	sync.Mutex
	m map[int]*benchZone
}

// zoneOf returns the directory of n apps, built once per size and test
// binary: building 100,000 apps takes long enough that each benchmark
// should not do it again.
func zoneOf(b *testing.B, n int) *benchZone {
	b.Helper()
	benchZones.Lock()
	defer benchZones.Unlock()
	if z, ok := benchZones.m[n]; ok {
		return z
	}
	d := NewDirectory(benchApps(n))
	z := &benchZone{dir: d, target: mustLookupB(b, d, "id-target")}
	// Check the shape once, so that a benchmark cannot quietly measure an
	// app that got nothing granted.
	if got := len(d.Authorities(z.target)); got != 1+2+benchGranters {
		b.Fatalf("target has %d authorities, want %d", got, 1+2+benchGranters)
	}
	if got := len(d.ClientScopes(z.target)); got != 1+20+1+benchGranters {
		b.Fatalf("target has %d client scopes, want %d", got, 1+20+1+benchGranters)
	}
	if benchZones.m == nil {
		benchZones.m = map[int]*benchZone{}
	}
	benchZones.m[n] = z
	return z
}

// benchApps returns n apps: a target app with 20 scopes, 10 role templates
// and uaa.user, benchGranters apps granting it a user scope and an
// authority each, and a busy rest of the zone in which every app grants
// one scope of each kind to its neighbour and references its other
// neighbour's scope in a role template.
func benchApps(n int) []App {
	apps := make([]App, 0, n)
	name := func(i int) string { return fmt.Sprintf("app%d", i) }

	target := descriptor.Descriptor{
		Authorities:            []string{"$ACCEPT_GRANTED_AUTHORITIES", "$XSAPPNAME.Own0", "$XSAPPNAME.Own1"},
		ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
	}
	for i := range 20 {
		target.Scopes = append(target.Scopes, scope(fmt.Sprintf("$XSAPPNAME.Own%d", i)))
	}
	target.Scopes = append(target.Scopes, scope("uaa.user"))
	for i := range 10 {
		target.RoleTemplates = append(target.RoleTemplates, descriptor.RoleTemplate{
			Name: fmt.Sprintf("Role%d", i),
			ScopeReferences: []string{
				fmt.Sprintf("$XSAPPNAME.Own%d", 2*i), fmt.Sprintf("$XSAPPNAME.Own%d", 2*i+1),
				fmt.Sprintf("$XSAPPNAME(application,%s).Granted", name(1+i)), // granted: kept
				fmt.Sprintf("$XSAPPNAME(application,%s).S2", name(1+i)),      // not granted: dropped
				"uaa.user",
			},
		})
	}
	apps = append(apps, app("target", target))

	for i := 1; i < n; i++ {
		d := descriptor.Descriptor{
			Scopes: []descriptor.Scope{
				userGrant("$XSAPPNAME.S0", "$XSAPPNAME(application,"+name(i%(n-1)+1)+")"),
				authGrant("$XSAPPNAME.S1", "$XSAPPNAME(application,"+name(i%(n-1)+1)+")"),
				scope("$XSAPPNAME.S2"), scope("$XSAPPNAME.S3"), scope("$XSAPPNAME.S4"),
			},
			Authorities:            []string{"$XSAPPNAME.S2", "$ACCEPT_GRANTED_AUTHORITIES"},
			ForeignScopeReferences: []string{"$ACCEPT_GRANTED_SCOPES"},
			RoleTemplates: []descriptor.RoleTemplate{{
				Name:            "Viewer",
				ScopeReferences: []string{"$XSAPPNAME.S2", "$XSAPPNAME.S3", "$XSAPPNAME(application," + name((i+n-3)%(n-1)+1) + ").S0"},
			}},
		}
		if i <= benchGranters {
			d.Scopes = append(d.Scopes,
				userGrant("$XSAPPNAME.Granted", "$XSAPPNAME(application,target)"),
				authGrant("$XSAPPNAME.Authority", "$XSAPPNAME(application,target)"))
		}
		apps = append(apps, app(name(i), d))
	}
	return apps
}

// runZones runs fn as one sub-benchmark per zone size.
func runZones(b *testing.B, fn func(b *testing.B, z *benchZone)) {
	for _, n := range benchZoneSizes {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			z := zoneOf(b, n)
			b.ReportAllocs()
			fn(b, z)
		})
	}
}

// BenchmarkNewDirectory measures building the directory, which the token
// server does after every committed change (one rebuild per change, so
// this bounds how fast a busy zone can change).
func BenchmarkNewDirectory(b *testing.B) {
	for _, n := range benchZoneSizes {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			apps := benchApps(n)
			b.ReportAllocs()
			for b.Loop() {
				if d := NewDirectory(apps); len(d.byID) != n {
					b.Fatalf("directory has %d apps, want %d", len(d.byID), n)
				}
			}
		})
	}
}

// BenchmarkAuthoritiesByZone is BenchmarkAuthorities over the zone sizes
// of the other benchmarks, for comparison with them.
func BenchmarkAuthoritiesByZone(b *testing.B) {
	runZones(b, func(b *testing.B, z *benchZone) {
		for b.Loop() {
			z.dir.Authorities(z.target)
		}
	})
}

// BenchmarkClientScopes measures the scopes a client may carry in user
// tokens (authorization_code, password, jwt-bearer, user_token grants).
func BenchmarkClientScopes(b *testing.B) {
	runZones(b, func(b *testing.B, z *benchZone) {
		for b.Loop() {
			z.dir.ClientScopes(z.target)
		}
	})
}

// BenchmarkRoleTemplateScopes measures resolving one role template to its
// scopes, done for each role template of each of a user's role
// collections when a user token is issued.
func BenchmarkRoleTemplateScopes(b *testing.B) {
	runZones(b, func(b *testing.B, z *benchZone) {
		scopes, ok := z.dir.RoleTemplateScopes(z.target, "Role3")
		if !ok || len(scopes) != 4 {
			b.Fatalf("RoleTemplateScopes(Role3) = %v, %v; want 4 scopes", scopes, ok)
		}
		for b.Loop() {
			z.dir.RoleTemplateScopes(z.target, "Role3")
		}
	})
}

// BenchmarkFindTemplate measures resolving a stored role-template reference
// of a role collection to its app.
func BenchmarkFindTemplate(b *testing.B) {
	runZones(b, func(b *testing.B, z *benchZone) {
		ref := z.target.FullName + ".Role9"
		if _, _, ok := z.dir.FindTemplate(ref); !ok {
			b.Fatalf("FindTemplate(%q) not found", ref)
		}
		for b.Loop() {
			z.dir.FindTemplate(ref)
		}
	})
}

// BenchmarkNarrow measures applying the scope parameter of a
// client_credentials request to the client's authorities. It does not
// depend on the zone; allowed is what the target of a 1,000-app zone gets.
func BenchmarkNarrow(b *testing.B) {
	z := zoneOf(b, benchZoneSizes[0])
	allowed := z.dir.Authorities(z.target)
	wildcard := append(slices.Clone(allowed), "app1!t3.*", "app2!t3.Reports.*")
	cases := []struct {
		name      string
		allowed   []string
		requested string
		want      int
	}{
		{"NoRequest", allowed, "", len(allowed)},
		{"ThreeScopes", allowed, strings.Join([]string{allowed[len(allowed)-1], allowed[1], allowed[2]}, " "), 3},
		{"AllScopes", allowed, strings.Join(allowed, " "), len(allowed)},
		{"Wildcard", wildcard, "app1!t3.Read,app2!t3.Reports.Monthly", 2},
		{"Invalid", allowed, "uaa.admin", -1},
	}
	for _, c := range cases {
		got, err := Narrow(c.allowed, c.requested)
		if (c.want < 0) != (err != nil) || (err == nil && len(got) != c.want) {
			b.Fatalf("%s: Narrow = %d scopes, %v; want %d", c.name, len(got), err, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Narrow(c.allowed, c.requested)
			}
		})
	}
}

// BenchmarkAudience measures the aud claim of a token for the target's
// client scopes (user token) and authorities (client_credentials token).
func BenchmarkAudience(b *testing.B) {
	z := zoneOf(b, benchZoneSizes[0])
	cases := []struct {
		name   string
		scopes []string
	}{
		{"Authorities", z.dir.Authorities(z.target)},
		{"ClientScopes", z.dir.ClientScopes(z.target)},
	}
	for _, c := range cases {
		// The client id, openid (user tokens), the target and each granter.
		if got := len(Audience(z.target.ClientID, c.scopes)); got < 2+benchGranters {
			b.Fatalf("%s: audience has %d entries", c.name, got)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Audience(z.target.ClientID, c.scopes)
			}
		})
	}
}

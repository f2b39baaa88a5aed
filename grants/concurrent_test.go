package grants

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ossbroker/btp-security-broker/descriptor"
)

// TestConcurrentUpdatesAndQueries runs readers against writers that keep
// upserting and removing apps. Run it with -race: it then also proves that
// no *App handed out is modified afterwards, since readers read every field
// of the apps they get while writers replace them.
//
// The readers query a stable set of apps that grant to each other, whose
// answers are known beforehand. The writers' apps share every lookup key
// and grant bucket of the stable apps but cannot change those answers:
// their larger InstanceIDs lose each key to the stable app, and what they
// grant to the stable apps is not accepted by them (acceptance is explicit).
// A reader that sees anything else has caught a broken update.
func TestConcurrentUpdatesAndQueries(t *testing.T) {
	const stable, writers, readers, writes = 6, 2, 3, 1500
	name := func(i int) string { return fmt.Sprintf("st%d", i) }
	var apps []App
	for i := range stable {
		next := name((i + 1) % stable)
		apps = append(apps, app(name(i), descriptor.Descriptor{
			Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Callback", "$XSAPPNAME(application,"+next+")"),
				userGrant("$XSAPPNAME.Read", "$XSSERVICENAME("+next+"-uaa)"),
				scope("$XSAPPNAME.Own"),
			},
			Authorities:            []string{"$XSAPPNAME.Own", "$XSAPPNAME(application," + name((i+stable-1)%stable) + ").Callback"},
			ForeignScopeReferences: []string{"$XSAPPNAME(application," + name((i+stable-1)%stable) + ").Read"},
			RoleTemplates:          []descriptor.RoleTemplate{{Name: "V", ScopeReferences: []string{"$XSAPPNAME.Own", "$XSSERVICENAME(" + name((i+stable-1)%stable) + "-uaa).Read"}}},
		}))
	}
	type answers struct {
		authorities, clientScopes, template []string
	}
	d := NewDirectory(apps)
	want := map[string]answers{}
	for _, a := range apps {
		p := mustLookup(t, d, a.InstanceID)
		tpl, _ := d.RoleTemplateScopes(p, "V")
		want[a.InstanceID] = answers{d.Authorities(p), d.ClientScopes(p), tpl}
		// Each stable app must get a grant, or the test proves little.
		if len(want[a.InstanceID].authorities) != 3 || len(want[a.InstanceID].clientScopes) != 5 || len(tpl) != 2 {
			t.Fatalf("%s: unexpected answers %+v", a.InstanceID, want[a.InstanceID])
		}
	}

	// churn returns a writer's app: a shadow of stable app i, granting to
	// stable apps what they do not accept.
	churn := func(w, k, i int, r *rand.Rand) App {
		a := app(name(i), descriptor.Descriptor{
			Scopes: []descriptor.Scope{
				authGrant("$XSAPPNAME.Noise", "$XSAPPNAME(application,"+name(r.IntN(stable))+")", "$XSAPPNAME"),
				userGrant("$XSAPPNAME.Noise", "$XSSERVICENAME("+name(r.IntN(stable))+"-uaa)"),
			},
			Authorities:   []string{"$ACCEPT_GRANTED_AUTHORITIES"},
			RoleTemplates: []descriptor.RoleTemplate{{Name: "V"}},
		})
		a.InstanceID = fmt.Sprintf("zz-%d-%d", w, k)
		return a
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for n := range writes {
				k := r.IntN(20)
				switch r.IntN(3) {
				case 0, 1:
					d.Upsert(churn(w, k, r.IntN(stable), r))
				default:
					d.Remove(fmt.Sprintf("zz-%d-%d", w, k))
				}
				if n%100 == 0 {
					// Replace a stable app by an equal copy: its answers
					// must hold across the replacement.
					d.Upsert(apps[r.IntN(stable)])
				}
			}
		})
	}
	var failed sync.Once
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				for _, a := range apps {
					p, ok := d.Lookup(a.InstanceID)
					if !ok {
						failed.Do(func() { t.Errorf("Lookup(%s) failed", a.InstanceID) })
						return
					}
					tpl, _ := d.RoleTemplateScopes(p, "V")
					got := answers{d.Authorities(p), d.ClientScopes(p), tpl}
					w := want[a.InstanceID]
					if !slices.Equal(got.authorities, w.authorities) || !slices.Equal(got.clientScopes, w.clientScopes) || !slices.Equal(got.template, w.template) {
						failed.Do(func() { t.Errorf("%s: answers %+v; want %+v", a.InstanceID, got, w) })
						return
					}
					if f, _, ok := d.FindTemplate(a.FullName + ".V"); !ok || f.InstanceID != a.InstanceID {
						failed.Do(func() { t.Errorf("FindTemplate(%s.V) = %s, %v", a.FullName, idOf(f), ok) })
						return
					}
					if x, ok := d.Expand(p, "$XSAPPNAME(application,"+a.BaseName+").X"); !ok || x != a.FullName+".X" {
						failed.Do(func() { t.Errorf("Expand = %q, %v", x, ok) })
						return
					}
				}
				n := d.Len()
				if n < stable || n > stable+writers*20 {
					failed.Do(func() { t.Errorf("Len = %d", n) })
					return
				}
				// Read every field of every app handed out, racing with
				// the writers' replacements of them.
				for _, a := range d.Apps() {
					_ = fmt.Sprint(*a, *a.Descriptor)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	rg.Wait()
}

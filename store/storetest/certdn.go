package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
)

// The lookup of bindings by certificate subject and issuer DN
// (ListBindingsByCertDN). The fixtures use DNs that are prefixes of each
// other or concatenate to the same text, to catch index keys built by
// naive concatenation, and a DN longer than any key or index entry a
// backend may hold as it is.

// longDN is a subject DN far longer than a bbolt key (32 KiB) or a
// PostgreSQL btree entry (about 2.7 kB) may be: the DNs of a certificate
// the user brings have no length limit.
var longDN = "CN=long,OU=" + strings.Repeat("x", 40<<10)

// CertBinding returns NewBinding(id, instanceID, "fp-"+id) with a
// certificate of this subject and issuer DN, unpinned, as the broker
// stores a self-managed certificate with certificate-pinning false.
func CertBinding(id, instanceID, subject, issuer string) *store.Binding {
	b := NewBinding(id, instanceID, "fp-"+id)
	b.Cert.Subject, b.Cert.Issuer, b.Cert.Pinned = subject, issuer, false
	return b
}

// CertDNFixture returns instances and their bindings whose lookups by
// certificate DN CheckCertDNFixture checks. Backends use it to test that
// the index is built for bindings written before it existed.
func CertDNFixture() ([]*store.Instance, []*store.Binding) {
	ins := []*store.Instance{NewInstance("c1"), NewInstance("c2")}
	noCert := NewBinding("d0", "c1", "")
	// Not in id order, across instances, so that the sorting is the
	// store's.
	bs := []*store.Binding{
		CertBinding("d3", "c2", "CN=app,O=acme", "CN=ca,O=acme"),
		CertBinding("d1", "c1", "CN=app,O=acme", "CN=ca,O=acme"),
		CertBinding("d2", "c1", "CN=app,O=acme", "CN=other-ca"),
		CertBinding("d4", "c2", "CN=app", "CN=ca,O=acme"),
		CertBinding("d5", "c1", "CN=app,O=acme,CN=ca", "O=acme"), // subject+issuer as d1's
		CertBinding("d6", "c1", "", "CN=ca,O=acme"),
		CertBinding("d7", "c2", "CN=app,O=acme", ""),
		CertBinding("d8", "c2", longDN, "CN=ca,O=acme"),
		CertBinding("d9", "c1", "CN=Grüße,O=ÄÖÜ", "CN=ca,O=acme"),
		noCert,
	}
	// A broker-issued (pinned) certificate is found by DN too: the caller
	// decides what to do with it.
	bs[1].Cert.Pinned, bs[1].Cert.Provided = true, false
	return ins, bs
}

// CheckCertDNFixture checks the lookups of the CertDNFixture records in s.
func CheckCertDNFixture(t *testing.T, s store.Store) {
	t.Helper()
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, "CN=app,O=acme", "CN=ca,O=acme", "d1", "d3")
		checkCertDN(t, tx, "CN=app,O=acme", "CN=other-ca", "d2")
		checkCertDN(t, tx, "CN=app", "CN=ca,O=acme", "d4")
		checkCertDN(t, tx, "CN=app,O=acme,CN=ca", "O=acme", "d5")
		checkCertDN(t, tx, longDN, "CN=ca,O=acme", "d8")
		checkCertDN(t, tx, "CN=Grüße,O=ÄÖÜ", "CN=ca,O=acme", "d9")
		// Empty DNs match nothing, not even certificates with that DN.
		checkCertDN(t, tx, "", "CN=ca,O=acme")
		checkCertDN(t, tx, "CN=app,O=acme", "")
		checkCertDN(t, tx, "", "")
		// Not found: swapped, prefixes, other case, other concatenations.
		checkCertDN(t, tx, "CN=ca,O=acme", "CN=app,O=acme")
		checkCertDN(t, tx, "CN=app,O=acme", "CN=ca")
		checkCertDN(t, tx, "CN=app,O", "CN=ca,O=acme")
		checkCertDN(t, tx, "cn=app,o=acme", "CN=ca,O=acme")
		checkCertDN(t, tx, "CN=app,O=acme,CN=ca,O=acme", "")
		checkCertDN(t, tx, longDN[:len(longDN)-1], "CN=ca,O=acme")
		checkCertDN(t, tx, "CN=nobody", "CN=nobody")
		list, err := tx.ListBindingsByCertDN("CN=app,O=acme", "CN=other-ca")
		if err == nil && len(list) == 1 {
			_, bs := CertDNFixture()
			checkEqual(t, "binding by certificate DN", list[0], bs[2])
		}
		return nil
	})
}

// checkCertDN checks that ListBindingsByCertDN returns the bindings want,
// in this order, and only bindings with these DNs. No match is an empty
// result and a nil error.
func checkCertDN(t *testing.T, tx store.Tx, subject, issuer string, want ...string) {
	t.Helper()
	list, err := tx.ListBindingsByCertDN(subject, issuer)
	what := fmt.Sprintf("ListBindingsByCertDN(%.40q, %.40q)", subject, issuer)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	got := []string{}
	for _, b := range list {
		got = append(got, b.ID)
		if b.Cert == nil || b.Cert.Subject != subject || b.Cert.Issuer != issuer {
			t.Errorf("%s returned %s with certificate %+.80v", what, b.ID, b.Cert)
		}
	}
	if !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func createAll(tx store.Tx, ins []*store.Instance, bs []*store.Binding) error {
	for _, in := range ins {
		if err := tx.CreateInstance(in); err != nil {
			return fmt.Errorf("create instance %s: %w", in.ID, err)
		}
	}
	for _, b := range bs {
		if err := tx.CreateBinding(b); err != nil {
			return fmt.Errorf("create binding %s: %w", b.ID, err)
		}
	}
	return nil
}

// testCertDNFixture writes CertDNFixture through the store and checks it,
// so that a backend's upgrade test checks the same lookups as a store
// that maintained its index from the start.
func testCertDNFixture(t *testing.T, s store.Store) {
	WriteCertDNFixture(t, s)
	CheckCertDNFixture(t, s)
}

// WriteCertDNFixture writes the CertDNFixture records through s.
func WriteCertDNFixture(t *testing.T, s store.Store) {
	t.Helper()
	ins, bs := CertDNFixture()
	MustUpdate(t, s, func(tx store.Tx) error { return createAll(tx, ins, bs) })
}

func testCertDNIndex(t *testing.T, s store.Store) {
	const subj, iss = "CN=app,O=acme", "CN=ca,O=acme"
	MustUpdate(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, iss)
		err := createAll(tx,
			[]*store.Instance{NewInstance("i1"), NewInstance("i2"), NewInstance("i3")},
			[]*store.Binding{
				CertBinding("b3", "i2", subj, iss),
				CertBinding("b1", "i1", subj, iss),
				CertBinding("b2", "i1", subj, iss),
				CertBinding("b4", "i3", subj, iss),
				CertBinding("b5", "i1", subj, "CN=other"),
				NewBinding("b6", "i1", ""),
			})
		if err != nil {
			return err
		}
		// The writing transaction sees its own index entries.
		checkCertDN(t, tx, subj, iss, "b1", "b2", "b3", "b4")
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, iss, "b1", "b2", "b3", "b4")
		checkCertDN(t, tx, subj, "CN=other", "b5")
		return nil
	})

	// DeleteBinding removes the entry; a failed Update leaves the entries
	// alone.
	MustUpdate(t, s, func(tx store.Tx) error {
		_, err := tx.DeleteBinding("b2")
		return err
	})
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.DeleteBinding("b3"); err != nil {
			return err
		}
		if err := tx.CreateBinding(CertBinding("b0", "i1", subj, iss)); err != nil {
			return err
		}
		checkCertDN(t, tx, subj, iss, "b0", "b1", "b4")
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update: %v, want the error of fn", err)
	}
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, iss, "b1", "b3", "b4")
		return nil
	})

	// DeleteInstance removes the entries of the instance's bindings, and
	// only those.
	MustUpdate(t, s, func(tx store.Tx) error {
		removed, err := tx.DeleteInstance("i1")
		if err != nil {
			return err
		}
		if got, want := bindingIDs(removed), []string{"b1", "b5", "b6"}; !slices.Equal(got, want) {
			t.Errorf("DeleteInstance(i1) removed %q, want %q", got, want)
		}
		checkCertDN(t, tx, subj, iss, "b3", "b4")
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, iss, "b3", "b4")
		checkCertDN(t, tx, subj, "CN=other")
		return nil
	})

	// A binding id and certificate used again, in another instance, are
	// indexed again; the last binding gone leaves an empty result.
	MustUpdate(t, s, func(tx store.Tx) error {
		return tx.CreateBinding(CertBinding("b1", "i2", subj, "CN=other"))
	})
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, "CN=other", "b1")
		return nil
	})
	MustUpdate(t, s, func(tx store.Tx) error {
		for _, id := range []string{"i2", "i3"} {
			if _, err := tx.DeleteInstance(id); err != nil {
				return err
			}
		}
		return nil
	})
	MustView(t, s, func(tx store.Tx) error {
		checkCertDN(t, tx, subj, iss)
		checkCertDN(t, tx, subj, "CN=other")
		return nil
	})
}

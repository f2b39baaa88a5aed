package bolt

import (
	"path/filepath"
	"slices"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

// TestIndexBackfill opens a file written before the secondary indexes
// existed (made here by dropping their buckets): Open builds them, and
// they are maintained from then on.
func TestIndexBackfill(t *testing.T) {
	indexes := [][]byte{bXSAppNames, bAppNames, bServiceNames, bRoleCollOwners}
	for _, drop := range [][][]byte{indexes, {bServiceNames}, {bRoleCollOwners}} {
		t.Run(string(drop[0]), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "broker.db")
			s := openTemp(t, path)
			storetest.WriteIndexFixture(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			dropBuckets(t, path, drop...)

			s = openTemp(t, path)
			storetest.CheckIndexFixture(t, s)

			// The rebuilt indexes are maintained like any other.
			storetest.MustUpdate(t, s, func(tx store.Tx) error {
				in, err := tx.GetInstance("f1")
				if err != nil {
					return err
				}
				in.XSAppName, in.InstanceName = "moved!t1", "moved"
				if err := tx.PutInstance(in); err != nil {
					return err
				}
				_, err = tx.DeleteInstance("f3")
				return err
			})
			storetest.MustView(t, s, func(tx store.Tx) error {
				if in, err := tx.GetInstanceByXSAppName("moved!t1"); err != nil || in.ID != "f1" {
					t.Errorf("GetInstanceByXSAppName(moved!t1) = %v, %v; want f1", in, err)
				}
				if list, err := tx.ListInstancesByServiceName("space-1", "web"); err != nil || len(list) != 1 || list[0].ID != "f2" {
					t.Errorf("ListInstancesByServiceName(space-1, web) = %d instances, %v; want f2", len(list), err)
				}
				if list, err := tx.ListRoleCollectionsByOwner("f3"); err != nil || len(list) != 0 {
					t.Errorf("ListRoleCollectionsByOwner(f3) after DeleteInstance = %d, %v; want none", len(list), err)
				}
				return nil
			})
		})
	}
}

// dropBuckets deletes buckets from the closed store file at path, as if a
// release without them had written it.
func dropBuckets(t *testing.T, path string, drop ...[]byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range drop {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestCertDNIndexBackfill opens a file written before the certificate DN
// index existed: Open builds it from the bindings, and it is maintained
// from then on.
func TestCertDNIndexBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s := openTemp(t, path)
	storetest.WriteCertDNFixture(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dropBuckets(t, path, bCertDNs)

	s = openTemp(t, path)
	storetest.CheckCertDNFixture(t, s)

	storetest.MustUpdate(t, s, func(tx store.Tx) error {
		if _, err := tx.DeleteBinding("d1"); err != nil {
			return err
		}
		if _, err := tx.DeleteInstance("c2"); err != nil {
			return err
		}
		return tx.CreateBinding(storetest.CertBinding("d10", "c1", "CN=app", "CN=ca,O=acme"))
	})
	storetest.MustView(t, s, func(tx store.Tx) error {
		for _, c := range []struct {
			subject, issuer string
			want            []string
		}{
			{"CN=app,O=acme", "CN=ca,O=acme", nil},
			{"CN=app", "CN=ca,O=acme", []string{"d10"}},
			{"CN=app,O=acme", "CN=other-ca", []string{"d2"}},
		} {
			list, err := tx.ListBindingsByCertDN(c.subject, c.issuer)
			var got []string
			for _, b := range list {
				got = append(got, b.ID)
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ListBindingsByCertDN(%s, %s) = %v, %v; want %v", c.subject, c.issuer, got, err, c.want)
			}
		}
		return nil
	})
}

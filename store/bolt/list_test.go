package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/ossbroker/btp-security-broker/store"
)

// TestListDecodesInParallel: a list long enough to be decoded by several
// goroutines comes back complete and in key order, and one undecodable
// record fails the whole list with its key named.
func TestListDecodesInParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4*parallelDecodeMin + 7
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			in := &store.Instance{ID: fmt.Sprintf("i-%05d", i), Service: "identity", ClientID: fmt.Sprintf("c-%05d", i), InstanceName: fmt.Sprint("name ", i)}
			if err := tx.CreateInstance(in); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var got []*store.Instance
	if err := s.View(ctx, func(tx store.Tx) (err error) { got, err = tx.ListInstances(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("listed %d instances, want %d", len(got), n)
	}
	for i, in := range got {
		if want := fmt.Sprintf("i-%05d", i); in == nil || in.ID != want || in.InstanceName != fmt.Sprint("name ", i) {
			t.Fatalf("instance %d = %+v, want id %s", i, in, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bInstances).Put([]byte("i-01500"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(ctx, func(tx store.Tx) (err error) { _, err = tx.ListInstances(); return err })
	if err == nil || !strings.Contains(err.Error(), "i-01500") {
		t.Fatalf("listing with a corrupt record: err = %v, want an error naming i-01500", err)
	}
}

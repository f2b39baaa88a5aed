package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/ossbroker/btp-security-broker/store"
)

// TestBackupWhileWriting copies the store while another goroutine keeps
// committing pairs of records (an instance and its binding, in one
// transaction): the copy opens, passes Check, and holds whole pairs only.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := openTemp(t, filepath.Join(dir, "broker.db"))
	ctx := context.Background()
	put := func(i int) error {
		return s.Update(ctx, func(tx store.Tx) error {
			id := fmt.Sprintf("in-%04d", i)
			if err := tx.CreateInstance(&store.Instance{ID: id, ClientID: "sb-" + id}); err != nil {
				return err
			}
			return tx.CreateBinding(&store.Binding{ID: "b-" + id, InstanceID: id, SealedCredentials: []byte("x")})
		})
	}
	for i := range 50 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := put(i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var copies []string
	for n := range 3 {
		var buf bytes.Buffer
		if err := s.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("copy-%d.db", n))
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, path)
	}
	close(stop)
	wg.Wait()

	for _, path := range copies {
		if err := Check(path); err != nil {
			t.Fatalf("Check(%s): %v", filepath.Base(path), err)
		}
		c := openTemp(t, path)
		err := c.View(ctx, func(tx store.Tx) error {
			ins, err := tx.ListInstances()
			if err != nil {
				return err
			}
			if len(ins) < 50 {
				return fmt.Errorf("%d instances, want at least the 50 written before", len(ins))
			}
			for _, in := range ins {
				bs, err := tx.ListBindings(in.ID)
				if err != nil || len(bs) != 1 {
					return fmt.Errorf("instance %s: bindings %v, %v; want exactly its one", in.ID, bs, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	dir := t.TempDir()
	s := openTemp(t, filepath.Join(dir, "broker.db"))
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	tests := []struct {
		name string
		data []byte
	}{
		{"truncated", good[:len(good)/2]},
		{"last page missing", good[:len(good)-4096]},
		{"one meta page", good[:4096]},
		{"not bbolt", []byte(strings.Repeat("not a database ", 1000))},
		{"empty", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".db")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Check(path); err == nil {
				t.Fatalf("Check accepted a %s file", tc.name)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(dir, "nope.db")
		if err := Check(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Check of a missing file: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Check created the file: %v", err)
		}
	})
	t.Run("other bbolt file", func(t *testing.T) {
		path := filepath.Join(dir, "other.db")
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if err := Check(path); err == nil || !strings.Contains(err.Error(), "not a broker store") {
			t.Fatalf("Check of an empty bbolt file: %v", err)
		}
	})
}

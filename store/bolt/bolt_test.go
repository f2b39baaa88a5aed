package bolt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/storetest"
)

func openTemp(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Close is idempotent in bbolt, so a store closed by Reopen may be
	// closed again here.
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t,
		func(t *testing.T) store.Store {
			return openTemp(t, filepath.Join(t.TempDir(), "broker.db"))
		},
		storetest.Options{
			Reopen: func(t *testing.T, s store.Store) store.Store {
				bs := s.(*Store)
				path := bs.Path()
				if err := bs.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return openTemp(t, path)
			},
		})
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "broker.db")
	s := openTemp(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("store file mode %v, want 0600", perm)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestOpenLocked checks that a second broker on the same data directory
// gets an error instead of waiting forever for the file lock.
func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	first := openTemp(t, path)

	done := make(chan error, 1)
	go func() {
		s, err := Open(path)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	// Hang guard only: Open gives up after its own, much shorter, timeout.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("second Open of a file in use succeeded")
		}
		t.Logf("second Open: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("second Open of a file in use did not return")
	}

	// Once the first store is closed the file can be opened again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openTemp(t, path)
}

func TestClosedStore(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "broker.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(context.Background(), func(store.Tx) error { return nil }); err == nil {
		t.Error("View on a closed store succeeded")
	}
	if err := s.Update(context.Background(), func(store.Tx) error { return nil }); err == nil {
		t.Error("Update on a closed store succeeded")
	}
	// Ping treats a missing key as healthy; a closed store must not look
	// like that.
	if err := s.Ping(context.Background()); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Ping on a closed store: %v, want an error", err)
	}
}

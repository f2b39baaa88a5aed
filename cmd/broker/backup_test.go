package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// TestBackupCommand takes 'broker backup' copies of a running broker while
// OSB traffic goes on, checks they are complete stores, and restores one.
func TestBackupCommand(t *testing.T) {
	tb := startBroker(t, nil)
	bindings := bindEveryKind(t, tb, "backup")
	env := cliEnv(tb)
	out := filepath.Join(t.TempDir(), "copy.db")

	// Binds and unbinds go on while the copy is taken: it is whole
	// anyway (every binding in it has its instance, indexes agree).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in := bindings[0].in
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := newUUID()
			if status, body := tb.bind(in, id, in.keyBindBody(nil)); status != http.StatusCreated {
				t.Errorf("bind during backup: %d %s", status, body)
				return
			}
			if status, body := tb.unbind(in, id); status != http.StatusOK {
				t.Errorf("unbind during backup: %d %s", status, body)
				return
			}
		}
	}()
	stdout := mustCLI(t, env, "backup", "-o", out)
	close(stop)
	wg.Wait()
	if !strings.HasPrefix(stdout, "wrote "+out) {
		t.Errorf("output %q", stdout)
	}

	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("backup file mode %04o, want 0600", perm)
	}
	if err := bolt.Check(out); err != nil {
		t.Fatal(err)
	}
	copyDB, err := bolt.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	err = copyDB.View(context.Background(), func(tx store.Tx) error {
		for _, b := range bindings {
			if _, err := tx.GetInstance(b.in.ID); err != nil {
				return err
			}
			if _, err := tx.GetBinding(b.id); err != nil {
				return err
			}
		}
		all, err := tx.ListInstances()
		if err != nil {
			return err
		}
		for _, in := range all {
			bs, err := tx.ListBindings(in.ID)
			if err != nil {
				return err
			}
			for _, b := range bs {
				if b.Cert != nil {
					if _, err := tx.GetBindingByFingerprint(b.Cert.Fingerprint); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	copyDB.Close()
	if err != nil {
		t.Fatalf("the copy: %v", err)
	}
	noTemps := func(t *testing.T) {
		t.Helper()
		entries, _ := os.ReadDir(filepath.Dir(out))
		for _, e := range entries {
			if e.Name() != filepath.Base(out) {
				t.Errorf("left behind: %s", e.Name())
			}
		}
		entries, _ = os.ReadDir(tb.dataDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".backup-") {
				t.Errorf("left behind in the data dir: %s", e.Name())
			}
		}
	}
	noTemps(t)

	t.Run("refused without the operator's credentials", func(t *testing.T) {
		before, _ := os.ReadFile(out)
		bad := cliEnv(tb)
		bad["BROKER_PASSWORD"] = "wrong-password-wrong-password"
		_, err := runCLI(bad, "backup", "-o", out)
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("backup with a wrong password: %v", err)
		}
		if after, _ := os.ReadFile(out); string(after) != string(before) {
			t.Errorf("a refused backup changed %s", out)
		}
		resp, err := tb.client().Get(tb.base + "/admin/backup")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /admin/backup without credentials: %d", resp.StatusCode)
		}
		if strings.Contains(string(body), bindings[0].in.ID) {
			t.Fatalf("store content in the refusal")
		}
		noTemps(t)
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"backup"}, {"backup", "-o", out, "extra"}} {
			if _, err := runCLI(env, args...); err == nil || !strings.Contains(err.Error(), "usage: broker backup -o FILE") {
				t.Errorf("broker %s: %v", strings.Join(args, " "), err)
			}
		}
	})

	t.Run("restore", func(t *testing.T) {
		// A binding made after the copy is not in it.
		later := &keptBinding{in: bindings[0].in, id: newUUID()}
		later.creds = tb.mustBind(t, later.in, later.id, "", nil)
		tb.stop()
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tb.dataDir, storeFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		tb.start(t)
		checkServed(t, tb, bindings)
		checkTokens(t, tb, bindings)
		if status, body := tb.getBinding(later.in, later.id); status != http.StatusNotFound {
			t.Errorf("binding made after the copy: %d %s", status, body)
		}
	})
}

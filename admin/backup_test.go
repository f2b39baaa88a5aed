package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/admin"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// failingStore cannot copy itself.
type failingStore struct{}

func (failingStore) Backup(io.Writer) error { return errors.New("disk on fire") }

func backupServer(t *testing.T, src admin.Backuper, dir string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	(&admin.Backup{Store: src, Dir: dir, Logger: lager.NewLogger("test")}).Register(mux, func(h http.Handler) http.Handler {
		return broker.BasicAuth(broker.Credentials{Username: opUser, Password: opPass}, h)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getBackup(t *testing.T, srv *httptest.Server, user, pass string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/backup", nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// noTempFiles fails if dir holds anything but the store itself.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "broker.db" {
			t.Errorf("left behind in %s: %s", dir, e.Name())
		}
	}
}

func TestBackupEndpoint(t *testing.T) {
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(context.Background(), func(tx store.Tx) error {
		return tx.CreateInstance(&store.Instance{ID: "in-1", ClientID: "sb-in-1", Service: "xsuaa"})
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := backupServer(t, st, dir)

	t.Run("copy", func(t *testing.T) {
		resp, body := getBackup(t, srv, opUser, opPass)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if n, _ := strconv.Atoi(resp.Header.Get("Content-Length")); n != len(body) || n == 0 {
			t.Errorf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), len(body))
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="broker-`) {
			t.Errorf("Content-Disposition %q", cd)
		}
		path := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := bolt.Check(path); err != nil {
			t.Fatal(err)
		}
		cp, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		err = cp.View(context.Background(), func(tx store.Tx) error {
			in, err := tx.GetInstanceByClientID("sb-in-1")
			if err == nil && in.ID != "in-1" {
				err = errors.New("wrong instance " + in.ID)
			}
			return err
		})
		if err != nil {
			t.Errorf("instance in the copy: %v", err)
		}
		noTempFiles(t, dir)
	})

	for _, tc := range []struct{ name, user, pass string }{
		{"no credentials", "", ""},
		{"wrong password", opUser, "wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := getBackup(t, srv, tc.user, tc.pass)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if strings.Contains(string(body), "sb-in-1") {
				t.Fatalf("store content in a refused answer")
			}
		})
	}
}

func TestBackupEndpointErrors(t *testing.T) {
	tests := []struct {
		name    string
		src     admin.Backuper
		status  int
		mention string
	}{
		{"postgres", nil, http.StatusNotImplemented, "pg_dump"},
		{"store fails", failingStore{}, http.StatusInternalServerError, "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			resp, body := getBackup(t, backupServer(t, tc.src, dir), opUser, opPass)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e struct{ Description string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Description, tc.mention) {
				t.Fatalf("body %s does not mention %q", body, tc.mention)
			}
			noTempFiles(t, dir)
		})
	}
}

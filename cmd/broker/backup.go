package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// backupTimeout bounds one download; the API client's default is meant
// for small JSON answers.
const backupTimeout = time.Hour

// backupCmd is 'broker backup -o FILE': a consistent copy of a running
// broker's bbolt store (GET /admin/backup). The copy is checked (complete,
// every page readable) before it replaces FILE, atomically and with mode
// 0600. It holds sealed records only: without the data key it restores
// nothing sealed, so the key is kept apart from it.
func backupCmd(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("broker backup", flag.ContinueOnError)
	out := fs.String("o", "", "file to write the copy to (required)")
	c, rest, err := newAPIClient(fs, args, getenv)
	if err != nil {
		return err
	}
	if *out == "" || len(rest) > 0 {
		return errors.New("usage: broker backup -o FILE")
	}
	req, err := http.NewRequest(http.MethodGet, c.base+"/admin/backup", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.username, c.password)
	hc := *c.http
	hc.Timeout = backupTimeout
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return responseError(req, resp)
	}

	tmp, err := os.CreateTemp(filepath.Dir(*out), ".backup-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup incomplete, %s left as it was: %w", *out, err)
	}
	if err := bolt.Check(tmp.Name()); err != nil {
		return fmt.Errorf("the copy is damaged, %s left as it was: %w", *out, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(*out)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", *out, n)
	return nil
}

// responseError describes a refused request with the broker's message.
func responseError(req *http.Request, resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Description string `json:"description"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Description != "" {
		msg = e.Description
	}
	return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, msg)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

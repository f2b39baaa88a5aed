package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running broker for the operator subcommands. It finds
// the broker through BROKER_URL, BROKER_CA, BROKER_USERNAME and
// BROKER_PASSWORD; flags override them.
type apiClient struct {
	base     string
	username string
	password string
	http     *http.Client
}

func newAPIClient(fs *flag.FlagSet, args []string, getenv func(string) string) (*apiClient, []string, error) {
	return newClient(fs, args, getenv, func(fs *flag.FlagSet, args []string) ([]string, error) {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return fs.Args(), nil
	})
}

// newAPIClientInterspersed is newAPIClient for subcommands whose flags may
// follow their positional arguments.
func newAPIClientInterspersed(fs *flag.FlagSet, args []string, getenv func(string) string) (*apiClient, []string, error) {
	return newClient(fs, args, getenv, parseInterspersed)
}

func newClient(fs *flag.FlagSet, args []string, getenv func(string) string, parse func(*flag.FlagSet, []string) ([]string, error)) (*apiClient, []string, error) {
	url := fs.String("url", getenv("BROKER_URL"), "broker base URL (BROKER_URL; default https://localhost:8443)")
	caFile := fs.String("ca", getenv("BROKER_CA"), "CA file for a broker with a private CA, e.g. data/ca.pem (BROKER_CA)")
	user := fs.String("username", getenv("BROKER_USERNAME"), "operator user (BROKER_USERNAME)")
	pass := fs.String("operator-password", getenv("BROKER_PASSWORD"), "operator password (BROKER_PASSWORD)")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	c := &apiClient{base: strings.TrimSuffix(*url, "/"), username: *user, password: *pass}
	if c.base == "" {
		c.base = "https://localhost:8443"
	}
	if c.username == "" || c.password == "" {
		return nil, nil, errors.New("operator credentials missing: set BROKER_USERNAME and BROKER_PASSWORD (see data/broker-credentials.json) or pass -username/-operator-password")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return nil, nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%s: no PEM certificate", *caFile)
		}
		tlsCfg.RootCAs = pool
	}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	return c, pos, nil
}

// doJSON is do with a JSON-encoded request body (nil for none).
func (c *apiClient) doJSON(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(raw)
	}
	return c.do(method, path, r, out)
}

// do sends a request and decodes a JSON answer into out; a non-2xx answer
// becomes an error carrying the broker's description.
func (c *apiClient) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.username, c.password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Description string `json:"description"`
			ErrorDesc   string `json:"error_description"`
		}
		_ = json.Unmarshal(raw, &e)
		msg := e.Description + e.ErrorDesc
		if msg == "" {
			msg = strings.TrimSpace(string(raw))
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// rotateKeys is 'broker rotate-keys': a new token signing key; the previous
// one stays published until its tokens expire.
func rotateKeys(args []string, getenv func(string) string, stdout io.Writer) error {
	c, _, err := newAPIClient(flag.NewFlagSet("broker rotate-keys", flag.ContinueOnError), args, getenv)
	if err != nil {
		return err
	}
	var res struct {
		Keys []struct {
			KID     string `json:"kid"`
			Current bool   `json:"current"`
		} `json:"keys"`
	}
	if err := c.do(http.MethodPost, "/admin/signing-keys/rotate", nil, &res); err != nil {
		return err
	}
	for _, k := range res.Keys {
		state := "published until its tokens expire"
		if k.Current {
			state = "current"
		}
		fmt.Fprintf(stdout, "%s\t%s\n", k.KID, state)
	}
	return nil
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoSecretsInLogs drives every path that handles a secret — binds
// (secret and x509), token requests with secrets in the body and in Basic,
// password and refresh grants, a browser login, an admin user creation, a
// wrong password — and then searches the complete log output for each
// secret, password, token and private key.
func TestNoSecretsInLogs(t *testing.T) {
	dir := t.TempDir()
	usersFile := filepath.Join(dir, "users.yaml")
	const alicePassword = "alice-seed-password-7f3a"
	if err := os.WriteFile(usersFile, []byte("users:\n  - username: alice\n    password: "+alicePassword+"\n    role_collections: [Viewers]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := startBroker(t, map[string]string{"BROKER_USERS_FILE": usersFile})
	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "logs-uaa")
	params := bookshop("logsapp")
	params["role-collections"] = []any{map[string]any{"name": "Viewers", "role-template-references": []any{"$XSAPPNAME.Viewer"}}}
	tb.mustProvision(t, in, params)
	secretCreds := tb.mustBind(t, in, newUUID(), "app-1", nil)
	x509Creds := tb.mustBind(t, in, newUUID(), "app-2", map[string]any{"credential-type": "x509"})

	var secrets []string
	add := func(what, s string) {
		if len(s) < 8 {
			t.Fatalf("%s: too short to search for: %q", what, s)
		}
		secrets = append(secrets, s)
	}
	clientID := secretCreds["clientid"].(string)
	clientSecret := secretCreds["clientsecret"].(string)
	add("client secret", clientSecret)
	add("OSB password", testPassword)
	add("seeded password", alicePassword)
	key := x509Creds["key"].(string)
	add("private key body", keyBody(key))

	token := func(form url.Values, basic bool) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, tb.base+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(clientID, clientSecret)
		}
		resp, err := tb.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	cc := token(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}}, false)
	add("access token", cc["access_token"].(string))
	pw := token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePassword}}, true)
	add("user access token", pw["access_token"].(string))
	add("refresh token", pw["refresh_token"].(string))
	ref := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pw["refresh_token"].(string)}}, true)
	add("rotated refresh token", ref["refresh_token"].(string))
	const wrongPassword = "wrong-password-9c1e"
	add("wrong password", wrongPassword)
	token(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {wrongPassword}}, true)

	// Admin API with a password in the body.
	const carolPassword = "carol-admin-password-4d2b"
	add("admin-created password", carolPassword)
	body := `{"username":"carol","password":"` + carolPassword + `"}`
	req, _ := http.NewRequest(http.MethodPost, tb.base+"/admin/users", strings.NewReader(body))
	req.SetBasicAuth(testUsername, testPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := tb.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("admin create user: %d", resp.StatusCode)
	}

	tb.stop()
	logs := tb.logs.String()
	if !strings.Contains(logs, `"message":"broker.http.request"`) {
		t.Fatalf("no request log lines were written; the test would prove nothing:\n%s", logs)
	}
	for i, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("secret #%d (%.6s…) appears in the log", i, s)
		}
	}
}

// keyBody returns a long middle part of a PEM key's base64 body.
func keyBody(pem string) string {
	lines := strings.Split(strings.TrimSpace(pem), "\n")
	if len(lines) < 6 {
		return pem
	}
	return strings.Join(lines[2:5], "")
}

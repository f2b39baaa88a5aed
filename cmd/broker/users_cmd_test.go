package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cliEnv is the environment an operator sets for the CLI subcommands.
func cliEnv(tb *testBroker) map[string]string {
	return map[string]string{
		"BROKER_URL":      tb.base,
		"BROKER_CA":       filepath.Join(tb.dataDir, caFile),
		"BROKER_USERNAME": testUsername,
		"BROKER_PASSWORD": testPassword,
	}
}

// runCLI runs 'broker args…' against tb with env and returns its standard
// output and error.
func runCLI(env map[string]string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return stdout.String(), err
}

// mustCLI runs the CLI and requires success.
func mustCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, err := runCLI(env, args...)
	if err != nil {
		t.Fatalf("broker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// passwordGrant asks the token endpoint for a user token and returns the
// status and the granted scopes.
func passwordGrant(t *testing.T, tb *testBroker, creds map[string]any, username, password string) (int, []string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, tb.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(creds["clientid"].(string), creds["clientsecret"].(string))
	resp, err := tb.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Scope string `json:"scope"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, strings.Fields(body.Scope)
}

type cliUserList struct {
	Users []userView `json:"users"`
}

type cliRoleCollectionList struct {
	RoleCollections []struct {
		Name          string   `json:"name"`
		Description   string   `json:"description"`
		RoleTemplates []string `json:"role_templates"`
		DeclaredBy    string   `json:"declared_by"`
		Users         []string `json:"users"`
	} `json:"role_collections"`
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return v
}

// TestUsersCLI drives 'broker users …' and 'broker role-collections …'
// against a running broker, and checks the effect where it matters: on the
// password grant of the token endpoint.
func TestUsersCLI(t *testing.T) {
	tb := startBroker(t, nil)
	env := cliEnv(tb)
	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "cli-uaa")
	params := bookshop("bookshop")
	params["role-collections"] = []any{map[string]any{"name": "Bookshop Viewers", "role-template-references": []any{"$XSAPPNAME.Viewer"}}}
	tb.mustProvision(t, in, params)
	creds := tb.mustBind(t, in, newUUID(), "app-1", nil)
	app := creds["xsappname"].(string)
	display := app + ".Display"

	t.Run("users create, flags after and before the username", func(t *testing.T) {
		out := mustCLI(t, env, "users", "create", "dave", "-password", "dave-pass", "-email", "dave@example.com",
			"-given-name", "Dave", "-family-name", "Doe", "-attribute", "Country=DE", "-attribute", "Dept=42", "-attribute", "Country=FR", "-json")
		u := decodeJSON[userView](t, out)
		want := userView{ID: u.ID, Username: "dave", Email: "dave@example.com", GivenName: "Dave", FamilyName: "Doe",
			Origin: "sap.default", RoleCollections: []string{}, Attributes: map[string][]string{"Country": {"DE", "FR"}, "Dept": {"42"}}}
		if u.ID == "" || !reflect.DeepEqual(u, want) {
			t.Fatalf("created %+v\nwant    %+v", u, want)
		}
		out = mustCLI(t, env, "users", "create", "-password", "erin-pass", "-role-collection", "Bookshop Viewers", "erin", "-email", "erin@example.com")
		if !strings.HasPrefix(out, "created user erin (id ") {
			t.Fatalf("output %q", out)
		}
		if status, scopes := passwordGrant(t, tb, creds, "dave", "dave-pass"); status != http.StatusOK || slices.Contains(scopes, display) {
			t.Fatalf("dave's token: %d %q", status, scopes)
		}
		if status, scopes := passwordGrant(t, tb, creds, "erin", "erin-pass"); status != http.StatusOK || !slices.Contains(scopes, display) {
			t.Fatalf("erin's token: %d %q, want %s", status, scopes, display)
		}
	})

	t.Run("users list", func(t *testing.T) {
		out := mustCLI(t, env, "users", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "USERNAME") ||
			!strings.HasPrefix(lines[1], "dave ") || !strings.Contains(lines[1], "dave@example.com") ||
			!strings.HasPrefix(lines[2], "erin ") || !strings.HasSuffix(lines[2], "Bookshop Viewers") {
			t.Fatalf("list:\n%s", out)
		}
		list := decodeJSON[cliUserList](t, mustCLI(t, env, "users", "list", "-json"))
		if len(list.Users) != 2 || list.Users[0].Username != "dave" || !slices.Equal(list.Users[1].RoleCollections, []string{"Bookshop Viewers"}) {
			t.Fatalf("list -json: %+v", list)
		}
	})

	t.Run("role-collections create and assign", func(t *testing.T) {
		out := mustCLI(t, env, "role-collections", "create", "Auditors", "-role-template", app+".Viewer", "-description", "read only")
		if out != "created role collection Auditors\n" {
			t.Fatalf("output %q", out)
		}
		out = mustCLI(t, env, "role-collections", "assign", "Auditors", "dave")
		if out != "assigned role collection Auditors to dave\n" {
			t.Fatalf("output %q", out)
		}
		if status, scopes := passwordGrant(t, tb, creds, "dave", "dave-pass"); status != http.StatusOK || !slices.Contains(scopes, display) {
			t.Fatalf("dave's token after assign: %d %q, want %s", status, scopes, display)
		}
	})

	t.Run("role-collections list", func(t *testing.T) {
		out := mustCLI(t, env, "role-collections", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("list:\n%s", out)
		}
		for i, want := range [][]string{{"Auditors", app + ".Viewer", "(admin)", "dave"}, {"Bookshop Viewers", app + ".Viewer", "cli-uaa", "erin"}} {
			for _, w := range want {
				if !strings.Contains(lines[i+1], w) {
					t.Fatalf("line %q does not show %q:\n%s", lines[i+1], w, out)
				}
			}
		}
		list := decodeJSON[cliRoleCollectionList](t, mustCLI(t, env, "role-collections", "list", "-json"))
		if len(list.RoleCollections) != 2 {
			t.Fatalf("list -json: %+v", list)
		}
		a, v := list.RoleCollections[0], list.RoleCollections[1]
		if a.Name != "Auditors" || a.Description != "read only" || a.DeclaredBy != "" || !slices.Equal(a.Users, []string{"dave"}) ||
			v.Name != "Bookshop Viewers" || v.DeclaredBy != "cli-uaa" || !slices.Equal(v.Users, []string{"erin"}) {
			t.Fatalf("list -json: %+v", list)
		}
	})

	t.Run("users set-password", func(t *testing.T) {
		var stdout bytes.Buffer
		getenv := func(k string) string { return env[k] }
		if err := usersCmd([]string{"set-password", "dave", "-password-stdin"}, getenv, strings.NewReader("dave-new\r\nignored\n"), &stdout); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != "password of dave changed\n" {
			t.Fatalf("output %q", stdout.String())
		}
		if status, _ := passwordGrant(t, tb, creds, "dave", "dave-new"); status != http.StatusOK {
			t.Fatalf("new password: %d", status)
		}
		if status, _ := passwordGrant(t, tb, creds, "dave", "dave-pass"); status != http.StatusUnauthorized {
			t.Fatalf("old password: %d, want 401", status)
		}
		// A last line without newline is the whole password.
		stdout.Reset()
		if err := usersCmd([]string{"set-password", "-password-stdin", "erin"}, getenv, strings.NewReader("erin-new"), &stdout); err != nil {
			t.Fatal(err)
		}
		mustCLI(t, env, "users", "set-password", "dave", "-password", "dave-3")
		for _, c := range [][2]string{{"erin", "erin-new"}, {"dave", "dave-3"}} {
			if status, _ := passwordGrant(t, tb, creds, c[0], c[1]); status != http.StatusOK {
				t.Fatalf("%s with %s: %d", c[0], c[1], status)
			}
		}
		// Empty standard input is an empty password, which the broker refuses.
		err := usersCmd([]string{"set-password", "dave", "-password-stdin"}, getenv, strings.NewReader(""), &stdout)
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("empty stdin: %v", err)
		}
	})

	t.Run("role-collections unassign and delete", func(t *testing.T) {
		out := mustCLI(t, env, "role-collections", "unassign", "Auditors", "dave")
		if out != "unassigned role collection Auditors from dave\n" {
			t.Fatalf("output %q", out)
		}
		if status, scopes := passwordGrant(t, tb, creds, "dave", "dave-3"); status != http.StatusOK || slices.Contains(scopes, display) {
			t.Fatalf("dave's token after unassign: %d %q", status, scopes)
		}
		out = mustCLI(t, env, "role-collections", "delete", "Auditors")
		if out != "deleted role collection Auditors\n" {
			t.Fatalf("output %q", out)
		}
		list := decodeJSON[cliRoleCollectionList](t, mustCLI(t, env, "role-collections", "list", "-json"))
		if len(list.RoleCollections) != 1 || list.RoleCollections[0].Name != "Bookshop Viewers" {
			t.Fatalf("after delete: %+v", list)
		}
	})

	t.Run("users delete", func(t *testing.T) {
		if out := mustCLI(t, env, "users", "delete", "erin"); out != "deleted user erin\n" {
			t.Fatalf("output %q", out)
		}
		list := decodeJSON[cliUserList](t, mustCLI(t, env, "users", "list", "-json"))
		if len(list.Users) != 1 || list.Users[0].Username != "dave" {
			t.Fatalf("after delete: %+v", list)
		}
		if status, _ := passwordGrant(t, tb, creds, "erin", "erin-new"); status != http.StatusUnauthorized {
			t.Fatalf("deleted user's token: %d, want 401", status)
		}
	})

	t.Run("broker errors", func(t *testing.T) {
		cases := []struct {
			name string
			args []string
			says []string
		}{
			{"duplicate user", []string{"users", "create", "dave", "-password", "x"}, []string{"409", `user "dave" already exists`}},
			{"bad username", []string{"users", "create", "da ve", "-password", "x"}, []string{"400", "username"}},
			{"delete unknown user", []string{"users", "delete", "nobody"}, []string{"404", `user "nobody" does not exist`}},
			{"password of unknown user", []string{"users", "set-password", "nobody", "-password", "x"}, []string{"404", `"nobody"`}},
			{"unknown role template", []string{"role-collections", "create", "X", "-role-template", app + ".Nope"}, []string{"400", "role_templates[0]", app + ".Nope"}},
			{"delete declared collection", []string{"role-collections", "delete", "Bookshop Viewers"}, []string{"409", "xs-security.json"}},
			{"delete unknown collection", []string{"role-collections", "delete", "Auditors"}, []string{"404", `"Auditors" does not exist`}},
			{"assign unknown collection", []string{"role-collections", "assign", "Auditors", "dave"}, []string{"404", `"Auditors" does not exist`}},
			{"unassign not assigned", []string{"role-collections", "unassign", "Bookshop Viewers", "dave"}, []string{"404", "not assigned"}},
			{"wrong operator password", []string{"users", "list", "-operator-password", "wrong"}, []string{"401", "wrong broker credentials"}},
		}
		for _, c := range cases {
			out, err := runCLI(env, c.args...)
			if err == nil {
				t.Errorf("%s: no error; output %q", c.name, out)
				continue
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: error %q does not mention %q", c.name, err, s)
				}
			}
		}
	})

	t.Run("flags override the environment", func(t *testing.T) {
		wrong := map[string]string{
			"BROKER_URL": "https://127.0.0.1:1", "BROKER_CA": filepath.Join(t.TempDir(), "none.pem"),
			"BROKER_USERNAME": "nobody", "BROKER_PASSWORD": "wrong",
		}
		out := mustCLI(t, wrong, "users", "list", "-json", "-url", tb.base, "-ca", env["BROKER_CA"],
			"-username", testUsername, "-operator-password", testPassword)
		if list := decodeJSON[cliUserList](t, out); len(list.Users) != 1 {
			t.Fatalf("list: %s", out)
		}
	})

	t.Run("local errors", func(t *testing.T) {
		noCreds := map[string]string{"BROKER_URL": tb.base, "BROKER_CA": env["BROKER_CA"]}
		cases := []struct {
			name string
			env  map[string]string
			args []string
			says string
		}{
			{"no credentials", noCreds, []string{"users", "list"}, "operator credentials missing"},
			{"missing CA file", map[string]string{"BROKER_USERNAME": "u", "BROKER_PASSWORD": "p", "BROKER_CA": filepath.Join(t.TempDir(), "none.pem")}, []string{"role-collections", "list"}, "none.pem"},
			{"users without subcommand", env, []string{"users"}, "usage: broker users"},
			{"unknown users subcommand", env, []string{"users", "frobnicate"}, "unknown subcommand 'users frobnicate'"},
			{"create without username", env, []string{"users", "create", "-password", "x"}, "usage: broker users create"},
			{"delete two users", env, []string{"users", "delete", "a", "b"}, "usage: broker users delete"},
			{"bad attribute", env, []string{"users", "create", "x", "-password", "x", "-attribute", "Country"}, "-attribute"},
			{"two passwords", env, []string{"users", "set-password", "dave", "-password", "x", "-password-stdin"}, "-password and -password-stdin"},
			{"role-collections without subcommand", env, []string{"role-collections"}, "usage: broker role-collections"},
			{"unknown role-collections subcommand", env, []string{"role-collections", "rename", "a", "b"}, "unknown subcommand 'role-collections rename'"},
			{"assign without user", env, []string{"role-collections", "assign", "Auditors"}, "usage: broker role-collections assign"},
			{"create without name", env, []string{"role-collections", "create"}, "usage: broker role-collections create"},
		}
		for _, c := range cases {
			out, err := runCLI(c.env, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%s: err %v, want one mentioning %q; output %q", c.name, err, c.says, out)
			}
		}
		// None of these reached the broker.
		list := decodeJSON[cliUserList](t, mustCLI(t, env, "users", "list", "-json"))
		if len(list.Users) != 1 {
			t.Fatalf("users after local errors: %+v", list)
		}
	})
}

func TestParseInterspersed(t *testing.T) {
	cases := []struct {
		args      []string
		pos       []string
		password  string
		rcs       []string
		json      bool
		wantError bool
	}{
		{args: nil},
		{args: []string{"alice"}, pos: []string{"alice"}},
		{args: []string{"alice", "-password", "x"}, pos: []string{"alice"}, password: "x"},
		{args: []string{"-password", "x", "alice"}, pos: []string{"alice"}, password: "x"},
		{args: []string{"A", "-json", "B", "-role-collection", "r1", "-role-collection=r2"}, pos: []string{"A", "B"}, rcs: []string{"r1", "r2"}, json: true},
		{args: []string{"-role-collection", "r1", "A", "-role-collection", "r2", "B"}, pos: []string{"A", "B"}, rcs: []string{"r1", "r2"}},
		{args: []string{"alice", "-frob"}, wantError: true},
		{args: []string{"alice", "-password"}, wantError: true},
	}
	for _, c := range cases {
		fs := newTestFlagSet()
		password := fs.String("password", "", "")
		asJSON := fs.Bool("json", false, "")
		var rcs listFlag
		fs.Var(&rcs, "role-collection", "")
		pos, err := parseInterspersed(fs, c.args)
		if c.wantError {
			if err == nil {
				t.Errorf("%q: no error", c.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !slices.Equal(pos, c.pos) || *password != c.password || !slices.Equal(rcs, c.rcs) || *asJSON != c.json {
			t.Errorf("%q: pos %q password %q rcs %q json %v", c.args, pos, *password, rcs, *asJSON)
		}
	}
}

func newTestFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

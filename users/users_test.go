package users_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
	"github.com/ossbroker/btp-security-broker/users"
)

// issueExample is the seed file of the issue and the README, verbatim.
const issueExample = `users:
  - username: alice
    password: alice-pass
    email: alice@example.com
    given_name: Alice
    family_name: Doe
    role_collections: ["Bookshop Admin"]
    attributes: {Country: [DE, FR]}
`

func TestParseSeedFileExample(t *testing.T) {
	t.Parallel()
	f, err := users.ParseSeedFile([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	want := []users.Spec{{
		Username: "alice", Password: "alice-pass", Email: "alice@example.com",
		GivenName: "Alice", FamilyName: "Doe",
		RoleCollections: []string{"Bookshop Admin"},
		Attributes:      map[string][]string{"Country": {"DE", "FR"}},
	}}
	if !reflect.DeepEqual(f.Users, want) {
		t.Fatalf("users = %#v\nwant %#v", f.Users, want)
	}
}

func TestParseSeedFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		doc   string
		users int
		err   string // "" means valid; else a substring of the error
	}{
		{"empty file", "", 0, ""},
		{"only a comment", "# nobody yet\n", 0, ""},
		{"empty list", "users: []\n", 0, ""},
		{"null list", "users:\n", 0, ""},
		{"origin and two users", "users:\n  - {username: a, password: p, origin: corp}\n  - {username: b.c@d+e_f-g, password: q}\n", 2, ""},
		{"password of 72 bytes", "users:\n  - {username: a, password: " + strings.Repeat("x", 72) + "}\n", 1, ""},
		{"unknown user key", "users:\n  - {username: a, password: p, passwd: p}\n", 0, "passwd"},
		{"unknown top-level key", "users: []\ngroups: []\n", 0, "groups"},
		{"a hash instead of a password", "users:\n  - {username: a, password: p, PasswordHash: x}\n", 0, "PasswordHash"},
		{"typo in role_collections", "users:\n  - {username: a, password: p, roleCollections: [x]}\n", 0, "roleCollections"},
		{"not a mapping", "- alice\n", 0, "users file"},
		{"attributes not a list", "users:\n  - {username: a, password: p, attributes: {Country: {x: 1}}}\n", 0, "users file"},
		{"duplicate username", "users:\n  - {username: a, password: p}\n  - {username: b, password: p}\n  - {username: a, password: q}\n", 0, `users[2]: duplicate username "a"`},
		{"space in username", "users:\n  - {username: al ice, password: p}\n", 0, "users[0]: username"},
		{"slash in username", "users:\n  - {username: a/b, password: p}\n", 0, "users[0]: username"},
		{"empty username", "users:\n  - {password: p}\n", 0, "users[0]: username"},
		{"username too long", "users:\n  - {username: " + strings.Repeat("u", 256) + ", password: p}\n", 0, "users[0]: username"},
		{"missing password", "users:\n  - {username: a, password: p}\n  - {username: b, email: b@example.com}\n", 0, "users[1]: user b: password is required"},
		{"password of 73 bytes", "users:\n  - {username: a, password: " + strings.Repeat("x", 73) + "}\n", 0, "at most 72 bytes"},
		{"multi-byte password over 72 bytes", "users:\n  - {username: a, password: " + strings.Repeat("ä", 37) + "}\n", 0, "at most 72 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := users.ParseSeedFile([]byte(c.doc))
			if c.err != "" {
				if err == nil {
					t.Fatalf("no error, users %#v", f.Users)
				}
				if !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %q does not mention %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Users) != c.users {
				t.Fatalf("%d users, want %d", len(f.Users), c.users)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h1, err := users.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h1, "$2a$10$") {
		t.Errorf("hash %q is not bcrypt with cost 11", h1)
	}
	if strings.Contains(h1, "s3cret") {
		t.Errorf("hash %q contains the password", h1)
	}
	h2, err := users.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Errorf("two hashes of one password are equal: no salt")
	}
	checks := []struct {
		hash, password string
		want           bool
	}{
		{h1, "s3cret", true},
		{h2, "s3cret", true},
		{h1, "s3cret ", false},
		{h1, "S3cret", false},
		{h1, "", false},
		{"", "s3cret", false},
		{"not a hash", "s3cret", false},
	}
	for _, c := range checks {
		if got := users.CheckPassword(c.hash, c.password); got != c.want {
			t.Errorf("CheckPassword(%.12q…, %q) = %v, want %v", c.hash, c.password, got, c.want)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 73)} {
		if h, err := users.HashPassword(bad); err == nil {
			t.Errorf("HashPassword(%d bytes) = %q, want an error", len(bad), h)
		}
	}
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// upsert runs users.Upsert in its own write transaction.
func upsert(t *testing.T, st store.Store, s users.Spec, now time.Time) (*store.User, bool) {
	t.Helper()
	var u *store.User
	var changed bool
	err := st.Update(context.Background(), func(tx store.Tx) (err error) {
		u, changed, err = users.Upsert(tx, &s, now)
		return err
	})
	if err != nil {
		t.Fatalf("Upsert(%s): %v", s.Username, err)
	}
	return u, changed
}

// stored reads a user back from the store.
func stored(t *testing.T, st store.Store, username string) *store.User {
	t.Helper()
	var u *store.User
	err := st.View(context.Background(), func(tx store.Tx) (err error) {
		u, err = tx.GetUserByName(username)
		return err
	})
	if err != nil {
		t.Fatalf("GetUserByName(%s): %v", username, err)
	}
	return u
}

func TestUpsert(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	spec := users.Spec{
		Username: "alice", Password: "alice-pass", Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe",
		RoleCollections: []string{"Bookshop Admin"}, Attributes: map[string][]string{"Country": {"DE", "FR"}},
	}

	u, changed := upsert(t, st, spec, t0)
	if !changed {
		t.Fatal("creating a user reported no change")
	}
	first := stored(t, st, "alice")
	if first.ID == "" || first.ID != u.ID {
		t.Fatalf("stored id %q, returned %q", first.ID, u.ID)
	}
	if first.Origin != users.DefaultOrigin || first.Email != "alice@example.com" || first.GivenName != "Alice" || first.FamilyName != "Doe" {
		t.Fatalf("stored profile %+v", first)
	}
	if !first.CreatedAt.Equal(t0) || !first.UpdatedAt.Equal(t0) {
		t.Fatalf("created %v updated %v, want %v", first.CreatedAt, first.UpdatedAt, t0)
	}
	if !users.CheckPassword(first.PasswordHash, "alice-pass") {
		t.Fatal("stored hash does not match the password")
	}

	t.Run("same spec again changes nothing", func(t *testing.T) {
		_, changed := upsert(t, st, spec, t0.Add(time.Hour))
		if changed {
			t.Fatal("re-applying the same spec reported a change")
		}
		again := stored(t, st, "alice")
		if again.PasswordHash != first.PasswordHash {
			t.Fatal("re-applying the same spec re-hashed the password")
		}
		if !again.UpdatedAt.Equal(t0) {
			t.Fatalf("UpdatedAt moved to %v", again.UpdatedAt)
		}
	})

	t.Run("an equal but fresh attribute map", func(t *testing.T) {
		s := spec
		s.Attributes = map[string][]string{"Country": {"DE", "FR"}}
		_, changed := upsert(t, st, s, t0.Add(time.Hour))
		if changed {
			t.Fatal("an equal attribute map reported a change")
		}
	})

	t.Run("new password is re-hashed", func(t *testing.T) {
		s := spec
		s.Password = "new-pass"
		_, changed := upsert(t, st, s, t0.Add(2*time.Hour))
		if !changed {
			t.Fatal("a new password reported no change")
		}
		u := stored(t, st, "alice")
		if u.PasswordHash == first.PasswordHash || !users.CheckPassword(u.PasswordHash, "new-pass") || users.CheckPassword(u.PasswordHash, "alice-pass") {
			t.Fatal("the stored hash is not that of the new password")
		}
		if !u.UpdatedAt.Equal(t0.Add(2 * time.Hour)) {
			t.Fatalf("UpdatedAt %v", u.UpdatedAt)
		}
		if u.ID != first.ID || !u.CreatedAt.Equal(t0) {
			t.Fatalf("id or creation time changed: %+v", u)
		}
	})

	t.Run("profile replaced, empty password keeps the hash", func(t *testing.T) {
		before := stored(t, st, "alice").PasswordHash
		s := users.Spec{
			Username: "alice", Email: "a@example.org", Origin: "corp-idp",
			RoleCollections: []string{"Viewer", "Auditor"}, Attributes: map[string][]string{"Dept": {"42"}},
		}
		_, changed := upsert(t, st, s, t0.Add(3*time.Hour))
		if !changed {
			t.Fatal("a new profile reported no change")
		}
		u := stored(t, st, "alice")
		if u.PasswordHash != before {
			t.Fatal("an update without password changed the hash")
		}
		want := store.User{
			ID: first.ID, Username: "alice", PasswordHash: before, Email: "a@example.org", Origin: "corp-idp",
			RoleCollections: []string{"Viewer", "Auditor"}, Attributes: map[string][]string{"Dept": {"42"}},
			CreatedAt: t0, UpdatedAt: t0.Add(3 * time.Hour),
		}
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		if !reflect.DeepEqual(*u, want) {
			t.Fatalf("stored %+v\nwant   %+v", *u, want)
		}
	})

	t.Run("role collection order matters", func(t *testing.T) {
		s := users.Spec{Username: "alice", Email: "a@example.org", Origin: "corp-idp",
			RoleCollections: []string{"Auditor", "Viewer"}, Attributes: map[string][]string{"Dept": {"42"}}}
		if _, changed := upsert(t, st, s, t0.Add(4*time.Hour)); !changed {
			t.Fatal("reordered role collections reported no change")
		}
		if got := stored(t, st, "alice").RoleCollections; !slices.Equal(got, []string{"Auditor", "Viewer"}) {
			t.Fatalf("role collections %q", got)
		}
	})

	t.Run("a given hash is stored as is", func(t *testing.T) {
		hash, err := users.HashPassword("hashed-ahead")
		if err != nil {
			t.Fatal(err)
		}
		s := users.Spec{Username: "hal", PasswordHash: hash}
		if _, changed := upsert(t, st, s, t0); !changed {
			t.Fatal("creating a user from a hash reported no change")
		}
		if got := stored(t, st, "hal").PasswordHash; got != hash {
			t.Fatalf("stored hash %q, want %q", got, hash)
		}
		if _, changed := upsert(t, st, s, t0.Add(time.Hour)); changed {
			t.Fatal("the same hash again reported a change")
		}
		// The hash wins over a password in the same spec.
		s.Password = "ignored"
		if _, changed := upsert(t, st, s, t0.Add(time.Hour)); changed {
			t.Fatal("a password next to an unchanged hash reported a change")
		}
	})

	t.Run("new user without password", func(t *testing.T) {
		err := st.Update(context.Background(), func(tx store.Tx) error {
			_, _, err := users.Upsert(tx, &users.Spec{Username: "nopw"}, t0)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "password is required") {
			t.Fatalf("err = %v, want password is required", err)
		}
	})
}

func writeSeed(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApplySeedFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// A collection that exists, and a user the file does not name.
	err := st.Update(ctx, func(tx store.Tx) error {
		return tx.PutRoleCollection(&store.RoleCollection{Name: "Existing", RoleTemplates: []string{}})
	})
	if err != nil {
		t.Fatal(err)
	}
	zed, _ := upsert(t, st, users.Spec{Username: "zed", Password: "zed-pass", Email: "zed@example.com"}, t0)

	doc := issueExample + `  - username: bob
    password: bob-pass
    role_collections: [Existing, Later, Bookshop Admin]
`
	path := writeSeed(t, doc)
	unknown, err := users.ApplySeedFile(ctx, st, path, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Bookshop Admin", "Later"}; !slices.Equal(unknown, want) {
		t.Fatalf("unknown collections %q, want %q", unknown, want)
	}
	alice := stored(t, st, "alice")
	if !users.CheckPassword(alice.PasswordHash, "alice-pass") || alice.Email != "alice@example.com" ||
		!slices.Equal(alice.RoleCollections, []string{"Bookshop Admin"}) || !slices.Equal(alice.Attributes["Country"], []string{"DE", "FR"}) {
		t.Fatalf("alice %+v", alice)
	}
	bob := stored(t, st, "bob")
	if !slices.Equal(bob.RoleCollections, []string{"Existing", "Later", "Bookshop Admin"}) {
		t.Fatalf("bob's role collections %q: unknown ones must be kept by name", bob.RoleCollections)
	}

	t.Run("re-applying is idempotent", func(t *testing.T) {
		unknown, err := users.ApplySeedFile(ctx, st, path, t0.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(unknown) != 2 {
			t.Fatalf("unknown collections %q on the second apply", unknown)
		}
		for _, before := range []*store.User{alice, bob} {
			after := stored(t, st, before.Username)
			if !reflect.DeepEqual(after, before) {
				t.Errorf("%s changed:\n%+v\n%+v", before.Username, before, after)
			}
		}
	})

	t.Run("users not in the file are untouched", func(t *testing.T) {
		got := stored(t, st, "zed")
		if got.ID != zed.ID || !users.CheckPassword(got.PasswordHash, "zed-pass") || !got.UpdatedAt.Equal(t0) {
			t.Fatalf("zed %+v", got)
		}
	})

	t.Run("a changed file updates only what changed", func(t *testing.T) {
		path := writeSeed(t, strings.Replace(doc, "alice-pass", "alice-new", 1))
		if _, err := users.ApplySeedFile(ctx, st, path, t0.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		a := stored(t, st, "alice")
		if !users.CheckPassword(a.PasswordHash, "alice-new") || !a.UpdatedAt.Equal(t0.Add(3*time.Hour)) {
			t.Fatalf("alice %+v", a)
		}
		if b := stored(t, st, "bob"); !reflect.DeepEqual(b, bob) {
			t.Fatalf("bob changed: %+v", b)
		}
	})

	t.Run("an invalid file changes nothing", func(t *testing.T) {
		path := writeSeed(t, "users:\n  - {username: alice, password: other}\n  - {username: carol}\n")
		if _, err := users.ApplySeedFile(ctx, st, path, t0.Add(4*time.Hour)); err == nil {
			t.Fatal("no error for a user without password")
		}
		if a := stored(t, st, "alice"); !users.CheckPassword(a.PasswordHash, "alice-new") {
			t.Fatal("an invalid file changed alice")
		}
	})

	t.Run("missing file", func(t *testing.T) {
		_, err := users.ApplySeedFile(ctx, st, filepath.Join(t.TempDir(), "nope.yaml"), t0)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want not exist", err)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	created, _ := upsert(t, st, users.Spec{Username: "alice", Password: "alice-pass"}, time.Now())
	cases := []struct {
		name, username, password string
		ok, found                bool
	}{
		{"right password", "alice", "alice-pass", true, true},
		{"wrong password", "alice", "alice-pas", false, true},
		{"empty password", "alice", "", false, true},
		{"unknown user", "mallory", "alice-pass", false, false},
		{"username is case-sensitive", "Alice", "alice-pass", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, ok, err := users.Authenticate(ctx, st, c.username, c.password)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if c.found != (u != nil) {
				t.Fatalf("user %+v, want found=%v", u, c.found)
			}
			if u != nil && u.ID != created.ID {
				t.Fatalf("user id %q, want %q", u.ID, created.ID)
			}
		})
	}
}

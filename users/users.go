// Package users manages the people who log in to the broker's zone: password
// hashing and the BROKER_USERS_FILE seed file.
package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
)

// DefaultOrigin is the identity provider key of users the broker keeps
// itself, as XSUAA calls its default IdP.
const DefaultOrigin = "sap.default"

// bcryptCost is the work factor of password hashes: about 50 ms per check
// on these machines. Passwords are chosen by people, so the hash must be
// slow; but xssec's token requests time out after 2 s, so a password grant
// must stay far below that even on a loaded machine (cost 11 did not).
const bcryptCost = 10

// HashPassword hashes a password for storage.
func HashPassword(password string) (string, error) {
	if len(password) > 72 {
		// bcrypt ignores bytes beyond 72; refuse rather than truncate.
		return "", errors.New("password: at most 72 bytes")
	}
	if password == "" {
		return "", errors.New("password: must not be empty")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	return string(h), err
}

// CheckPassword reports whether password matches hash.
func CheckPassword(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// dummyHash equalises the time of logins with unknown usernames. It is
// made on first use, not at package init: every binary that links this
// package (the CLI subcommands too) would otherwise pay for a hash at start.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such user"), bcryptCost)
	return h
})

// Authenticate checks a username and password against the store. Unknown
// users cost as much time as wrong passwords.
func Authenticate(ctx context.Context, st store.Store, username, password string) (*store.User, bool, error) {
	var u *store.User
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.GetUserByName(username)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return u, CheckPassword(u.PasswordHash, password), nil
}

// Spec is a user as the seed file and the admin API describe it.
type Spec struct {
	Username        string              `yaml:"username" json:"username"`
	Password        string              `yaml:"password" json:"password,omitempty"`
	Email           string              `yaml:"email" json:"email,omitempty"`
	GivenName       string              `yaml:"given_name" json:"given_name,omitempty"`
	FamilyName      string              `yaml:"family_name" json:"family_name,omitempty"`
	Origin          string              `yaml:"origin" json:"origin,omitempty"`
	RoleCollections []string            `yaml:"role_collections" json:"role_collections,omitempty"`
	Attributes      map[string][]string `yaml:"attributes" json:"attributes,omitempty"`
	// PasswordHash, if set, is a HashPassword result that Upsert stores
	// instead of hashing Password, so that callers can hash before they
	// open a write transaction. Neither the seed file nor the API can set
	// it.
	PasswordHash string `yaml:"-" json:"-"`
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,255}$`)

// Validate checks a spec; requirePassword is false for updates that keep
// the password.
func (s *Spec) Validate(requirePassword bool) error {
	if !usernameRE.MatchString(s.Username) {
		return fmt.Errorf("username %q: 1-255 characters of A-Z a-z 0-9 . _ @ + -", s.Username)
	}
	if requirePassword && s.Password == "" {
		return fmt.Errorf("user %s: password is required", s.Username)
	}
	if len(s.Password) > 72 {
		return fmt.Errorf("user %s: password: at most 72 bytes", s.Username)
	}
	return nil
}

// SeedFile is the BROKER_USERS_FILE document.
type SeedFile struct {
	Users []Spec `yaml:"users"`
}

// ParseSeedFile parses and validates a seed document.
func ParseSeedFile(data []byte) (*SeedFile, error) {
	var f SeedFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("users file: %w", err)
	}
	seen := map[string]bool{}
	for i := range f.Users {
		if err := f.Users[i].Validate(true); err != nil {
			return nil, fmt.Errorf("users file: users[%d]: %w", i, err)
		}
		if seen[f.Users[i].Username] {
			return nil, fmt.Errorf("users file: users[%d]: duplicate username %q", i, f.Users[i].Username)
		}
		seen[f.Users[i].Username] = true
	}
	return &f, nil
}

// Upsert creates the user or updates every field the spec sets. The
// password is re-hashed only when it changed, so re-applying a seed file
// leaves the store as it was; a spec with PasswordHash is stored as given.
func Upsert(tx store.Tx, s *Spec, now time.Time) (*store.User, bool, error) {
	u, err := tx.GetUserByName(s.Username)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		if s.Password == "" && s.PasswordHash == "" {
			return nil, false, fmt.Errorf("user %s: password is required", s.Username)
		}
		u = &store.User{ID: credentials.NewID(), Username: s.Username, CreatedAt: now}
		created = true
	case err != nil:
		return nil, false, err
	}
	changed := created
	switch {
	case s.PasswordHash != "":
		if u.PasswordHash != s.PasswordHash {
			u.PasswordHash, changed = s.PasswordHash, true
		}
	case s.Password != "" && (u.PasswordHash == "" || !CheckPassword(u.PasswordHash, s.Password)):
		if u.PasswordHash, err = HashPassword(s.Password); err != nil {
			return nil, false, err
		}
		changed = true
	}
	origin := s.Origin
	if origin == "" {
		origin = DefaultOrigin
	}
	set := func(dst *string, v string) {
		if *dst != v {
			*dst, changed = v, true
		}
	}
	set(&u.Email, s.Email)
	set(&u.GivenName, s.GivenName)
	set(&u.FamilyName, s.FamilyName)
	set(&u.Origin, origin)
	if !slices.Equal(u.RoleCollections, s.RoleCollections) {
		u.RoleCollections, changed = slices.Clone(s.RoleCollections), true
	}
	if !equalAttrs(u.Attributes, s.Attributes) {
		u.Attributes, changed = s.Attributes, true
	}
	if !changed {
		return u, false, nil
	}
	u.UpdatedAt = now
	return u, true, tx.PutUser(u)
}

func equalAttrs(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// ApplySeedFile loads path and upserts every user in it. It returns the
// role-collection names the file assigns that do not exist (yet): a later
// instance may declare them, so they are warnings, not errors.
func ApplySeedFile(ctx context.Context, st store.Store, path string, now time.Time) (unknownCollections []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseSeedFile(data)
	if err != nil {
		return nil, err
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		unknownCollections = nil
		for i := range f.Users {
			if _, _, err := Upsert(tx, &f.Users[i], now); err != nil {
				return err
			}
			for _, rc := range f.Users[i].RoleCollections {
				if _, err := tx.GetRoleCollection(rc); errors.Is(err, store.ErrNotFound) && !slices.Contains(unknownCollections, rc) {
					unknownCollections = append(unknownCollections, rc)
				}
			}
		}
		return nil
	})
	return unknownCollections, err
}

package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/store"
)

func newUser(id, name string) *store.User {
	return &store.User{
		ID: id, Username: name, PasswordHash: "$2a$11$hash", Email: name + "@example.com",
		GivenName: "G", FamilyName: "F", Origin: "sap.default",
		RoleCollections: []string{"A", "B"}, Attributes: map[string][]string{"Country": {"DE", "FR"}},
		CreatedAt: ts(1), UpdatedAt: ts(2),
	}
}

func testUsers(t *testing.T, s store.Store) {
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutUser(newUser("u1", "alice")) })
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutUser(newUser("u2", "bob")) })
	MustView(t, s, func(tx store.Tx) error {
		u, err := tx.GetUser("u1")
		if err != nil {
			return err
		}
		checkEqual(t, "GetUser", u, newUser("u1", "alice"))
		byName, err := tx.GetUserByName("bob")
		if err != nil {
			return err
		}
		checkEqual(t, "GetUserByName", byName.ID, "u2")
		_, err = tx.GetUser("nope")
		checkErr(t, "GetUser missing", err, store.ErrNotFound)
		_, err = tx.GetUserByName("nope")
		checkErr(t, "GetUserByName missing", err, store.ErrNotFound)
		all, err := tx.ListUsers()
		checkEqual(t, "ListUsers count", len(all), 2)
		return err
	})

	// A username taken by another id is refused and changes nothing.
	err := s.Update(context.Background(), func(tx store.Tx) error { return tx.PutUser(newUser("u3", "alice")) })
	checkErr(t, "PutUser taken username", err, store.ErrExists)

	// Renaming moves the username index.
	MustUpdate(t, s, func(tx store.Tx) error {
		u := newUser("u1", "alice2")
		return tx.PutUser(u)
	})
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetUserByName("alice")
		checkErr(t, "old username after rename", err, store.ErrNotFound)
		u, err := tx.GetUserByName("alice2")
		if err != nil {
			return err
		}
		checkEqual(t, "renamed id", u.ID, "u1")
		return nil
	})
	// The old name is free again.
	MustUpdate(t, s, func(tx store.Tx) error { return tx.PutUser(newUser("u3", "alice")) })

	MustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteUser("u2") })
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetUserByName("bob")
		checkErr(t, "deleted username", err, store.ErrNotFound)
		_, err = tx.GetUser("u2")
		checkErr(t, "deleted user", err, store.ErrNotFound)
		return nil
	})
	err = s.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteUser("u2") })
	checkErr(t, "DeleteUser missing", err, store.ErrNotFound)
}

func testEphemeral(t *testing.T, s store.Store) {
	now := ts(1000)
	MustUpdate(t, s, func(tx store.Tx) error {
		if err := tx.PutEphemeral("code:a", []byte("A"), now.Add(time.Minute)); err != nil {
			return err
		}
		if err := tx.PutEphemeral("code:b", []byte("B"), now.Add(-time.Second)); err != nil {
			return err
		}
		return tx.PutEphemeral("refresh:c", []byte{}, now.Add(time.Hour))
	})
	MustView(t, s, func(tx store.Tx) error {
		v, err := tx.GetEphemeral("code:a", now)
		if err != nil {
			return err
		}
		checkEqual(t, "live value", string(v), "A")
		_, err = tx.GetEphemeral("code:a", now.Add(time.Minute))
		checkErr(t, "expired exactly at expiry", err, store.ErrNotFound)
		_, err = tx.GetEphemeral("code:b", now)
		checkErr(t, "expired", err, store.ErrNotFound)
		_, err = tx.GetEphemeral("nope", now)
		checkErr(t, "missing", err, store.ErrNotFound)
		v, err = tx.GetEphemeral("refresh:c", now)
		if err != nil {
			return err
		}
		checkEqual(t, "empty value", len(v), 0)
		return nil
	})
	var purged int
	MustUpdate(t, s, func(tx store.Tx) (err error) {
		purged, err = tx.PurgeEphemeral(now)
		return err
	})
	checkEqual(t, "purged", purged, 1)
	MustUpdate(t, s, func(tx store.Tx) error { return tx.DeleteEphemeral("code:a") })
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetEphemeral("code:a", now)
		checkErr(t, "deleted", err, store.ErrNotFound)
		return nil
	})
	// A failed transaction leaves no ephemeral record behind.
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutEphemeral("code:z", []byte("Z"), now.Add(time.Hour)); err != nil {
			return err
		}
		return boom
	})
	checkErr(t, "rolled back", err, boom)
	MustView(t, s, func(tx store.Tx) error {
		_, err := tx.GetEphemeral("code:z", now)
		checkErr(t, "rolled back record", err, store.ErrNotFound)
		return nil
	})
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// replicaBound is what the broker promises: an unbind on one replica kills
// the credential on every other within 2 s, even if a notification is lost.
const replicaBound = 2 * time.Second

// testDatabase creates an empty PostgreSQL database for one test (dropped
// afterwards) on the server of BROKER_TEST_DATABASE_URL, or skips.
func testDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("BROKER_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("replica tests need BROKER_TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "broker_replicas_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE DATABASE " + name)
	t.Cleanup(func() { exec("DROP DATABASE " + name + " WITH (FORCE)") })
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// tokenStatus asks replica tb for a client_credentials token.
func tokenStatus(t *testing.T, tb *testBroker, clientID, secret string) int {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
	resp, err := tb.client().PostForm(tb.base+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReplicasShareOneDatabase runs two brokers on one PostgreSQL database
// and checks they behave as one (issue 8).
func TestReplicasShareOneDatabase(t *testing.T) {
	db := testDatabase(t)
	a := startBroker(t, map[string]string{"BROKER_DATABASE_URL": db})
	b := startBroker(t, map[string]string{"BROKER_DATABASE_URL": db})

	t.Run("same CA on both replicas", func(t *testing.T) {
		if string(a.caPEM(t)) != string(b.caPEM(t)) {
			t.Fatal("the replicas wrote different ca.pem files")
		}
	})

	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "replicated-uaa")
	a.mustProvision(t, in, bookshop("replicated"))
	bindingID := newUUID()
	creds := a.mustBind(t, in, bindingID, "app-1", nil)
	cid, secret := creds["clientid"].(string), creds["clientsecret"].(string)

	t.Run("a binding made on A authenticates on B at once", func(t *testing.T) {
		if got := tokenStatus(t, b, cid, secret); got != http.StatusOK {
			t.Fatalf("token on B right after bind on A: %d", got)
		}
	})

	t.Run("an unbind on A kills the credential on B within the bound", func(t *testing.T) {
		// Warm B's client table with the live credential first, so the
		// unbind must travel through the change notification.
		if got := tokenStatus(t, b, cid, secret); got != http.StatusOK {
			t.Fatalf("token on B before unbind: %d", got)
		}
		status, body := a.unbind(in, bindingID)
		expectStatus(t, "unbind on A", status, body, http.StatusOK)
		deadline := time.Now().Add(replicaBound)
		for tokenStatus(t, b, cid, secret) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatalf("B still issues tokens for the unbound secret %v after the unbind on A", replicaBound)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("concurrent identical provisions: one 201, one 200", func(t *testing.T) {
		in := newInstance(xsuaaServiceID, xsuaaApplicationID, "race-uaa")
		codes := provisionBoth(t, a, b, in, bookshop("race"), bookshop("race"))
		if !(codes[0] == 201 && codes[1] == 200) && !(codes[0] == 200 && codes[1] == 201) {
			t.Fatalf("statuses %v, want one 201 and one 200", codes)
		}
	})

	t.Run("concurrent different provisions of one id: one 201, one 409", func(t *testing.T) {
		in := newInstance(xsuaaServiceID, xsuaaApplicationID, "race2-uaa")
		codes := provisionBoth(t, a, b, in, bookshop("racea"), bookshop("raceb"))
		if !(codes[0] == 201 && codes[1] == 409) && !(codes[0] == 409 && codes[1] == 201) {
			t.Fatalf("statuses %v, want one 201 and one 409", codes)
		}
	})

	t.Run("a signing key rotated on A is published by B within the bound", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, a.base+"/admin/signing-keys/rotate", nil)
		req.SetBasicAuth(testUsername, testPassword)
		resp, err := a.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rotated struct {
			Keys []struct {
				KID     string `json:"kid"`
				Current bool   `json:"current"`
			} `json:"keys"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&rotated)
		resp.Body.Close()
		var current string
		for _, k := range rotated.Keys {
			if k.Current {
				current = k.KID
			}
		}
		if current == "" {
			t.Fatalf("rotation answered no current key: %+v", rotated)
		}
		deadline := time.Now().Add(replicaBound)
		for {
			resp, err := b.client().Get(b.base + "/token_keys")
			if err != nil {
				t.Fatal(err)
			}
			var jwks struct {
				Keys []struct {
					KID string `json:"kid"`
				} `json:"keys"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&jwks)
			resp.Body.Close()
			if len(jwks.Keys) > 0 && jwks.Keys[0].KID == current {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("B's JWKS %+v does not lead with A's new key %s after %v", jwks.Keys, current, replicaBound)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// provisionBoth sends the provision of in to both replicas at the same
// moment and returns their statuses (A's first).
func provisionBoth(t *testing.T, a, b *testBroker, in instance, pa, pb any) [2]int {
	t.Helper()
	var codes [2]int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, rep := range []*testBroker{a, b} {
		params := []any{pa, pb}[i]
		wg.Add(1)
		go func(i int, rep *testBroker) {
			defer wg.Done()
			<-start
			status, body := rep.provision(in, params)
			if status >= 500 {
				t.Errorf("replica %d: %d %s", i, status, strings.TrimSpace(string(body)))
			}
			codes[i] = status
		}(i, rep)
	}
	close(start)
	wg.Wait()
	return codes
}

package oauth

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ossbroker/btp-security-broker/store"
)

// TestUnbindWaitsForTokensInFlight: a password grant authenticates with a
// binding and then spends a long time checking the user's password; the
// binding is unbound meanwhile. Either the grant is refused, or it finishes
// before the unbind returns — never a token after the unbind was
// acknowledged.
func TestUnbindWaitsForTokensInFlight(t *testing.T) {
	w := newUserWorld(t)
	f := w.f
	b := f.bind(w.inst, "")
	// A deliberately slow hash for alice widens the window.
	slow, err := bcrypt.GenerateFromPassword([]byte(alicePass), 13)
	if err != nil {
		t.Fatal(err)
	}
	err = f.st.Update(context.Background(), func(tx store.Tx) error {
		u, err := tx.GetUser(w.alice.ID)
		if err != nil {
			return err
		}
		u.PasswordHash = string(slow)
		return tx.PutUser(u)
	})
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		status int
		at     time.Time
	}
	res := make(chan result, 1)
	go func() {
		status, _ := f.token(passwordForm(b, "alice", alicePass))
		res <- result{status, time.Now()}
	}()
	time.Sleep(100 * time.Millisecond) // the grant is now checking the password
	f.unbind(b)
	unbound := time.Now()
	r := <-res
	// The response reaches this client a moment after the server wrote
	// it, so allow transit time. Without the guarantee the grant would
	// finish only when its slow password check does, hundreds of
	// milliseconds after a ~1 ms unbind.
	if r.status == http.StatusOK && r.at.Sub(unbound) > 100*time.Millisecond {
		t.Fatalf("a token arrived %v after the unbind returned", r.at.Sub(unbound))
	}
	if status, _ := f.token(passwordForm(b, "alice", alicePass)); status != http.StatusUnauthorized {
		t.Fatalf("after the unbind: %d", status)
	}
}

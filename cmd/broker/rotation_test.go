package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/oauth"
	"github.com/ossbroker/btp-security-broker/reseal"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

// rotatedKey is the data key the rotation test moves to.
const rotatedKey = "fedcba9876543210fedcba9876543210fedcba98"

func TestPreviousKeysConfig(t *testing.T) {
	cur := strings.Repeat("c", 40)
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 50)
	tests := []struct {
		name, raw string
		want      []string
		err       string
	}{
		{"unset", "", nil, ""},
		{"one", a, []string{a}, ""},
		{"two with spaces and a trailing comma", " " + a + " , " + b + ",", []string{a, b}, ""},
		{"short", a + ",short", nil, "key 2 has 5 characters"},
		{"the current key", cur, nil, "key 1 is BROKER_ENCRYPTION_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BROKER_ENCRYPTION_KEY": cur, "BROKER_PREVIOUS_ENCRYPTION_KEYS": tc.raw}
			c, err := loadConfig(nil, func(k string) string { return env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				for _, k := range strings.Split(tc.raw, ",") {
					if k != "" && strings.Contains(err.Error(), k) {
						t.Fatalf("the error shows a key: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(c.PreviousEncryptionKeys) != fmt.Sprint(tc.want) {
				t.Fatalf("previous keys %q, want %q", c.PreviousEncryptionKeys, tc.want)
			}
		})
	}
}

// logEvents returns the data of the broker's log lines whose message ends
// in "."+event.
func logEvents(logs, event string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Message string         `json:"message"`
			Data    map[string]any `json:"data"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasSuffix(line.Message, "."+event) {
			out = append(out, line.Data)
		}
	}
	return out
}

// waitForLog waits until the broker has logged event (the broker does the
// work in the background) and returns its data; the bound only turns a
// hang into a failure.
func waitForLog(t *testing.T, tb *testBroker, event string) map[string]any {
	t.Helper()
	for range 6000 {
		if ev := logEvents(tb.logs.String(), event); len(ev) > 0 {
			return ev[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the broker never logged %s", event)
	return nil
}

// metricValue scrapes /metrics and returns the value of an unlabelled
// series, or an error if it is absent.
func metricValue(tb *testBroker, name string) (float64, error) {
	resp, err := tb.client().Get(tb.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("no series %s", name)
}

// TestDataKeyRotation rotates the data key of a broker with bindings of
// every kind: restarted with a new key and the old one as previous, it
// serves everything (also while it re-seals in the background), re-seals
// every record once, and afterwards runs without the old key.
func TestDataKeyRotation(t *testing.T) {
	tb := startBroker(t, nil)
	bindings := bindEveryKind(t, tb, "rotation")
	status, body := adminCall(t, tb, http.MethodPost, "/admin/signing-keys/rotate")
	expectStatus(t, "rotate signing keys", status, body, http.StatusOK)
	_, jwksBefore := adminCall(t, tb, http.MethodGet, "/token_keys")
	caBefore := tb.caPEM(t)
	if _, err := metricValue(tb, "broker_reseal_pending_records"); err == nil {
		t.Errorf("re-sealing metric present without previous keys")
	}

	tb.stop()
	tb.env["BROKER_ENCRYPTION_KEY"] = rotatedKey
	tb.env["BROKER_PREVIOUS_ENCRYPTION_KEYS"] = testEncryptionKey
	tb.logs = &lockedBuffer{}
	tb.start(t)

	// Right after the start the re-sealer runs; OSB traffic goes on.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var during []*keptBinding
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				in := bindings[0].in
				if w == 2 {
					in = bindings[3].in
				}
				b := &keptBinding{in: in, id: newUUID()}
				status, raw := tb.bind(in, b.id, in.keyBindBody(nil))
				if status != http.StatusCreated {
					t.Errorf("bind %d/%d during re-sealing: %d %s", w, i, status, raw)
					continue
				}
				var resp struct {
					Credentials map[string]any `json:"credentials"`
				}
				_ = json.Unmarshal(raw, &resp)
				b.creds = resp.Credentials
				mu.Lock()
				during = append(during, b)
				mu.Unlock()
			}
		}()
	}
	checkServed(t, tb, bindings)
	checkTokens(t, tb, bindings)
	wg.Wait()

	finished := waitForLog(t, tb, "reseal-finished")
	// 5 bindings, the instance secret, the signing keys, the CA.
	want := map[string]any{"resealed": 8.0, "pending": 0.0, "unreadable": 0.0}
	for k, v := range want {
		if finished[k] != v {
			t.Errorf("reseal-finished %s = %v, want %v (%v)", k, finished[k], v, finished)
		}
	}
	if v, err := metricValue(tb, "broker_reseal_pending_records"); err != nil || v != 0 {
		t.Errorf("broker_reseal_pending_records = %v, %v; want 0", v, err)
	}
	checkServed(t, tb, append(bindings, during...))
	if _, jwks := adminCall(t, tb, http.MethodGet, "/token_keys"); !bytes.Equal(jwks, jwksBefore) {
		t.Errorf("the signing keys changed with the data key:\n%s\n%s", jwksBefore, jwks)
	}
	if !bytes.Equal(tb.caPEM(t), caBefore) {
		t.Errorf("the CA changed with the data key")
	}
	tb.stop()

	t.Run("store needs only the new key", func(t *testing.T) {
		st, err := bolt.Open(filepath.Join(tb.dataDir, storeFile))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		old, _ := credentials.NewSealer(testEncryptionKey)
		if _, err := storedCAOf(st, old); !errors.Is(err, credentials.ErrUnknownKey) {
			t.Errorf("the old key alone still opens the CA: %v", err)
		}
		only, _ := credentials.NewSealer(rotatedKey)
		if _, err := storedCAOf(st, only); err != nil {
			t.Errorf("CA with the new key: %v", err)
		}
		if _, err := oauth.LoadKeys(context.Background(), readOnlyStore{st}, only, retiredKeyLifetime, nil); err != nil {
			t.Errorf("signing keys with the new key: %v", err)
		}
		// A pass with only the new key opens every sealed record (none
		// unreadable) and has nothing to do; with both keys likewise.
		total := len(bindings) + len(during) + 1 + 2 + 1
		for _, s := range []*credentials.Sealer{only, mustSealer(t, rotatedKey, testEncryptionKey)} {
			res, err := (&reseal.Resealer{Store: st, Sealer: s}).Run(context.Background())
			if err != nil || res.Resealed != 0 || len(res.Unreadable) != 0 || res.Scanned != total {
				t.Errorf("pass over the re-sealed store = %+v, %v; want %d scanned, nothing else", res, err, total)
			}
		}
	})

	// Only now is the old key dropped.
	delete(tb.env, "BROKER_PREVIOUS_ENCRYPTION_KEYS")
	tb.start(t)
	checkServed(t, tb, append(bindings, during...))
	checkTokens(t, tb, bindings)
	tb.stop()
	checkNothingInClear(t, tb.dataDir, rotatedKey, append(bindings, during...))
}

// checkTokens fails unless every secret binding gets a client_credentials
// token (xsuaa at /oauth/token, identity at /oauth2/token).
func checkTokens(t *testing.T, tb *testBroker, bindings []*keptBinding) {
	t.Helper()
	for i, b := range bindings {
		secret, ok := b.creds["clientsecret"].(string)
		if !ok {
			continue
		}
		endpoint := tb.env["BROKER_PUBLIC_URL"] + "/oauth/token"
		if b.in.ServiceID == identityServiceID {
			endpoint = tb.env["BROKER_IDENTITY_URL"] + "/oauth2/token"
		}
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {b.creds["clientid"].(string)}, "client_secret": {secret}}
		resp, err := tb.client().PostForm(endpoint, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("token for binding %d (%v): %d", i, b.params, resp.StatusCode)
		}
	}
}

func mustSealer(t *testing.T, current string, previous ...string) *credentials.Sealer {
	t.Helper()
	s, err := credentials.NewSealer(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

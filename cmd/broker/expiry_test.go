package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/observe"
	"github.com/ossbroker/btp-security-broker/store/bolt"
)

const day = 24 * time.Hour

func TestExpiringSoon(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	server := watchedCert{Name: "server", Warn: serverCertWarning}
	ca := watchedCert{Name: "ca", Warn: caRenewMargin}
	tests := []struct {
		name       string
		cert       watchedCert
		left       time.Duration
		reported   bool
		daysLogged int
	}{
		{"server fresh", server, 365 * day, false, 0},
		{"server 31 days", server, 31 * day, false, 0},
		{"server just over 30 days", server, 30*day + time.Second, false, 0},
		{"server 30 days", server, 30 * day, true, 30},
		{"server 29.5 days", server, 29*day + 12*time.Hour, true, 29},
		{"server 1 hour", server, time.Hour, true, 0},
		{"server expired", server, -time.Hour, true, -1},
		{"ca 5 years", ca, 5 * 365 * day, false, 0},
		{"ca 401 days", ca, 401 * day, false, 0},
		{"ca 399 days", ca, 399 * day, true, 399},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cert
			c.NotAfter = now.Add(tc.left)
			got := expiringSoon(now, []watchedCert{c})
			if (len(got) == 1) != tc.reported {
				t.Fatalf("reported %v, want %v", got, tc.reported)
			}
			if !tc.reported {
				return
			}
			if got[0].Left != tc.left || got[0].Cert.Name != c.Name {
				t.Errorf("finding %+v, want %s with %v left", got[0], c.Name, tc.left)
			}
			logs := &lockedBuffer{}
			logger := lager.NewLogger("broker")
			logger.RegisterSink(lager.NewWriterSink(logs, lager.INFO))
			logExpiry(logger, now, []watchedCert{c})
			event := "certificate-expires-soon"
			if tc.left <= 0 {
				event = "certificate-expired"
			}
			ev := logEvents(logs.String(), event)
			if len(ev) != 1 {
				t.Fatalf("want one %s line, got:\n%s", event, logs.String())
			}
			if ev[0]["certificate"] != c.Name || ev[0]["days_left"] != float64(tc.daysLogged) ||
				ev[0]["not_after"] != c.NotAfter.Format(time.RFC3339) {
				t.Errorf("logged %v, want %s with %d days left", ev[0], c.Name, tc.daysLogged)
			}
		})
	}
}

func TestExpiryGauges(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// The reporter's goroutine reads the clock too.
	var clockAt atomic.Int64
	clockAt.Store(now.UnixNano())
	clock := func() time.Time { return time.Unix(0, clockAt.Load()).UTC() }
	certs := []watchedCert{
		{Name: "server", NotAfter: now.Add(10 * day), Warn: serverCertWarning, Metric: "broker_server_certificate_expiry_seconds", Help: "h"},
		{Name: "ca", NotAfter: now.Add(1000 * day), Warn: caRenewMargin, Metric: "broker_ca_expiry_seconds", Help: "h"},
	}
	m := observe.NewMetrics()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // log once, then stop
	reportExpiry(ctx, lager.NewLogger("test"), m, clock, time.Hour, certs)
	for _, tc := range []struct {
		at   time.Time
		want map[string]float64
	}{
		{now, map[string]float64{"broker_server_certificate_expiry_seconds": (10 * day).Seconds(), "broker_ca_expiry_seconds": (1000 * day).Seconds()}},
		{now.Add(11 * day), map[string]float64{"broker_server_certificate_expiry_seconds": (-day).Seconds(), "broker_ca_expiry_seconds": (989 * day).Seconds()}},
	} {
		clockAt.Store(tc.at.UnixNano()) // the gauges read the clock at scrape time
		families, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			if _, ok := tc.want[f.GetName()]; ok {
				got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		for name, want := range tc.want {
			if got[name] != want {
				t.Errorf("at %v: %s = %v, want %v", tc.at, name, got[name], want)
			}
		}
	}
}

func TestWatchedCerts(t *testing.T) {
	ca, err := credentials.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leaf, err := ca.IssueServerCertificate([]string{"localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{leaf}}
	noLeaf := &tls.Config{Certificates: []tls.Certificate{{Certificate: leaf.Certificate}}}
	tests := []struct {
		name   string
		cfg    *tls.Config
		own    bool
		names  []string
		action string
	}{
		{"TLS off", nil, false, []string{"ca"}, ""},
		{"generated", tlsCfg, false, []string{"ca", "server"}, "restart the broker"},
		{"own certificate", tlsCfg, true, []string{"ca", "server"}, "BROKER_TLS_CERT"},
		{"leaf not parsed yet", noLeaf, true, []string{"ca", "server"}, "BROKER_TLS_CERT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := watchedCerts(ca, tc.cfg, tc.own)
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.names, ",") {
				t.Fatalf("watched %v, want %v", names, tc.names)
			}
			// The CA ends with the earlier of its two certificates: the
			// intermediate.
			if !got[0].NotAfter.Equal(ca.Intermediate().NotAfter) || got[0].Warn != caRenewMargin {
				t.Errorf("CA watched until %v (warn %v), want %v", got[0].NotAfter, got[0].Warn, ca.Intermediate().NotAfter)
			}
			if len(got) > 1 {
				if !got[1].NotAfter.Equal(leaf.Leaf.NotAfter) || got[1].Warn != serverCertWarning || !strings.Contains(got[1].Action, tc.action) {
					t.Errorf("server watched %+v", got[1])
				}
			}
		})
	}
}

// TestCARenewal: the CA is kept while it is valid for more than 400 days
// and replaced at the first start after that.
func TestCARenewal(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), storeFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sealer, err := credentials.NewSealer(testEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := loadOrCreateCA(ctx, st, sealer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	end := first.Intermediate().NotAfter
	for _, tc := range []struct {
		name    string
		at      time.Time
		renewed bool
	}{
		{"now", time.Now(), false},
		{"401 days left", end.Add(-401 * day), false},
		{"399 days left", end.Add(-399 * day), true},
	} {
		ca, err := loadOrCreateCA(ctx, st, sealer, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if renewed := !ca.Root().Equal(first.Root()); renewed != tc.renewed {
			t.Fatalf("%s: renewed %v, want %v", tc.name, renewed, tc.renewed)
		}
		// What was renewed is what the store now holds.
		again, err := storedCAOf(st, sealer)
		if err != nil || !again.Root().Equal(ca.Root()) {
			t.Fatalf("%s: the store holds another CA (%v)", tc.name, err)
		}
	}

	// Without the data key the CA is not replaced (that would break every
	// x509 binding): the start fails.
	before, err := storedCAOf(st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := credentials.NewSealer(rotatedKey)
	if _, err := loadOrCreateCA(ctx, st, other, time.Now()); !errors.Is(err, credentials.ErrUnknownKey) {
		t.Fatalf("CA with another data key: %v", err)
	}
	if after, err := storedCAOf(st, sealer); err != nil || !after.Root().Equal(before.Root()) {
		t.Fatalf("the CA was replaced by a start with another data key (%v)", err)
	}
}

// TestServerCertificateRenewal: each start issues a new one-year server
// certificate from the (unchanged) CA, and the metrics report both ends.
func TestServerCertificateRenewal(t *testing.T) {
	tb := startBroker(t, nil)
	peer := func() *x509.Certificate {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(tb.caPEM(t))
		conn, err := tls.Dial("tcp", strings.TrimPrefix(tb.base, "https://"), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	first := peer()
	if left := time.Until(first.NotAfter); left < 364*day || left > 366*day {
		t.Errorf("server certificate valid for %v, want one year", left)
	}
	for name, want := range map[string]time.Time{
		"broker_server_certificate_expiry_seconds": first.NotAfter,
		"broker_ca_expiry_seconds":                 time.Now().Add(5 * 365 * day),
	} {
		v, err := metricValue(tb, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Now().Add(time.Duration(v) * time.Second); got.Sub(want).Abs() > day {
			t.Errorf("%s says %v, want about %v", name, got, want)
		}
	}
	if ev := logEvents(tb.logs.String(), "certificate-expires-soon"); len(ev) != 0 {
		t.Errorf("a fresh broker reports %v", ev)
	}
	ca := tb.caPEM(t)

	tb.restart(t)
	second := peer()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || second.NotAfter.Before(first.NotAfter) {
		t.Errorf("restart did not issue a new certificate: serial %v → %v, end %v → %v",
			first.SerialNumber, second.SerialNumber, first.NotAfter, second.NotAfter)
	}
	if string(tb.caPEM(t)) != string(ca) {
		t.Errorf("the CA changed with the server certificate")
	}
}

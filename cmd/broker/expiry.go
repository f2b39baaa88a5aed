package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"math"
	"time"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/observe"
)

const (
	// caRenewMargin: the broker replaces its CA at start once the CA is
	// valid for less than this (the longest client certificate a binding
	// may ask for is one year), so the CA is reported from then on.
	caRenewMargin = 400 * 24 * time.Hour
	// serverCertWarning is how long before its end the TLS server
	// certificate is reported.
	serverCertWarning = 30 * 24 * time.Hour
	// expiryCheckInterval is how often a running broker looks again.
	expiryCheckInterval = time.Hour
)

// watchedCert is a certificate whose end the broker reports in its log
// and metrics.
type watchedCert struct {
	Name     string // "server" or "ca"; the log's certificate field
	NotAfter time.Time
	// Warn is how long before NotAfter the log starts reporting it.
	Warn time.Duration
	// Action tells the operator what renews it.
	Action string
	// Metric is the gauge of the seconds left.
	Metric, Help string
}

// expiryFinding is a certificate that expires within its warning window.
type expiryFinding struct {
	Cert watchedCert
	Left time.Duration // negative once expired
}

// expiringSoon returns the certificates that, at now, expire within their
// warning window or have expired.
func expiringSoon(now time.Time, certs []watchedCert) []expiryFinding {
	var out []expiryFinding
	for _, c := range certs {
		if left := c.NotAfter.Sub(now); left <= c.Warn {
			out = append(out, expiryFinding{Cert: c, Left: left})
		}
	}
	return out
}

// logExpiry logs the findings of expiringSoon at now.
func logExpiry(logger lager.Logger, now time.Time, certs []watchedCert) {
	for _, f := range expiringSoon(now, certs) {
		data := lager.Data{
			"certificate": f.Cert.Name,
			"not_after":   f.Cert.NotAfter.UTC().Format(time.RFC3339),
			// Whole days left, rounded down: 29.9 days is "29".
			"days_left": int(math.Floor(f.Left.Hours() / 24)),
			"action":    f.Cert.Action,
		}
		if f.Left <= 0 {
			logger.Error("certificate-expired", nil, data)
		} else {
			logger.Info("certificate-expires-soon", data)
		}
	}
}

// reportExpiry registers a gauge of the seconds left for each certificate
// (computed at scrape time) and starts a goroutine that logs the ones
// expiring soon at once and then every interval, until ctx ends.
func reportExpiry(ctx context.Context, logger lager.Logger, metrics *observe.Metrics, now func() time.Time, every time.Duration, certs []watchedCert) {
	for _, c := range certs {
		notAfter := c.NotAfter
		metrics.Gauge(c.Metric, c.Help, func() float64 { return notAfter.Sub(now()).Seconds() })
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			logExpiry(logger, now(), certs)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// watchedCerts lists the broker's CA and, when it serves TLS, its server
// certificate (tlsCfg nil: TLS terminated in front of the broker).
func watchedCerts(ca *credentials.CA, tlsCfg *tls.Config, ownCert bool) []watchedCert {
	caEnd := ca.Root().NotAfter
	if end := ca.Intermediate().NotAfter; end.Before(caEnd) {
		caEnd = end
	}
	certs := []watchedCert{{
		Name: "ca", NotAfter: caEnd, Warn: caRenewMargin,
		Action: "the next start of the broker replaces its CA: then rebind x509 bindings (their certificates chain to the old CA) and hand out the new ca.pem",
		Metric: "broker_ca_expiry_seconds",
		Help:   "Seconds until the broker's CA (the earlier of root and intermediate) expires; the broker renews it at start when fewer than 400 days are left.",
	}}
	if tlsCfg == nil || len(tlsCfg.Certificates) == 0 {
		return certs
	}
	leaf := tlsCfg.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(tlsCfg.Certificates[0].Certificate[0]); err != nil {
			return certs // LoadX509KeyPair parsed it already; cannot happen
		}
	}
	action := "restart the broker: it issues itself a new one-year certificate from its CA at every start"
	if ownCert {
		action = "replace the certificate in BROKER_TLS_CERT/BROKER_TLS_KEY and restart the broker"
	}
	return append(certs, watchedCert{
		Name: "server", NotAfter: leaf.NotAfter, Warn: serverCertWarning, Action: action,
		Metric: "broker_server_certificate_expiry_seconds",
		Help:   "Seconds until the broker's TLS server certificate expires.",
	})
}

// Package observe is the broker's HTTP-edge observability: Prometheus
// metrics, request ids and one JSON log line per request. It never records a
// query string, header, form value or body, so no secret, token or password
// can reach a log line or a metric label.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ossbroker/btp-security-broker/store"
)

// Metrics are the broker's Prometheus collectors on their own registry.
type Metrics struct {
	Registry      *prometheus.Registry
	tokenRequests *prometheus.CounterVec
	tokenLatency  *prometheus.HistogramVec
	osbRequests   *prometheus.CounterVec
	osbLatency    *prometheus.HistogramVec
	httpRequests  *prometheus.CounterVec
	storeLatency  *prometheus.HistogramVec
}

// NewMetrics creates and registers the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_token_requests_total",
			Help: "Token endpoint requests by flavour (xsuaa, identity), grant type and HTTP status.",
		}, []string{"flavour", "grant_type", "code"}),
		tokenLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "broker_token_request_duration_seconds",
			Help:    "Token endpoint latency by flavour and grant type.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"flavour", "grant_type"}),
		osbRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_osb_requests_total",
			Help: "OSB API requests by operation and HTTP status.",
		}, []string{"operation", "code"}),
		osbLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "broker_osb_request_duration_seconds",
			Help:    "OSB API latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"operation"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_http_requests_total",
			Help: "All HTTP requests by route group and status.",
		}, []string{"route", "code"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "broker_store_transaction_duration_seconds",
			Help:    "Store transaction latency by kind (view, update).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 3, 12),
		}, []string{"kind"}),
	}
	m.Registry.MustRegister(m.tokenRequests, m.tokenLatency, m.osbRequests, m.osbLatency, m.httpRequests, m.storeLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics, behind Basic auth when user is set.
func (m *Metrics) Handler(user, password string, auth func(user, password string, h http.Handler) http.Handler) http.Handler {
	h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	if user != "" {
		return auth(user, password, h)
	}
	return h
}

// Gauge registers a gauge whose value f computes at scrape time.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type ctxKey struct{}

// RequestID returns the id Middleware gave the request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID takes the platform's correlation id when there is a sane one
// (gorouter's X-Vcap-Request-Id, Cloud Controller's request identity),
// else makes one.
func requestID(r *http.Request) string {
	for _, h := range []string{"X-Vcap-Request-Id", "X-Request-Id", "X-Correlation-Id", "X-Broker-Api-Request-Identity"} {
		if v := r.Header.Get(h); v != "" && len(v) <= 128 && !strings.ContainsAny(v, " \t\r\n\"") {
			return v
		}
	}
	return newID()
}

// Middleware gives every request an id (echoed as X-Request-Id), counts it,
// feeds the token and OSB metrics, and logs one line when it is done.
func (m *Metrics) Middleware(logger lager.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		elapsed := time.Since(start)
		code := strconv.Itoa(sw.code)
		route := routeOf(r)
		m.httpRequests.WithLabelValues(route, code).Inc()
		switch route {
		case "token", "identity-token":
			flavour := "xsuaa"
			if route == "identity-token" {
				flavour = "identity"
			}
			grant := grantLabel(r.PostForm.Get("grant_type"))
			m.tokenRequests.WithLabelValues(flavour, grant, code).Inc()
			m.tokenLatency.WithLabelValues(flavour, grant).Observe(elapsed.Seconds())
		case "osb":
			op := osbOperation(r)
			m.osbRequests.WithLabelValues(op, code).Inc()
			m.osbLatency.WithLabelValues(op).Observe(elapsed.Seconds())
		}
		data := lager.Data{"request_id": id, "method": r.Method, "path": r.URL.Path, "status": sw.code,
			"duration_ms": float64(elapsed.Microseconds()) / 1000, "remote": r.RemoteAddr}
		if route == "metrics" || route == "health" {
			logger.Debug("request", data)
			return
		}
		logger.Info("request", data)
	})
}

// knownGrants bounds the grant_type label: anything else is "other".
var knownGrants = map[string]bool{
	"client_credentials": true, "password": true, "authorization_code": true, "refresh_token": true,
	"urn:ietf:params:oauth:grant-type:jwt-bearer": true, "user_token": true,
	"urn:ietf:params:oauth:grant-type:token-exchange": true,
}

func grantLabel(g string) string {
	if knownGrants[g] {
		return g
	}
	return "other"
}

func routeOf(r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/oauth/token":
		return "token"
	case p == "/oauth2/token":
		return "identity-token"
	case strings.HasPrefix(p, "/v2/"):
		return "osb"
	case p == "/token_keys" || p == "/token_key" || p == "/oauth2/certs":
		return "jwks"
	case strings.HasPrefix(p, "/admin/"):
		return "admin"
	case p == "/metrics":
		return "metrics"
	case p == "/healthz" || p == "/readyz":
		return "health"
	case strings.HasPrefix(p, "/oauth") || p == "/login.do" || p == "/logout.do" || strings.HasSuffix(p, "userinfo"):
		return "login"
	case p == "/.well-known/openid-configuration":
		return "discovery"
	default:
		return "other"
	}
}

// osbOperation names an OSB request by its method and path shape.
func osbOperation(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// v2 catalog | v2 service_instances id [last_operation | service_bindings bid [last_operation]]
	switch {
	case len(parts) == 2 && parts[1] == "catalog":
		return "catalog"
	case len(parts) == 3:
		return map[string]string{"PUT": "provision", "PATCH": "update", "DELETE": "deprovision", "GET": "fetch_instance"}[r.Method]
	case len(parts) == 4 && parts[3] == "last_operation":
		return "last_operation"
	case len(parts) == 5:
		return map[string]string{"PUT": "bind", "DELETE": "unbind", "GET": "fetch_binding"}[r.Method]
	case len(parts) == 6:
		return "last_binding_operation"
	}
	return "other"
}

// Store wraps a store.Store to time its transactions.
type Store struct {
	store.Store
	m *Metrics
}

// InstrumentStore returns s with transaction latency metrics.
func (m *Metrics) InstrumentStore(s store.Store) *Store { return &Store{Store: s, m: m} }

// View implements store.Store.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	start := time.Now()
	defer func() { s.m.storeLatency.WithLabelValues("view").Observe(time.Since(start).Seconds()) }()
	return s.Store.View(ctx, fn)
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	start := time.Now()
	defer func() { s.m.storeLatency.WithLabelValues("update").Observe(time.Since(start).Seconds()) }()
	return s.Store.Update(ctx, fn)
}

package oauth

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
)

// Zone is the identity zone tokens are issued in.
type Zone struct {
	Name string // subdomain (ext_attr.zdn, identityzone)
	ID   string // zid
}

// Config wires a Server.
type Config struct {
	Store store.Store
	Keys  *Keys
	CA    *credentials.CA
	// Sealer seals login session cookies (the data key).
	Sealer *credentials.Sealer
	Zone   Zone
	// XsuaaURL and IdentityURL are the public base URLs (no path).
	XsuaaURL    *url.URL
	IdentityURL *url.URL
	// SharedStore is true when several replicas share the store: a failed
	// client authentication then re-reads the clients once (rate-limited)
	// before refusing, so a binding made on another replica works at once.
	SharedStore bool
	// TrustedProxies may set X-Forwarded-Client-Cert.
	TrustedProxies []netip.Prefix
	Logger         lager.Logger
	Now            func() time.Time
}

// Failed authentications allowed per key and window before 429: client
// secrets per minute, user passwords per five minutes.
const (
	ClientFailureLimit = 30
	UserFailureLimit   = 10
	// SourceFailureLimit counts failed logins of one source address over
	// all usernames (five minutes).
	SourceFailureLimit = 100
)

// Server is the token server.
type Server struct {
	cfg     Config
	clients *clients
	issuer  string
	// clientFailures and userFailures limit failed authentications per
	// (client id or username, source address).
	clientFailures *failureLimiter
	userFailures   *failureLimiter
	// sourceFailures limits failed logins per source address whatever
	// the username; passwordSlots bounds concurrent password checks.
	sourceFailures *failureLimiter
	passwordSlots  passwordChecks
	// issuing is held (shared) by every token request from authentication
	// to response, and exclusively by Invalidate and InstanceChanged: an unbind therefore
	// returns only after token requests that authenticated with the old
	// credential have finished, and every later one sees it gone.
	issuing sync.RWMutex
}

// NewServer returns a token server for cfg.
func NewServer(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = lager.NewLogger("oauth")
	}
	return &Server{
		cfg:            cfg,
		clients:        newClients(cfg.Store),
		issuer:         strings.TrimSuffix(cfg.XsuaaURL.String(), "/") + "/oauth/token",
		clientFailures: newFailureLimiter(ClientFailureLimit, time.Minute, cfg.Now),
		userFailures:   newFailureLimiter(UserFailureLimit, 5*time.Minute, cfg.Now),
		sourceFailures: newFailureLimiter(SourceFailureLimit, 5*time.Minute, cfg.Now),
		passwordSlots:  newPasswordChecks(),
	}
}

// Invalidate tells the server that anything may have changed (another
// replica's commit, the admin API): the next request rereads every
// instance and role collection. It waits for token requests in flight
// (see Server.issuing).
func (s *Server) Invalidate() {
	s.issuing.Lock()
	defer s.issuing.Unlock()
	s.clients.Invalidate()
}

// changeReadTimeout bounds the store read behind InstanceChanged and
// RoleCollectionsChanged: the OSB request (or the replica watcher) that
// reported the change waits for it.
const changeReadTimeout = 10 * time.Second

// RoleCollectionsChanged tells the server that the admin API created or
// deleted a role collection (admin.API.Changed).
func (s *Server) RoleCollectionsChanged() {
	ctx, cancel := context.WithTimeout(context.Background(), changeReadTimeout)
	defer cancel()
	r, err := s.clients.readRoleCollections(ctx, "")
	s.applyChange(r, err)
}

// InstanceChanged tells the server that one instance or its bindings
// changed (broker.Config.Changed); only that instance is reread. The read
// happens before token requests are paused; applying it waits for token
// requests in flight, like Invalidate.
func (s *Server) InstanceChanged(instanceID string) {
	ctx, cancel := context.WithTimeout(context.Background(), changeReadTimeout)
	defer cancel()
	r, err := s.clients.readInstance(ctx, instanceID)
	s.applyChange(r, err)
}

func (s *Server) applyChange(r *instanceRead, err error) {
	s.issuing.Lock()
	defer s.issuing.Unlock()
	if err != nil {
		// Whatever changed must not be missed: rebuild on next use.
		s.cfg.Logger.Error("reload-after-change", err)
		s.clients.Invalidate()
		return
	}
	s.clients.apply(r)
}

// Warm builds the client table ahead of the first request.
func (s *Server) Warm(ctx context.Context) error {
	_, err := s.clients.Table(ctx)
	return err
}

// Register adds the token server's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /oauth/token", s.handleToken)
	mux.HandleFunc("GET /token_keys", s.handleTokenKeys)
	mux.HandleFunc("GET /token_key", s.handleTokenKey)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /oauth/authorize", s.handleAuthorize)
	mux.HandleFunc("POST /login.do", s.handleLogin)
	mux.HandleFunc("GET /logout.do", s.handleLogout)
	mux.HandleFunc("GET /userinfo", s.handleUserinfo)
	mux.HandleFunc("POST /userinfo", s.handleUserinfo)
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	mux.HandleFunc("POST /oauth/revoke", s.handleRevoke)
	mux.HandleFunc("POST /oauth2/introspect", s.handleIntrospect)
	mux.HandleFunc("POST /oauth2/revoke", s.handleRevoke)
	// The identity flavour (identity.md §3).
	mux.HandleFunc("POST /oauth2/token", s.handleIdentityToken)
	mux.HandleFunc("GET /oauth2/certs", s.handleIdentityCerts)
	mux.HandleFunc("GET /oauth2/authorize", s.handleAuthorize)
	mux.HandleFunc("GET /oauth2/logout", s.handleLogout)
	mux.HandleFunc("GET /oauth2/userinfo", s.handleUserinfo)
	mux.HandleFunc("POST /oauth2/userinfo", s.handleUserinfo)
	// Other methods on the token endpoints get a JSON OAuth error body
	// (error, error_description) rather than the mux's plain-text 405.
	mux.HandleFunc("/oauth/token", methodNotAllowed)
	mux.HandleFunc("/oauth2/token", methodNotAllowed)
}

// methodNotAllowed answers a token endpoint request that is not a POST.
func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Description: "Request method '" + r.Method + "' is not supported"})
}

// baseURL is the xsuaa URL tokens and documents refer to.
func (s *Server) baseURL() string { return strings.TrimSuffix(s.cfg.XsuaaURL.String(), "/") }

// zoneOf picks the identity zone of a request: the x-zid header if
// present, else the first label of the host if it names the zone, else the
// broker's zone. ok is false for a zone the broker does not know.
func (s *Server) zoneOf(r *http.Request) (Zone, bool) {
	if zid := r.Header.Get("X-Zid"); zid != "" {
		return s.cfg.Zone, zid == s.cfg.Zone.ID
	}
	return s.cfg.Zone, true
}

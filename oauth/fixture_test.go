package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pivotal-cf/brokerapi/v10/domain"
	"golang.org/x/crypto/bcrypt"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
	"github.com/ossbroker/btp-security-broker/users"
)

// Test environment constants.
const (
	testDataKey     = "0123456789abcdef0123456789abcdef01234567"
	testZoneName    = "acme"
	testXsuaaURL    = "https://acme.authentication.test.local"
	testIdentityURL = "https://acme.accounts.test.local"
	testOrg         = "org-guid-1"
	testSpace       = "space-guid-1"
	sharedKID       = "key-shared-test"
	ccGrant         = "client_credentials"
)

// sharedKey is one RSA key for the whole test binary: generating 2048-bit
// keys costs 0.1–0.5 s each on the test machine. Fixtures seed it as their
// signing key; tests also use it as a pre-generated client key.
var sharedKey struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

func testRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	sharedKey.once.Do(func() { sharedKey.key, sharedKey.err = rsa.GenerateKey(rand.Reader, SigningKeyBits) })
	if sharedKey.err != nil {
		tb.Fatal(sharedKey.err)
	}
	return sharedKey.key
}

// fixture is a broker and its token server on a real bbolt store, wired as
// cmd/broker/serve.go does (Changed: server.InstanceChanged), with the token
// endpoints served over TLS that requests (but does not verify) client
// certificates, like the real listener.
type fixture struct {
	tb         testing.TB
	path       string
	sealer     *credentials.Sealer
	ca         *credentials.CA
	catalog    *broker.Catalog
	xsuaaURL   *url.URL
	identity   *url.URL
	serverCert tls.Certificate
	serviceID  string // xsuaa offering
	planIDs    map[string]string

	zone   broker.Zone
	st     *bolt.Store
	keys   *Keys
	srv    *Server
	broker *broker.Broker
	mux    *http.ServeMux
	ts     *httptest.Server
	seq    int
	closed bool
	// skew is added to the wall clock to form the token server's clock
	// (see advance); zero unless a test moves time forward.
	skew atomic.Int64
}

// binding is the outcome of a bind: its ids and credentials.
type binding struct {
	ID         string
	InstanceID string
	Creds      map[string]any
}

// cred returns a string field of the credentials.
func (b binding) cred(key string) string {
	s, _ := b.Creds[key].(string)
	return s
}

// tlsCert is the binding's certificate and key as a TLS client certificate.
func (b binding) tlsCert(tb testing.TB) tls.Certificate {
	tb.Helper()
	c, err := tls.X509KeyPair([]byte(b.cred("certificate")), []byte(b.cred("key")))
	if err != nil {
		tb.Fatalf("binding %s: certificate/key: %v", b.ID, err)
	}
	return c
}

// leaf is the binding's certificate.
func (b binding) leaf(tb testing.TB) *x509.Certificate {
	tb.Helper()
	c, err := credentials.ParseCertificatePEM(b.cred("certificate"))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// secretForm is a client_credentials request authenticated in the body.
func (b binding) secretForm() url.Values {
	return url.Values{"grant_type": {ccGrant}, "client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}}
}

// newFixture starts a broker and token server on a fresh store. The signing
// key is the binary's shared key, so no key generation happens here.
func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	sealer, err := credentials.NewSealer(testDataKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := credentials.NewCA("Oauth Test")
	if err != nil {
		tb.Fatal(err)
	}
	catalog, err := broker.ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		tb.Fatal(err)
	}
	serverCert, err := ca.IssueServerCertificate([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{
		tb: tb, path: filepath.Join(tb.TempDir(), "broker.db"), sealer: sealer, ca: ca, catalog: catalog,
		xsuaaURL: mustURL(tb, testXsuaaURL), identity: mustURL(tb, testIdentityURL), serverCert: serverCert,
		planIDs: map[string]string{},
	}
	for _, s := range catalog.Services {
		if s.Name == "xsuaa" {
			f.serviceID = s.ID
			for _, p := range s.Plans {
				f.planIDs[p.Name] = p.ID
			}
		}
	}
	if f.serviceID == "" {
		tb.Fatal("catalog has no xsuaa offering")
	}
	st, err := bolt.Open(f.path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := seedSigningKey(st, sealer, testRSAKey(tb)); err != nil {
		tb.Fatal(err)
	}
	f.start(st)
	tb.Cleanup(f.close)
	return f
}

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// seedSigningKey stores key as the current signing key, in the format
// Keys persists (white-box), so LoadKeys finds it instead of generating one.
func seedSigningKey(st store.Store, sealer *credentials.Sealer, key *rsa.PrivateKey) error {
	sealed, err := sealer.Seal(x509.MarshalPKCS1PrivateKey(key), keyAAD(sharedKID))
	if err != nil {
		return err
	}
	raw, err := json.Marshal([]storedKey{{ID: sharedKID, Sealed: sealed, CreatedAt: time.Now().UTC()}})
	if err != nil {
		return err
	}
	return st.Update(context.Background(), func(tx store.Tx) error { return tx.PutMeta(metaSigningKeys, raw) })
}

// start wires keys, token server, broker and TLS listener on st.
func (f *fixture) start(st *bolt.Store) {
	tb := f.tb
	tb.Helper()
	ctx := context.Background()
	zone, err := broker.EnsureZone(ctx, st, testZoneName)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := LoadKeys(ctx, st, f.sealer, time.Hour, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	f.st, f.zone, f.keys = st, zone, keys
	f.srv = f.newServer(nil)
	f.broker = broker.New(broker.Config{
		Store: st, Catalog: f.catalog, Sealer: f.sealer, CA: f.ca, Keys: keys, Zone: zone,
		XsuaaURL: f.xsuaaURL, IdentityURL: f.identity, Logger: lager.NewLogger("test-broker"),
		Changed: f.srv.InstanceChanged,
	})
	f.mux = http.NewServeMux()
	f.srv.Register(f.mux)
	f.ts = httptest.NewUnstartedServer(f.mux)
	f.ts.TLS = &tls.Config{Certificates: []tls.Certificate{f.serverCert}, ClientAuth: tls.RequestClientCert}
	f.ts.StartTLS()
	f.closed = false
}

// newServer is a token server on the fixture's store and keys; proxies are
// its TrustedProxies.
func (f *fixture) newServer(proxies []netip.Prefix) *Server {
	return NewServer(Config{
		Store: f.st, Keys: f.keys, CA: f.ca, Sealer: f.sealer, Zone: Zone{Name: f.zone.Name, ID: f.zone.ID},
		XsuaaURL: f.xsuaaURL, IdentityURL: f.identity, TrustedProxies: proxies,
		Logger: lager.NewLogger("test-oauth"), Now: f.now,
	})
}

// plainServer serves a new token server on the fixture's store over plain
// HTTP (RemoteAddr 127.0.0.1), as behind a TLS-terminating router.
func (f *fixture) plainServer(proxies ...string) *httptest.Server {
	return f.servePlain(f.newServer(prefixes(proxies...)))
}

// servePlain serves s over plain HTTP until the test ends.
func (f *fixture) servePlain(s *Server) *httptest.Server {
	mux := http.NewServeMux()
	s.Register(mux)
	ts := httptest.NewServer(mux)
	f.tb.Cleanup(ts.Close)
	return ts
}

func prefixes(ps ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// close stops the listener and closes the store; safe to call twice.
func (f *fixture) close() {
	if f.closed {
		return
	}
	f.closed = true
	f.ts.Close()
	if err := f.st.Close(); err != nil {
		f.tb.Error(err)
	}
}

// restart closes everything and reopens the same store file with the same
// sealer: new Keys, Server and Broker, as after a process restart.
func (f *fixture) restart() {
	f.tb.Helper()
	f.close()
	st, err := bolt.Open(f.path)
	if err != nil {
		f.tb.Fatal(err)
	}
	f.start(st)
}

func (f *fixture) nextID(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s-%04d", prefix, f.seq)
}

// provisionXsuaa creates an xsuaa application-plan instance with params
// (xs-security.json) and returns its id.
func (f *fixture) provisionXsuaa(params string) string {
	f.tb.Helper()
	id, err := f.tryProvision("application", params)
	if err != nil {
		f.tb.Fatalf("provision %s: %v", params, err)
	}
	return id
}

func (f *fixture) tryProvision(plan, params string) (string, error) {
	id := f.nextID("instance")
	rc, _ := json.Marshal(map[string]string{"platform": "cloudfoundry", "instance_name": "name-" + id})
	_, err := f.broker.Provision(context.Background(), id, domain.ProvisionDetails{
		ServiceID: f.serviceID, PlanID: f.planIDs[plan], OrganizationGUID: testOrg, SpaceGUID: testSpace,
		RawContext: rc, RawParameters: json.RawMessage(params),
	}, false)
	return id, err
}

// update replaces the descriptor of an instance.
func (f *fixture) update(instanceID, params string) {
	f.tb.Helper()
	_, err := f.broker.Update(context.Background(), instanceID, domain.UpdateDetails{
		ServiceID: f.serviceID, RawParameters: json.RawMessage(params),
	}, false)
	if err != nil {
		f.tb.Fatalf("update %s: %v", instanceID, err)
	}
}

func (f *fixture) deprovision(instanceID string) {
	f.tb.Helper()
	_, err := f.broker.Deprovision(context.Background(), instanceID, domain.DeprovisionDetails{ServiceID: f.serviceID}, false)
	if err != nil {
		f.tb.Fatalf("deprovision %s: %v", instanceID, err)
	}
}

// bind creates a binding (params may be "") and returns its credentials.
func (f *fixture) bind(instanceID, params string) binding {
	f.tb.Helper()
	var in *store.Instance
	err := f.st.View(context.Background(), func(tx store.Tx) error {
		var err error
		in, err = tx.GetInstance(instanceID)
		return err
	})
	if err != nil {
		f.tb.Fatalf("bind: instance %s: %v", instanceID, err)
	}
	id := f.nextID("binding")
	var raw json.RawMessage
	if params != "" {
		raw = json.RawMessage(params)
	}
	res, err := f.broker.Bind(context.Background(), instanceID, id, domain.BindDetails{
		AppGUID: "app-" + id, ServiceID: in.ServiceID, PlanID: in.PlanID, RawParameters: raw,
	}, false)
	if err != nil {
		f.tb.Fatalf("bind %s %s: %v", instanceID, params, err)
	}
	b := binding{ID: id, InstanceID: instanceID}
	credsJSON, err := json.Marshal(res.Credentials)
	if err != nil {
		f.tb.Fatal(err)
	}
	if err := json.Unmarshal(credsJSON, &b.Creds); err != nil {
		f.tb.Fatal(err)
	}
	return b
}

func (f *fixture) unbind(b binding) {
	f.tb.Helper()
	_, err := f.broker.Unbind(context.Background(), b.InstanceID, b.ID, domain.UnbindDetails{ServiceID: f.serviceID}, false)
	if err != nil {
		f.tb.Fatalf("unbind %s: %v", b.ID, err)
	}
}

// request describes one HTTP call to the token server.
type request struct {
	server      *httptest.Server
	cert        *tls.Certificate
	header      http.Header
	contentType string
	basic       []string // id, secret
	host        string   // Host header; "" for the listener's address
}

// reqOpt modifies a request.
type reqOpt func(*request)

// withBasic sends id and secret as HTTP Basic credentials, as given.
func withBasic(id, secret string) reqOpt { return func(r *request) { r.basic = []string{id, secret} } }

// withHeader adds a request header.
func withHeader(k, v string) reqOpt { return func(r *request) { r.header.Add(k, v) } }

// withCert presents c in the TLS handshake.
func withCert(c tls.Certificate) reqOpt { return func(r *request) { r.cert = &c } }

// via sends the request to ts instead of the fixture's TLS listener.
func via(ts *httptest.Server) reqOpt { return func(r *request) { r.server = ts } }

// withContentType overrides the form content type.
func withContentType(ct string) reqOpt { return func(r *request) { r.contentType = ct } }

// client returns an HTTP client for r: for the TLS listener it trusts the
// fixture CA's root and presents r.cert, if any.
func (f *fixture) client(r *request) *http.Client {
	if r.server != f.ts {
		return r.server.Client()
	}
	cfg := &tls.Config{RootCAs: f.ca.RootPool()}
	if r.cert != nil {
		cfg.Certificates = []tls.Certificate{*r.cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// do sends method path (with body for POST) and returns status and body.
func (f *fixture) do(method, path, body string, opts ...reqOpt) (int, http.Header, []byte) {
	f.tb.Helper()
	r := &request{server: f.ts, header: http.Header{}, contentType: "application/x-www-form-urlencoded;charset=UTF-8"}
	for _, o := range opts {
		o(r)
	}
	var rd io.Reader
	if method == http.MethodPost {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.server.URL+path, rd)
	if err != nil {
		f.tb.Fatal(err)
	}
	if method == http.MethodPost && r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.basic != nil {
		req.SetBasicAuth(r.basic[0], r.basic[1])
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := f.client(r).Do(req)
	if err != nil {
		f.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// token posts form to /oauth/token and decodes the JSON reply.
func (f *fixture) token(form url.Values, opts ...reqOpt) (int, map[string]any) {
	f.tb.Helper()
	status, _, raw := f.do(http.MethodPost, "/oauth/token", form.Encode(), opts...)
	return status, decodeJSON(f.tb, raw)
}

func decodeJSON(tb testing.TB, raw []byte) map[string]any {
	tb.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		tb.Fatalf("reply is not a JSON object: %v: %q", err, raw)
	}
	return body
}

// mustToken requests a token and fails unless the reply is 200; it returns
// the access token's verified header and claims.
func (f *fixture) mustToken(form url.Values, opts ...reqOpt) (body, header, claims map[string]any) {
	f.tb.Helper()
	status, body := f.token(form, opts...)
	if status != http.StatusOK {
		f.tb.Fatalf("token: status %d, body %v", status, body)
	}
	tok, _ := body["access_token"].(string)
	header, claims = f.parseJWT(tok)
	return body, header, claims
}

// jwks fetches /token_keys and returns the RSA public keys by kid.
func (f *fixture) jwks() map[string]*rsa.PublicKey {
	f.tb.Helper()
	status, _, raw := f.do(http.MethodGet, "/token_keys", "")
	if status != http.StatusOK {
		f.tb.Fatalf("token_keys: status %d: %s", status, raw)
	}
	var doc struct {
		Keys []struct {
			Kty, Kid, N, E string
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		f.tb.Fatal(err)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if k.Kty != "RSA" || err1 != nil || err2 != nil {
			f.tb.Fatalf("bad JWK %+v", k)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out
}

// parseJWT verifies tok (RS256) against the server's current JWKS and
// returns its header and claims.
func (f *fixture) parseJWT(tok string) (header, claims map[string]any) {
	f.tb.Helper()
	header, claims, err := verifyJWT(tok, f.jwks())
	if err != nil {
		f.tb.Fatalf("token does not verify against the JWKS: %v", err)
	}
	return header, claims
}

// verifyJWT checks tok's RS256 signature with the key its kid names.
func verifyJWT(tok string, keys map[string]*rsa.PublicKey) (header, claims map[string]any, err error) {
	mc := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, mc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, errors.New("kid " + kid + " not in JWKS")
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithJSONNumber())
	if err != nil {
		return nil, nil, err
	}
	return parsed.Header, mc, nil
}

// now is the token server's clock: the wall clock plus the skew tests add
// with advance.
func (f *fixture) now() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }

// advance moves the token server's clock forward by d (codes, refresh
// tokens, sessions and assertions expire by it).
func (f *fixture) advance(d time.Duration) { f.skew.Add(int64(d)) }

// withHost sends the request with Host h, e.g. the identity URL's host.
func withHost(h string) reqOpt { return func(r *request) { r.host = h } }

// onIdentity sends the request with the identity URL's host.
func (f *fixture) onIdentity() reqOpt { return withHost(f.identity.Host) }

// withBearer sends tok as a Bearer token.
func withBearer(tok string) reqOpt { return withHeader("Authorization", "Bearer "+tok) }

// addUser creates or updates a user of the zone as the seed file and the
// admin API do (users.Upsert) and returns it. A new user first gets a
// bcrypt hash of minimum cost, which Upsert accepts as matching: logins
// then cost a millisecond instead of the production cost's 0.1–0.5 s.
func (f *fixture) addUser(s users.Spec) *store.User {
	f.tb.Helper()
	var u *store.User
	err := f.st.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.GetUserByName(s.Username); errors.Is(err, store.ErrNotFound) && s.Password != "" {
			h, err := bcrypt.GenerateFromPassword([]byte(s.Password), bcrypt.MinCost)
			if err != nil {
				return err
			}
			err = tx.PutUser(&store.User{ID: credentials.NewID(), Username: s.Username, PasswordHash: string(h), Origin: users.DefaultOrigin})
			if err != nil {
				return err
			}
		}
		var err error
		u, _, err = users.Upsert(tx, &s, time.Now())
		return err
	})
	if err != nil {
		f.tb.Fatalf("add user %s: %v", s.Username, err)
	}
	return u
}

// deleteUser removes a user from the store.
func (f *fixture) deleteUser(id string) {
	f.tb.Helper()
	if err := f.st.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteUser(id) }); err != nil {
		f.tb.Fatalf("delete user %s: %v", id, err)
	}
}

// provisionIdentity creates an identity instance called name (the
// platform's instance_name, which consumed-services refer to) and returns
// its id.
func (f *fixture) provisionIdentity(name, params string) string {
	f.tb.Helper()
	var serviceID, planID string
	for _, s := range f.catalog.Services {
		if s.Name == broker.ServiceIdentity {
			serviceID = s.ID
			for _, p := range s.Plans {
				if p.Name == "application" {
					planID = p.ID
				}
			}
		}
	}
	if serviceID == "" || planID == "" {
		f.tb.Fatal("catalog has no identity application plan")
	}
	id := f.nextID("identity")
	rc, _ := json.Marshal(map[string]string{"platform": "cloudfoundry", "instance_name": name})
	_, err := f.broker.Provision(context.Background(), id, domain.ProvisionDetails{
		ServiceID: serviceID, PlanID: planID, OrganizationGUID: testOrg, SpaceGUID: testSpace,
		RawContext: rc, RawParameters: json.RawMessage(params),
	}, false)
	if err != nil {
		f.tb.Fatalf("provision identity %s %s: %v", name, params, err)
	}
	return id
}

// iasToken posts form to the identity host's /oauth2/token.
func (f *fixture) iasToken(form url.Values, opts ...reqOpt) (int, map[string]any) {
	f.tb.Helper()
	status, _, raw := f.do(http.MethodPost, "/oauth2/token", form.Encode(), append([]reqOpt{f.onIdentity()}, opts...)...)
	return status, decodeJSON(f.tb, raw)
}

// passwordForm is a password grant authenticated in the body, as xssec
// sends it.
func passwordForm(b binding, username, password string, kv ...string) url.Values {
	v := url.Values{"grant_type": {"password"}, "client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")},
		"username": {username}, "password": {password}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// browser is a user agent for the login flows: it keeps cookies and does
// not follow redirects, so each hop can be checked.
type browser struct {
	f    *fixture
	c    *http.Client
	host string // Host header of every request; "" for the listener's
}

// page is one response a browser received.
type page struct {
	Status int
	Header http.Header
	Body   string
}

func (f *fixture) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.tb.Fatal(err)
	}
	return &browser{f: f, c: &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.RootPool()}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *browser) send(method, path string, form url.Values) page {
	b.f.tb.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.f.ts.URL+path, body)
	if err != nil {
		b.f.tb.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.host != "" {
		req.Host = b.host
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.tb.Fatal(err)
	}
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
}

func (b *browser) get(path string) page { b.f.tb.Helper(); return b.send(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) page {
	b.f.tb.Helper()
	return b.send(http.MethodPost, path, form)
}

// cookie returns the value of the named cookie the browser holds, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.f.ts.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// field returns the value of the form input called name, or "" if the
// page has none.
func (p page) field(name string) string {
	re := regexp.MustCompile(`<input[^>]*name="` + regexp.QuoteMeta(name) + `"[^>]*value="([^"]*)"`)
	m := re.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// isLoginForm reports whether p is the login page (with its CSRF token).
func (p page) isLoginForm() bool {
	return strings.Contains(p.Body, `action="/login.do"`) && p.field("csrf") != "" &&
		strings.Contains(p.Body, `name="username"`) && strings.Contains(p.Body, `name="password"`)
}

// location parses the Location header.
func (p page) location(tb testing.TB) *url.URL {
	tb.Helper()
	loc := p.Header.Get("Location")
	if loc == "" {
		tb.Fatalf("status %d without Location; body %.300s", p.Status, p.Body)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// submitLogin posts the login form of p with the given credentials.
func (b *browser) submitLogin(p page, username, password string) page {
	b.f.tb.Helper()
	return b.post("/login.do", url.Values{
		"csrf": {p.field("csrf")}, "continue": {p.field("continue")},
		"username": {username}, "password": {password},
	})
}

// authorizeCode runs the whole browser flow for a code: GET the authorize
// endpoint (path /oauth/authorize or /oauth2/authorize) with q, sign in on
// the form if one is shown, follow the redirect back to authorize, and
// return the final redirect to the client.
func (b *browser) authorizeCode(path string, q url.Values, username, password string) *url.URL {
	tb := b.f.tb
	tb.Helper()
	p := b.get(path + "?" + q.Encode())
	if p.Status == http.StatusOK {
		if !p.isLoginForm() {
			tb.Fatalf("authorize: 200 without a login form: %.300s", p.Body)
		}
		p = b.submitLogin(p, username, password)
		if p.Status != http.StatusSeeOther {
			tb.Fatalf("login: status %d, want 303; body %.300s", p.Status, p.Body)
		}
		p = b.get(p.location(tb).RequestURI())
	}
	if p.Status != http.StatusFound {
		tb.Fatalf("authorize: status %d, want 302; body %.300s", p.Status, p.Body)
	}
	return p.location(tb)
}

// pkce returns a code verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// bookshopUsers is an xs-security.json for the user flows: three scopes,
// role templates with attribute references, two role collections, and
// redirect URIs for the browser flow.
const bookshopUsers = `{
	"xsappname": "bookshop",
	"scopes": [
		{"name": "$XSAPPNAME.Read", "description": "read"},
		{"name": "$XSAPPNAME.Write", "description": "write"},
		{"name": "$XSAPPNAME.Admin", "description": "admin"}
	],
	"attributes": [
		{"name": "Country", "description": "country", "valueType": "string"},
		{"name": "Level", "description": "level", "valueType": "string", "valueRequired": false}
	],
	"role-templates": [
		{"name": "Viewer", "scope-references": ["$XSAPPNAME.Read", "uaa.user"],
		 "attribute-references": [{"name": "Country", "default-values": ["DE"]}]},
		{"name": "Editor", "scope-references": ["$XSAPPNAME.Read", "$XSAPPNAME.Write"], "attribute-references": ["Level"]},
		{"name": "Admin", "scope-references": ["$XSAPPNAME.Admin"]}
	],
	"role-collections": [
		{"name": "Bookshop Viewer", "role-template-references": ["$XSAPPNAME.Viewer"]},
		{"name": "Bookshop Editor", "role-template-references": ["$XSAPPNAME.Editor"]}
	],
	"oauth2-configuration": {
		"token-validity": 900,
		"redirect-uris": ["https://app.example.com/login/callback", "https://*.apps.example.com/**"]
	}
}`

// Passwords of the seeded users.
const (
	alicePass = "alice-pass-1"
	bobPass   = "bob-pass-1"
)

// userWorld is a fixture with the bookshop app bound once and two users:
// alice holds both bookshop role collections, bob none.
type userWorld struct {
	f          *fixture
	inst       string
	app        binding // a SECRET binding of bookshop
	xsapp      string  // bookshop's full xsappname
	alice, bob *store.User
}

func newUserWorld(tb testing.TB) *userWorld {
	tb.Helper()
	f := newFixture(tb)
	w := &userWorld{f: f, inst: f.provisionXsuaa(bookshopUsers)}
	w.app = f.bind(w.inst, "")
	w.xsapp = w.app.cred("xsappname")
	w.alice = f.addUser(users.Spec{
		Username: "alice", Password: alicePass, Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe",
		RoleCollections: []string{"Bookshop Viewer", "Bookshop Editor"}, Attributes: map[string][]string{"Level": {"3"}},
	})
	w.bob = f.addUser(users.Spec{Username: "bob", Password: bobPass, Email: "bob@example.com", GivenName: "Bob", FamilyName: "Roe"})
	return w
}

// scope returns the full name of a bookshop scope.
func (w *userWorld) scope(local string) string { return w.xsapp + "." + local }

// aliceToken is alice's password token of the bookshop client: the reply
// and the verified access token claims.
func (w *userWorld) aliceToken(kv ...string) (body, claims map[string]any) {
	w.f.tb.Helper()
	body, _, claims = w.f.mustToken(passwordForm(w.app, "alice", alicePass, kv...))
	return body, claims
}

// mustIASPassword returns the access token of a password grant of the
// identity binding b on /oauth2/token.
func mustIASPassword(tb testing.TB, f *fixture, b binding, username, password string) string {
	tb.Helper()
	status, body := f.iasToken(passwordForm(b, username, password))
	tok, _ := body["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		tb.Fatalf("identity password grant: %d %v", status, body)
	}
	return tok
}

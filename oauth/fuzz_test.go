package oauth

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ossbroker/btp-security-broker/users"
)

// tokenWorld is a token server with real clients, users and tokens for the
// fuzz targets and the malformed-request table. Requests go straight to the
// handlers (no listener) from RemoteAddr 192.0.2.1, the httptest default.
//
// Inputs name the world's secrets with placeholders, replaced before a
// request is sent: secrets, ids and tokens are random per process, and
// a fuzz worker is another process than the one that wrote the corpus.
//
//	$CID $SECRET $BASIC        the xsuaa client (bookshop), a secret binding
//	$CERT                      base64 DER of bookshop's X.509 binding
//	$IAS_CID $IAS_SECRET $IAS_BASIC  the identity client (consumer), secret
//	$USER $PASS $USER_ID       alice, a user with role collections
//	$TOKEN $CC_TOKEN           alice's xsuaa user token, a client token
//	$IAS_TOKEN                 alice's identity token (aud: consumer)
//	$ZID $ISS $IAS_ISS $EXP    zone id, issuers, an expiry an hour ahead
type tokenWorld struct {
	f       *fixture
	mux     *http.ServeMux // the server as the fixture wires it
	proxied *http.ServeMux // a server that trusts 192.0.2.0/24 as proxies
	subst   *strings.Replacer
	// secrets are what a request must have been given to get a 200.
	secrets []string
	// xsTokens and iasTokens are the genuine tokens of each issuer.
	xsTokens, iasTokens []string
}

func newTokenWorld(tb testing.TB) *tokenWorld {
	tb.Helper()
	f := newFixture(tb)
	inst := f.provisionXsuaa(bookshopUsers)
	app := f.bind(inst, "")
	x509 := f.bind(inst, `{"credential-type":"x509"}`)
	alice := f.addUser(users.Spec{Username: "alice", Password: alicePass, Email: "alice@example.com",
		RoleCollections: []string{"Bookshop Viewer", "Bookshop Editor"}, Attributes: map[string][]string{"Level": {"3"}}})
	f.provisionIdentity("provider", `{"provided-apis":[{"name":"read","description":"r"}]}`)
	consumerInst := f.provisionIdentity("consumer", `{"consumed-services":[{"service-instance-name":"provider"}]}`)
	consumer := f.bind(consumerInst, "")

	body, _, _ := f.mustToken(passwordForm(app, "alice", alicePass))
	token, _ := body["access_token"].(string)
	body, _, _ = f.mustToken(app.secretForm())
	ccToken, _ := body["access_token"].(string)
	iasToken := mustIASPassword(tb, f, consumer, "alice", alicePass)

	w := &tokenWorld{f: f, mux: f.mux, proxied: http.NewServeMux()}
	f.newServer(prefixes("192.0.2.0/24")).Register(w.proxied)
	basic := func(id, secret string) string { return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret)) }
	w.subst = strings.NewReplacer(
		"$IAS_CID", consumer.cred("clientid"),
		"$IAS_SECRET", consumer.cred("clientsecret"),
		"$IAS_BASIC", basic(consumer.cred("clientid"), consumer.cred("clientsecret")),
		"$IAS_TOKEN", iasToken,
		"$IAS_ISS", f.srv.identityIssuer(),
		"$CID", app.cred("clientid"),
		"$SECRET", app.cred("clientsecret"),
		"$BASIC", basic(app.cred("clientid"), app.cred("clientsecret")),
		"$CERT", base64.StdEncoding.EncodeToString(x509.leaf(tb).Raw),
		"$USER_ID", alice.ID,
		"$USER", "alice",
		"$PASS", alicePass,
		"$CC_TOKEN", ccToken,
		"$TOKEN", token,
		"$ZID", f.zone.ID,
		"$ISS", f.srv.issuer,
		"$EXP", "9999999999",
	)
	w.secrets = []string{app.cred("clientsecret"), consumer.cred("clientsecret"), base64.StdEncoding.EncodeToString(x509.leaf(tb).Raw), token, iasToken}
	w.xsTokens = []string{token, ccToken}
	w.iasTokens = []string{iasToken}
	return w
}

// tokenCall is one request to a token endpoint.
type tokenCall struct {
	path        string // /oauth/token or /oauth2/token
	proxied     bool   // sent through a trusted proxy (XFCC counts)
	method      string // "" means POST
	contentType string // sent as is; "" sends none
	auth        string // Authorization header, "" for none
	header      string // more header lines, "Name: value" each
	body        string
}

// send substitutes the placeholders and serves the call.
func (w *tokenWorld) send(c tokenCall) (*httptest.ResponseRecorder, *http.Request) {
	c.auth, c.header, c.body = w.subst.Replace(c.auth), w.subst.Replace(c.header), w.subst.Replace(c.body)
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req := httptest.NewRequest(method, "/", strings.NewReader(c.body))
	req.URL.Path, req.URL.RawQuery, _ = strings.Cut(c.path, "?")
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	for _, line := range strings.Split(c.header, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		req.Header.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	mux := w.mux
	if c.proxied {
		mux = w.proxied
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec, req
}

// digest is the SHA-256 of the store file, which bbolt writes only when a
// transaction commits.
func (w *tokenWorld) digest(tb testing.TB) [32]byte {
	raw, err := os.ReadFile(w.f.path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(raw)
}

// checkOAuthError checks that a refused token request got an RFC 6749 §5.2
// error: a JSON object with a non-empty error code.
func checkOAuthError(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("status %d with Content-Type %q: %s", rec.Code, ct, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("status %d body is not a JSON object: %v: %q", rec.Code, err, rec.Body)
	}
	if code, _ := body["error"].(string); rec.Code != http.StatusOK && code == "" {
		t.Fatalf("status %d without error code: %s", rec.Code, rec.Body)
	}
	return body
}

// evidence is everything a request carried that could hold a credential,
// raw and decoded: the body, its URL-decoding, headers, and the Basic
// credentials decoded both ways basicClient reads them.
func evidence(req *http.Request, body string) string {
	var b strings.Builder
	b.WriteString(body)
	if u, err := url.QueryUnescape(body); err == nil {
		b.WriteString("\n" + u)
	}
	for k, vs := range req.Header {
		b.WriteString("\n" + k + ": " + strings.Join(vs, ","))
	}
	if id, secret, ok := req.BasicAuth(); ok {
		b.WriteString("\n" + id + ":" + secret)
		uid, _ := url.QueryUnescape(id)
		usecret, _ := url.QueryUnescape(secret)
		b.WriteString("\n" + uid + ":" + usecret)
	}
	return b.String()
}

// FuzzTokenEndpoint sends fuzzed token requests (path, trusted proxy or
// not, Content-Type, Authorization, more headers, body) to /oauth/token and
// /oauth2/token of a server with real clients. Whatever the request:
//   - no panic and never a 5xx;
//   - every answer is JSON; every refusal has an RFC 6749 error code;
//   - a refusal leaves the store file byte-for-byte unchanged;
//   - a 200 carries a token the server verifies (or, for user_token, a
//     refresh token), and only for a request that contained a genuine
//     secret, certificate or token of the world.
func FuzzTokenEndpoint(f *testing.F) {
	w := newTokenWorld(f)
	form := "application/x-www-form-urlencoded"
	jwtBearer := url.QueryEscape(GrantJWTBearer)
	seeds := []struct {
		route                     uint8 // bit 0: /oauth2/token; bit 1: proxied
		contentType, auth, header string
		body                      string
	}{
		{0, form, "", "", "grant_type=client_credentials&client_id=$CID&client_secret=$SECRET"},
		{0, form + ";charset=UTF-8", "Basic $BASIC", "", "grant_type=client_credentials&scope=bookshop!t1.Read"},
		{0, form, "Basic $BASIC", "", "grant_type=client_credentials&authorities=%7B%22az_attr%22%3A%7B%22a%22%3A%22b%22%7D%7D"},
		{0, form, "", "", "grant_type=password&username=$USER&password=$PASS&client_id=$CID&client_secret=$SECRET&scope=openid"},
		{0, form, "Basic $BASIC", "", "grant_type=" + jwtBearer + "&assertion=$TOKEN"},
		{0, form, "Bearer $TOKEN", "", "grant_type=user_token&client_id=$CID"},
		{0, form, "", "", "grant_type=refresh_token&refresh_token=0123456789abcdef0123456789abcdef-r&client_id=$CID&client_secret=$SECRET"},
		{0, form, "", "", "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Flogin%2Fcallback&client_id=$CID&client_secret=$SECRET&code_verifier=x"},
		{2, form, "", "X-Forwarded-Client-Cert: $CERT\nX-Forwarded-For: 203.0.113.9, 192.0.2.7", "grant_type=client_credentials&client_id=$CID"},
		{2, form, "", "X-Forwarded-Client-Cert: Hash=abc;Cert=\"-----BEGIN%20CERTIFICATE-----%0A$CERT%0A-----END%20CERTIFICATE-----%0A\"", "grant_type=client_credentials"},
		{0, form, "", "X-Zid: $ZID", "grant_type=client_credentials&client_id=$CID&client_secret=$SECRET"},
		{0, form, "", "X-Zid: other", "grant_type=client_credentials&client_id=$CID&client_secret=$SECRET"},
		{1, form, "", "", "grant_type=client_credentials&client_id=$IAS_CID&client_secret=$IAS_SECRET&app_tid=$ZID&resource=urn%3Asap%3Aidentity%3Aapplication%3Aprovider%3Aname%3Aprovider"},
		{1, form, "Basic $IAS_BASIC", "", "grant_type=password&username=$USER&password=$PASS&refresh_expiry=0"},
		{1, form, "Basic $IAS_BASIC", "", "grant_type=" + jwtBearer + "&assertion=$IAS_TOKEN"},
		{1, form, "", "", "grant_type=client_credentials&client_id=$IAS_CID&client_secret=$IAS_SECRET&resource=urn%3Asap%3Aidentity%3Aapplication%3Aprovider%3Aclientid%3Ax%3Aapptid%3Ay"},
		{0, form, "Basic $IAS_BASIC", "", "grant_type=client_credentials"},
		{0, "application/json", "", "", `{"grant_type":"client_credentials"}`},
		{0, "", "", "", "grant_type=client_credentials"},
		{0, form, "", "", "grant_type=%zz"},
		{0, form, "", "", "grant_type=client_credentials&grant_type=password"},
		{0, form, "", "", "grant_type=client_credentials;client_id=$CID"},
		{0, form, "Basic !!!", "", "grant_type=client_credentials"},
		{0, form, "Basic " + base64.StdEncoding.EncodeToString([]byte("sb-bookshop%21t1:x")), "", "grant_type=client_credentials"},
		{0, form, "", "", "grant_type=foo"},
		{0, form, "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.contentType, s.auth, s.header, s.body)
	}
	f.Fuzz(func(t *testing.T, route uint8, contentType, auth, header, body string) {
		c := tokenCall{path: "/oauth/token", proxied: route&2 != 0, contentType: contentType, auth: auth, header: header, body: body}
		if route&1 != 0 {
			c.path = "/oauth2/token"
		}
		before := w.digest(t)
		rec, req := w.send(c)
		resp := checkOAuthError(t, rec)
		if rec.Code != http.StatusOK {
			if w.digest(t) != before {
				t.Fatalf("refused with %d but the store changed: %s", rec.Code, rec.Body)
			}
			return
		}
		ev := evidence(req, w.subst.Replace(body))
		genuine := false
		for _, s := range w.secrets {
			genuine = genuine || strings.Contains(ev, s)
		}
		if !genuine {
			t.Fatalf("200 without a genuine credential: %s\nrequest: %s", rec.Body, ev)
		}
		switch tok := resp["access_token"].(type) {
		case string:
			issuer := w.f.srv.issuer
			if c.path == "/oauth2/token" {
				issuer = w.f.srv.identityIssuer()
			}
			if _, err := w.f.srv.verifyTokenOf(tok, issuer); err != nil {
				t.Fatalf("issued a token that does not verify: %v", err)
			}
		case nil:
			if rt, _ := resp["refresh_token"].(string); rt == "" {
				t.Fatalf("200 without access or refresh token: %s", rec.Body)
			}
		default:
			t.Fatalf("access_token of type %T", tok)
		}
	})
}

// JWT construction modes of FuzzJWTAssertion.
const (
	jwtRaw       = iota // a is the token, with placeholders
	jwtServerKey        // a header, b claims, signed RS256 with the server's key
	jwtForeign          // the same, signed with a key the server does not know
	jwtHMAC             // HS256 keyed with the server's public key PEM (alg confusion)
	jwtUnsigned         // no signature ("none")
	numJWTModes
)

// FuzzJWTAssertion feeds fuzzed JWTs to verifyToken and verifyTokenOf and,
// as an assertion, to the jwt-bearer grant of both token endpoints and, as
// a bearer token, to user_token. Tokens are taken as given, or built from a
// fuzzed header and claims and signed with the server's key, a foreign key,
// HMAC over the public key, or not at all. Whatever the token:
//   - no panic, no 5xx, and every refusal is an RFC 6749 error;
//   - unless signed with the server's key, nothing is accepted except a
//     genuine token of the world (same header and claims, same signature);
//   - signed with the server's key, a token is accepted only with alg RS256,
//     the server's kid, the issuer of the endpoint and an exp in the future;
//   - an endpoint grants only what verifyToken accepted;
//   - a refusal leaves the store file unchanged.
func FuzzJWTAssertion(f *testing.F) {
	w := newTokenWorld(f)
	kid := w.f.keys.Current().ID
	hdr := `{"alg":"RS256","kid":"` + kid + `","typ":"JWT"}`
	user := `{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":$EXP,"scope":["uaa.user","openid"]}`
	iasUser := `{"sub":"$USER_ID","user_uuid":"$USER_ID","sap_id_type":"user","aud":["$IAS_CID"],"iss":"$IAS_ISS","exp":$EXP}`
	seeds := []struct {
		mode uint8
		a, b string
	}{
		{jwtRaw, "$TOKEN", ""},
		{jwtRaw, "$IAS_TOKEN", ""},
		{jwtRaw, "$CC_TOKEN", ""},
		{jwtRaw, "$TOKEN.", ""},
		{jwtRaw, "x$TOKEN", ""},
		{jwtRaw, "eyJhbGciOiJub25lIn0.e30.", ""},
		{jwtRaw, "a.b.c", ""},
		{jwtRaw, "...", ""},
		{jwtServerKey, hdr, user},
		{jwtServerKey, hdr, iasUser},
		{jwtServerKey, hdr, `{"user_id":"$USER_ID","zid":"other","iss":"$ISS","exp":$EXP}`},
		{jwtServerKey, hdr, `{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":1}`},
		{jwtServerKey, hdr, `{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS"}`},
		{jwtServerKey, hdr, `{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":"$EXP"}`},
		{jwtServerKey, hdr, `{"user_id":5,"zid":"$ZID","iss":"$ISS","exp":$EXP,"nbf":$EXP}`},
		{jwtServerKey, hdr, `{"user_id":"$USER_ID","zid":"$ZID","iss":["$ISS"],"exp":$EXP}`},
		{jwtServerKey, hdr, `{"user_id":"nobody","zid":"$ZID","iss":"$ISS","exp":1e300}`},
		{jwtServerKey, `{"alg":"none","kid":"` + kid + `"}`, user},
		{jwtServerKey, `{"alg":"RS256","kid":5}`, user},
		{jwtServerKey, `{"alg":"RS256","kid":"` + kid + `","crit":["exp"]}`, user},
		{jwtServerKey, `[]`, `[]`},
		{jwtForeign, hdr, user},
		{jwtHMAC, `{"alg":"HS256","kid":"` + kid + `"}`, user},
		{jwtUnsigned, `{"alg":"none"}`, user},
	}
	for _, s := range seeds {
		f.Add(s.mode, s.a, s.b)
	}
	foreign, err := foreignKey()
	if err != nil {
		f.Fatal(err)
	}
	server := w.f.keys.Current()
	jwtBearer := url.QueryEscape(GrantJWTBearer)
	f.Fuzz(func(t *testing.T, mode uint8, a, b string) {
		mode %= numJWTModes
		var tok string
		switch mode {
		case jwtRaw:
			tok = w.subst.Replace(a)
		case jwtServerKey:
			tok = signRS256(t, server.Private, w.subst.Replace(a), w.subst.Replace(b))
		case jwtForeign:
			tok = signRS256(t, foreign, w.subst.Replace(a), w.subst.Replace(b))
		case jwtHMAC:
			in := jwtSegments(w.subst.Replace(a), w.subst.Replace(b))
			m := hmac.New(sha256.New, []byte(server.publicPEM))
			m.Write([]byte(in))
			tok = in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		case jwtUnsigned:
			tok = jwtSegments(w.subst.Replace(a), w.subst.Replace(b)) + "."
		}
		xsOK := checkVerified(t, w, mode, tok, w.f.srv.issuer, w.xsTokens)
		iasOK := checkVerified(t, w, mode, tok, w.f.srv.identityIssuer(), w.iasTokens)

		calls := []struct {
			call tokenCall
			ok   bool // verifyToken's verdict for this call's issuer
		}{
			{tokenCall{path: "/oauth/token", auth: "Basic $BASIC", body: "grant_type=" + jwtBearer + "&assertion=" + url.QueryEscape(tok)}, xsOK},
			{tokenCall{path: "/oauth2/token", auth: "Basic $IAS_BASIC", body: "grant_type=" + jwtBearer + "&assertion=" + url.QueryEscape(tok)}, iasOK},
			{tokenCall{path: "/oauth/token", auth: "Bearer " + tok, body: "grant_type=user_token&client_id=$CID"}, xsOK},
		}
		for _, c := range calls {
			c.call.contentType = "application/x-www-form-urlencoded"
			before := w.digest(t)
			rec, _ := w.send(c.call)
			checkOAuthError(t, rec)
			if rec.Code == http.StatusOK && !c.ok {
				t.Fatalf("%s granted a token verifyToken refuses: %s", c.call.path, rec.Body)
			}
			if rec.Code != http.StatusOK && w.digest(t) != before {
				t.Fatalf("%s refused with %d but the store changed", c.call.path, rec.Code)
			}
		}
	})
}

// checkVerified runs verifyTokenOf for issuer and checks its verdict
// against what the construction mode allows; it returns the verdict.
func checkVerified(t *testing.T, w *tokenWorld, mode uint8, tok, issuer string, genuine []string) bool {
	t.Helper()
	claims, err := w.f.srv.verifyTokenOf(tok, issuer)
	if err != nil {
		return false
	}
	switch mode {
	case jwtServerKey:
		head, payload, _ := strings.Cut(tok, ".")
		payload, _, _ = strings.Cut(payload, ".")
		h := decodeSegment(t, head)
		c := decodeSegment(t, payload)
		if h["alg"] != "RS256" || h["kid"] != w.f.keys.Current().ID {
			t.Fatalf("accepted header %v", h)
		}
		if c["iss"] != issuer {
			t.Fatalf("accepted iss %v for %s", c["iss"], issuer)
		}
		exp, ok := c["exp"].(json.Number)
		if v, err := exp.Float64(); !ok || err != nil || v <= float64(time.Now().Unix()) {
			t.Fatalf("accepted exp %v", c["exp"])
		}
	default:
		signed, sig := tok[:strings.LastIndex(tok, ".")], tok[strings.LastIndex(tok, ".")+1:]
		for _, g := range genuine {
			i := strings.LastIndex(g, ".")
			if signed == g[:i] && sameSignature(sig, g[i+1:]) {
				return true
			}
		}
		t.Fatalf("accepted a token that is not genuine (mode %d): %q, claims %v", mode, tok, claims)
	}
	return true
}

// sameSignature compares two base64url signatures by their bytes (the
// last character of an unpadded encoding has spare bits).
func sameSignature(a, b string) bool {
	x, err1 := base64.RawURLEncoding.DecodeString(a)
	y, err2 := base64.RawURLEncoding.DecodeString(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("accepted segment %q: %v", seg, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("accepted segment %q: %v", raw, err)
	}
	return m
}

// jwtSegments is the signing input of a JWT with this header and claims.
func jwtSegments(header, claims string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
}

// signRS256 builds a JWT of header and claims (as given, valid JSON or not)
// with an RS256 signature by key.
func signRS256(t *testing.T, key *rsa.PrivateKey, header, claims string) string {
	t.Helper()
	in := jwtSegments(header, claims)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

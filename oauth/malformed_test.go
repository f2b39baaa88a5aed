package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestMalformedTokenRequests lists malformed token requests with the exact
// status and RFC 6749 error body each gets, and checks that none of them
// changes the store: the store file is byte-for-byte the same afterwards.
func TestMalformedTokenRequests(t *testing.T) {
	w := newTokenWorld(t)
	f := w.f
	// A client that may use client_credentials only.
	ccOnly := f.bind(f.provisionXsuaa(`{"xsappname":"cc-only","oauth2-configuration":{"grant-types":["client_credentials"]}}`), "")
	ccOnlyForm := "client_id=" + url.QueryEscape(ccOnly.cred("clientid")) + "&client_secret=" + url.QueryEscape(ccOnly.cred("clientsecret"))

	form := "application/x-www-form-urlencoded"
	jwtBearer := "grant_type=" + url.QueryEscape(GrantJWTBearer)
	xsAuth := "&client_id=$CID&client_secret=$SECRET"
	iasAuth := "&client_id=$IAS_CID&client_secret=$IAS_SECRET"
	key := f.keys.Current()
	hdr := `{"alg":"RS256","kid":"` + key.ID + `","typ":"JWT"}`
	signed := func(claims string) string {
		return url.QueryEscape(signRS256(t, key.Private, hdr, w.subst.Replace(claims)))
	}
	foreign, err := foreignKey()
	if err != nil {
		t.Fatal(err)
	}
	user := `{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":$EXP,"scope":["uaa.user"]}`
	unsigned := url.QueryEscape(jwtSegments(`{"alg":"none"}`, w.subst.Replace(user)) + ".")
	hs256 := func() string {
		tok := signToken(t, jwt.SigningMethodHS256, []byte(key.publicPEM), key.ID, map[string]any{"user_id": "x", "iss": f.srv.issuer, "exp": 9999999999})
		return url.QueryEscape(tok)
	}()
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

	type body = map[string]any
	invalidRequest := func(d string) body { return body{"error": "invalid_request", "error_description": d} }
	badClient := body{"error": "invalid_client", "error_description": "Bad credentials"}
	badGrant := func(d string) body { return body{"error": "invalid_grant", "error_description": d} }
	wrongType := invalidRequest("Content-Type must be application/x-www-form-urlencoded")
	malformed := invalidRequest("malformed form body")
	xs := func(b string) tokenCall { return tokenCall{path: "/oauth/token", contentType: form, body: b} }
	ias := func(b string) tokenCall { return tokenCall{path: "/oauth2/token", contentType: form, body: b} }
	with := func(c tokenCall, change func(*tokenCall)) tokenCall { change(&c); return c }
	auth := func(c tokenCall, a string) tokenCall { return with(c, func(c *tokenCall) { c.auth = a }) }

	cases := []struct {
		name   string
		call   tokenCall
		status int
		body   body
	}{
		// The form itself.
		{"no Content-Type", with(xs("grant_type=client_credentials"+xsAuth), func(c *tokenCall) { c.contentType = "" }), 400, wrongType},
		{"JSON body", with(xs(`{"grant_type":"client_credentials"}`), func(c *tokenCall) { c.contentType = "application/json" }), 400, wrongType},
		{"multipart body", with(xs("--x\r\n\r\n--x--"), func(c *tokenCall) { c.contentType = "multipart/form-data; boundary=x" }), 400, wrongType},
		{"text/plain body", with(xs("grant_type=client_credentials"), func(c *tokenCall) { c.contentType = "text/plain" }), 400, wrongType},
		{"bad percent-encoding", xs("grant_type=%zz" + xsAuth), 400, malformed},
		{"semicolon separator", xs("grant_type=client_credentials;client_id=$CID"), 400, malformed},
		{"oversize body", xs("grant_type=client_credentials&x=" + strings.Repeat("a", MaxFormBytes)), 400, invalidRequest("request body larger than 65536 bytes")},
		{"duplicate grant_type", xs("grant_type=client_credentials&grant_type=password" + xsAuth), 400, invalidRequest("parameter grant_type given more than once")},
		{"duplicate client_secret", xs("grant_type=client_credentials" + xsAuth + "&client_secret=other"), 400, invalidRequest("parameter client_secret given more than once")},
		{"duplicate scope", xs("grant_type=client_credentials&scope=a&scope=b" + xsAuth), 400, invalidRequest("parameter scope given more than once")},
		{"grant_type in the query only", with(xs(xsAuth[1:]), func(c *tokenCall) { c.path = "/oauth/token?grant_type=client_credentials" }), 400, invalidRequest("missing grant_type")},
		{"missing grant_type", xs(xsAuth[1:]), 400, invalidRequest("missing grant_type")},
		{"empty grant_type", xs("grant_type=" + xsAuth), 400, invalidRequest("missing grant_type")},
		{"empty body", xs(""), 400, invalidRequest("missing grant_type")},
		{"unknown grant_type", xs("grant_type=foo" + xsAuth), 400, body{"error": "unsupported_grant_type", "error_description": "Unsupported grant type: foo"}},
		{"grant_type in upper case", xs("grant_type=CLIENT_CREDENTIALS" + xsAuth), 400, body{"error": "unsupported_grant_type", "error_description": "Unsupported grant type: CLIENT_CREDENTIALS"}},
		{"GET instead of POST", with(xs(""), func(c *tokenCall) { c.method = http.MethodGet }), 405, body{"error": "method_not_allowed", "error_description": "Request method 'GET' is not supported"}},
		{"unknown zone in x-zid", with(xs("grant_type=client_credentials"+xsAuth), func(c *tokenCall) { c.header = "X-Zid: other-zone" }), 400, invalidRequest("unknown identity zone in x-zid")},

		// Client authentication.
		{"Basic not base64", auth(xs("grant_type=client_credentials"), "Basic !!!"), 401, badClient},
		{"Basic without colon", auth(xs("grant_type=client_credentials"), "Basic "+base64.StdEncoding.EncodeToString([]byte("$CID"))), 401, badClient},
		{"Basic empty", auth(xs("grant_type=client_credentials"), "Basic "), 401, badClient},
		{"Basic lower-case scheme, wrong secret", auth(xs("grant_type=client_credentials"), "basic "+base64.StdEncoding.EncodeToString([]byte("x:y"))), 401, badClient},
		{"Basic wrong secret", auth(xs("grant_type=client_credentials"), basic(w.subst.Replace("$CID:wrong"))), 401, badClient},
		{"Basic unknown client", auth(xs("grant_type=client_credentials"), basic("nobody:$SECRET")), 401, badClient},
		{"Basic bad percent-encoding", auth(xs("grant_type=client_credentials"), basic("sb-bookshop%zz:secret%")), 401, badClient},
		{"Basic and another client_id", auth(xs("grant_type=client_credentials&client_id=other"), "Basic $BASIC"), 401, badClient},
		{"Basic and a wrong client_secret", auth(xs("grant_type=client_credentials&client_secret=wrong"), "Basic $BASIC"), 401, badClient},
		{"Bearer instead of client credentials", auth(xs("grant_type=client_credentials"), "Bearer $CC_TOKEN"), 401, badClient},
		{"empty client_id", xs("grant_type=client_credentials&client_id=&client_secret=$SECRET"), 401, badClient},
		{"unknown client_id", xs("grant_type=client_credentials&client_id=nobody&client_secret=$SECRET"), 401, badClient},
		{"client_id without secret", xs("grant_type=client_credentials&client_id=$CID"), 401, badClient},
		{"secret of another client", xs("grant_type=client_credentials&client_id=$CID&client_secret=$IAS_SECRET"), 401, badClient},
		{"identity client on /oauth/token", xs("grant_type=client_credentials" + iasAuth), 401, badClient},
		{"X-Forwarded-Client-Cert from an untrusted peer", with(xs("grant_type=client_credentials&client_id=$CID"), func(c *tokenCall) { c.header = "X-Forwarded-Client-Cert: $CERT" }), 401, badClient},
		{"X-Forwarded-Client-Cert garbage", with(xs("grant_type=client_credentials&client_id=$CID"), func(c *tokenCall) { c.proxied, c.header = true, "X-Forwarded-Client-Cert: Hash=1;Cert=\"x\"" }), 401, badClient},
		{"certificate and another client_id", with(xs("grant_type=client_credentials&client_id="+url.QueryEscape(ccOnly.cred("clientid"))), func(c *tokenCall) { c.proxied, c.header = true, "X-Forwarded-Client-Cert: $CERT" }), 401, badClient},

		// client_credentials parameters.
		{"scope the client lacks", xs("grant_type=client_credentials&scope=nope" + xsAuth), 400,
			body{"error": "invalid_scope", "error_description": "Invalid scope: nope. Did you know that you can get default requested scopes by simply sending no value?", "scope": "uaa.resource"}},
		{"scope of control characters", xs("grant_type=client_credentials&scope=%00%01" + xsAuth), 400,
			body{"error": "invalid_scope", "error_description": "Invalid scope: \x00\x01. Did you know that you can get default requested scopes by simply sending no value?", "scope": "uaa.resource"}},
		{"authorities not JSON", xs("grant_type=client_credentials&authorities=az_attr" + xsAuth), 400, invalidRequest(`authorities must be JSON of the form {"az_attr":{...}}`)},
		{"authorities az_attr not an object", xs("grant_type=client_credentials&authorities=%7B%22az_attr%22%3A5%7D" + xsAuth), 400, invalidRequest(`authorities must be JSON of the form {"az_attr":{...}}`)},
		{"grant type the client may not use", xs("grant_type=password&username=$USER&password=$PASS&" + ccOnlyForm), 400, body{"error": "unauthorized_client", "error_description": "Unauthorized grant type: password"}},

		// User grants.
		{"password without username", xs("grant_type=password&password=$PASS" + xsAuth), 400, invalidRequest("username and password are required")},
		{"password without password", xs("grant_type=password&username=$USER" + xsAuth), 400, invalidRequest("username and password are required")},
		{"password wrong", xs("grant_type=password&username=$USER&password=wrong" + xsAuth), 401, body{"error": "unauthorized", "error_description": "Bad credentials"}},
		{"password unknown user", xs("grant_type=password&username=nobody&password=x" + xsAuth), 401, body{"error": "unauthorized", "error_description": "Bad credentials"}},
		{"password scope the user lacks", xs("grant_type=password&username=$USER&password=$PASS&scope=nope" + xsAuth), 400,
			body{"error": "invalid_scope", "error_description": "Invalid scope: nope", "scope": "bookshop!t1.Admin bookshop!t1.Read bookshop!t1.Write openid uaa.user"}},
		{"refresh_token missing", xs("grant_type=refresh_token" + xsAuth), 400, invalidRequest("refresh_token is required")},
		{"refresh_token unknown", xs("grant_type=refresh_token&refresh_token=0123456789abcdef0123456789abcdef-r" + xsAuth), 401, body{"error": "invalid_token", "error_description": "Invalid refresh token (expired)"}},
		{"code missing", xs("grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example.com%2Flogin%2Fcallback" + xsAuth), 400, invalidRequest("code is required")},
		{"code unknown", xs("grant_type=authorization_code&code=nope" + xsAuth), 400, badGrant("Invalid authorization code: nope")},

		// jwt-bearer assertions and user_token bearer tokens.
		{"assertion missing", xs(jwtBearer + xsAuth), 400, invalidRequest("assertion is required")},
		{"assertion not a JWT", xs(jwtBearer + "&assertion=garbage" + xsAuth), 401, badGrant("Invalid assertion: token is malformed: token contains an invalid number of segments")},
		{"assertion with a bad header", xs(jwtBearer + "&assertion=e30.e30.e30" + xsAuth), 401, badGrant("Invalid assertion: token is unverifiable: signing method (alg) is unspecified")},
		{"assertion with alg none", xs(jwtBearer + "&assertion=" + unsigned + xsAuth), 401, badGrant("Invalid assertion: token signature is invalid: signing method none is invalid")},
		{"assertion HS256 over the public key", xs(jwtBearer + "&assertion=" + hs256 + xsAuth), 401, badGrant("Invalid assertion: token signature is invalid: signing method HS256 is invalid")},
		{"assertion signed by a foreign key", xs(jwtBearer + "&assertion=" + url.QueryEscape(signRS256(t, foreign, hdr, w.subst.Replace(user))) + xsAuth), 401,
			badGrant("Invalid assertion: token signature is invalid: crypto/rsa: verification error")},
		{"assertion with an unknown kid", xs(jwtBearer + "&assertion=" + url.QueryEscape(signRS256(t, key.Private, `{"alg":"RS256","kid":"other"}`, w.subst.Replace(user))) + xsAuth), 401,
			badGrant("Invalid assertion: token is unverifiable: error while executing keyfunc: unknown kid \"other\"")},
		{"assertion expired", xs(jwtBearer + "&assertion=" + signed(`{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":1}`) + xsAuth), 401, badGrant("Invalid assertion: token has invalid claims: token is expired")},
		{"assertion without exp", xs(jwtBearer + "&assertion=" + signed(`{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS"}`) + xsAuth), 401, badGrant("Invalid assertion: token has invalid claims: token is missing required claim: exp claim is required")},
		{"assertion exp a string", xs(jwtBearer + "&assertion=" + signed(`{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":"9999999999"}`) + xsAuth), 401, badGrant("Invalid assertion: token has invalid claims: invalid type for claim: exp is invalid")},
		{"assertion of the identity issuer", xs(jwtBearer + "&assertion=$IAS_TOKEN" + xsAuth), 401, badGrant("Invalid assertion: token has invalid claims: token has invalid issuer")},
		{"assertion is a client token", xs(jwtBearer + "&assertion=$CC_TOKEN" + xsAuth), 400, badGrant("Invalid assertion: not a user token")},
		{"assertion of another zone", xs(jwtBearer + "&assertion=" + signed(`{"user_id":"$USER_ID","zid":"other","iss":"$ISS","exp":$EXP}`) + xsAuth), 401,
			body{"error": "unauthorized", "error_description": "Unable to map issuer, [" + f.srv.issuer + "] , to a single registered provider"}},
		{"assertion of a deleted user", xs(jwtBearer + "&assertion=" + signed(`{"user_id":"nobody","zid":"$ZID","iss":"$ISS","exp":$EXP}`) + xsAuth), 400, badGrant("Invalid assertion: the user no longer exists")},
		{"user_token without a bearer token", xs("grant_type=user_token&client_id=$CID"), 401, body{"error": "unauthorized", "error_description": "Full authentication is required: a Bearer user token"}},
		{"user_token with Basic", auth(xs("grant_type=user_token&client_id=$CID"), "Basic $BASIC"), 401, body{"error": "unauthorized", "error_description": "Full authentication is required: a Bearer user token"}},
		{"user_token with a garbage token", auth(xs("grant_type=user_token&client_id=$CID"), "Bearer x.y.z"), 401, badGrant("Invalid assertion: token is malformed: could not base64 decode header: illegal base64 data at input byte 0")},
		{"user_token with a client token", auth(xs("grant_type=user_token&client_id=$CID"), "Bearer $CC_TOKEN"), 400, badGrant("Invalid assertion: not a user token")},
		{"user_token without uaa.user", auth(xs("grant_type=user_token&client_id=$CID"), "Bearer "+signRS256(t, key.Private, hdr, w.subst.Replace(`{"user_id":"$USER_ID","zid":"$ZID","iss":"$ISS","exp":$EXP,"scope":["openid"]}`))), 403,
			body{"error": "insufficient_scope", "error_description": "the token lacks the scope uaa.user"}},
		{"user_token for an unknown client", auth(xs("grant_type=user_token&client_id=nobody"), "Bearer $TOKEN"), 400, body{"error": "invalid_client", "error_description": "unknown client_id"}},
		{"user_token for an identity client", auth(xs("grant_type=user_token&client_id=$IAS_CID"), "Bearer $TOKEN"), 400, body{"error": "invalid_client", "error_description": "unknown client_id"}},
		{"user_token for a client without it", auth(xs("grant_type=user_token&client_id="+url.QueryEscape(ccOnly.cred("clientid"))), "Bearer $TOKEN"), 400, body{"error": "unauthorized_client", "error_description": "Unauthorized grant type: user_token"}},

		// The identity token endpoint.
		{"identity: no Content-Type", with(ias("grant_type=client_credentials"+iasAuth), func(c *tokenCall) { c.contentType = "" }), 400, wrongType},
		{"identity: bad percent-encoding", ias("grant_type=client_credentials&x=%" + iasAuth), 400, malformed},
		{"identity: unknown app_tid", ias("grant_type=client_credentials&app_tid=other" + iasAuth), 400, invalidRequest("unknown app_tid other")},
		{"identity: user_token", ias("grant_type=user_token" + iasAuth), 400, body{"error": "unsupported_grant_type", "error_description": "Unsupported grant type: user_token"}},
		{"identity: token-exchange is not served", ias("grant_type=" + url.QueryEscape(GrantTokenExchange) + iasAuth), 400, body{"error": "unsupported_grant_type", "error_description": "Unsupported grant type: " + GrantTokenExchange}},
		{"identity: xsuaa client", ias("grant_type=client_credentials" + xsAuth), 401, badClient},
		{"identity: wrong secret", auth(ias("grant_type=client_credentials"), basic(w.subst.Replace("$IAS_CID:wrong"))), 401, badClient},
		{"identity: resource of an unknown kind", ias("grant_type=client_credentials&resource=foo" + iasAuth), 400, body{"error": "invalid_target", "error_description": "unsupported resource foo"}},
		{"identity: resource not consumed", ias("grant_type=client_credentials&resource=urn%3Asap%3Aidentity%3Aapplication%3Aprovider%3Aname%3Anope" + iasAuth), 400,
			body{"error": "invalid_target", "error_description": "resource urn:sap:identity:application:provider:name:nope is not a provider this client consumes (consumed-services)"}},
		{"identity: password without password", ias("grant_type=password&username=$USER" + iasAuth), 400, invalidRequest("username and password are required")},
		{"identity: password wrong", ias("grant_type=password&username=$USER&password=wrong" + iasAuth), 401, badGrant("Bad credentials")},
		{"identity: assertion missing", ias(jwtBearer + iasAuth), 400, invalidRequest("assertion is required")},
		{"identity: assertion of the xsuaa issuer", ias(jwtBearer + "&assertion=$TOKEN" + iasAuth), 400, badGrant("Invalid assertion: token has invalid claims: token has invalid issuer")},
		{"identity: assertion for another audience", ias(jwtBearer + "&assertion=" + signed(`{"sub":"$USER_ID","sap_id_type":"user","aud":["other"],"iss":"$IAS_ISS","exp":$EXP}`) + iasAuth), 400,
			badGrant("Invalid assertion: its aud does not contain the client " + w.subst.Replace("$IAS_CID"))},
		{"identity: assertion of an app", ias(jwtBearer + "&assertion=" + signed(`{"sub":"$IAS_CID","sap_id_type":"app","aud":["$IAS_CID"],"iss":"$IAS_ISS","exp":$EXP}`) + iasAuth), 400, badGrant("Invalid assertion: not a user token")},
		{"identity: assertion of an unknown user", ias(jwtBearer + "&assertion=" + signed(`{"sub":"nobody","sap_id_type":"user","aud":["$IAS_CID"],"iss":"$IAS_ISS","exp":$EXP}`) + iasAuth), 400, badGrant("Invalid assertion: unknown user")},
		{"identity: refresh_token unknown", ias("grant_type=refresh_token&refresh_token=x" + iasAuth), 401, body{"error": "invalid_token", "error_description": "Invalid refresh token (expired)"}},
		{"identity: code unknown", ias("grant_type=authorization_code&code=x" + iasAuth), 400, badGrant("Invalid authorization code: x")},
	}
	// The check can fail: a password grant stores a refresh token.
	before := w.digest(t)
	if rec, _ := w.send(xs("grant_type=password&username=$USER&password=$PASS" + xsAuth)); rec.Code != http.StatusOK {
		t.Fatalf("probe password grant: %d %s", rec.Code, rec.Body)
	}
	if w.digest(t) == before {
		t.Fatal("a refresh token left the store file as it was: the digest cannot see changes")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := w.digest(t)
			rec, _ := w.send(c.call)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			got := checkOAuthError(t, rec)
			if !reflect.DeepEqual(got, c.body) {
				g, _ := json.Marshal(got)
				want, _ := json.Marshal(c.body)
				t.Errorf("body\n got %s\nwant %s", g, want)
			}
			if c.status == http.StatusUnauthorized && got["error"] == "invalid_client" && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 invalid_client without WWW-Authenticate")
			}
			if w.digest(t) != before {
				t.Errorf("the request changed the store")
			}
		})
	}

	// Failed client authentications are limited per client id and source.
	t.Run("too many failures", func(t *testing.T) {
		before := w.digest(t)
		call := xs("grant_type=client_credentials&client_id=limited&client_secret=wrong")
		for range ClientFailureLimit {
			if rec, _ := w.send(call); rec.Code != http.StatusUnauthorized {
				t.Fatalf("failure below the limit: %d %s", rec.Code, rec.Body)
			}
		}
		rec, _ := w.send(call)
		got := checkOAuthError(t, rec)
		want := body{"error": "too_many_requests", "error_description": "too many failed authentications; retry later"}
		if rec.Code != http.StatusTooManyRequests || !reflect.DeepEqual(got, want) || rec.Header().Get("Retry-After") == "" {
			t.Errorf("over the limit: %d %v, Retry-After %q", rec.Code, got, rec.Header().Get("Retry-After"))
		}
		if w.digest(t) != before {
			t.Errorf("the requests changed the store")
		}
	})
}

package oauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/users"
)

// foreignKey is an RSA key the server does not know. 1024 bits keeps its
// generation cheap; its size plays no part in the tests.
var foreignKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })

func mustForeignKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := foreignKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signToken signs claims with method and key and sets kid in the header.
func signToken(t *testing.T, method jwt.SigningMethod, key any, kid string, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(maps.Clone(claims)))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// with returns a copy of claims with the given changes; a nil value
// deletes the claim.
func with(claims map[string]any, kv ...any) map[string]any {
	out := maps.Clone(claims)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// bearerForm is a jwt-bearer request of b, authenticated in the body.
func bearerForm(b binding, assertion string, kv ...string) url.Values {
	v := url.Values{"grant_type": {GrantJWTBearer}, "assertion": {assertion},
		"client_id": {b.cred("clientid")}, "client_secret": {b.cred("clientsecret")}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

const reviewsApp = `{
	"xsappname": "reviews",
	"scopes": [{"name": "$XSAPPNAME.Read", "description": "r"}, {"name": "$XSAPPNAME.Moderate", "description": "m"}],
	"role-templates": [
		{"name": "Reader", "scope-references": ["$XSAPPNAME.Read"]},
		{"name": "Moderator", "scope-references": ["$XSAPPNAME.Moderate"]}
	],
	"role-collections": [{"name": "Reviews Reader", "role-template-references": ["$XSAPPNAME.Reader"]}]
}`

// bearerWorld adds the reviews app (client B) and gives alice its reader
// role collection besides the bookshop ones.
func bearerWorld(t *testing.T) (*userWorld, binding) {
	w := newUserWorld(t)
	reviews := w.f.bind(w.f.provisionXsuaa(reviewsApp), "")
	w.f.addUser(users.Spec{
		Username: "alice", Password: alicePass, Email: "alice@example.com", GivenName: "Alice", FamilyName: "Doe",
		RoleCollections: []string{"Bookshop Viewer", "Bookshop Editor", "Reviews Reader"}, Attributes: map[string][]string{"Level": {"3"}},
	})
	return w, reviews
}

func TestJWTBearerExchange(t *testing.T) {
	w, reviews := bearerWorld(t)
	f, bid := w.f, reviews.cred("clientid")
	rapp := reviews.cred("xsappname")
	body, original := w.aliceToken()

	got, _, claims := f.mustToken(bearerForm(reviews, body["access_token"].(string)))
	wantScopes(t, got, claims, "openid", rapp+".Read")
	for k, want := range map[string]any{
		"client_id": bid, "cid": bid, "azp": bid, "grant_type": GrantJWTBearer,
		"user_id": w.alice.ID, "sub": w.alice.ID, "user_name": "alice", "origin": users.DefaultOrigin,
		"email": "alice@example.com", "given_name": "Alice", "family_name": "Doe", "zid": f.zone.ID,
	} {
		if claims[k] != want {
			t.Errorf("claim %s = %#v, want %#v", k, claims[k], want)
		}
	}
	if aud := strs(t, claims, "aud"); !sameSet(aud, []string{bid, "openid", rapp}) {
		t.Errorf("aud %v, want recomputed for B", aud)
	}
	if claims["jti"] == original["jti"] {
		t.Error("same jti as the assertion")
	}
	if rt, _ := got["refresh_token"].(string); !refreshTokenRE.MatchString(rt) {
		t.Errorf("refresh_token %q", got["refresh_token"])
	} else {
		// The refresh token is B's and keeps the grant type.
		status, reply := f.token(refreshForm(reviews, rt))
		if c := refreshOK(t, f, status, reply); c["grant_type"] != GrantJWTBearer || c["azp"] != bid {
			t.Errorf("refreshed: grant_type %v azp %v", c["grant_type"], c["azp"])
		}
		status, reply = f.token(refreshForm(w.app, reply["refresh_token"].(string)))
		wantOAuthError(t, status, reply, http.StatusUnauthorized, "invalid_grant")
	}

	t.Run("current scopes, not a copy of the assertion's", func(t *testing.T) {
		narrow, _ := w.aliceToken("scope", "openid")
		got, _, claims := f.mustToken(bearerForm(reviews, narrow["access_token"].(string)))
		wantScopes(t, got, claims, "openid", rapp+".Read")
	})
	t.Run("scope narrowing", func(t *testing.T) {
		got, _, claims := f.mustToken(bearerForm(reviews, body["access_token"].(string), "scope", "openid"))
		wantScopes(t, got, claims, "openid")
		status, reply := f.token(bearerForm(reviews, body["access_token"].(string), "scope", w.scope("Read")))
		wantOAuthError(t, status, reply, http.StatusBadRequest, "invalid_scope")
	})
	t.Run("B's own token and Basic authentication", func(t *testing.T) {
		own, _, _ := f.mustToken(passwordForm(reviews, "alice", alicePass))
		form := url.Values{"grant_type": {GrantJWTBearer}, "assertion": {own["access_token"].(string)}}
		f.mustToken(form, withBasic(bid, reviews.cred("clientsecret")))
	})
	t.Run("the id_token as assertion", func(t *testing.T) {
		f.mustToken(bearerForm(reviews, body["id_token"].(string)))
	})
}

func TestJWTBearerRefusals(t *testing.T) {
	w, reviews := bearerWorld(t)
	f := w.f
	body, claims := w.aliceToken()
	valid := body["access_token"].(string)
	server := testRSAKey(t)
	now := time.Now().Unix()
	cc, _, _ := f.mustToken(w.app.secretForm())
	ias := f.bind(f.provisionIdentity("ias", `{}`), "")
	iasTok := mustIASPassword(t, f, ias, "alice", alicePass)
	pub, err := x509.MarshalPKIXPublicKey(&server.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})

	for _, tc := range []struct {
		name       string
		assertion  func() string
		wantStatus int
		wantCode   string
	}{
		{"missing", func() string { return "" }, 400, "invalid_request"},
		{"garbage", func() string { return "garbage" }, 401, "invalid_grant"},
		{"truncated signature", func() string { return valid[:len(valid)-4] }, 401, "invalid_grant"},
		{"unknown kid", func() string { return signToken(t, jwt.SigningMethodRS256, server, "other-kid", claims) }, 401, "invalid_grant"},
		{"no kid", func() string { return signToken(t, jwt.SigningMethodRS256, server, "", claims) }, 401, "invalid_grant"},
		{"another key under the server's kid", func() string {
			return signToken(t, jwt.SigningMethodRS256, mustForeignKey(t), sharedKID, claims)
		}, 401, "invalid_grant"},
		{"alg none", func() string {
			return signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, sharedKID, claims)
		}, 401, "invalid_grant"},
		{"HS256 with the public key PEM", func() string { return signToken(t, jwt.SigningMethodHS256, pubPEM, sharedKID, claims) }, 401, "invalid_grant"},
		{"HS256 with the public key DER", func() string { return signToken(t, jwt.SigningMethodHS256, pub, sharedKID, claims) }, 401, "invalid_grant"},
		{"RS512", func() string { return signToken(t, jwt.SigningMethodRS512, server, sharedKID, claims) }, 401, "invalid_grant"},
		{"expired", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "iat", now-1000, "exp", now-10))
		}, 401, "invalid_grant"},
		{"without exp", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "exp", nil))
		}, 401, "invalid_grant"},
		{"not yet valid", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "nbf", now+600))
		}, 401, "invalid_grant"},
		{"another issuer, signed by the server key", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "iss", "https://other.authentication.test.local/oauth/token"))
		}, 401, "invalid_grant"},
		{"another issuer with its own key", func() string {
			return signToken(t, jwt.SigningMethodRS256, mustForeignKey(t), "foreign-kid", with(claims, "iss", "https://foreign.example.com/oauth/token"))
		}, 401, "invalid_grant"},
		{"an identity token", func() string { return iasTok }, 401, "invalid_grant"},
		{"another zone", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "zid", "other-zone"))
		}, 401, "unauthorized"},
		{"a client_credentials token", func() string { return cc["access_token"].(string) }, 400, "invalid_grant"},
		{"an unknown user", func() string {
			return signToken(t, jwt.SigningMethodRS256, server, sharedKID, with(claims, "user_id", "no-such-user", "sub", "no-such-user"))
		}, 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.token(bearerForm(reviews, tc.assertion()))
			wantOAuthError(t, status, body, tc.wantStatus, tc.wantCode)
		})
	}

	t.Run("the crafted tokens verify when nothing is wrong", func(t *testing.T) {
		// Guards the table: signToken with the server's key and kid makes
		// an assertion the server accepts.
		f.mustToken(bearerForm(reviews, signToken(t, jwt.SigningMethodRS256, server, sharedKID, claims)))
	})

	t.Run("client without the jwt-bearer grant", func(t *testing.T) {
		b := f.bind(f.provisionXsuaa(`{"xsappname":"nobearer","oauth2-configuration":{"grant-types":["password"]}}`), "")
		status, body := f.token(bearerForm(b, valid))
		wantOAuthError(t, status, body, http.StatusBadRequest, "unauthorized_client")
	})

	t.Run("deleted user", func(t *testing.T) {
		hank := f.addUser(users.Spec{Username: "hank", Password: "hank-pass"})
		hb, _, _ := f.mustToken(passwordForm(w.app, "hank", "hank-pass"))
		f.deleteUser(hank.ID)
		status, body := f.token(bearerForm(reviews, hb["access_token"].(string)))
		wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	})

	t.Run("expired by the server's clock", func(t *testing.T) {
		f.advance(900*time.Second + time.Minute) // bookshop's token-validity
		status, body := f.token(bearerForm(reviews, valid))
		wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_grant")
	})
}

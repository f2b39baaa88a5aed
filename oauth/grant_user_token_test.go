package oauth

import (
	"net/http"
	"net/url"
	"testing"
)

// userTokenForm is the legacy user_token request for the receiving client.
func userTokenForm(clientID string) url.Values {
	return url.Values{"grant_type": {"user_token"}, "client_id": {clientID}, "token_format": {"jwt"}}
}

func TestUserTokenGrant(t *testing.T) {
	w, reviews := bearerWorld(t)
	f, bid := w.f, reviews.cred("clientid")
	body, _ := w.aliceToken() // carries uaa.user through the Viewer template
	access := body["access_token"].(string)

	status, reply := f.token(userTokenForm(bid), withBearer(access))
	if status != http.StatusOK {
		t.Fatalf("user_token: %d %v", status, reply)
	}
	if v, ok := reply["access_token"]; !ok || v != nil {
		t.Errorf("access_token %#v, want null", reply["access_token"])
	}
	rt, _ := reply["refresh_token"].(string)
	if !refreshTokenRE.MatchString(rt) || reply["jti"] != rt {
		t.Fatalf("refresh_token %q jti %v", rt, reply["jti"])
	}

	// Only the receiving client can redeem it, and a wrong client does not
	// consume it.
	status, reply = f.token(refreshForm(w.app, rt))
	wantOAuthError(t, status, reply, http.StatusUnauthorized, "invalid_grant")
	status, reply = f.token(refreshForm(reviews, rt))
	claims := refreshOK(t, f, status, reply)
	wantScopes(t, reply, claims, "openid", reviews.cred("xsappname")+".Read")
	if claims["azp"] != bid || claims["user_id"] != w.alice.ID {
		t.Errorf("redeemed token: azp %v user_id %v", claims["azp"], claims["user_id"])
	}

	t.Run("the receiving client may be the token's own", func(t *testing.T) {
		status, reply := f.token(userTokenForm(w.app.cred("clientid")), withBearer(access))
		if status != http.StatusOK || reply["refresh_token"] == nil {
			t.Errorf("user_token for the same client: %d %v", status, reply)
		}
	})

	noUAAUser, _ := w.aliceToken("scope", "openid "+w.scope("Read"))
	cc, _, _ := f.mustToken(w.app.secretForm())
	bob, _, _ := f.mustToken(passwordForm(w.app, "bob", bobPass))
	noUT := f.bind(f.provisionXsuaa(`{"xsappname":"nout","oauth2-configuration":{"grant-types":["refresh_token","password"]}}`), "")
	ias := f.bind(f.provisionIdentity("ias-ut", `{}`), "")
	for _, tc := range []struct {
		name       string
		form       url.Values
		opts       []reqOpt
		wantStatus int
		wantCode   string
	}{
		{"token without uaa.user", userTokenForm(bid), []reqOpt{withBearer(noUAAUser["access_token"].(string))}, 403, "insufficient_scope"},
		{"user without uaa.user", userTokenForm(bid), []reqOpt{withBearer(bob["access_token"].(string))}, 403, "insufficient_scope"},
		{"missing bearer", userTokenForm(bid), nil, 401, "unauthorized"},
		{"client credentials instead of a bearer", userTokenForm(bid), []reqOpt{withBasic(bid, reviews.cred("clientsecret"))}, 401, "unauthorized"},
		{"garbage bearer", userTokenForm(bid), []reqOpt{withBearer("garbage")}, 401, "invalid_grant"},
		{"client_credentials token", userTokenForm(bid), []reqOpt{withBearer(cc["access_token"].(string))}, 400, "invalid_grant"},
		{"target without the user_token grant", userTokenForm(noUT.cred("clientid")), []reqOpt{withBearer(access)}, 400, "unauthorized_client"},
		{"unknown target", userTokenForm("sb-nobody!t1"), []reqOpt{withBearer(access)}, 400, "invalid_client"},
		{"identity client as target", userTokenForm(ias.cred("clientid")), []reqOpt{withBearer(access)}, 400, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.token(tc.form, tc.opts...)
			wantOAuthError(t, status, body, tc.wantStatus, tc.wantCode)
			if _, ok := body["refresh_token"]; ok {
				t.Errorf("refused request got a refresh token")
			}
		})
	}
}

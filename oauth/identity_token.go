package oauth

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
)

// handleIdentityToken is POST /oauth2/token on the identity host
// (identity.md §3.2). Client authentication is the token server's: secret
// (body, Basic, or both), or the client certificate (TLS or trusted XFCC).
func (s *Server) handleIdentityToken(w http.ResponseWriter, r *http.Request) {
	s.issuing.RLock()
	defer s.issuing.RUnlock()
	grant, _, t, ok := s.readTokenRequest(w, r)
	if !ok {
		return
	}
	// xssec always sends the binding's app_tid; approuter may send it
	// empty. An empty one means "the client's own tenant".
	if tid := r.PostForm.Get("app_tid"); tid != "" && tid != s.cfg.Zone.ID {
		writeError(w, errInvalidRequest("unknown app_tid "+tid))
		return
	}
	switch grant {
	case "client_credentials", "password", "authorization_code", "refresh_token", GrantJWTBearer:
	default:
		writeError(w, errUnsupportedGrant(grant))
		return
	}
	a, t, oerr := s.authenticate(r, t)
	if oerr == nil && a.Client.Identity == nil {
		oerr = errInvalidClient() // xsuaa clients use /oauth/token
	}
	if oerr != nil {
		s.cfg.Logger.Info("identity-token-refused", lager.Data{"grant_type": grant, "error": oerr.Code})
		writeError(w, oerr)
		return
	}
	if !slices.Contains(a.Client.Identity.OAuth2Configuration.GrantTypes, grant) {
		writeError(w, errUnauthorizedClient(grant))
		return
	}
	provider, oerr := t.resolveResources(a.Client, r.PostForm["resource"])
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	req := iasRequest{Auth: a, Provider: provider, Grant: grant, AuthTime: s.cfg.Now()}
	switch grant {
	case "client_credentials":
		s.iasClientCredentials(w, r, t, req)
		return
	case "password":
		u, ok := s.passwordUser(w, r, "invalid_grant")
		if !ok {
			return
		}
		req.User = u
	case "authorization_code":
		rec, u, ok := s.redeemCode(w, r, a.Client)
		if !ok {
			return
		}
		req.User, req.AuthTime, req.Nonce = u, rec.AuthTime, rec.Nonce
	case "refresh_token":
		rec, u, ok := s.consumeRefresh(w, r, t, a, nil)
		if !ok {
			return
		}
		req.User, req.AuthTime, req.Grant = u, rec.AuthTime, rec.GrantType
	case GrantJWTBearer:
		u, oerr := s.identityAssertion(r, a.Client)
		if oerr != nil {
			writeError(w, oerr)
			return
		}
		req.User = u
	}
	if rx := r.PostForm.Get("refresh_expiry"); rx != "" && strings.TrimLeft(rx, "-0") == "" {
		req.NoRefresh = true // refresh_expiry <= 0: no refresh token
	}
	s.iasUserTokens(w, r, req)
}

// iasRequest describes an identity token to issue.
type iasRequest struct {
	Auth     *authenticated
	Provider *client // app-to-app target from resource=, or nil
	User     *store.User
	Grant    string
	AuthTime time.Time
	Nonce    string
	// NoRefresh suppresses the refresh token (refresh_expiry=0, as
	// xssec's getIdToken sends).
	NoRefresh bool
}

// audienceFor is the aud of a token for the request: the provider alone
// for app-to-app, else the client and what it consumes.
func (t *clientTable) audienceFor(req iasRequest) []string {
	if req.Provider != nil {
		return []string{req.Provider.ID}
	}
	return t.identityAudience(req.Auth.Client)
}

func (s *Server) iasClientCredentials(w http.ResponseWriter, r *http.Request, t *clientTable, req iasRequest) {
	cl := req.Auth.Client
	validity := identityValidity(cl)
	c := s.iasClaims(t.audienceFor(req), cl.ID, s.cfg.Now(), validity)
	c["rev_sig"] = revSig(req.Auth.BindingID)
	c["sub"] = cl.ID
	c["sap_id_type"] = "app"
	s.finishIAS(w, c, req)
	tok, err := s.signIdentity(c)
	if err != nil {
		s.serverError(w, "sign", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(validity.Seconds())})
}

// finishIAS adds what app-to-app and certificate-bound tokens carry.
func (s *Server) finishIAS(_ http.ResponseWriter, c jwt.MapClaims, req iasRequest) {
	if req.Provider != nil {
		c["ias_apis"] = providedAPIs(req.Provider)
	}
	if req.Auth.Cert != nil {
		c["cnf"] = map[string]string{"x5t#S256": credentials.X5tS256(req.Auth.Cert)}
	}
}

// iasUserTokens issues the access token, id token and refresh token of a
// user grant. All are JWTs (approuter decodes the access token).
func (s *Server) iasUserTokens(w http.ResponseWriter, r *http.Request, req iasRequest) {
	t, err := s.clients.Table(r.Context())
	if err != nil {
		s.serverError(w, "client-table", err)
		return
	}
	cl := req.Auth.Client
	now := s.cfg.Now()
	validity := identityValidity(cl)
	access := s.iasClaims(t.audienceFor(req), cl.ID, now, validity)
	access["rev_sig"] = revSig(req.Auth.BindingID)
	addUser(access, req.User, req.AuthTime)
	s.finishIAS(w, access, req)
	at, err := s.signIdentity(access)
	if err != nil {
		s.serverError(w, "sign", err)
		return
	}
	// The id token's aud contains azp, which is how xssec tells it from an
	// access token.
	id := s.iasClaims([]string{cl.ID}, cl.ID, now, validity)
	id["rev_sig"] = revSig(req.Auth.BindingID)
	addUser(id, req.User, req.AuthTime)
	if req.Nonce != "" {
		id["nonce"] = req.Nonce
	}
	idt, err := s.signIdentity(id)
	if err != nil {
		s.serverError(w, "sign", err)
		return
	}
	resp := map[string]any{"access_token": at, "id_token": idt, "token_type": "Bearer", "expires_in": int(validity.Seconds())}
	if !req.NoRefresh && refreshValidity(cl) > 0 && slices.Contains(cl.Identity.OAuth2Configuration.GrantTypes, "refresh_token") {
		rec := refreshRecord{ClientID: cl.ID, BindingID: req.Auth.BindingID, UserID: req.User.ID, GrantType: req.Grant, AuthTime: req.AuthTime}
		rt, err := s.storeRefreshToken(r.Context(), rec, refreshValidity(cl))
		if err != nil {
			s.serverError(w, "refresh-token", err)
			return
		}
		resp["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, resp)
}

// identityAssertion verifies the assertion of a jwt-bearer request: an
// identity token of this server (id or access token) whose aud contains
// the requesting client, for a user that still exists.
func (s *Server) identityAssertion(r *http.Request, cl *client) (*store.User, *Error) {
	raw := r.PostForm.Get("assertion")
	if raw == "" {
		return nil, errInvalidRequest("assertion is required")
	}
	claims, err := s.verifyTokenOf(raw, s.identityIssuer())
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: " + err.Error()}
	}
	aud, _ := claims.GetAudience()
	if !slices.Contains(aud, cl.ID) {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: its aud does not contain the client " + cl.ID}
	}
	uid := stringClaim(claims, "user_uuid")
	if uid == "" {
		uid = stringClaim(claims, "sub")
	}
	if stringClaim(claims, "sap_id_type") != "user" {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: not a user token"}
	}
	var u *store.User
	err = s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		u, err = tx.GetUser(uid)
		return err
	})
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: unknown user"}
	}
	if t, err := s.clients.Table(r.Context()); err != nil || !s.alive(r, t, claims) {
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: the token was revoked, or its binding or instance deleted"}
	}
	return u, nil
}

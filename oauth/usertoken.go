package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
)

// userTokenRequest describes a user token to issue.
type userTokenRequest struct {
	Auth      *authenticated
	Zone      Zone
	User      *store.User
	GrantType string // the original login grant; refreshes keep it
	// Requested is the raw scope parameter (empty: all the user may have
	// with this client). Ceiling, if non-nil, caps the result (a refresh
	// never widens the original grant).
	Requested string
	Ceiling   []string
	AuthTime  time.Time
	Nonce     string
}

// refreshRecord is what the store keeps for a refresh token, under the
// SHA-256 of the token (the token itself is never stored).
type refreshRecord struct {
	ClientID  string    `json:"client_id"`
	BindingID string    `json:"binding_id,omitempty"`
	UserID    string    `json:"user_id"`
	GrantType string    `json:"grant_type"`
	Scopes    []string  `json:"scopes"`
	AuthTime  time.Time `json:"auth_time"`
}

func ephemeralKey(kind, token string) string {
	sum := sha256.Sum256([]byte(token))
	return kind + ":" + hex.EncodeToString(sum[:])
}

// splitScopes splits a scope parameter on white space and commas (xssec
// joins arrays with commas).
func splitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })
}

// grantScopes decides what a user token of client cl for user u carries
// (xsuaa.md §3.2, §3.3): the user's current scopes with the client, capped
// by ceiling (a refresh never widens the original grant) and narrowed by
// the requested scope parameter. It has no side effects, so a refresh can
// check it before it consumes the refresh token.
func (t *clientTable) grantScopes(cl *client, u *store.User, requested string, ceiling []string) (userGrant, []string, *Error) {
	if ap := cl.Descriptor.OAuth2Configuration; ap != nil && len(ap.AllowedProviders) > 0 && !slices.Contains(ap.AllowedProviders, u.Origin) {
		return userGrant{}, nil, &Error{Status: http.StatusUnauthorized, Code: "unauthorized_client", Description: "Client is not authorized for specified user's identity provider."}
	}
	g := t.userGrantFor(u, cl)
	granted := g.Scopes
	want := ceiling
	if ceiling != nil {
		granted = intersect(granted, ceiling)
	}
	if requested != "" {
		clientScopes := t.dir.ClientScopes(cl.App)
		want = splitScopes(requested)
		for _, sc := range want {
			if !slices.Contains(clientScopes, sc) {
				return userGrant{}, nil, &Error{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "Invalid scope: " + sc, Scope: strings.Join(clientScopes, " ")}
			}
		}
		granted = intersect(granted, want)
	}
	if len(granted) == 0 && want != nil {
		return userGrant{}, nil, &Error{Status: http.StatusBadRequest, Code: "invalid_scope",
			Description: fmt.Sprintf("Invalid scope (empty) - this user is not allowed any of the requested scopes: %s (either you requested a scope that was not allowed or client '%s' is not allowed to act on behalf of this user)", strings.Join(want, " "), cl.ID)}
	}
	if granted == nil {
		granted = []string{}
	}
	return g, granted, nil
}

// issueUserTokens mints the access token (and id token, refresh token) of
// a user grant and writes the response.
func (s *Server) issueUserTokens(w http.ResponseWriter, r *http.Request, t *clientTable, req userTokenRequest) {
	cl := req.Auth.Client
	g, granted, oerr := t.grantScopes(cl, req.User, req.Requested, req.Ceiling)
	if oerr != nil {
		writeError(w, oerr)
		return
	}

	now := s.cfg.Now()
	validity := cl.Descriptor.TokenValidity()
	jti := newJTI()
	u := req.User
	claims := jwt.MapClaims{
		"jti":                  jti,
		"ext_attr":             s.extAttr(cl, req.Zone),
		"xs.system.attributes": systemAttributes(cl, g),
		"given_name":           u.GivenName,
		"xs.user.attributes":   g.Attributes,
		"family_name":          u.FamilyName,
		"sub":                  u.ID,
		"scope":                granted,
		"client_id":            cl.ID,
		"cid":                  cl.ID,
		"azp":                  cl.ID,
		"grant_type":           req.GrantType,
		"user_id":              u.ID,
		"origin":               u.Origin,
		"user_name":            u.Username,
		"email":                u.Email,
		"auth_time":            req.AuthTime.Unix(),
		"rev_sig":              revSig(req.Auth.BindingID),
		"iat":                  now.Unix(),
		"exp":                  now.Unix() + int64(validity),
		"iss":                  s.issuer,
		"zid":                  req.Zone.ID,
		"aud":                  grants.Audience(cl.ID, granted),
	}
	if req.Auth.Cert != nil {
		claims["cnf"] = map[string]string{"x5t#S256": credentials.X5tS256(req.Auth.Cert)}
	}
	access, err := s.sign(claims)
	if err != nil {
		s.serverError(w, "sign", err)
		return
	}
	resp := tokenResponse{AccessToken: access, TokenType: "bearer", ExpiresIn: validity - 1, Scope: strings.Join(granted, " "), JTI: jti}
	if slices.Contains(granted, grants.ScopeOpenID) {
		idClaims := jwt.MapClaims{
			"jti": newJTI(), "sub": u.ID, "user_id": u.ID, "user_name": u.Username, "email": u.Email,
			"given_name": u.GivenName, "family_name": u.FamilyName, "origin": u.Origin,
			"aud": []string{cl.ID}, "azp": cl.ID, "cid": cl.ID, "client_id": cl.ID,
			"iss": s.issuer, "zid": req.Zone.ID, "iat": now.Unix(), "exp": now.Unix() + int64(validity),
			"auth_time": req.AuthTime.Unix(), "amr": []string{"pwd"}, "grant_type": req.GrantType,
			"rev_sig":  revSig(req.Auth.BindingID),
			"ext_attr": s.extAttr(cl, req.Zone),
		}
		if req.Nonce != "" {
			idClaims["nonce"] = req.Nonce
		}
		if resp.IDToken, err = s.sign(idClaims); err != nil {
			s.serverError(w, "sign", err)
			return
		}
	}
	if slices.Contains(cl.Descriptor.GrantTypes(), "refresh_token") {
		rec := refreshRecord{ClientID: cl.ID, BindingID: req.Auth.BindingID, UserID: u.ID, GrantType: req.GrantType, Scopes: granted, AuthTime: req.AuthTime}
		rt, err := s.storeRefreshToken(r.Context(), rec, refreshValidity(cl))
		if err != nil {
			s.serverError(w, "refresh-token", err)
			return
		}
		resp.RefreshToken = rt
	}
	writeJSON(w, http.StatusOK, resp)
}

// storeRefreshToken creates an opaque refresh token (XSUAA's "<32 hex>-r"
// shape) and keeps its record under the token's hash.
func (s *Server) storeRefreshToken(ctx context.Context, rec refreshRecord, validity time.Duration) (string, error) {
	token := newJTI() + "-r"
	raw, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	err = s.cfg.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutEphemeral(ephemeralKey("refresh", token), raw, s.cfg.Now().Add(validity))
	})
	return token, err
}

// systemAttributes is xs.system.attributes per the client's
// system-attributes setting (default: both groups and rolecollections).
func systemAttributes(cl *client, g userGrant) map[string][]string {
	which := []string{"groups", "rolecollections"}
	if oc := cl.Descriptor.OAuth2Configuration; oc != nil && oc.SystemAttributes != nil {
		which = oc.SystemAttributes
	}
	out := map[string][]string{}
	rcs := g.RoleCollections
	if rcs == nil {
		rcs = []string{}
	}
	for _, w := range which {
		switch w {
		case "rolecollections":
			out["xs.rolecollections"] = rcs
		case "groups":
			out["xs.saml.groups"] = []string{}
		}
	}
	return out
}

func (s *Server) serverError(w http.ResponseWriter, what string, err error) {
	s.cfg.Logger.Error(what, err)
	writeError(w, &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"})
}

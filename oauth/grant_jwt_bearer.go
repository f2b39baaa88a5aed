package oauth

import (
	"errors"
	"github.com/golang-jwt/jwt/v5"
	"net/http"
	"slices"

	"github.com/ossbroker/btp-security-broker/store"
)

// GrantJWTBearer is the RFC 7523 grant type.
const GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// jwtBearer implements the jwt-bearer grant (xsuaa.md §3.4): client B
// exchanges a user token of this zone (issued to any client A) for a user
// token of its own. Scopes are the user's CURRENT scopes ∩ B's client
// scopes, not a copy of A's.
func (s *Server) jwtBearer(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, zone Zone) {
	if !slices.Contains(a.Client.Descriptor.GrantTypes(), GrantJWTBearer) {
		writeError(w, errUnauthorizedClient(GrantJWTBearer))
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		writeError(w, errInvalidRequest("assertion is required"))
		return
	}
	u, claims, oerr := s.assertedUser(r, assertion)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	if zid := stringClaim(claims, "zid"); zid != zone.ID {
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Description: "Unable to map issuer, [" + stringClaim(claims, "iss") + "] , to a single registered provider"})
		return
	}
	if oerr := s.assertionAlive(r, t, claims); oerr != nil {
		writeError(w, oerr)
		return
	}
	s.issueUserTokens(w, r, t, userTokenRequest{
		Auth: a, Zone: zone, User: u, GrantType: GrantJWTBearer,
		Requested: r.PostForm.Get("scope"), AuthTime: s.cfg.Now(),
	})
}

// assertedUser verifies a user token of this server and loads its user.
func (s *Server) assertedUser(r *http.Request, raw string) (*store.User, jwt.MapClaims, *Error) {
	claims, err := s.verifyToken(raw)
	if err != nil {
		return nil, nil, &Error{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: "Invalid assertion: " + err.Error()}
	}
	uid := stringClaim(claims, "user_id")
	if uid == "" {
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: " + errNotUserToken.Error()}
	}
	var u *store.User
	err = s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		u, err = tx.GetUser(uid)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "Invalid assertion: the user no longer exists"}
	}
	if err != nil {
		return nil, nil, &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
	}
	return u, claims, nil
}

// assertionAlive refuses a token that introspection would call inactive:
// a revoked token, or one whose binding or instance was deleted, must not
// be exchangeable for fresh tokens.
func (s *Server) assertionAlive(r *http.Request, t *clientTable, claims jwt.MapClaims) *Error {
	if !s.alive(r, t, claims) {
		return &Error{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: "Invalid assertion: the token was revoked, or its binding or instance deleted"}
	}
	return nil
}

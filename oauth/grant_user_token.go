package oauth

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ossbroker/btp-security-broker/grants"
)

// userToken implements the legacy grant_type=user_token (xsuaa.md §3.5):
// the bearer of a user token with uaa.user asks for a refresh token that
// only the receiving client (client_id) can redeem. The answer has
// access_token null, as in UAA.
func (s *Server) userToken(w http.ResponseWriter, r *http.Request, t *clientTable, zone Zone) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Description: "Full authentication is required: a Bearer user token"})
		return
	}
	u, claims, oerr := s.assertedUser(r, raw)
	if oerr != nil {
		writeError(w, oerr)
		return
	}
	if !slices.Contains(scopesClaim(claims), grants.ScopeUser) {
		writeError(w, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Description: "the token lacks the scope uaa.user"})
		return
	}
	if oerr := s.assertionAlive(r, t, claims); oerr != nil {
		writeError(w, oerr)
		return
	}
	target := t.client(r.PostForm.Get("client_id"))
	if target == nil || target.Descriptor == nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_client", Description: "unknown client_id"})
		return
	}
	if !slices.Contains(target.Descriptor.GrantTypes(), "user_token") {
		writeError(w, errUnauthorizedClient("user_token"))
		return
	}
	g := t.userGrantFor(u, target)
	rec := refreshRecord{ClientID: target.ID, UserID: u.ID, GrantType: "user_token", Scopes: g.Scopes, AuthTime: s.cfg.Now()}
	rt, err := s.storeRefreshToken(r.Context(), rec, refreshValidity(target))
	if err != nil {
		s.serverError(w, "refresh-token", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": nil, "token_type": "bearer", "refresh_token": rt, "expires_in": 0,
		"scope": strings.Join(g.Scopes, " "), "jti": rt,
	})
}

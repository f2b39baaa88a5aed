package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/store"
)

// Introspection (RFC 7662) and revocation (RFC 7009). A JWT validated
// offline (what xssec does) stays valid until it expires, whatever happens
// to the credential that obtained it; introspection — like the identity
// JWKS online validation — answers from the current state: a token of an
// unbound credential, of a deleted instance or revoked through /oauth/revoke
// is inactive at once.

// handleIntrospect is POST /introspect (xsuaa) and /oauth2/introspect
// (identity). The caller authenticates as any client of the zone.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	identity := r.URL.Path == "/oauth2/introspect"
	t, _, ok := s.authenticatedForm(w, r)
	if !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	issuer := s.issuer
	if identity {
		issuer = s.identityIssuer()
	}
	claims, active := s.introspect(r, t, raw, issuer)
	if !active {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := map[string]any{"active": true}
	for k, v := range claims {
		out[k] = v
	}
	// RFC 7662 wants scope as a space-separated string.
	if sc, ok := claims["scope"].([]any); ok {
		parts := make([]string, 0, len(sc))
		for _, v := range sc {
			if s, ok := v.(string); ok {
				parts = append(parts, s)
			}
		}
		out["scope"] = strings.Join(parts, " ")
	}
	out["token_type"] = "Bearer"
	writeJSON(w, http.StatusOK, out)
}

// introspect decides whether raw is a live token of this server.
func (s *Server) introspect(r *http.Request, t *clientTable, raw, issuer string) (jwt.MapClaims, bool) {
	claims, err := s.verifyTokenOf(raw, issuer)
	if err != nil {
		return nil, false
	}
	return claims, s.alive(r, t, claims)
}

// alive reports whether a token's claims still stand: its client (instance)
// exists, the binding named by rev_sig is still bound, and it was not
// revoked. Introspection answers with it, and every grant that accepts a
// token as proof (jwt-bearer, user_token) and /userinfo check it, so a
// token that introspection calls inactive cannot be exchanged either.
func (s *Server) alive(r *http.Request, t *clientTable, claims jwt.MapClaims) bool {
	cid := stringClaim(claims, "cid")
	if cid == "" {
		cid = stringClaim(claims, "azp")
	}
	cl := t.client(cid)
	if cl == nil {
		return false // the instance was deleted
	}
	if rs := stringClaim(claims, "rev_sig"); rs != "" && rs != revSig("") {
		live := false
		// A store that cannot be read answers "not alive": fail closed.
		ids, _ := t.liveBindings(r.Context(), cl)
		for id := range ids {
			if revSig(id) == rs {
				live = true
				break
			}
		}
		if !live {
			return false // the binding was unbound
		}
	}
	if jti := stringClaim(claims, "jti"); jti != "" && s.isRevoked(r, jti) {
		return false
	}
	return true
}

func (s *Server) isRevoked(r *http.Request, jti string) bool {
	err := s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		_, err := tx.GetEphemeral("revoked:"+jti, s.cfg.Now())
		return err
	})
	return err == nil
}

// authenticatedForm parses a form request and authenticates its client.
func (s *Server) authenticatedForm(w http.ResponseWriter, r *http.Request) (*clientTable, *authenticated, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		writeError(w, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded"))
		return nil, nil, false
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, errInvalidRequest("malformed form body"))
		return nil, nil, false
	}
	t, err := s.clients.Table(r.Context())
	if err != nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "client registry unavailable"})
		return nil, nil, false
	}
	a, t, oerr := s.authenticate(r, t)
	if oerr != nil {
		writeError(w, oerr)
		return nil, nil, false
	}
	return t, a, true
}

// handleRevoke is POST /oauth/revoke and /oauth2/revoke (RFC 7009): a
// client revokes one of its own refresh tokens (deleted) or access tokens
// (denied by introspection until they expire). The answer is 200 whether or
// not the token was known, as the RFC asks.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	_, a, ok := s.authenticatedForm(w, r)
	if !ok {
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	cl := a.Client
	err := s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		key := ephemeralKey("refresh", raw)
		if raw, err := tx.GetEphemeral(key, s.cfg.Now()); err == nil {
			var rec refreshRecord
			if json.Unmarshal(raw, &rec) == nil && rec.ClientID == cl.ID {
				return tx.DeleteEphemeral(key)
			}
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		claims, err := s.verifyTokenOf(raw, s.issuer)
		if err != nil {
			if claims, err = s.verifyTokenOf(raw, s.identityIssuer()); err != nil {
				return nil // not ours or already invalid: nothing to do
			}
		}
		owners := []string{stringClaim(claims, "cid"), stringClaim(claims, "azp")}
		if !slices.Contains(owners, cl.ID) {
			return nil // only the client a token was issued to may revoke it
		}
		exp, err := claims.GetExpirationTime()
		if err != nil || exp == nil {
			return nil
		}
		return tx.PutEphemeral("revoked:"+stringClaim(claims, "jti"), []byte{1}, exp.Time)
	})
	if err != nil {
		s.serverError(w, "revoke", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

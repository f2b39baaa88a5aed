package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/ossbroker/btp-security-broker/store"
)

// refreshToken implements grant_type=refresh_token for xsuaa clients
// (xsuaa.md §3.3): the user's current authorizations are re-evaluated,
// capped by the original grant.
func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, zone Zone) {
	if !slices.Contains(a.Client.Descriptor.GrantTypes(), "refresh_token") {
		writeError(w, errUnauthorizedClient("refresh_token"))
		return
	}
	// A request the new token would be refused for (a scope outside the
	// original grant, say) leaves the refresh token usable.
	check := func(rec *refreshRecord, u *store.User) *Error {
		_, _, oerr := t.grantScopes(a.Client, u, r.PostForm.Get("scope"), rec.Scopes)
		return oerr
	}
	rec, u, ok := s.consumeRefresh(w, r, t, a, check)
	if !ok {
		return
	}
	s.issueUserTokens(w, r, t, userTokenRequest{
		Auth: a, Zone: zone, User: u, GrantType: rec.GrantType,
		Requested: r.PostForm.Get("scope"), Ceiling: rec.Scopes, AuthTime: rec.AuthTime,
	})
}

// consumeRefresh checks and consumes the refresh token of a request.
// Refresh tokens rotate: the presented one is deleted and the caller issues
// a new one. A token issued to a binding that has been unbound is dead. On
// success a.BindingID is the binding the new token belongs to; on failure
// the error response has been written. check, if not nil, may refuse the
// request before the token is consumed.
func (s *Server) consumeRefresh(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, check func(*refreshRecord, *store.User) *Error) (*refreshRecord, *store.User, bool) {
	cl := a.Client
	token := r.PostForm.Get("refresh_token")
	if token == "" {
		writeError(w, errInvalidRequest("refresh_token is required"))
		return nil, nil, false
	}
	var rec refreshRecord
	var u *store.User
	key := ephemeralKey("refresh", token)
	err := s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		raw, err := tx.GetEphemeral(key, s.cfg.Now())
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		if rec.ClientID != cl.ID {
			// Not consumed: the rightful client may still use it.
			return errWrongClient
		}
		if u, err = tx.GetUser(rec.UserID); err != nil {
			return err
		}
		if check != nil {
			if oerr := check(&rec, u); oerr != nil {
				return oerr
			}
		}
		return tx.DeleteEphemeral(key)
	})
	var oerr *Error
	switch {
	case errors.As(err, &oerr):
		writeError(w, oerr)
		return nil, nil, false
	case errors.Is(err, store.ErrNotFound):
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "Invalid refresh token (expired)"})
		return nil, nil, false
	case errors.Is(err, errWrongClient):
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_grant", Description: "Wrong client for this refresh token: " + cl.ID})
		return nil, nil, false
	case err != nil:
		s.serverError(w, "refresh", err)
		return nil, nil, false
	}
	if rec.BindingID != "" {
		live, err := t.hasBinding(r.Context(), cl, rec.BindingID)
		if err != nil {
			writeError(w, errRegistryUnavailable())
			return nil, nil, false
		}
		if !live {
			writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "Invalid refresh token: its binding was deleted"})
			return nil, nil, false
		}
	}
	if rec.BindingID != "" {
		a.BindingID = rec.BindingID
	}
	return &rec, u, true
}

var errWrongClient = errors.New("wrong client")

// refreshValidity is the lifetime of refresh tokens of cl.
func refreshValidity(cl *client) time.Duration {
	if cl.Identity != nil {
		return time.Duration(cl.Identity.OAuth2Configuration.TokenPolicy.RefreshValidity) * time.Second
	}
	return time.Duration(cl.Descriptor.RefreshTokenValidity()) * time.Second
}

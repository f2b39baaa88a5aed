package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/ossbroker/btp-security-broker/store"
)

// authorizationCode implements grant_type=authorization_code for xsuaa
// clients.
func (s *Server) authorizationCode(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, zone Zone) {
	if !slices.Contains(a.Client.Descriptor.GrantTypes(), "authorization_code") {
		writeError(w, errUnauthorizedClient("authorization_code"))
		return
	}
	rec, u, ok := s.redeemCode(w, r, a.Client)
	if !ok {
		return
	}
	s.issueUserTokens(w, r, t, userTokenRequest{
		Auth: a, Zone: zone, User: u, GrantType: "authorization_code",
		Requested: rec.Scope, AuthTime: rec.AuthTime, Nonce: rec.Nonce,
	})
}

// redeemCode checks and consumes the code of an authorization_code request.
// The code is single-use (deleted on the first attempt, right or wrong),
// bound to its client and redirect_uri, short-lived, and to its PKCE
// challenge when the authorize request sent one. On failure it has written
// the error response.
func (s *Server) redeemCode(w http.ResponseWriter, r *http.Request, cl *client) (*codeRecord, *store.User, bool) {
	code := r.PostForm.Get("code")
	if code == "" {
		writeError(w, errInvalidRequest("code is required"))
		return nil, nil, false
	}
	var rec codeRecord
	var u *store.User
	key := ephemeralKey("code", code)
	err := s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		raw, err := tx.GetEphemeral(key, s.cfg.Now())
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			return err
		}
		if rec.ClientID != cl.ID {
			// Not consumed: another client that learned the code must not
			// be able to burn it for the client it was issued to.
			return nil
		}
		if err := tx.DeleteEphemeral(key); err != nil {
			return err
		}
		u, err = tx.GetUser(rec.UserID)
		return err
	})
	invalid := func(desc string) (*codeRecord, *store.User, bool) {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_grant", Description: desc})
		return nil, nil, false
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return invalid("Invalid authorization code: " + code)
	case err != nil:
		s.serverError(w, "redeem-code", err)
		return nil, nil, false
	}
	if rec.ClientID != cl.ID {
		return invalid("Invalid authorization code: " + code)
	}
	if got := r.PostForm.Get("redirect_uri"); got != rec.RedirectURI && (got != "" || !rec.ImplicitRedirect) {
		return invalid("Redirect URI mismatch.")
	}
	if rec.Challenge != "" {
		verifier := r.PostForm.Get("code_verifier")
		if verifier == "" {
			return invalid("Code verifier required: the authorization request sent a code_challenge.")
		}
		got := verifier
		if rec.Method == "S256" {
			sum := sha256.Sum256([]byte(verifier))
			got = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(rec.Challenge)) != 1 {
			return invalid("Invalid code verifier.")
		}
	}
	return &rec, u, true
}

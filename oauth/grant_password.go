package oauth

import (
	"net/http"
	"slices"

	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/users"
)

// password implements grant_type=password (xsuaa.md §3.2): the client
// sends the user's username and password.
func (s *Server) password(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, zone Zone) {
	if !slices.Contains(a.Client.Descriptor.GrantTypes(), "password") {
		writeError(w, errUnauthorizedClient("password"))
		return
	}
	u, ok := s.passwordUser(w, r, "unauthorized")
	if !ok {
		return
	}
	s.issueUserTokens(w, r, t, userTokenRequest{
		Auth: a, Zone: zone, User: u, GrantType: "password",
		Requested: r.PostForm.Get("scope"), AuthTime: s.cfg.Now(),
	})
}

// passwordUser checks the username and password of a password grant. On
// failure it has written the response (401 with errCode, UAA's
// "unauthorized" for xsuaa and RFC 6749's "invalid_grant" for identity).
func (s *Server) passwordUser(w http.ResponseWriter, r *http.Request, errCode string) (*store.User, bool) {
	username, pw := r.PostForm.Get("username"), r.PostForm.Get("password")
	if username == "" || pw == "" {
		writeError(w, errInvalidRequest("username and password are required"))
		return nil, false
	}
	u, oerr := s.checkUserPassword(r, username, pw, errCode)
	if oerr != nil {
		writeError(w, oerr)
		return nil, false
	}
	return u, true
}

// checkUserPassword checks a user's password behind the abuse limits:
// per (username, source) and per source, applied before the check
// (passwords are human secrets), and a bound on concurrent bcrypt checks.
// On failure the *Error is the answer: 401 (errCode), 429 or 503.
func (s *Server) checkUserPassword(r *http.Request, username, password, errCode string) (*store.User, *Error) {
	src := s.sourceAddress(r)
	key := username + "|" + src
	if blocked, after := s.userFailures.blocked(key); blocked {
		return nil, errTooMany(after)
	}
	if blocked, after := s.sourceFailures.blocked(src); blocked {
		return nil, errTooMany(after)
	}
	if !s.passwordSlots.try() {
		e := &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "too many logins at once; retry shortly",
			header: []string{"Retry-After", "1"}}
		return nil, e
	}
	u, ok, err := users.Authenticate(r.Context(), s.cfg.Store, username, password)
	s.passwordSlots.done()
	if err != nil {
		s.cfg.Logger.Error("authenticate-user", err)
		return nil, &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
	}
	if !ok {
		s.userFailures.fail(key)
		s.sourceFailures.fail(src)
		return nil, &Error{Status: http.StatusUnauthorized, Code: errCode, Description: "Bad credentials"}
	}
	return u, nil
}

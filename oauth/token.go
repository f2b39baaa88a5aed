package oauth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"code.cloudfoundry.org/lager/v3"
)

// MaxFormBytes bounds token request bodies (assertions are the largest
// legitimate field).
const MaxFormBytes = 64 << 10

// handleToken is POST /oauth/token: it parses the form, authenticates the
// client and dispatches on grant_type (one file per grant).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.issuing.RLock()
	defer s.issuing.RUnlock()
	grant, zone, t, ok := s.readTokenRequest(w, r)
	if !ok {
		return
	}
	var handler func(http.ResponseWriter, *http.Request, *clientTable, *authenticated, Zone)
	switch grant {
	case "client_credentials":
		handler = s.clientCredentials
	case "password":
		handler = s.password
	case "authorization_code":
		handler = s.authorizationCode
	case "refresh_token":
		handler = s.refreshToken
	case GrantJWTBearer:
		handler = s.jwtBearer
	case "user_token":
		// Authenticated by the user's bearer token, not a client secret.
		s.userToken(w, r, t, zone)
		return
	default:
		writeError(w, errUnsupportedGrant(grant))
		return
	}
	auth, t, oerr := s.authenticate(r, t)
	if oerr != nil {
		s.cfg.Logger.Info("token-refused", lager.Data{"grant_type": grant, "error": oerr.Code})
		writeError(w, oerr)
		return
	}
	if auth.Client.Descriptor == nil {
		// Identity clients use the identity host's /oauth2/token.
		writeError(w, errInvalidClient())
		return
	}
	handler(w, r, t, auth, zone)
}

// readTokenRequest parses and checks what every token request shares: the
// form, the zone, grant_type, and the current client table. On failure it
// has written the error response.
func (s *Server) readTokenRequest(w http.ResponseWriter, r *http.Request) (string, Zone, *clientTable, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		writeError(w, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded"))
		return "", Zone{}, nil, false
	}
	if err := r.ParseForm(); err != nil {
		desc := "malformed form body"
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			desc = fmt.Sprintf("request body larger than %d bytes", MaxFormBytes)
		}
		writeError(w, errInvalidRequest(desc))
		return "", Zone{}, nil, false
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "resource" {
			writeError(w, errInvalidRequest("parameter "+k+" given more than once"))
			return "", Zone{}, nil, false
		}
	}
	zone, ok := s.zoneOf(r)
	if !ok {
		writeError(w, errInvalidRequest("unknown identity zone in x-zid"))
		return "", Zone{}, nil, false
	}
	grant := r.PostForm.Get("grant_type")
	if grant == "" {
		writeError(w, errInvalidRequest("missing grant_type"))
		return "", Zone{}, nil, false
	}
	t, err := s.clients.Table(r.Context())
	if err != nil {
		s.cfg.Logger.Error("client-table", err)
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "client registry unavailable"})
		return "", Zone{}, nil, false
	}
	return grant, zone, t, true
}

// tokenResponse is the success body (xsuaa.md §5.4).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	JTI          string `json:"jti"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

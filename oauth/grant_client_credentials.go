package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/grants"
)

// clientCredentials implements grant_type=client_credentials
// (xsuaa.md §3.1): the token carries the client's authorities, narrowed by
// the optional scope parameter.
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, t *clientTable, a *authenticated, zone Zone) {
	cl := a.Client
	if !slices.Contains(cl.Descriptor.GrantTypes(), "client_credentials") {
		writeError(w, errUnauthorizedClient("client_credentials"))
		return
	}
	authorities := t.dir.Authorities(cl.App)
	granted, err := grants.Narrow(authorities, r.PostForm.Get("scope"))
	if err != nil {
		var ise *grants.InvalidScopeError
		if errors.As(err, &ise) {
			writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_scope", Description: ise.Error(), Scope: strings.Join(authorities, " ")})
			return
		}
		writeError(w, errInvalidRequest(err.Error()))
		return
	}
	azAttr, oerr := parseAzAttr(r.PostForm.Get("authorities"))
	if oerr != nil {
		writeError(w, oerr)
		return
	}

	validity := cl.Descriptor.TokenValidity()
	jti := newJTI()
	claims := s.clientCredentialsClaims(cl, a.BindingID, zone, authorities, granted, jti, s.cfg.Now())
	if azAttr != nil {
		claims["az_attr"] = azAttr
	}
	if a.Cert != nil {
		claims["cnf"] = map[string]string{"x5t#S256": credentials.X5tS256(a.Cert)}
	}
	tok, err := s.sign(claims)
	if err != nil {
		s.cfg.Logger.Error("sign", err)
		writeError(w, &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "could not sign the token"})
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok, TokenType: "bearer", ExpiresIn: validity - 1,
		Scope: strings.Join(granted, " "), JTI: jti,
	})
}

// extAttr is the ext_attr claim of XSUAA tokens.
func (s *Server) extAttr(cl *client, zone Zone) map[string]string {
	return map[string]string{
		"enhancer":          "XSUAA",
		"subaccountid":      zone.ID,
		"zdn":               zone.Name,
		"serviceinstanceid": cl.Instance.ID,
	}
}

// parseAzAttr reads the authorities request parameter, which UAA defines
// as {"az_attr":{...}} (copied into the az_attr claim).
func parseAzAttr(raw string) (map[string]any, *Error) {
	if raw == "" {
		return nil, nil
	}
	var v struct {
		AzAttr map[string]any `json:"az_attr"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return nil, errInvalidRequest(`authorities must be JSON of the form {"az_attr":{...}}`)
	}
	return v.AzAttr, nil
}

// clientCredentialsClaims are the claims of a client_credentials token of
// cl (xsuaa.md §4), issued to the binding with bindingID: its authorities
// and the scopes granted of them.
func (s *Server) clientCredentialsClaims(cl *client, bindingID string, zone Zone, authorities, granted []string, jti string, now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"jti":         jti,
		"ext_attr":    s.extAttr(cl, zone),
		"sub":         cl.ID,
		"authorities": authorities,
		"scope":       granted,
		"client_id":   cl.ID,
		"cid":         cl.ID,
		"azp":         cl.ID,
		"grant_type":  "client_credentials",
		"rev_sig":     revSig(bindingID),
		"iat":         now.Unix(),
		"exp":         now.Unix() + int64(cl.Descriptor.TokenValidity()),
		"iss":         s.issuer,
		"zid":         zone.ID,
		"aud":         grants.Audience(cl.ID, granted),
	}
}

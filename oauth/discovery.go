package oauth

import (
	"net/http"

	"github.com/ossbroker/btp-security-broker/broker"
)

// handleDiscovery is GET /.well-known/openid-configuration on the xsuaa
// host. xssec does not read it for XSUAA, but OIDC clients do.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	if s.isIdentityHost(r) {
		s.handleIdentityDiscovery(w, r)
		return
	}
	base := s.baseURL()
	cert := *s.cfg.XsuaaURL
	cert.Host = broker.CertHost(cert.Host)
	certBase := cert.String()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 s.issuer,
		"authorization_endpoint": base + "/oauth/authorize",
		"token_endpoint":         base + "/oauth/token",
		"userinfo_endpoint":      base + "/userinfo",
		"jwks_uri":               base + "/token_keys",
		"end_session_endpoint":   base + "/logout.do",
		"mtls_endpoint_aliases": map[string]string{
			"token_endpoint":         certBase + "/oauth/token",
			"authorization_endpoint": certBase + "/oauth/authorize",
		},
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256", "plain"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "tls_client_auth"},
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "password", "refresh_token", GrantJWTBearer, "user_token"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "jti", "zid", "scope", "client_id", "cid", "azp", "grant_type", "ext_attr"},
	})
}

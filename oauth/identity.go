package oauth

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
)

// The identity flavour: an OIDC provider in the style of SAP Cloud Identity
// Services on the identity host (BROKER_IDENTITY_URL), told apart from the
// xsuaa host by the request's Host header (identity.md §3).

// Grant types of identity clients.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	resourceByName     = "urn:sap:identity:application:provider:name:"
	resourceByClientID = "urn:sap:identity:application:provider:clientid:"
)

// identityIssuer is the iss of identity tokens: the identity URL without
// path or trailing slash, byte-identical to the discovery document's issuer.
func (s *Server) identityIssuer() string {
	return strings.TrimSuffix(s.cfg.IdentityURL.String(), "/")
}

// isIdentityHost reports whether r was sent to the identity host. When both
// URLs share one host the xsuaa endpoints win.
func (s *Server) isIdentityHost(r *http.Request) bool {
	return !strings.EqualFold(s.cfg.IdentityURL.Host, s.cfg.XsuaaURL.Host) && strings.EqualFold(r.Host, s.cfg.IdentityURL.Host)
}

// handleIdentityDiscovery is the identity host's
// /.well-known/openid-configuration (identity.md §3.1). xssec needs
// jwks_uri, token_endpoint and grant_types_supported; Go clients need issuer
// to equal the tokens' iss.
func (s *Server) handleIdentityDiscovery(w http.ResponseWriter, _ *http.Request) {
	base := s.identityIssuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base,
		"authorization_endpoint":                base + "/oauth2/authorize",
		"token_endpoint":                        base + "/oauth2/token",
		"userinfo_endpoint":                     base + "/oauth2/userinfo",
		"end_session_endpoint":                  base + "/oauth2/logout",
		"jwks_uri":                              base + "/oauth2/certs",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"password", "authorization_code", "refresh_token", "client_credentials", GrantJWTBearer},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"token_endpoint_auth_methods_supported": []string{"tls_client_auth", "client_secret_basic", "client_secret_post"},
		"claims_supported": []string{"iss", "iat", "exp", "auth_time", "jti", "nonce", "sub", "email", "email_verified",
			"given_name", "family_name", "aud", "azp", "app_tid", "ias_apis", "sap_id_type", "scim_id", "user_uuid", "groups"},
		"code_challenge_methods_supported":               []string{"plain", "S256"},
		"tls_client_certificate_bound_access_tokens":     true,
		"authorization_response_iss_parameter_supported": false,
	})
}

// handleIdentityCerts is GET /oauth2/certs with IAS's online validation
// (identity.md §3.3): the headers name the validating client and the token's
// tenant and azp; 400 means "reject this token" (xssec:
// WrongAudienceError). With x-client_cert (proof token) the caller's plan is
// returned in x-osb_plan.
func (s *Server) handleIdentityCerts(w http.ResponseWriter, r *http.Request) {
	t, err := s.clients.Table(r.Context())
	if err != nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "client registry unavailable"})
		return
	}
	reject := func(why string) { writeError(w, errInvalidRequest(why)) }
	if cid := r.Header.Get("X-Client_id"); cid != "" {
		cl := t.client(cid)
		var live map[string]bool
		if cl != nil {
			var err error
			if live, err = t.liveBindings(r.Context(), cl); err != nil {
				// Not 400: xssec would take that as "reject this token".
				writeError(w, errRegistryUnavailable())
				return
			}
		}
		if cl == nil || cl.Identity == nil || len(live) == 0 {
			reject("unknown or unbound client " + cid)
			return
		}
		if tid := r.Header.Get("X-App_tid"); tid != "" && tid != s.cfg.Zone.ID {
			reject("client " + cid + " is not available in tenant " + tid)
			return
		}
		if azp := r.Header.Get("X-Azp"); azp != "" && azp != cid && !t.consumes(t.client(azp), cl) {
			reject("client " + cid + " does not accept tokens of " + azp)
			return
		}
		if tid := r.Header.Get("X-Azp_app_tid"); tid != "" && tid != s.cfg.Zone.ID {
			reject("unknown azp tenant " + tid)
			return
		}
	}
	if pem := r.Header.Get("X-Client_cert"); pem != "" {
		// xssec sends single-line PEM; Java and apps behind gorouter pass
		// the forwarded value on as is (base64 DER, or Envoy's form).
		cert, err := credentials.ParseXFCC(pem)
		if err != nil {
			reject("x-client_cert is not a certificate")
			return
		}
		caller, _, ok, err := s.certClient(r.Context(), t, cert)
		if err != nil {
			writeError(w, errRegistryUnavailable())
			return
		}
		if !ok {
			reject("x-client_cert does not belong to a bound client")
			return
		}
		// Comma-separated, each quoted, no spaces: the one format xssec
		// and the Java library both parse the same way.
		w.Header().Set("X-Osb_plan", `"`+caller.Instance.Plan+`"`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(s.cfg.Keys.JWKS())
}

// consumes reports whether consumer lists provider in consumed-services.
func (t *clientTable) consumes(consumer, provider *client) bool {
	if consumer == nil || consumer.Identity == nil || provider == nil {
		return false
	}
	for _, cs := range consumer.Identity.ConsumedServices {
		if p := t.identityByName(consumer.Instance.SpaceGUID, cs.ServiceInstanceName); p == provider {
			return true
		}
	}
	return false
}

// identityByName finds the identity instance called name in a space.
func (t *clientTable) identityByName(space, name string) *client {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.identities[[2]string{space, name}]
}

// audience of an identity client's tokens: its own client id plus those of
// the instances it consumes (identity.md §2.1 consumed-services).
func (t *clientTable) identityAudience(cl *client) []string {
	aud := []string{cl.ID}
	for _, cs := range cl.Identity.ConsumedServices {
		if p := t.identityByName(cl.Instance.SpaceGUID, cs.ServiceInstanceName); p != nil && !slices.Contains(aud, p.ID) {
			aud = append(aud, p.ID)
		}
	}
	return aud
}

// resolveResources maps the resource parameters of an app-to-app request to
// the provider client. Only providers the client consumes are allowed.
func (t *clientTable) resolveResources(cl *client, resources []string) (*client, *Error) {
	var provider *client
	for _, res := range resources {
		var p *client
		switch {
		case strings.HasPrefix(res, resourceByName):
			p = t.identityByName(cl.Instance.SpaceGUID, strings.TrimPrefix(res, resourceByName))
		case strings.HasPrefix(res, resourceByClientID):
			id, _, _ := strings.Cut(strings.TrimPrefix(res, resourceByClientID), ":apptid:")
			p = t.client(id)
		default:
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_target", Description: "unsupported resource " + res}
		}
		if p == nil || p.Identity == nil || !t.consumes(cl, p) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_target", Description: "resource " + res + " is not a provider this client consumes (consumed-services)"}
		}
		if provider != nil && provider != p {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_target", Description: "only one provider per request"}
		}
		provider = p
	}
	return provider, nil
}

// providedAPIs is the ias_apis claim for tokens a consumer gets for provider.
func providedAPIs(provider *client) []string {
	apis := make([]string, 0, len(provider.Identity.ProvidedAPIs))
	for _, a := range provider.Identity.ProvidedAPIs {
		apis = append(apis, a.Name)
	}
	return apis
}

// identityValidity is the access token lifetime of cl.
func identityValidity(cl *client) time.Duration {
	v := cl.Identity.OAuth2Configuration.TokenPolicy.TokenValidity
	if v <= 0 {
		v = 3600
	}
	return time.Duration(v) * time.Second
}

// iasClaims are the claims every identity token carries (identity.md §3.5).
func (s *Server) iasClaims(aud []string, azp string, now time.Time, validity time.Duration) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       s.identityIssuer(),
		"aud":       aud,
		"azp":       azp,
		"app_tid":   s.cfg.Zone.ID,
		"zone_uuid": s.cfg.Zone.ID,
		"iat":       now.Unix(),
		"exp":       now.Add(validity).Unix(),
		"jti":       credentials.NewID(),
	}
}

// addUser adds the user claims of identity tokens.
func addUser(c jwt.MapClaims, u *store.User, authTime time.Time) {
	c["sub"] = u.ID
	c["user_uuid"] = u.ID
	c["scim_id"] = u.ID
	c["sap_id_type"] = "user"
	c["email"] = u.Email
	c["email_verified"] = u.Email != ""
	c["given_name"] = u.GivenName
	c["family_name"] = u.FamilyName
	c["user_name"] = u.Username
	c["preferred_username"] = u.Username
	c["groups"] = append([]string{}, u.RoleCollections...)
	c["auth_time"] = authTime.Unix()
}

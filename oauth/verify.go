package oauth

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// verifyToken checks a JWT this server issued: RS256 only (never "none" or
// HS256, whatever the header says), a published kid, a valid signature,
// an unexpired exp and this zone's issuer.
func (s *Server) verifyToken(raw string) (jwt.MapClaims, error) {
	return s.verifyTokenOf(raw, s.issuer)
}

// verifyTokenOf is verifyToken for the given issuer (the xsuaa or the
// identity one).
func (s *Server) verifyTokenOf(raw, issuer string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, s.publicKey,
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(0),
		// The server's clock, like codes and refresh tokens, not the wall
		// clock the library would use.
		jwt.WithTimeFunc(s.cfg.Now),
	)
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// verifyHint checks the id_token_hint of a logout: RS256, signed by this
// server, for issuer, but possibly expired. OIDC RP-Initiated Logout asks
// the provider to accept expired hints, and apps keep the id token of a
// login for longer than it lives.
func (s *Server) verifyHint(raw, issuer string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, s.publicKey, jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		return nil, err
	}
	if iss, _ := claims.GetIssuer(); iss != issuer {
		return nil, fmt.Errorf("issuer %q", iss)
	}
	return claims, nil
}

// publicKey finds the verification key a token's kid names.
func (s *Server) publicKey(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := s.cfg.Keys.Lookup(kid)
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return &k.Private.PublicKey, nil
}

// stringClaim returns a string claim or "".
func stringClaim(c jwt.MapClaims, name string) string {
	v, _ := c[name].(string)
	return v
}

// scopesClaim returns the scope claim as a list.
func scopesClaim(c jwt.MapClaims) []string {
	raw, _ := c["scope"].([]any)
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

var errNotUserToken = errors.New("not a user token")

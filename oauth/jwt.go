package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/golang-jwt/jwt/v5"
)

// newJTI returns 32 hex characters, the jti format of XSUAA.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// revSig is the rev_sig claim: 8 hex characters naming the binding whose
// credential obtained the token (UAA's rev_sig likewise changes when the
// client's secret is revoked). Introspection compares it with the client's
// live bindings, so a token of an unbound credential reports inactive at
// once. Tokens issued without a binding (user_token) get a value no
// binding has.
func revSig(bindingID string) string {
	if bindingID == "" {
		return "00000000"
	}
	sum := sha256.Sum256([]byte(bindingID))
	return hex.EncodeToString(sum[:4])
}

// sign mints an RS256 JWT with the current key. The header carries kid
// (xssec 4 requires it) and jku (xssec 3 and the Java library use it).
func (s *Server) sign(claims jwt.MapClaims) (string, error) {
	return s.signJWT(claims, s.baseURL()+"/token_keys")
}

// signIdentity mints an identity token: IAS headers carry kid but no jku.
func (s *Server) signIdentity(claims jwt.MapClaims) (string, error) {
	return s.signJWT(claims, "")
}

// signJWT builds the compact JWS itself rather than through golang-jwt so
// the signature can come from the faster OpenSSL signer (package rsasign);
// golang-jwt still parses and verifies.
func (s *Server) signJWT(claims jwt.MapClaims, jku string) (string, error) {
	key := s.cfg.Keys.Current()
	header := jwtHeader{Alg: "RS256", JKU: jku, KID: key.ID, Typ: "JWT"}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(hb))+enc.EncodedLen(len(cb))+2+enc.EncodedLen(key.Private.Size()))
	buf = enc.AppendEncode(buf, hb)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, cb)
	digest := sha256.Sum256(buf)
	sig, err := key.signer.SignSHA256(digest[:])
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// jwtHeader is the JOSE header, in the field order XSUAA uses.
type jwtHeader struct {
	Alg string `json:"alg"`
	JKU string `json:"jku,omitempty"`
	KID string `json:"kid"`
	Typ string `json:"typ"`
}

package credentials

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxXFCCLen bounds the work done on a header; a chain of a few
// URL-encoded certificates stays well below it.
const maxXFCCLen = 64 << 10

// envoyKeys are the keys an Envoy/Istio X-Forwarded-Client-Cert element
// may carry.
var envoyKeys = map[string]bool{
	"by": true, "hash": true, "cert": true, "chain": true,
	"subject": true, "uri": true, "dns": true,
}

// ParseXFCC extracts the client's leaf certificate from an
// X-Forwarded-Client-Cert header in any of the forms SAP's libraries
// accept:
//
//   - Cloud Foundry gorouter: base64 of the leaf DER on one line;
//   - Envoy/Istio: comma-separated elements of Key=Value pairs such as
//     Hash=<hex>;Cert="<URL-encoded PEM>";Subject="..."; the Cert of the
//     last element (the one the nearest proxy added) is used;
//   - PEM, with or without newlines;
//   - base64 of PEM.
//
// The certificate is only parsed, not verified: see CA.VerifyClient.
func ParseXFCC(header string) (*x509.Certificate, error) {
	h := strings.TrimSpace(header)
	switch {
	case h == "":
		return nil, errors.New("credentials: empty X-Forwarded-Client-Cert header")
	case len(h) > maxXFCCLen:
		return nil, fmt.Errorf("credentials: X-Forwarded-Client-Cert header longer than %d bytes", maxXFCCLen)
	case isEnvoyXFCC(h):
		return parseEnvoyXFCC(h)
	}
	cert, err := parseCertValue(h)
	if err != nil {
		return nil, fmt.Errorf("credentials: X-Forwarded-Client-Cert is neither PEM, base64 nor Envoy format: %w", err)
	}
	return cert, nil
}

// parseCertValue parses PEM, base64 DER or base64 PEM.
func parseCertValue(s string) (*x509.Certificate, error) {
	if strings.Contains(s, pemBegin) {
		return ParseCertificatePEM(s)
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(b), pemBegin) {
		return ParseCertificatePEM(string(b))
	}
	return x509.ParseCertificate(b)
}

// isEnvoyXFCC reports whether h starts with a known Envoy key followed by
// '='. Neither PEM ("-----BEGIN") nor base64 of a certificate ("MII…" or
// "LS0t…", with '=' only as final padding) can start that way.
func isEnvoyXFCC(h string) bool {
	i := strings.IndexByte(h, '=')
	return i > 0 && envoyKeys[strings.ToLower(strings.TrimSpace(h[:i]))]
}

func parseEnvoyXFCC(h string) (*x509.Certificate, error) {
	elements, err := splitQuoted(h, ',')
	if err != nil {
		return nil, err
	}
	last := elements[len(elements)-1]
	pairs, err := splitQuoted(last, ';')
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "cert") {
			continue
		}
		v, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return nil, err
		}
		pemText, err := url.PathUnescape(v) // PathUnescape keeps a literal '+' of base64
		if err != nil {
			return nil, fmt.Errorf("credentials: X-Forwarded-Client-Cert Cert value is not URL-encoded: %w", err)
		}
		// Form-style encoders turn the spaces of the armour into '+'.
		pemText = strings.NewReplacer("BEGIN+CERTIFICATE", "BEGIN CERTIFICATE", "END+CERTIFICATE", "END CERTIFICATE").Replace(pemText)
		cert, err := parseCertValue(pemText)
		if err != nil {
			return nil, fmt.Errorf("credentials: X-Forwarded-Client-Cert Cert value: %w", err)
		}
		return cert, nil
	}
	// Falling back to an earlier element would trust a certificate the
	// client itself may have put into the header.
	return nil, errors.New("credentials: last X-Forwarded-Client-Cert element has no Cert")
}

// splitQuoted splits s at sep outside double quotes; inside quotes a
// backslash escapes the next character.
func splitQuoted(s string, sep byte) ([]string, error) {
	var parts []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	if inQuote {
		return nil, errors.New("credentials: X-Forwarded-Client-Cert has an unterminated quote")
	}
	return append(parts, s[start:]), nil
}

// unquote removes surrounding double quotes and backslash escapes.
func unquote(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return v, nil
	}
	if v[len(v)-1] != '"' {
		return "", errors.New("credentials: X-Forwarded-Client-Cert value has an unterminated quote")
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), nil
}

package credentials

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

const (
	rootValidity         = 10 * 365 * 24 * time.Hour
	intermediateValidity = 5 * 365 * 24 * time.Hour
	serverValidity       = 365 * 24 * time.Hour
	// backdate covers clock skew between the broker and its clients; SAP's
	// own certificates use the same one hour.
	backdate = time.Hour

	// Upper bounds from RFC 5280 Appendix A (X.520 ub-* values).
	maxCommonName = 64
	maxOrgName    = 64
	maxLocality   = 128
)

// Object identifiers of the DN attributes used by ClientSubject.
var (
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit      = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidLocality     = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// CA is the broker's private two-level PKI: a self-signed root, which
// clients and servers trust, and an intermediate issuing CA, which signs
// the broker's TLS server certificate and the client certificates of
// x509 bindings.
type CA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	roots, inters     *x509.CertPool
}

// NewCA creates a fresh root (10 years) and intermediate (5 years, path
// length 0) for the organisation org, both with ECDSA P-256 keys.
func NewCA(org string) (*CA, error) {
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " Root CA"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("credentials: creating root CA: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}

	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if serial, err = newSerial(); err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Country:            []string{"DE"},
			Organization:       []string{org},
			OrganizationalUnit: []string{org + " Clients"},
			CommonName:         org + " Client CA",
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(intermediateValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("credentials: creating intermediate CA: %w", err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	return newCA(root, inter, rootKey, interKey), nil
}

func newCA(root, inter *x509.Certificate, rootKey, interKey *ecdsa.PrivateKey) *CA {
	ca := &CA{root: root, inter: inter, rootKey: rootKey, interKey: interKey,
		roots: x509.NewCertPool(), inters: x509.NewCertPool()}
	ca.roots.AddCert(root)
	ca.inters.AddCert(inter)
	return ca
}

// MarshalPEM returns the certificates (root, then intermediate) and their
// PKCS#8 private keys in the same order, for LoadCA.
func (ca *CA) MarshalPEM() (certs []byte, keys []byte, err error) {
	var cb, kb bytes.Buffer
	for _, c := range []*x509.Certificate{ca.root, ca.inter} {
		pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for _, k := range []*ecdsa.PrivateKey{ca.rootKey, ca.interKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		pem.Encode(&kb, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	return cb.Bytes(), kb.Bytes(), nil
}

// LoadCA restores a CA from the output of MarshalPEM. It checks that each
// key belongs to its certificate and that the root signed the
// intermediate.
func LoadCA(certs, keys []byte) (*CA, error) {
	var cs []*x509.Certificate
	for _, b := range pemBlocks(certs, "CERTIFICATE") {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("credentials: CA certificate: %w", err)
		}
		cs = append(cs, c)
	}
	var ks []*ecdsa.PrivateKey
	for _, b := range pemBlocks(keys, "PRIVATE KEY") {
		k, err := x509.ParsePKCS8PrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("credentials: CA key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("credentials: CA key is %T, want ECDSA", k)
		}
		ks = append(ks, ek)
	}
	if len(cs) != 2 || len(ks) != 2 {
		return nil, fmt.Errorf("credentials: CA needs 2 certificates and 2 keys, got %d and %d", len(cs), len(ks))
	}
	for i, name := range []string{"root", "intermediate"} {
		if !ks[i].PublicKey.Equal(cs[i].PublicKey) {
			return nil, fmt.Errorf("credentials: CA %s key does not match its certificate", name)
		}
		if !cs[i].IsCA {
			return nil, fmt.Errorf("credentials: CA %s certificate is not a CA", name)
		}
	}
	if err := cs[1].CheckSignatureFrom(cs[0]); err != nil {
		return nil, fmt.Errorf("credentials: CA intermediate not signed by root: %w", err)
	}
	return newCA(cs[0], cs[1], ks[0], ks[1]), nil
}

func pemBlocks(data []byte, typ string) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if b.Type == typ {
			out = append(out, b.Bytes)
		}
	}
}

// Root returns the root certificate.
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Intermediate returns the issuing certificate.
func (ca *CA) Intermediate() *x509.Certificate { return ca.inter }

// RootPEM returns the root certificate in PEM, for clients'
// NODE_EXTRA_CA_CERTS or RootCAs.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
}

// RootPool returns a pool holding only the root, for tls.Config.ClientCAs.
func (ca *CA) RootPool() *x509.CertPool { return ca.roots.Clone() }

// ValidFor reports whether both CA certificates are valid from now until
// now+margin. The broker regenerates its CA only when this is false.
func (ca *CA) ValidFor(now time.Time, margin time.Duration) bool {
	end := now.Add(margin)
	for _, c := range []*x509.Certificate{ca.root, ca.inter} {
		if now.Before(c.NotBefore) || end.After(c.NotAfter) {
			return false
		}
	}
	return true
}

// IssueServerCertificate issues a one-year ECDSA P-256 TLS server
// certificate for hosts (IP SANs for IP literals, DNS SANs otherwise).
// The returned chain is leaf then intermediate. The validity is cut short
// where the intermediate expires earlier.
func (ca *CA) IssueServerCertificate(hosts []string, now time.Time) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("credentials: server certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	notAfter := now.Add(serverValidity)
	if notAfter.After(ca.inter.NotAfter) {
		notAfter = ca.inter.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          subjectKeyID(key.Public()),
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, key.Public(), ca.interKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("credentials: creating server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{
		Certificate: [][]byte{der, ca.inter.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// ClientCertRequest describes a client certificate for an x509 binding.
type ClientCertRequest struct {
	// KeyBits is the RSA key size: 2048, 4096 or 8192. Zero means 2048,
	// or the size of Key when Key is set.
	KeyBits int
	// NotAfter is the end of the validity period.
	NotAfter time.Time
	// Subject is the DN, usually built with ClientSubject.
	Subject pkix.Name
	// Key is an optional pre-generated key; without it a key of KeyBits
	// is generated.
	Key *rsa.PrivateKey
}

// IssuedCert is a client certificate with its key, in the forms the
// binding credentials need.
type IssuedCert struct {
	// CertificatePEM is the leaf then the intermediate, with real
	// newlines (json.Marshal escapes them correctly; never pre-escape).
	CertificatePEM string
	// KeyPEM is the PKCS#1 "RSA PRIVATE KEY": SAP's Java token client
	// treats every PKCS#8 key as an EC key.
	KeyPEM      string
	Leaf        *x509.Certificate
	NotAfter    time.Time
	Fingerprint string
}

// ClientSubject builds the subject DN layout of SAP-issued client
// certificates, in this encoding order:
//
//	C=DE, O=<org>, OU=<org> Clients, OU=<landscape>, OU=<tenantGUID>, L=<locality>, CN=<cn>
//
// Go's pkix.Name would encode L before O, so the attributes are carried in
// ExtraNames, which fixes their order; the named fields are filled as well
// for readers of the returned value.
func ClientSubject(org, landscape, tenantGUID, locality, cn string) pkix.Name {
	return pkix.Name{
		Country:            []string{"DE"},
		Organization:       []string{org},
		OrganizationalUnit: []string{org + " Clients", landscape, tenantGUID},
		Locality:           []string{locality},
		CommonName:         cn,
		ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oidCountry, Value: "DE"},
			{Type: oidOrganization, Value: org},
			{Type: oidOrgUnit, Value: org + " Clients"},
			{Type: oidOrgUnit, Value: landscape},
			{Type: oidOrgUnit, Value: tenantGUID},
			{Type: oidLocality, Value: locality},
			{Type: oidCommonName, Value: cn},
		},
	}
}

// checkSubject enforces the RFC 5280 upper bounds, so that strict parsers
// do not reject the certificate.
func checkSubject(n pkix.Name) error {
	limits := map[string]int{
		oidCommonName.String():   maxCommonName,
		oidOrganization.String(): maxOrgName,
		oidOrgUnit.String():      maxOrgName,
		oidLocality.String():     maxLocality,
	}
	seenCN := false
	for _, rdn := range n.ToRDNSequence() {
		for _, atv := range rdn {
			s, _ := atv.Value.(string)
			if atv.Type.Equal(oidCommonName) {
				seenCN = true
			}
			if max, ok := limits[atv.Type.String()]; ok && len([]rune(s)) > max {
				return fmt.Errorf("credentials: subject attribute %s has %d characters, at most %d allowed: %q", atv.Type, len([]rune(s)), max, s)
			}
		}
	}
	if !seenCN {
		return errors.New("credentials: client certificate subject needs a common name")
	}
	return nil
}

// IssueClientCertificate issues an RSA client certificate (EKU clientAuth)
// signed by the intermediate, shaped like SAP's own: random 20-byte
// serial, notBefore = now-1h, CA:FALSE, critical key usage
// digitalSignature+keyEncipherment, SKI and AKI. The signature algorithm
// follows the issuer's key: ecdsa-with-SHA256 under the ECDSA
// intermediate (SAP's RSA CA yields sha256WithRSA; TLS stacks accept both).
func (ca *CA) IssueClientCertificate(req ClientCertRequest, now time.Time) (*IssuedCert, error) {
	if err := checkSubject(req.Subject); err != nil {
		return nil, err
	}
	bits := req.KeyBits
	if bits == 0 {
		bits = 2048
		if req.Key != nil {
			bits = req.Key.N.BitLen()
		}
	}
	switch bits {
	case 2048, 4096, 8192:
	default:
		return nil, fmt.Errorf("credentials: key length %d not supported (2048, 4096 or 8192)", bits)
	}
	if req.Key != nil && req.Key.N.BitLen() != bits {
		return nil, fmt.Errorf("credentials: pre-generated key has %d bits, request says %d", req.Key.N.BitLen(), bits)
	}
	if !req.NotAfter.After(now) {
		return nil, fmt.Errorf("credentials: certificate end %s is not after now", req.NotAfter.UTC().Format(time.RFC3339))
	}
	if req.NotAfter.After(ca.inter.NotAfter) {
		return nil, fmt.Errorf("credentials: certificate end %s is after the issuing CA's end %s",
			req.NotAfter.UTC().Format(time.RFC3339), ca.inter.NotAfter.UTC().Format(time.RFC3339))
	}
	key := req.Key
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, bits); err != nil {
			return nil, fmt.Errorf("credentials: generating RSA key: %w", err)
		}
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              req.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          subjectKeyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, key.Public(), ca.interKey)
	if err != nil {
		return nil, fmt.Errorf("credentials: creating client certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	var certPEM bytes.Buffer
	pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: ca.inter.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return &IssuedCert{
		CertificatePEM: certPEM.String(),
		KeyPEM:         string(keyPEM),
		Leaf:           leaf,
		NotAfter:       leaf.NotAfter,
		Fingerprint:    Fingerprint(leaf),
	}, nil
}

// VerifyClient checks that leaf chains through the intermediate to the
// root at time now and allows client authentication. Use it where the
// chain did not come with the certificate, e.g. from an XFCC header.
func (ca *CA) VerifyClient(leaf *x509.Certificate, now time.Time) error {
	if leaf == nil {
		return errors.New("credentials: no client certificate")
	}
	// Go's chain check treats a certificate without EKU as good for any
	// use, and our CA certificates carry none: demand an explicit leaf.
	if leaf.IsCA {
		return errors.New("credentials: a CA certificate is not a client certificate")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("credentials: certificate is not for client authentication")
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         ca.roots,
		Intermediates: ca.inters,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// Fingerprint returns the lower-case hex SHA-256 of the certificate's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// X5tS256 returns the base64url (unpadded) SHA-256 of the certificate's
// DER: the value of a token's cnf "x5t#S256" claim.
func X5tS256(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

// ParseCertificatePEM parses the first CERTIFICATE block of s. Like
// xssec it tolerates PEM squeezed onto one line and PEM whose newlines
// were escaped into literal "\n" sequences.
func ParseCertificatePEM(s string) (*x509.Certificate, error) {
	i := strings.Index(s, pemBegin)
	if i < 0 {
		return nil, errors.New("credentials: no PEM certificate found")
	}
	body := s[i+len(pemBegin):]
	j := strings.Index(body, pemEnd)
	if j < 0 {
		return nil, errors.New("credentials: PEM certificate has no END line")
	}
	der, err := decodeBase64(body[:j])
	if err != nil {
		return nil, fmt.Errorf("credentials: PEM certificate body: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("credentials: parsing certificate: %w", err)
	}
	return cert, nil
}

// decodeBase64 decodes standard or URL-safe base64, padded or not,
// ignoring whitespace and literal "\n"/"\r" escape sequences.
func decodeBase64(s string) ([]byte, error) {
	s = strings.NewReplacer(`\n`, "", `\r`, "", `\t`, "").Replace(s)
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, errors.New("empty base64")
	}
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// newSerial returns a random positive serial number of exactly 20 octets
// (the RFC 5280 maximum): the top bit is cleared so it stays positive
// without a leading zero, the next bit set so it keeps its length.
func newSerial() (*big.Int, error) {
	b, err := randomBytes(20)
	if err != nil {
		return nil, err
	}
	b[0] = b[0]&0x7f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// subjectKeyID computes the key identifier of RFC 5280 §4.2.1.2 method 1:
// SHA-1 of the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

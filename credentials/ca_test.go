package credentials

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testOrg       = "Test Org"
	testTenant    = "8f3c1a52-6d0e-4b8a-9b3e-2f6c0f1a7d44"
	testLocality  = "127.0.0.1:8443"
	testCN        = "3e4b9c1d-4a0e-4d6e-9a51-0c8f2b7e1a90/my-app-identifier-0001"
	testValidDays = 7
)

// Shared fixtures: RSA key generation dominates the run time.
var (
	fixtureOnce sync.Once
	fixtureCA   *CA
	fixtureKey  *rsa.PrivateKey
	fixtureErr  error
)

func testCA(t testing.TB) (*CA, *rsa.PrivateKey) {
	t.Helper()
	fixtureOnce.Do(func() {
		if fixtureCA, fixtureErr = NewCA(testOrg); fixtureErr != nil {
			return
		}
		fixtureKey, fixtureErr = rsa.GenerateKey(rand.Reader, 2048)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureCA, fixtureKey
}

func issueTestClient(t testing.TB, ca *CA, now time.Time) *IssuedCert {
	t.Helper()
	_, key := testCA(t)
	ic, err := ca.IssueClientCertificate(ClientCertRequest{
		Key:      key,
		NotAfter: now.Add(testValidDays * 24 * time.Hour),
		Subject:  ClientSubject(testOrg, "Local", testTenant, testLocality, testCN),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

func TestCAShape(t *testing.T) {
	ca, _ := testCA(t)
	root, inter := ca.Root(), ca.Intermediate()
	if !root.IsCA || !inter.IsCA {
		t.Fatal("root and intermediate must be CAs")
	}
	if !inter.MaxPathLenZero || inter.MaxPathLen != 0 {
		t.Errorf("intermediate pathlen = %d (zero %v), want 0", inter.MaxPathLen, inter.MaxPathLenZero)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	for _, c := range []*x509.Certificate{root, inter} {
		if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Errorf("%s key is %T, want ECDSA", c.Subject.CommonName, c.PublicKey)
		}
	}
	if d := root.NotAfter.Sub(root.NotBefore); d < 10*365*24*time.Hour {
		t.Errorf("root valid for %v, want 10 years", d)
	}
	if d := inter.NotAfter.Sub(inter.NotBefore); d < 5*365*24*time.Hour || d > 6*365*24*time.Hour {
		t.Errorf("intermediate valid for %v, want 5 years", d)
	}
	if !bytes.Contains(ca.RootPEM(), []byte("-----BEGIN CERTIFICATE-----")) {
		t.Error("RootPEM is not PEM")
	}
	if c, err := ParseCertificatePEM(string(ca.RootPEM())); err != nil || !c.Equal(root) {
		t.Errorf("RootPEM does not hold the root: %v", err)
	}
}

func TestCAValidFor(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now()
	tests := []struct {
		name   string
		now    time.Time
		margin time.Duration
		want   bool
	}{
		{"now", now, 0, true},
		{"one year margin", now, 365 * 24 * time.Hour, true},
		{"margin past intermediate", now, 5*365*24*time.Hour + 48*time.Hour, false},
		{"in six years", now.Add(6 * 365 * 24 * time.Hour), 0, false},
		{"before creation", now.Add(-48 * time.Hour), 0, false},
	}
	for _, tt := range tests {
		if got := ca.ValidFor(tt.now, tt.margin); got != tt.want {
			t.Errorf("%s: ValidFor = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestCAMarshalLoad(t *testing.T) {
	ca, _ := testCA(t)
	certs, keys, err := ca.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(certs, []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Fatalf("%d certificates in MarshalPEM", n)
	}
	if n := bytes.Count(keys, []byte("BEGIN PRIVATE KEY")); n != 2 {
		t.Fatalf("%d PKCS#8 keys in MarshalPEM", n)
	}
	loaded, err := LoadCA(certs, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Root().Equal(ca.Root()) || !loaded.Intermediate().Equal(ca.Intermediate()) {
		t.Fatal("loaded CA has other certificates")
	}
	// The loaded CA can still sign: its certificates verify with the
	// original CA and vice versa.
	now := time.Now()
	ic := issueTestClient(t, loaded, now)
	if err := ca.VerifyClient(ic.Leaf, now); err != nil {
		t.Errorf("certificate from loaded CA: %v", err)
	}

	other, err := NewCA("Other")
	if err != nil {
		t.Fatal(err)
	}
	otherCerts, otherKeys, _ := other.MarshalPEM()
	rootPEM, interPEM := splitPEM(t, certs)
	oRootPEM, oInterPEM := splitPEM(t, otherCerts)
	kRoot, kInter := splitPEM(t, keys)
	oKRoot, _ := splitPEM(t, otherKeys)
	bad := []struct {
		name        string
		certs, keys []byte
	}{
		{"empty", nil, nil},
		{"no keys", certs, nil},
		{"one cert", rootPEM, keys},
		{"swapped certs", cat(interPEM, rootPEM), cat(kInter, kRoot)},
		{"foreign key", certs, cat(oKRoot, kInter)},
		{"foreign intermediate", cat(rootPEM, oInterPEM), keys},
		{"foreign root", cat(oRootPEM, interPEM), cat(oKRoot, kInter)},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keys},
	}
	for _, tt := range bad {
		if _, err := LoadCA(tt.certs, tt.keys); err == nil {
			t.Errorf("%s: LoadCA accepted it", tt.name)
		}
	}
}

func splitPEM(t *testing.T, b []byte) (first, second []byte) {
	t.Helper()
	b1, rest := pem.Decode(b)
	b2, _ := pem.Decode(rest)
	if b1 == nil || b2 == nil {
		t.Fatal("need two PEM blocks")
	}
	return pem.EncodeToMemory(b1), pem.EncodeToMemory(b2)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestServerCertificate(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now()
	tc, err := ca.IssueServerCertificate([]string{"localhost", "127.0.0.1", "::1", "broker.example"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Certificate) != 2 || !bytes.Equal(tc.Certificate[1], ca.Intermediate().Raw) {
		t.Fatal("chain must be leaf + intermediate")
	}
	leaf, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.IPAddresses) != 2 || len(leaf.DNSNames) != 2 {
		t.Errorf("SANs: IP %v DNS %v", leaf.IPAddresses, leaf.DNSNames)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d != 365*24*time.Hour+time.Hour {
		t.Errorf("validity %v, want 1 year + 1 h backdate", d)
	}
	inters := x509.NewCertPool()
	inters.AddCert(ca.Intermediate())
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "broker.example"} {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:       host,
			Roots:         ca.RootPool(),
			Intermediates: inters,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.2", Roots: ca.RootPool(), Intermediates: inters, CurrentTime: now}); err == nil {
		t.Error("verified for a host not in the SANs")
	}
	if _, err := ca.IssueServerCertificate(nil, now); err == nil {
		t.Error("no error without hosts")
	}
}

// TestServerClientTLS runs a real handshake: server certificate from the
// CA, client certificate from the CA, trust anchored on the root only.
func TestServerClientTLS(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now()
	srv, err := ca.IssueServerCertificate([]string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	ic := issueTestClient(t, ca, now)
	cli, err := tls.X509KeyPair([]byte(ic.CertificatePEM), []byte(ic.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	roots := ca.RootPool()
	serverConf := &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots}
	clientConf := &tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: roots, ServerName: "127.0.0.1"}

	c1, c2 := net.Pipe()
	server := tls.Server(c1, serverConf)
	client := tls.Client(c2, clientConf)
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	peer := server.ConnectionState().PeerCertificates
	if len(peer) == 0 || X5tS256(peer[0]) != X5tS256(ic.Leaf) {
		t.Fatal("server did not see the client leaf")
	}
	client.Close()
	server.Close()
}

func TestClientCertificate(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now().UTC().Truncate(time.Second) // certificates hold whole seconds
	ic := issueTestClient(t, ca, now)
	leaf := ic.Leaf

	if err := ca.VerifyClient(leaf, now); err != nil {
		t.Fatalf("VerifyClient: %v", err)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf must carry CA:FALSE")
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU %v, want clientAuth", leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %b", leaf.KeyUsage)
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15}) && !ext.Critical {
			t.Error("key usage not critical")
		}
	}
	if len(leaf.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, ca.Intermediate().SubjectKeyId) {
		t.Errorf("SKI %x AKI %x, intermediate SKI %x", leaf.SubjectKeyId, leaf.AuthorityKeyId, ca.Intermediate().SubjectKeyId)
	}
	if leaf.SerialNumber.Sign() <= 0 || len(leaf.SerialNumber.Bytes()) < 16 {
		t.Errorf("serial %x: want positive, >= 16 bytes", leaf.SerialNumber)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) {
		t.Errorf("NotBefore %v, want %v", leaf.NotBefore, now.Add(-time.Hour))
	}
	wantEnd := now.Add(testValidDays * 24 * time.Hour)
	if !leaf.NotAfter.Equal(wantEnd) || !ic.NotAfter.Equal(wantEnd) {
		t.Errorf("NotAfter %v / %v, want %v", leaf.NotAfter, ic.NotAfter, wantEnd)
	}
	if err := ca.VerifyClient(leaf, wantEnd.Add(time.Minute)); err == nil {
		t.Error("verified after NotAfter")
	}
	if !strings.HasPrefix(ic.KeyPEM, "-----BEGIN RSA PRIVATE KEY-----\n") {
		t.Errorf("key PEM starts %q", ic.KeyPEM[:40])
	}
	if strings.Contains(ic.CertificatePEM, `\n`) || strings.Count(ic.CertificatePEM, "-----BEGIN CERTIFICATE-----") != 2 {
		t.Error("certificate PEM must be leaf + intermediate with real newlines")
	}
	pair, err := tls.X509KeyPair([]byte(ic.CertificatePEM), []byte(ic.KeyPEM))
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	if len(pair.Certificate) != 2 || !bytes.Equal(pair.Certificate[0], leaf.Raw) || !bytes.Equal(pair.Certificate[1], ca.Intermediate().Raw) {
		t.Error("PEM chain is not leaf then intermediate")
	}
	if pk := leaf.PublicKey.(*rsa.PublicKey); pk.N.BitLen() != 2048 {
		t.Errorf("modulus %d bits", pk.N.BitLen())
	}
	sum := sha256.Sum256(leaf.Raw)
	if ic.Fingerprint != hex.EncodeToString(sum[:]) || Fingerprint(leaf) != ic.Fingerprint {
		t.Errorf("fingerprint %s", ic.Fingerprint)
	}
	if X5tS256(leaf) != base64.RawURLEncoding.EncodeToString(sum[:]) || len(X5tS256(leaf)) != 43 {
		t.Errorf("x5t#S256 %s", X5tS256(leaf))
	}
}

func TestClientSubjectLayout(t *testing.T) {
	ca, _ := testCA(t)
	ic := issueTestClient(t, ca, time.Now())
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(ic.Leaf.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		oid asn1.ObjectIdentifier
		val string
	}{
		{oidCountry, "DE"},
		{oidOrganization, testOrg},
		{oidOrgUnit, testOrg + " Clients"},
		{oidOrgUnit, "Local"},
		{oidOrgUnit, testTenant},
		{oidLocality, testLocality},
		{oidCommonName, testCN},
	}
	if len(rdns) != len(want) {
		t.Fatalf("%d RDNs, want %d: %v", len(rdns), len(want), rdns)
	}
	for i, w := range want {
		if len(rdns[i]) != 1 || !rdns[i][0].Type.Equal(w.oid) || rdns[i][0].Value != w.val {
			t.Errorf("RDN %d = %v, want %v=%s", i, rdns[i], w.oid, w.val)
		}
	}
	if ic.Leaf.Subject.CommonName != testCN {
		t.Errorf("parsed CN %q", ic.Leaf.Subject.CommonName)
	}
}

func TestClientCertificate4096(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now()
	ic, err := ca.IssueClientCertificate(ClientCertRequest{
		KeyBits:  4096,
		NotAfter: now.Add(24 * time.Hour),
		Subject:  ClientSubject(testOrg, "Local", testTenant, testLocality, "cn-4096"),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if n := ic.Leaf.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 4096 {
		t.Errorf("modulus %d bits, want 4096", n)
	}
	if _, err := tls.X509KeyPair([]byte(ic.CertificatePEM), []byte(ic.KeyPEM)); err != nil {
		t.Error(err)
	}
}

func TestClientCertificateRejects(t *testing.T) {
	ca, key := testCA(t)
	now := time.Now()
	subj := ClientSubject(testOrg, "Local", testTenant, testLocality, testCN)
	long := ClientSubject(testOrg, "Local", testTenant, testLocality, strings.Repeat("x", 65))
	tests := []struct {
		name string
		req  ClientCertRequest
	}{
		{"CN over 64", ClientCertRequest{Key: key, NotAfter: now.Add(time.Hour), Subject: long}},
		{"CN over 64 in plain Name", ClientCertRequest{Key: key, NotAfter: now.Add(time.Hour), Subject: pkix.Name{CommonName: strings.Repeat("y", 65)}}},
		{"no CN", ClientCertRequest{Key: key, NotAfter: now.Add(time.Hour), Subject: pkix.Name{Organization: []string{"x"}}}},
		{"odd key size", ClientCertRequest{KeyBits: 1024, NotAfter: now.Add(time.Hour), Subject: subj}},
		{"key size mismatch", ClientCertRequest{KeyBits: 4096, Key: key, NotAfter: now.Add(time.Hour), Subject: subj}},
		{"NotAfter in the past", ClientCertRequest{Key: key, NotAfter: now.Add(-time.Hour), Subject: subj}},
		{"NotAfter zero", ClientCertRequest{Key: key, Subject: subj}},
		{"NotAfter beyond CA", ClientCertRequest{Key: key, NotAfter: now.Add(6 * 365 * 24 * time.Hour), Subject: subj}},
	}
	for _, tt := range tests {
		if _, err := ca.IssueClientCertificate(tt.req, now); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	// Exactly 64 characters is allowed.
	ok := ClientSubject(testOrg, "Local", testTenant, testLocality, strings.Repeat("z", 64))
	if _, err := ca.IssueClientCertificate(ClientCertRequest{Key: key, NotAfter: now.Add(time.Hour), Subject: ok}, now); err != nil {
		t.Errorf("64-char CN: %v", err)
	}
}

func TestVerifyClientRejects(t *testing.T) {
	ca, _ := testCA(t)
	other, err := NewCA(testOrg) // same names, other keys
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	foreign := issueTestClient(t, other, now)
	if err := ca.VerifyClient(foreign.Leaf, now); err == nil {
		t.Error("certificate from another CA verified")
	}
	srv, err := ca.IssueServerCertificate([]string{"localhost"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.VerifyClient(srv.Leaf, now); err == nil {
		t.Error("server-auth certificate accepted as client certificate")
	}
	if err := ca.VerifyClient(ca.Intermediate(), now); err == nil {
		t.Error("intermediate accepted as client certificate")
	}
	if err := ca.VerifyClient(nil, now); err == nil {
		t.Error("nil accepted")
	}
}

func TestParseCertificatePEM(t *testing.T) {
	ca, _ := testCA(t)
	ic := issueTestClient(t, ca, time.Now())
	pemText := ic.CertificatePEM
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Leaf.Raw}))
	body := base64.StdEncoding.EncodeToString(ic.Leaf.Raw)
	tests := []struct {
		name string
		in   string
	}{
		{"chain", pemText},
		{"leaf", leafPEM},
		{"literal backslash-n", strings.ReplaceAll(pemText, "\n", `\n`)},
		{"CRLF", strings.ReplaceAll(leafPEM, "\n", "\r\n")},
		{"single line", "-----BEGIN CERTIFICATE-----" + body + "-----END CERTIFICATE-----"},
		{"single line with spaces", "-----BEGIN CERTIFICATE----- " + body + " -----END CERTIFICATE-----"},
		{"key first", ic.KeyPEM + pemText},
		{"leading text", "subject=CN=foo\n" + leafPEM},
	}
	for _, tt := range tests {
		c, err := ParseCertificatePEM(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !c.Equal(ic.Leaf) {
			t.Errorf("%s: parsed another certificate", tt.name)
		}
	}
	for _, bad := range []string{"", "hello", ic.KeyPEM, "-----BEGIN CERTIFICATE-----\nAAAA", "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"} {
		if _, err := ParseCertificatePEM(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

package credentials

import (
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"strings"
	"testing"
	"time"
)

// envoyElement builds one Envoy XFCC element the way Envoy does: the
// Cert value is the URL-encoded PEM, quoted; Subject contains commas.
func envoyElement(certPEM, subject string, encode func(string) string) string {
	return `By=spiffe://cluster.local/ns/app/sa/default;Hash=0123abcd;Cert="` + encode(certPEM) +
		`";Subject="` + subject + `";URI=spiffe://cluster.local/ns/client/sa/default`
}

func TestParseXFCC(t *testing.T) {
	ca, _ := testCA(t)
	now := time.Now()
	ic := issueTestClient(t, ca, now)
	other := issueTestClient(t, mustOtherCA(t), now)
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Leaf.Raw}))
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Leaf.Raw}))
	der64 := base64.StdEncoding.EncodeToString(ic.Leaf.Raw)
	subj := `C=DE,O=Test Org,OU=Test Org Clients,CN=a/b`

	tests := []struct {
		name   string
		header string
	}{
		{"gorouter base64 DER", der64},
		{"gorouter with surrounding space", "  " + der64 + "\n"},
		{"base64 DER without padding", strings.TrimRight(der64, "=")},
		{"base64url DER", base64.RawURLEncoding.EncodeToString(ic.Leaf.Raw)},
		{"PEM", leafPEM},
		{"PEM chain", ic.CertificatePEM},
		{"PEM without newlines", strings.ReplaceAll(leafPEM, "\n", "")},
		{"PEM with literal backslash-n", strings.ReplaceAll(leafPEM, "\n", `\n`)},
		{"base64 of PEM", base64.StdEncoding.EncodeToString([]byte(leafPEM))},
		{"envoy single", envoyElement(leafPEM, subj, url.PathEscape)},
		{"envoy query-escaped", envoyElement(leafPEM, subj, url.QueryEscape)},
		{"envoy chain of two, last wins", envoyElement(otherPEM, subj, url.PathEscape) + "," + envoyElement(leafPEM, subj, url.PathEscape)},
		{"envoy spaces after comma", envoyElement(otherPEM, subj, url.PathEscape) + ", " + envoyElement(leafPEM, subj, url.PathEscape)},
		{"envoy escaped quote in subject", envoyElement(otherPEM, `CN=\"a,b\"`, url.PathEscape) + "," + envoyElement(leafPEM, `O=\"x;y\",CN=z`, url.PathEscape)},
		{"envoy Cert first, lower-case key", `cert="` + url.PathEscape(leafPEM) + `";hash=00`},
		{"envoy Cert unquoted", `Hash=00;Cert=` + url.PathEscape(leafPEM)},
		{"envoy Cert holding base64 DER", `Hash=00;Cert="` + der64 + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseXFCC(tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Equal(ic.Leaf) {
				t.Fatalf("parsed %q, want the test leaf", c.Subject)
			}
		})
	}
}

func mustOtherCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("Other Org")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestParseXFCCErrors(t *testing.T) {
	ca, _ := testCA(t)
	ic := issueTestClient(t, ca, time.Now())
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.Leaf.Raw}))
	tests := []struct {
		name   string
		header string
	}{
		{"empty", ""},
		{"blank", "   "},
		{"garbage", "not a certificate"},
		{"base64 garbage", base64.StdEncoding.EncodeToString([]byte("hello world"))},
		{"truncated DER", base64.StdEncoding.EncodeToString(ic.Leaf.Raw[:100])},
		{"PEM without end", "-----BEGIN CERTIFICATE-----\nMIIB"},
		{"envoy without Cert", "Hash=0123;Subject=\"CN=x\""},
		{"envoy Cert only in earlier element", `Cert="` + url.PathEscape(leafPEM) + `",Hash=00;Subject="CN=x"`},
		{"envoy unterminated quote", `Hash=00;Cert="` + url.PathEscape(leafPEM)},
		{"envoy bad escape", `Hash=00;Cert="%zz"`},
		{"envoy empty Cert", `Hash=00;Cert=""`},
		{"envoy junk Cert", `Hash=00;Cert="abc"`},
		{"too long", strings.Repeat("A", maxXFCCLen+1)},
	}
	for _, tt := range tests {
		if c, err := ParseXFCC(tt.header); err == nil {
			t.Errorf("%s: parsed %v", tt.name, c.Subject)
		}
	}
}

func FuzzParseXFCC(f *testing.F) {
	ca, err := NewCA("Fuzz")
	if err != nil {
		f.Fatal(err)
	}
	srv, err := ca.IssueServerCertificate([]string{"localhost"}, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	leafPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Leaf.Raw}))
	f.Add(base64.StdEncoding.EncodeToString(srv.Leaf.Raw))
	f.Add(leafPEM)
	f.Add(strings.ReplaceAll(leafPEM, "\n", `\n`))
	f.Add(envoyElement(leafPEM, "CN=x", url.PathEscape))
	f.Add(`Hash=1;Cert="a\"b",By=2;Cert=""`)
	f.Add(`Cert="\`)
	f.Add("-----BEGIN CERTIFICATE----------END CERTIFICATE-----")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		c, err := ParseXFCC(header)
		if (c == nil) == (err == nil) {
			t.Fatalf("cert %v with err %v", c, err)
		}
	})
}

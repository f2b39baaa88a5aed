package broker

import (
	"net/url"
	"strings"

	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
)

// UAADomain returns the uaadomain of xsuaa credentials for the public URL u:
// its host and port, without a leading "<zone>." label (real XSUAA puts the
// zone's subdomain in front of the landscape domain).
func UAADomain(u *url.URL, zone string) string {
	host := u.Host
	if rest, ok := strings.CutPrefix(host, zone+"."); ok && strings.Contains(rest, ".") {
		return rest
	}
	return host
}

// CertHost applies the XSUAA rule for the mTLS host: "authentication." is
// replaced by "authentication.cert."; hosts without that label serve mTLS on
// the same listener (xsuaa.md §5.3).
func CertHost(host string) string {
	if strings.Contains(host, "authentication.") && !strings.Contains(host, "authentication.cert.") {
		return strings.Replace(host, "authentication.", "authentication.cert.", 1)
	}
	return host
}

func (b *Broker) certURL() string {
	u := *b.cfg.XsuaaURL
	u.Host = CertHost(u.Host)
	return trimURL(&u)
}

// xsuaaCredentials builds the fields every xsuaa binding shares
// (xsuaa.md §1.2); the caller adds the credential itself.
func (b *Broker) xsuaaCredentials(in *store.Instance, d *descriptor.Descriptor) map[string]any {
	z := b.cfg.Zone
	base := trimURL(b.cfg.XsuaaURL)
	c := map[string]any{
		"clientid":          in.ClientID,
		"xsappname":         in.XSAppName,
		"url":               base,
		"uaadomain":         UAADomain(b.cfg.XsuaaURL, z.Name),
		"identityzone":      z.Name,
		"identityzoneid":    z.ID,
		"tenantid":          z.ID,
		"zoneid":            z.ID,
		"subaccountid":      z.ID,
		"tenantmode":        d.TenantModeOrDefault(),
		"sburl":             base,
		"apiurl":            base,
		"serviceInstanceId": in.ID,
	}
	if b.cfg.Keys != nil {
		c["verificationkey"] = b.cfg.Keys.VerificationKeyPEM()
	}
	if in.Plan == "broker" {
		c["trustedclientidsuffix"] = "|" + in.XSAppName
	}
	return c
}

// identityCredentials builds the fields every identity binding shares
// (identity.md §1.2).
func (b *Broker) identityCredentials(in *store.Instance) map[string]any {
	z := b.cfg.Zone
	base := trimURL(b.cfg.IdentityURL)
	// xssec compares the token issuer's host:port with domains, exactly
	// or as one extra label; the issuer is this URL.
	domain := hostPort(b.cfg.IdentityURL)
	return map[string]any{
		"clientid":               in.ClientID,
		"url":                    base,
		"domain":                 domain,
		"domains":                []string{domain},
		"app_tid":                z.ID,
		"zone_uuid":              z.ID,
		"authorization_endpoint": base + "/oauth2/authorize",
		"end_session_endpoint":   base + "/oauth2/logout",
		"token_endpoint":         base + "/oauth2/token",
	}
}

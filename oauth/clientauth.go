package oauth

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/ossbroker/btp-security-broker/credentials"
)

// authenticated is the outcome of client authentication.
type authenticated struct {
	Client *client
	// BindingID is the binding whose credential authenticated the request.
	BindingID string
	// Cert is the client certificate that authenticated the request, nil
	// for secret authentication.
	Cert *x509.Certificate
}

// authenticate is authenticateClient that, on a store shared by replicas,
// retries once after rereading the claimed client before refusing (see
// clients.refresh). It returns the table the answer is based on.
func (s *Server) authenticate(r *http.Request, t *clientTable) (*authenticated, *clientTable, *Error) {
	a, oerr := s.authenticateClient(r, t)
	if oerr != nil && s.cfg.SharedStore {
		var fp string
		if leaf := s.clientCertificate(r); leaf != nil {
			fp = fingerprintHex(leaf.Raw)
		}
		if s.clients.refresh(r.Context(), t, claimedClientID(r), fp, 250*time.Millisecond) {
			a, oerr = s.authenticateClient(r, t)
		}
	}
	if oerr != nil && oerr.Status == http.StatusUnauthorized {
		// Counted only after the check: a correct secret always passes,
		// and a store that could not be read is not the client's fault.
		if over, after := s.clientFailures.fail(claimedClientID(r) + "|" + s.sourceAddress(r)); over {
			return nil, t, errTooMany(after)
		}
	}
	return a, t, oerr
}

// authenticateClient identifies the client of a token request by, in this
// order of preference: a client secret (HTTP Basic, the form body, or both
// naming the same client), or a client certificate (the TLS handshake's, or
// X-Forwarded-Client-Cert from a trusted proxy) together with the optional
// client_id form field.
func (s *Server) authenticateClient(r *http.Request, t *clientTable) (*authenticated, *Error) {
	formID := r.PostForm.Get("client_id")
	formSecret := r.PostForm.Get("client_secret")
	basicID, basicSecret, hasBasic := r.BasicAuth()

	if hasBasic {
		cl, binding, ok, err := t.basicClient(r.Context(), basicID, basicSecret)
		if err != nil {
			return nil, errRegistryUnavailable()
		}
		if !ok || (formID != "" && formID != cl.ID) {
			return nil, errInvalidClient()
		}
		if formSecret != "" {
			_, ok, err := t.checkSecret(r.Context(), cl, formSecret)
			if err != nil {
				return nil, errRegistryUnavailable()
			}
			if !ok {
				return nil, errInvalidClient()
			}
		}
		return &authenticated{Client: cl, BindingID: binding}, nil
	}
	if formSecret != "" {
		cl := t.client(formID)
		if cl == nil {
			return nil, errInvalidClient()
		}
		binding, ok, err := t.checkSecret(r.Context(), cl, formSecret)
		if err != nil {
			return nil, errRegistryUnavailable()
		}
		if !ok {
			return nil, errInvalidClient()
		}
		return &authenticated{Client: cl, BindingID: binding}, nil
	}
	leaf := s.clientCertificate(r)
	if leaf == nil {
		return nil, errInvalidClient()
	}
	cl, binding, ok, err := s.certClient(r.Context(), t, leaf)
	if err != nil {
		return nil, errRegistryUnavailable()
	}
	if !ok || (formID != "" && formID != cl.ID) {
		return nil, errInvalidClient()
	}
	return &authenticated{Client: cl, BindingID: binding, Cert: leaf}, nil
}

// basicClient checks HTTP Basic credentials. RFC 6749 says the id and
// secret are form-urlencoded inside Basic; approuter and most curl users send
// them raw. Ids contain '!' and '|', secrets '$' and '=', so both readings are
// tried.
func (t *clientTable) basicClient(ctx context.Context, id, secret string) (*client, string, bool, error) {
	if cl := t.client(id); cl != nil {
		binding, ok, err := t.checkSecret(ctx, cl, secret)
		if err != nil || ok {
			return cl, binding, ok, err
		}
	}
	uid, err1 := url.QueryUnescape(id)
	usecret, err2 := url.QueryUnescape(secret)
	if err1 != nil || err2 != nil || (uid == id && usecret == secret) {
		return nil, "", false, nil
	}
	if cl := t.client(uid); cl != nil {
		binding, ok, err := t.checkSecret(ctx, cl, usecret)
		if err != nil || ok {
			return cl, binding, ok, err
		}
	}
	return nil, "", false, nil
}

// clientCertificate returns the certificate the client presented: from the
// TLS handshake on the broker's own listener, or from the
// X-Forwarded-Client-Cert header when the request came from a trusted
// proxy (gorouter). From anyone else the header is ignored: it would let
// any caller claim any certificate.
func (s *Server) clientCertificate(r *http.Request) *x509.Certificate {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[0]
	}
	// Several header fields mean one comma-joined list (RFC 9110 §5.3);
	// Get would return the first, which the client itself may have sent,
	// while the nearest proxy's element is the last.
	xfcc := strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), ",")
	if xfcc == "" || !s.trustedProxy(r.RemoteAddr) {
		return nil
	}
	cert, err := credentials.ParseXFCC(xfcc)
	if err != nil {
		return nil
	}
	return cert
}

func (s *Server) trustedProxy(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// certClient finds the client whose live binding holds leaf. Certificates
// the broker issued must also chain to its CA and be unexpired; certificates
// users brought (X509_PROVIDED, self-managed x509) are pinned by
// fingerprint, or matched by subject and issuer when pinning is off.
func (s *Server) certClient(ctx context.Context, t *clientTable, leaf *x509.Certificate) (*client, string, bool, error) {
	now := s.cfg.Now()
	fp := fingerprintHex(leaf.Raw)
	cl, creds, err := t.fingerprintClient(ctx, fp)
	if err != nil {
		return nil, "", false, err
	}
	if cl != nil {
		for _, c := range creds.certs {
			if c.Rec.Fingerprint != fp {
				continue
			}
			if c.Rec.Provided {
				return cl, c.BindingID, now.Before(leaf.NotAfter) && !now.Before(leaf.NotBefore.Add(-time.Minute)), nil
			}
			return cl, c.BindingID, s.cfg.CA.VerifyClient(leaf, now) == nil, nil
		}
	}
	// Unpinned self-managed certificates: a renewed certificate with the
	// same subject and issuer DN is accepted, but only if it chains to a CA
	// the broker trusts (XSUAA: "must chain to a trusted CA"). DNs are no
	// secret; without the chain anyone could self-sign a look-alike.
	if s.cfg.CA.VerifyClient(leaf, now) != nil {
		return nil, "", false, nil
	}
	cl, c, err := t.unpinnedClient(ctx, leaf.Subject.String(), leaf.Issuer.String())
	if err != nil || cl == nil {
		return nil, "", false, err
	}
	return cl, c.BindingID, now.Before(leaf.NotAfter), nil
}

// ParseTrustedProxies parses BROKER_TRUSTED_PROXIES: comma-separated IP
// addresses or CIDR prefixes.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

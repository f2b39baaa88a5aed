package oauth

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// redirectAllowed reports whether uri may receive a code or a logout
// redirect for a client whose registered redirect URIs are patterns.
// Patterns follow UAA's Ant-style rules (xsuaa.md §8): "**" matches any
// path, "*" matches within one path segment or, in the host, any
// subdomain part; a ":*" port matches any port. Like XSUAA, localhost (and
// the loopback addresses) is always allowed.
func redirectAllowed(patterns []string, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return false
	}
	// A browser resolves "." and ".." (also percent-encoded) before it
	// sends the request, so ".../mine/../theirs" would deliver the code
	// outside the registered path.
	if slices.ContainsFunc(strings.Split(u.Path, "/"), func(seg string) bool { return seg == "." || seg == ".." }) {
		return false
	}
	if h := u.Hostname(); h == "localhost" || net.ParseIP(h).IsLoopback() {
		return true
	}
	for _, p := range patterns {
		if re := patternRegexp(p); re != nil && re.MatchString(u.Scheme+"://"+u.Host+u.EscapedPath()) {
			return true
		}
	}
	return false
}

// patternRegexp compiles a redirect pattern to a regular expression over
// "scheme://host[:port]/path" (the query is not part of the match).
func patternRegexp(p string) *regexp.Regexp {
	scheme, rest, ok := strings.Cut(p, "://")
	if !ok {
		return nil
	}
	hostPort, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostPort, path = rest[:i], rest[i:]
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	var b strings.Builder
	b.WriteString("^(?i:" + regexp.QuoteMeta(scheme) + ")://")
	host, port := hostPort, ""
	if i := strings.LastIndexByte(hostPort, ':'); i >= 0 && !strings.Contains(hostPort[i:], "]") {
		host, port = hostPort[:i], hostPort[i+1:]
	}
	b.WriteString("(?i:")
	for i, part := range strings.Split(host, "*") {
		if i > 0 {
			b.WriteString(`[^/:]*`)
		}
		b.WriteString(regexp.QuoteMeta(part))
	}
	b.WriteString(")")
	switch port {
	case "":
	case "*":
		b.WriteString(`(:[0-9]+)?`)
	default:
		b.WriteString(":" + regexp.QuoteMeta(port))
	}
	if path == "" || path == "/" {
		b.WriteString(`/?$`)
		return regexp.MustCompile(b.String())
	}
	anyTail := strings.HasSuffix(path, "/**")
	if anyTail {
		// ".../**" also matches the bare prefix.
		path = strings.TrimSuffix(path, "/**")
	}
	for i, seg := range strings.Split(path, "**") {
		if i > 0 {
			b.WriteString(`.*`)
		}
		for j, part := range strings.Split(seg, "*") {
			if j > 0 {
				b.WriteString(`[^/]*`)
			}
			b.WriteString(regexp.QuoteMeta(part))
		}
	}
	if anyTail {
		b.WriteString(`(/.*)?`)
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil
	}
	return re
}

package descriptor

import (
	"errors"
	"strconv"
	"strings"
)

// uriPattern is a registered redirect URI split into its parts. It is not
// net/url: registered URIs may hold wildcards (https://*.example.com/**,
// http://localhost:*/cb) that url.Parse refuses or misreads.
type uriPattern struct {
	Scheme string
	Host   string // without brackets for IPv6
	Port   string // "", digits or "*"
	Rest   string // path, query and fragment, starting with '/', '?' or '#', or ""
}

// parseURIPattern accepts what UAA accepts for registered redirect URIs:
// scheme://[user[:pw]@]host[:port|:*][/…] (xsuaa.md §8 "Redirect-URI
// matching"). The host may contain '*'.
func parseURIPattern(s string) (uriPattern, error) {
	var u uriPattern
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return u, errors.New("must not contain spaces or control characters")
		}
	}
	scheme, after, ok := strings.Cut(s, "://")
	if !ok {
		return u, errors.New("must be an absolute URL of the form scheme://host[/path]")
	}
	if scheme == "" || !isSchemeStart(scheme[0]) || !onlyChars(scheme, isSchemeChar) {
		return u, errors.New("has an invalid scheme")
	}
	u.Scheme = strings.ToLower(scheme)
	authority := after
	if i := strings.IndexAny(after, "/?#"); i >= 0 {
		authority, u.Rest = after[:i], after[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	hostport := authority
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return u, errors.New("has an unterminated IPv6 address")
		}
		u.Host = hostport[1:end]
		if u.Host == "" || !onlyChars(u.Host, func(c byte) bool { return isHex(c) || c == ':' || c == '.' }) {
			return u, errors.New("has an invalid IPv6 address")
		}
		hostport = hostport[end+1:]
		if hostport != "" && !strings.HasPrefix(hostport, ":") {
			return u, errors.New("has an invalid port")
		}
		u.Port = strings.TrimPrefix(hostport, ":")
	} else {
		host, port, hasPort := strings.Cut(hostport, ":")
		u.Host = host
		if hasPort {
			u.Port = port
			if port == "" {
				return u, errors.New("has an empty port")
			}
		}
		if host == "" {
			return u, errors.New("has no host")
		}
		if !onlyChars(host, func(c byte) bool { return isAlnum(c) || c == '.' || c == '-' || c == '_' || c == '*' }) {
			return u, errors.New("has invalid characters in the host")
		}
	}
	if u.Port != "" && u.Port != "*" {
		n, err := strconv.Atoi(u.Port)
		if err != nil || n < 1 || n > 65535 || !onlyChars(u.Port, isDigit) {
			return u, errors.New("has an invalid port")
		}
	}
	return u, nil
}

// isLoopback reports whether the host is one for which plain http and port
// wildcards are acceptable.
func (u uriPattern) isLoopback() bool {
	h := strings.ToLower(u.Host)
	return h == "localhost" || h == "127.0.0.1"
}

// checkIdentityURI applies the identity service's stricter rules: https only
// (http for localhost/127.0.0.1), '*' only as a whole host label or path
// segment, "**" only as the last path segment, port wildcard only for
// localhost/127.0.0.1.
func checkIdentityURI(s string) error {
	u, err := parseURIPattern(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && u.isLoopback():
	default:
		return errors.New("must use https (http only for localhost and 127.0.0.1)")
	}
	if u.Port == "*" && !u.isLoopback() {
		return errors.New("port wildcard is only allowed for localhost and 127.0.0.1")
	}
	for _, label := range strings.Split(u.Host, ".") {
		if strings.Contains(label, "*") && label != "*" {
			return errors.New("'*' must stand for a whole host label")
		}
	}
	path := u.Rest
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		if strings.Contains(path[i:], "*") {
			return errors.New("wildcards are only allowed in the host and the path")
		}
		path = path[:i]
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		switch {
		case !strings.Contains(seg, "*"), seg == "*":
		case seg == "**" && i == len(segs)-1:
		default:
			return errors.New("'*' must stand for a whole path segment and '**' may only end the path")
		}
	}
	return nil
}

func isSchemeStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isSchemeChar(c byte) bool { return isAlnum(c) || c == '+' || c == '-' || c == '.' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

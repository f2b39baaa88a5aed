package grants

import (
	"slices"
	"strings"
)

// Audience computes the aud claim of a token (xsuaa.md §3.7, after UAA's
// getResourceIds): the client id, then for each granted scope "openid" for
// openid and the part before the last '.' for a dotted scope (except
// uaa.none and names ending in '.'). xssec accepts a token when one of these
// equals its xsappname, which is how a scope granted by app B makes A's
// token acceptable to B. Duplicates are dropped; the order is the client id,
// then first appearance.
func Audience(clientID string, scopes []string) []string {
	out := make([]string, 0, 1+len(scopes))
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(clientID)
	for _, s := range scopes {
		switch {
		case s == ScopeOpenID:
			add(s)
		case s == "uaa.none" || strings.HasSuffix(s, "."):
		default:
			if i := strings.LastIndexByte(s, '.'); i > 0 {
				add(s[:i])
			}
		}
	}
	return out
}

// InvalidScopeError is returned by Narrow for a requested scope the client
// does not have. The token endpoint answers 400 invalid_scope with Error()
// as error_description and Valid as the "scope" field.
type InvalidScopeError struct {
	Scope string   // the first offending scope
	Valid []string // what the client may request
}

func (e *InvalidScopeError) Error() string {
	return "Invalid scope: " + e.Scope + ". Did you know that you can get default requested scopes by simply sending no value?"
}

// Narrow applies the scope request parameter of a client_credentials request
// (xsuaa.md §3.1). requested is the raw form value; scopes are separated by
// whitespace or commas. Without any requested scope the client gets all of
// allowed. Otherwise each requested scope must equal an allowed one or match
// an allowed entry containing '*', where '*' stands for one or more
// characters other than '.' (UAA's wildcard rule). The result is sorted and
// free of duplicates, like UAA's scope set; the first offending scope in
// that order is reported.
func Narrow(allowed []string, requested string) ([]string, error) {
	req := strings.FieldsFunc(requested, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
	})
	if len(req) == 0 {
		return slices.Clone(allowed), nil
	}
	req = sortedUnique(req)
	for _, s := range req {
		if !slices.ContainsFunc(allowed, func(a string) bool { return a == s || wildcardMatch(a, s) }) {
			return nil, &InvalidScopeError{Scope: s, Valid: slices.Clone(allowed)}
		}
	}
	return req, nil
}

// wildcardMatch reports whether s matches pattern, in which each '*' stands
// for one or more characters other than '.'. Patterns without '*' never
// match here (the caller compares literally). Every other character,
// including '\\' and '/' which xsappnames may contain, is literal.
func wildcardMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return false
	}
	return globMatch(pattern, s)
}

func globMatch(p, s string) bool {
	for len(p) > 0 {
		if p[0] != '*' {
			if len(s) == 0 || s[0] != p[0] {
				return false
			}
			p, s = p[1:], s[1:]
			continue
		}
		// '*': consume at least one non-'.' byte, then try every stop.
		// Scope names are short, so the backtracking is cheap.
		for n := 1; n <= len(s) && s[n-1] != '.'; n++ {
			if globMatch(p[1:], s[n:]) {
				return true
			}
		}
		return false
	}
	return len(s) == 0
}

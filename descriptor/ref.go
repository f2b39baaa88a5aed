package descriptor

import (
	"fmt"
	"strings"
)

// RefKind says what a name in a descriptor points at.
type RefKind int

const (
	// Literal is a name without any $ form, e.g. "uaa.user".
	Literal RefKind = iota
	// Self is $XSAPPNAME[.suffix]: this instance.
	Self
	// App is $XSAPPNAME(plan,app[,extra])[.suffix]: another instance found
	// by plan and original xsappname.
	App
	// Service is $XSSERVICENAME(name)[.suffix]: the instance with that
	// instance name in the same space.
	Service
	// AcceptGrantedAuthorities is $ACCEPT_GRANTED_AUTHORITIES.
	AcceptGrantedAuthorities
	// AcceptGrantedScopes is $ACCEPT_GRANTED_SCOPES.
	AcceptGrantedScopes
)

// Ref is a parsed name or reference. For Self, App and Service, Suffix is the
// part after the dot that follows the app part ("Display" in
// "$XSAPPNAME.Display"), empty when the reference names the app itself. For
// Literal, Suffix holds the whole literal name.
type Ref struct {
	Kind    RefKind
	Plan    string // App only
	App     string // App only: the other instance's original xsappname
	Extra   string // App only: third argument of the rare 3-argument form
	Service string // Service only: instance name
	Suffix  string
}

// ParseRef parses one name or reference. It accepts every form listed in
// xsuaa.md §2.3 and rejects malformed $ forms (unbalanced parentheses, empty
// arguments, unknown $ words).
func ParseRef(s string) (Ref, error) {
	switch s {
	case "$ACCEPT_GRANTED_AUTHORITIES":
		return Ref{Kind: AcceptGrantedAuthorities}, nil
	case "$ACCEPT_GRANTED_SCOPES":
		return Ref{Kind: AcceptGrantedScopes}, nil
	}
	if !strings.HasPrefix(s, "$") {
		return Ref{Kind: Literal, Suffix: s}, nil
	}
	var r Ref
	var rest string
	switch {
	case strings.HasPrefix(s, "$XSSERVICENAME("):
		inner, after, ok := cutParen(s[len("$XSSERVICENAME("):])
		if !ok || strings.TrimSpace(inner) == "" || strings.Contains(inner, ",") {
			return Ref{}, fmt.Errorf("malformed reference %q: expected $XSSERVICENAME(<instance name>)", s)
		}
		r = Ref{Kind: Service, Service: strings.TrimSpace(inner)}
		rest = after
	case strings.HasPrefix(s, "$XSAPPNAME("):
		inner, after, ok := cutParen(s[len("$XSAPPNAME("):])
		if !ok {
			return Ref{}, fmt.Errorf("malformed reference %q: missing ')'", s)
		}
		args := strings.Split(inner, ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
			if args[i] == "" {
				return Ref{}, fmt.Errorf("malformed reference %q: empty argument", s)
			}
		}
		if len(args) < 2 || len(args) > 3 {
			return Ref{}, fmt.Errorf("malformed reference %q: expected $XSAPPNAME(<plan>,<xsappname>)", s)
		}
		r = Ref{Kind: App, Plan: args[0], App: args[1]}
		if len(args) == 3 {
			r.Extra = args[2]
		}
		rest = after
	case strings.HasPrefix(s, "$XSAPPNAME"):
		r = Ref{Kind: Self}
		rest = s[len("$XSAPPNAME"):]
	default:
		return Ref{}, fmt.Errorf("unknown reference %q: only $XSAPPNAME, $XSAPPNAME(plan,app), $XSSERVICENAME(name), $ACCEPT_GRANTED_AUTHORITIES and $ACCEPT_GRANTED_SCOPES are supported", s)
	}
	switch {
	case rest == "":
	case strings.HasPrefix(rest, ".") && len(rest) > 1:
		r.Suffix = rest[1:]
	default:
		return Ref{}, fmt.Errorf("malformed reference %q: expected '.' after the application part", s)
	}
	return r, nil
}

// cutParen splits "a,b).rest" into "a,b" and ".rest".
func cutParen(s string) (inner, after string, ok bool) {
	i := strings.IndexByte(s, ')')
	if i < 0 || strings.ContainsAny(s[:i], "()") {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// IsCrossInstance reports whether the reference names another instance.
func (r Ref) IsCrossInstance() bool { return r.Kind == App || r.Kind == Service }

// Expand renders the reference with the given full xsappname of the app it
// points at (this instance's for Self, the other instance's for App and
// Service). Literal references render as themselves.
func (r Ref) Expand(appName string) string {
	switch r.Kind {
	case Literal:
		return r.Suffix
	case Self, App, Service:
		if r.Suffix == "" {
			return appName
		}
		return appName + "." + r.Suffix
	case AcceptGrantedAuthorities:
		return "$ACCEPT_GRANTED_AUTHORITIES"
	default:
		return "$ACCEPT_GRANTED_SCOPES"
	}
}

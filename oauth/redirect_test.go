package oauth

import "testing"

func TestRedirectAllowed(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		uri     string
		want    bool
	}{
		// Exact URIs.
		{"https://app.example.com/cb", "https://app.example.com/cb", true},
		{"https://app.example.com/cb", "https://app.example.com/cb/", false},
		{"https://app.example.com/cb", "https://app.example.com/cb2", false},
		{"https://app.example.com/cb", "https://app.example.com/cb/x", false},
		{"https://app.example.com/cb", "https://app.example.com/", false},
		{"https://app.example.com/cb", "https://other.example.com/cb", false},
		{"https://app.example.com/cb", "https://APP.example.com/cb", true}, // host names are case-insensitive
		{"https://app.example.com/cb", "https://app.example.com/CB", false},
		{"https://app.example.com/a.b", "https://app.example.com/aXb", false}, // '.' is literal
		// Scheme.
		{"https://app.example.com/cb", "http://app.example.com/cb", false},
		{"http://app.example.com/cb", "https://app.example.com/cb", false},
		{"HTTPS://app.example.com/cb", "https://app.example.com/cb", true},
		{"https://app.example.com/**", "javascript://app.example.com/%0aalert(1)", false},
		{"https://app.example.com/**", "ftp://app.example.com/x", false},
		{"https://app.example.com/**", "app.example.com/x", false},
		{"https://app.example.com/**", "/relative/path", false},
		// Query and fragment.
		{"https://app.example.com/cb", "https://app.example.com/cb?x=1", true},
		{"https://app.example.com/cb?x=1", "https://app.example.com/cb", true},
		{"https://app.example.com/cb", "https://app.example.com/cb#frag", false},
		{"https://app.example.com/**", "https://app.example.com/cb#", true}, // an empty fragment is no fragment
		// Userinfo.
		{"https://app.example.com/**", "https://user:pw@app.example.com/cb", false},
		{"https://app.example.com/**", "https://user@app.example.com/cb", false},
		{"https://app.example.com/**", "https://app.example.com@evil.example.com/cb", false},
		// Host wildcards.
		{"https://*.example.com/**", "https://app.example.com/cb", true},
		{"https://*.example.com/**", "https://a.b.example.com/cb", true},
		{"https://*.example.com/**", "https://example.com/cb", false},
		{"https://*.example.com/**", "https://app.example.com.evil.com/cb", false},
		{"https://*.example.com/**", "https://appexample.com/cb", false},
		{"https://*.example.com/**", "https://evil.com/.example.com/cb", false},
		{"https://*.example.com/**", "https://evil.com?.example.com/", false},
		{"https://*.example.com/**", "https://app.example.com:8443/cb", false},
		{"https://app-*.example.com/cb", "https://app-blue.example.com/cb", true},
		{"https://app-*.example.com/cb", "https://app.example.com/cb", false},
		// Path wildcards: * within one segment, ** across segments.
		{"https://app.example.com/*", "https://app.example.com/cb", true},
		{"https://app.example.com/*", "https://app.example.com/a/b", false},
		{"https://app.example.com/a/*/c", "https://app.example.com/a/x/c", true},
		{"https://app.example.com/a/*/c", "https://app.example.com/a/x/y/c", false},
		{"https://app.example.com/a/**/c", "https://app.example.com/a/x/y/c", true},
		{"https://app.example.com/a/**", "https://app.example.com/a/x/y", true},
		{"https://app.example.com/a/**", "https://app.example.com/a", true},
		{"https://app.example.com/a/**", "https://app.example.com/a/", true},
		{"https://app.example.com/a/**", "https://app.example.com/ab", false},
		{"https://app.example.com/a/**", "https://app.example.com/b/a/x", false},
		{"https://app.example.com/cb*", "https://app.example.com/cb-1", true},
		{"https://app.example.com/cb*", "https://app.example.com/cb/1", false},
		// "/**" matches the bare host.
		{"https://app.example.com/**", "https://app.example.com", true},
		{"https://app.example.com/**", "https://app.example.com/", true},
		{"https://app.example.com", "https://app.example.com/", true},
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "https://app.example.com/cb", false},
		// Ports.
		{"https://app.example.com:8443/cb", "https://app.example.com:8443/cb", true},
		{"https://app.example.com:8443/cb", "https://app.example.com/cb", false},
		{"https://app.example.com:8443/cb", "https://app.example.com:9443/cb", false},
		{"https://app.example.com/cb", "https://app.example.com:8443/cb", false},
		{"https://app.example.com:*/cb", "https://app.example.com:8443/cb", true},
		{"https://app.example.com:*/cb", "https://app.example.com/cb", true},
		{"https://app.example.com:*/cb", "https://app.example.com:x/cb", false},
		{"https://*.example.com:*/**", "https://a.example.com:1/b", true},
		// Localhost and loopback: always, any port, either scheme.
		{"", "http://localhost:5000/login/callback", true},
		{"", "http://localhost/cb", true},
		{"", "https://localhost:1/x?y#", true},
		{"", "http://127.0.0.1:5000/login/callback", true},
		{"", "http://127.0.0.2/cb", true},
		{"", "http://[::1]:8080/cb", true},
		{"", "http://localhost:5000/cb#frag", false},
		{"", "http://user@localhost:5000/cb", false},
		{"", "https://localhost.evil.example.com/cb", false},
		{"", "https://127.0.0.1.evil.example.com/cb", false},
		{"", "http://10.0.0.1/cb", false},
		// Dot segments would let a browser leave the registered path.
		{"https://app.example.com/cb", "https://app.example.com/%2e%2e/cb", false},
		{"https://shared.example.com/mine/**", "https://shared.example.com/mine/../theirs/cb", false},
		{"https://shared.example.com/mine/**", "https://shared.example.com/mine/%2E%2E/theirs/cb", false},
		{"https://shared.example.com/mine/**", "https://shared.example.com/mine/./cb", false},
		{"https://shared.example.com/mine/**", "https://shared.example.com/mine/..", false},
		{"https://shared.example.com/mine/**", "https://shared.example.com/mine/..cb/x.y", true},
	} {
		var patterns []string
		if tc.pattern != "" {
			patterns = []string{tc.pattern}
		}
		if got := redirectAllowed(patterns, tc.uri); got != tc.want {
			t.Errorf("pattern %q, uri %q: allowed %v, want %v", tc.pattern, tc.uri, got, tc.want)
		}
	}
}

func TestRedirectAllowedSeveralPatterns(t *testing.T) {
	patterns := []string{"https://a.example.com/cb", "not a pattern", "https://*.b.example.com/**"}
	for uri, want := range map[string]bool{
		"https://a.example.com/cb":     true,
		"https://x.b.example.com/y/z":  true,
		"https://c.example.com/cb":     false,
		"not a pattern":                false,
		"https://a.example.com/cb/../": false,
	} {
		if got := redirectAllowed(patterns, uri); got != want {
			t.Errorf("%q: %v, want %v", uri, got, want)
		}
	}
	if redirectAllowed(nil, "https://a.example.com/cb") {
		t.Error("no patterns allow a non-local URI")
	}
}

func TestPatternRegexp(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		valid   bool
	}{
		{"https://app.example.com/cb", true},
		{"https://*.example.com/**", true},
		{"http://localhost:*/**", true},
		{"app.example.com/cb", false},
		{"", false},
	} {
		if got := patternRegexp(tc.pattern) != nil; got != tc.valid {
			t.Errorf("patternRegexp(%q) compiled %v, want %v", tc.pattern, got, tc.valid)
		}
	}
	// The match string is scheme://host[:port]/path, without query.
	re := patternRegexp("https://*.example.com:*/a/**")
	for s, want := range map[string]bool{
		"https://x.example.com/a":         true,
		"https://x.example.com:443/a/b/c": true,
		"https://x.example.com/a?b":       false,
		"https://x.example.com/b":         false,
	} {
		if got := re.MatchString(s); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

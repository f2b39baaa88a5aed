package oauth

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/store"
)

//go:embed web/*.html
var webFS embed.FS

var (
	loginPage   = template.Must(template.ParseFS(webFS, "web/login.html"))
	messagePage = template.Must(template.ParseFS(webFS, "web/message.html"))
)

const (
	sessionCookie = "broker_session"
	csrfCookie    = "broker_csrf"
	// SessionLifetime bounds a browser login session.
	SessionLifetime = 8 * time.Hour
	// CodeLifetime is how long an authorization code can be redeemed.
	CodeLifetime = 3 * time.Minute
)

// codeRecord is what the store keeps for an authorization code, under the
// code's hash. It is deleted when the code is redeemed (single use).
type codeRecord struct {
	ClientID    string `json:"client_id"`
	UserID      string `json:"user_id"`
	RedirectURI string `json:"redirect_uri"`
	// ImplicitRedirect is set when the authorize request left redirect_uri
	// out (one URI registered): the token request may leave it out too
	// (RFC 6749 §4.1.3).
	ImplicitRedirect bool      `json:"implicit_redirect,omitempty"`
	Scope            string    `json:"scope,omitempty"`
	Challenge        string    `json:"code_challenge,omitempty"`
	Method           string    `json:"code_challenge_method,omitempty"`
	Nonce            string    `json:"nonce,omitempty"`
	AuthTime         time.Time `json:"auth_time"`
}

// session is the login session, kept client-side in a sealed cookie so any
// replica can read it.
type session struct {
	UserID   string    `json:"uid"`
	AuthTime time.Time `json:"at"`
	Expires  time.Time `json:"exp"`
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) showMessage(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = messagePage.Execute(w, map[string]string{"Title": title, "Message": msg})
}

// handleAuthorize is GET /oauth/authorize (response_type=code). Problems
// with the client or the redirect URI are shown to the user, never sent to
// an unchecked redirect target; other errors go back to the client.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	t, err := s.clients.Table(r.Context())
	if err != nil {
		s.showMessage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "Please try again.")
		return
	}
	cl := t.client(q.Get("client_id"))
	if cl == nil || (cl.Identity != nil) != (r.URL.Path == "/oauth2/authorize") {
		s.showMessage(w, http.StatusBadRequest, "Unknown client", "The application that sent you here is not registered.")
		return
	}
	patterns := redirectPatterns(cl)
	redirectURI := q.Get("redirect_uri")
	implicitRedirect := redirectURI == ""
	if implicitRedirect {
		if len(patterns) != 1 || strings.Contains(patterns[0], "*") {
			s.showMessage(w, http.StatusBadRequest, "Invalid request", "Client registration is missing redirect_uri.")
			return
		}
		redirectURI = patterns[0]
	}
	if !redirectAllowed(patterns, redirectURI) {
		s.showMessage(w, http.StatusBadRequest, "Invalid redirect", "Invalid redirect "+redirectURI+" did not match one of the registered values.")
		return
	}
	back := func(params url.Values) {
		if st := q.Get("state"); st != "" {
			params.Set("state", st)
		}
		http.Redirect(w, r, withQuery(redirectURI, params), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		back(url.Values{"error": {"unsupported_response_type"}, "error_description": {"only response_type=code is supported"}})
		return
	}
	if !slices.Contains(grantTypes(cl), "authorization_code") {
		back(url.Values{"error": {"unauthorized_client"}, "error_description": {"Unauthorized grant type: authorization_code"}})
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" {
		if method == "" {
			method = "plain"
		}
		if method != "S256" && method != "plain" {
			back(url.Values{"error": {"invalid_request"}, "error_description": {"code_challenge_method must be S256 or plain"}})
			return
		}
	}

	u, sess := s.currentUser(r)
	if u == nil || q.Get("prompt") == "login" {
		if q.Get("prompt") == "none" {
			back(url.Values{"error": {"login_required"}})
			return
		}
		cont := *r.URL
		cq := cont.Query()
		cq.Del("prompt")
		cont.RawQuery = cq.Encode()
		s.renderLogin(w, r, http.StatusOK, cl, cont.RequestURI(), "", "")
		return
	}

	code := randomToken()
	rec := codeRecord{
		ClientID: cl.ID, UserID: u.ID, RedirectURI: redirectURI, ImplicitRedirect: implicitRedirect, Scope: q.Get("scope"),
		Challenge: challenge, Method: method, Nonce: q.Get("nonce"), AuthTime: sess.AuthTime,
	}
	raw, _ := json.Marshal(rec)
	err = s.cfg.Store.Update(r.Context(), func(tx store.Tx) error {
		return tx.PutEphemeral(ephemeralKey("code", code), raw, s.cfg.Now().Add(CodeLifetime))
	})
	if err != nil {
		s.cfg.Logger.Error("store-code", err)
		back(url.Values{"error": {"server_error"}})
		return
	}
	back(url.Values{"code": {code}})
}

// redirectPatterns are the client's registered redirect URIs.
func redirectPatterns(cl *client) []string {
	if cl.Identity != nil {
		return cl.Identity.OAuth2Configuration.RedirectURIs
	}
	if oc := cl.Descriptor.OAuth2Configuration; oc != nil {
		return oc.RedirectURIs
	}
	return nil
}

// logoutPatterns are where a logout may redirect for cl.
func logoutPatterns(cl *client) []string {
	if cl.Identity != nil {
		return append(slices.Clone(cl.Identity.OAuth2Configuration.PostLogoutRedirectURIs), cl.Identity.OAuth2Configuration.RedirectURIs...)
	}
	return redirectPatterns(cl)
}

// grantTypes are the grant types cl may use.
func grantTypes(cl *client) []string {
	if cl.Identity != nil {
		return cl.Identity.OAuth2Configuration.GrantTypes
	}
	return cl.Descriptor.GrantTypes()
}

func withQuery(uri string, params url.Values) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + params.Encode()
}

// renderLogin shows the login form with a fresh CSRF token (double-submit:
// the same random value in a cookie and a hidden field).
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, cl *client, cont, username, msg string) {
	csrf := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: csrf, Path: "/", HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
	name := cl.Instance.InstanceName
	if cl.Identity != nil && cl.Identity.DisplayName != "" {
		name = cl.Identity.DisplayName
	}
	if name == "" {
		name = cl.Instance.XSAppName
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, map[string]string{
		"AppName": name, "CSRF": csrf, "Continue": cont, "Username": username, "Error": msg, "Zone": s.cfg.Zone.Name,
	})
}

// handleLogin is POST /login.do, the form's target.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.showMessage(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	cont := r.PostForm.Get("continue")
	cu, err := url.Parse(cont)
	if err != nil || (cu.Path != "/oauth/authorize" && cu.Path != "/oauth2/authorize") || cu.Host != "" || cu.Scheme != "" {
		s.showMessage(w, http.StatusBadRequest, "Invalid request", "The login form was not sent by this server.")
		return
	}
	t, err := s.clients.Table(r.Context())
	if err != nil {
		s.showMessage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "Please try again.")
		return
	}
	cl := t.client(cu.Query().Get("client_id"))
	if cl == nil {
		s.showMessage(w, http.StatusBadRequest, "Unknown client", "The application that sent you here is not registered.")
		return
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		s.renderLogin(w, r, http.StatusForbidden, cl, cont, r.PostForm.Get("username"), "Your session expired. Please sign in again.")
		return
	}
	username := r.PostForm.Get("username")
	u, oerr := s.checkUserPassword(r, username, r.PostForm.Get("password"), "unauthorized")
	if oerr != nil {
		msg := "Wrong user name or password."
		switch oerr.Status {
		case http.StatusUnauthorized:
			s.cfg.Logger.Info("login-failed", lager.Data{"client_id": cl.ID})
		case http.StatusTooManyRequests:
			msg = "Too many failed sign-ins. Please wait a few minutes and try again."
		default:
			msg = "Sign-in is busy. Please try again."
		}
		s.renderLogin(w, r, oerr.Status, cl, cont, username, msg)
		return
	}
	now := s.cfg.Now()
	if err := s.setSession(w, r, session{UserID: u.ID, AuthTime: now, Expires: now.Add(SessionLifetime)}); err != nil {
		s.cfg.Logger.Error("session", err)
		s.showMessage(w, http.StatusInternalServerError, "Error", "Sign-in failed. Please try again.")
		return
	}
	http.Redirect(w, r, cu.RequestURI(), http.StatusSeeOther)
}

func (s *Server) setSession(w http.ResponseWriter, r *http.Request, sess session) error {
	raw, _ := json.Marshal(sess)
	sealed, err := s.cfg.Sealer.Seal(raw, []byte(sessionCookie))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode, Expires: sess.Expires,
	})
	return nil
}

// currentUser returns the logged-in user of the request's session cookie,
// or nil when there is none, it expired, or the user was deleted.
func (s *Server) currentUser(r *http.Request) (*store.User, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil, nil
	}
	raw, err := s.cfg.Sealer.Open(sealed, []byte(sessionCookie))
	if err != nil {
		return nil, nil
	}
	var sess session
	if json.Unmarshal(raw, &sess) != nil || !s.cfg.Now().Before(sess.Expires) {
		return nil, nil
	}
	var u *store.User
	err = s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		u, err = tx.GetUser(sess.UserID)
		return err
	})
	if err != nil {
		return nil, nil
	}
	return u, &sess
}

// handleLogout is GET /logout.do?redirect=…&client_id=…: it ends the login
// session and redirects only to a target the client registered (or
// localhost).
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secureCookies(r), SameSite: http.SameSiteLaxMode})
	if id := r.URL.Query().Get("id_token_hint"); id != "" && r.URL.Query().Get("client_id") == "" {
		issuer := s.issuer
		if r.URL.Path == "/oauth2/logout" {
			issuer = s.identityIssuer()
		}
		if c, err := s.verifyHint(id, issuer); err == nil {
			q := r.URL.Query()
			q.Set("client_id", stringClaim(c, "azp"))
			r.URL.RawQuery = q.Encode()
		}
	}
	target := r.URL.Query().Get("redirect")
	if target == "" {
		target = r.URL.Query().Get("post_logout_redirect_uri")
	}
	if target != "" {
		var patterns []string
		if t, err := s.clients.Table(r.Context()); err == nil {
			if cl := t.client(r.URL.Query().Get("client_id")); cl != nil {
				patterns = logoutPatterns(cl)
			}
		}
		if redirectAllowed(patterns, target) {
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
	}
	s.showMessage(w, http.StatusOK, "Signed out", "You have been signed out.")
}

// handleUserinfo is GET/POST /userinfo with a user access token.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userinfo"`)
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "bearer token required"})
		return
	}
	issuer, userClaim := s.issuer, "user_id"
	if r.URL.Path == "/oauth2/userinfo" {
		issuer, userClaim = s.identityIssuer(), "user_uuid"
	}
	claims, err := s.verifyTokenOf(raw, issuer)
	if err != nil || stringClaim(claims, userClaim) == "" {
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "invalid or non-user token"})
		return
	}
	if t, err := s.clients.Table(r.Context()); err != nil || !s.alive(r, t, claims) {
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "the token was revoked, or its binding or instance deleted"})
		return
	}
	var u *store.User
	err = s.cfg.Store.View(r.Context(), func(tx store.Tx) error {
		u, err = tx.GetUser(stringClaim(claims, userClaim))
		return err
	})
	if err != nil {
		writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "unknown user"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sub": u.ID, "user_id": u.ID, "user_name": u.Username, "given_name": u.GivenName, "family_name": u.FamilyName,
		"email": u.Email, "email_verified": u.Email != "", "name": strings.TrimSpace(u.GivenName + " " + u.FamilyName),
		"origin": u.Origin, "zid": s.cfg.Zone.ID,
	})
}

// secureCookies says whether cookies get the Secure attribute: when the
// request came over TLS, or the public URLs are https (behind a
// TLS-terminating router the broker itself sees plain HTTP).
func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.cfg.XsuaaURL.Scheme == "https"
}

package issuer

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathLogin is the sign-in page.
const PathLogin = "/oauth2/login"

// errBadCredentials is the one message for an unknown user and a wrong password alike.
const errBadCredentials = "The username or password is incorrect."

// serveLogin shows the sign-in page for a pending authorization request (GET) and checks the
// password (POST). A successful sign-in starts a new session and goes back to the
// authorization endpoint with 303.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("request")
		p, c, ok := s.loadPending(w, r, id)
		if !ok {
			return
		}
		s.renderLogin(w, r, http.StatusOK, id, p, c, p.LoginHint, "")
	case http.MethodPost:
		s.postLogin(w, r)
	default:
		s.methodNotAllowed(w, r)
	}
}

func (s *Server) postLogin(w http.ResponseWriter, r *http.Request) {
	f, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	id := f["request"]
	p, c, ok := s.loadPending(w, r, id)
	if !ok {
		return
	}
	name := f["username"]
	user, refused, err := s.signIn(r.Context(), name, f["password"], s.clientIP(r))
	switch {
	case err != nil:
		s.errorPage(w, r, errServer(err))
		return
	case refused == refusedPasskeyOnly: // passkey.go; the password was right, said as a wrong one
		s.signInFailed(r, c, methodPage, refused)
		s.renderLogin(w, r, http.StatusUnauthorized, id, p, c, name, s.badCredentialsMessage())
		return
	case refused != "":
		s.signInFailed(r, c, methodPage, refused)
		s.renderLogin(w, r, http.StatusTooManyRequests, id, p, c, name, "Too many failed attempts. Wait a few minutes and try again.")
		return
	case user == nil:
		s.signInFailed(r, c, methodPage, "")
		s.renderLogin(w, r, http.StatusUnauthorized, id, p, c, name, s.badCredentialsMessage())
		return
	}
	s.completeSignIn(w, r, id, p, c, user.Name, time.Now())
}

// completeSignIn ends every way of signing a person in (password, passkey, upstream
// provider) alike: a new session for sub, signed in at authTime, the audit line (with the
// given extra fields, such as via), the pending request marked signed in, and 303 back to
// the authorization endpoint.
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, id string, p *state.Pending, c *client, sub string, authTime time.Time, audit ...zap.Field) {
	if _, err := s.startSessionAt(w, r, sub, authTime); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	s.audit(r, AuditSignIn, append([]zap.Field{clientField(c), subField(sub)}, audit...)...)
	p.SignedIn = true
	if err := s.savePending(r, id, p); err != nil {
		s.pendingFailed(w, r, err)
		return
	}
	http.Redirect(w, r, s.resumeURL(p, id), http.StatusSeeOther)
}

// renderLogin shows the sign-in form. Its CSP lets the form's answer redirect on to the
// client's redirect URI (browsers check redirects after a form POST against form-action).
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, id string, p *state.Pending, c *client, username, msg string) {
	ui.Login(w, status, ui.LoginData{
		Action:     s.base + PathLogin,
		Redirect:   p.RedirectURI,
		CSRF:       s.csrfToken(w, r),
		Hidden:     []ui.Hidden{{Name: "request", Value: id}},
		Username:   username,
		Error:      msg,
		ClientName: c.displayName(),
		IssuerHost: s.realm,
		Upstreams:  s.upstreamButtons(), // upstream_endpoint.go
		Passkey:    s.loginPasskeyForm(),
	})
}

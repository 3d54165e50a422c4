package issuer

import (
	"net/http"
	"net/url"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathEndSession is the RP-initiated logout endpoint (OpenID Connect RP-Initiated Logout 1.0).
const PathEndSession = "/oauth2/logout"

// serveEndSession signs the browser out. With a valid id_token_hint for the signed-in user it
// signs out at once; otherwise it asks for confirmation (a POST with a CSRF token), so a third
// party cannot sign users out. It redirects to post_logout_redirect_uri only when that URI is
// registered for the client the hint (or client_id) names — never an open redirect.
func (s *Server) serveEndSession(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	q, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	hintClient, hintUser, hintOK := s.parseIDTokenHint(q.Get("id_token_hint"))
	if q.Get("id_token_hint") != "" && !hintOK {
		s.errorPage(w, r, errInvalidRequest("The id_token_hint is not valid."))
		return
	}
	clientID := q.Get("client_id")
	if hintOK && clientID != "" && clientID != hintClient {
		s.errorPage(w, r, errInvalidRequest("client_id does not match the id_token_hint."))
		return
	}
	if hintOK {
		clientID = hintClient
	}
	c := s.clients[clientID]
	target := q.Get("post_logout_redirect_uri")
	if target != "" && (c == nil || !contains(c.PostLogoutRedirectURIs, target)) {
		s.errorPage(w, r, errInvalidRequest("The post_logout_redirect_uri is not registered for this client."))
		return
	}
	sess, _, err := s.currentSession(r.Context(), r)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	decision := q.Get("decision")
	confirmed := r.Method == http.MethodPost && s.checkCSRF(r, formOf(q)) &&
		(decision == ui.DecisionLogout || decision == ui.DecisionLogoutEverywhere)
	if r.Method == http.MethodPost && q.Get("decision") == ui.DecisionCancel {
		ui.Message(w, ui.MessageData{Title: "Still signed in", Message: "You are still signed in."})
		return
	}
	if sess != nil && !confirmed && !(hintOK && hintUser == sess.User) {
		hidden := []ui.Hidden{}
		for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"} {
			if v := q.Get(k); v != "" {
				hidden = append(hidden, ui.Hidden{Name: k, Value: v})
			}
		}
		name := ""
		if c != nil {
			name = c.displayName()
		}
		ui.Logout(w, ui.LogoutData{Action: s.base + PathEndSession, Redirect: target, CSRF: s.csrfToken(w, r),
			Hidden: hidden, ClientName: name, Username: s.shownName(r.Context(), sess.User), IssuerHost: s.realm})
		return
	}
	if confirmed && decision == ui.DecisionLogoutEverywhere && sess != nil {
		if err := s.SignOutEverywhere(r.Context(), sess.User); err != nil {
			s.errorPage(w, r, errServer(err))
			return
		}
		s.audit(r, AuditSignedOutEverywhere, subField(sess.User), zap.String("via", "logout"), clientField(c))
	}
	if err := s.endSession(w, r); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if target != "" {
		u, _ := url.Parse(target)
		if st := q.Get("state"); st != "" {
			v := u.Query()
			v.Set("state", st)
			u.RawQuery = v.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	ui.Message(w, ui.MessageData{Title: "Signed out", Message: "You are signed out.", Status: http.StatusOK})
}

// parseIDTokenHint verifies an ID token this issuer signed (an expired one is fine as a hint)
// and returns its client and user.
func (s *Server) parseIDTokenHint(raw string) (clientID, user string, ok bool) {
	if raw == "" {
		return "", "", false
	}
	claims := jwt.MapClaims{}
	t, err := jwt.ParseWithClaims(raw, claims, s.keys.Keyfunc, jwt.WithValidMethods([]string{s.cfg.IDTokenSigningAlg}),
		jwt.WithIssuer(s.issuer), jwt.WithoutClaimsValidation())
	if err != nil {
		return "", "", false
	}
	if typ, _ := t.Header["typ"].(string); typ != "JWT" {
		return "", "", false // an access token (at+jwt) is no ID token, even with one key for both
	}
	if iss, _ := claims["iss"].(string); iss != s.issuer {
		return "", "", false
	}
	aud, _ := claims.GetAudience()
	sub, _ := claims.GetSubject()
	if len(aud) != 1 || s.clients[aud[0]] == nil {
		return "", "", false
	}
	return aud[0], sub, true
}

func formOf(q url.Values) form {
	f := form{}
	for k := range q {
		f[k] = q.Get(k)
	}
	return f
}

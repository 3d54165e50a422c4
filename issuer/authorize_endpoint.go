package issuer

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// pendingTTL bounds how long a user may take to sign in and consent.
const pendingTTL = 15 * time.Minute

// pending is a request waiting for the user to sign in or consent: an authorization request,
// or a device verification (then Resume is the device page and RedirectURI is empty).
type pending struct {
	authRequest
	// Resume is the path the login and consent pages go back to with ?request=<id>.
	Resume    string `json:"resume"`
	Created   int64  `json:"created"`
	SignedIn  bool   `json:"signed_in,omitempty"` // the user entered a password for this request
	Consented bool   `json:"consented,omitempty"`
	Denied    bool   `json:"denied,omitempty"` // the user pressed deny on the consent page
	// DeviceCode is the hash of the device code a device verification approves.
	DeviceCode string `json:"device_code,omitempty"`
}

// resumeURL is where the login and consent pages send the browser back to.
func (s *Server) resumeURL(p *pending, id string) string {
	return s.base + p.Resume + "?request=" + url.QueryEscape(id)
}

// serveAuthorize is the authorization endpoint (RFC 6749 §3.1). It accepts GET and, as OpenID
// Connect allows, a form POST. The login and consent pages come back to it with
// ?request=<id> once the user has acted.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	q, ok := s.requestParams(w, r)
	if !ok {
		return
	}
	if id := q.Get("request"); id != "" && len(q) == 1 {
		p, c, ok := s.loadPending(w, r, id)
		if ok && p.Resume != PathAuthorize {
			s.errorPage(w, r, errInvalidRequest("This is not an authorization request."))
		} else if ok {
			s.proceed(w, r, p, c, id)
		}
		return
	}
	req, c, ae := s.parseAuthRequest(r, q)
	if ae != nil {
		s.authorizeFailed(w, r, req, ae)
		return
	}
	req.BrowserCookie = hashKey(s.csrfToken(w, r))
	s.proceed(w, r, &pending{authRequest: *req, Resume: PathAuthorize, Created: time.Now().Unix()}, c, "")
}

// proceed takes a request as far as it can go: to the login page, the consent page, or the
// response to the client. id is the request's pending id once it has been stored.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, p *pending, c *client, id string) {
	ctx := r.Context()
	if p.Denied {
		_ = s.store.Delete(ctx, bucketPending, id)
		s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: newError("access_denied", "the user denied the request"), redirect: true})
		return
	}
	sess, _, err := s.currentSession(ctx, r)
	if err != nil {
		s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: errServer(err), redirect: true})
		return
	}
	if s.needsLogin(p, sess) {
		if p.hasPrompt("none") {
			s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: newError("login_required", "the user is not signed in"), redirect: true})
			return
		}
		s.redirectToPage(w, r, p, id, PathLogin)
		return
	}
	needsConsent, err := s.needsConsent(r, p, c, sess.User)
	if err != nil {
		s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: errServer(err), redirect: true})
		return
	}
	if needsConsent {
		if p.hasPrompt("none") {
			s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: newError("consent_required", "the user has not consented"), redirect: true})
			return
		}
		s.redirectToPage(w, r, p, id, PathConsent)
		return
	}
	if id != "" {
		_ = s.store.Delete(ctx, bucketPending, id)
	}
	params, e := s.issueAuthorization(ctx, &p.authRequest, c, sess)
	if e != nil {
		s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: e, redirect: true})
		return
	}
	s.respondToClient(w, r, &p.authRequest, params)
}

// needsLogin reports whether the user must (again) enter a password: no session, prompt=login
// not yet satisfied by a sign-in for this request, or a max_age exceeded.
func (s *Server) needsLogin(p *pending, sess *session) bool {
	switch {
	case sess == nil:
		return true
	case p.SignedIn:
		return false
	case p.hasPrompt("login"):
		return true
	case p.MaxAge >= 0 && time.Now().Unix()-sess.AuthTime > p.MaxAge:
		return true
	}
	return false
}

// needsConsent reports whether the consent page must be shown. Device verifications always
// show it: the user must confirm the device they are approving.
func (s *Server) needsConsent(r *http.Request, p *pending, c *client, user string) (bool, error) {
	if p.Consented || c.Consent == "skip" && !p.hasPrompt("consent") && p.DeviceCode == "" {
		return false, nil
	}
	if p.hasPrompt("consent") || p.DeviceCode != "" {
		return true, nil
	}
	granted, err := s.consentedScopes(r.Context(), user, c.ID)
	if err != nil {
		return false, err
	}
	for _, sc := range p.Scopes {
		if !contains(granted, sc) {
			return true, nil
		}
	}
	return false, nil
}

// redirectToPage stores the request (once) and sends the browser to the login or consent page.
func (s *Server) redirectToPage(w http.ResponseWriter, r *http.Request, p *pending, id, page string) {
	if id == "" {
		var err error
		if id, err = s.storePending(r, p); err != nil {
			s.authorizeFailed(w, r, &p.authRequest, &authorizeError{Error: errServer(err), redirect: true})
			return
		}
	}
	http.Redirect(w, r, s.base+page+"?request="+url.QueryEscape(id), http.StatusSeeOther)
}

// storePending stores a new pending request and returns its id.
func (s *Server) storePending(r *http.Request, p *pending) (string, error) {
	id := randomToken()
	return id, s.savePending(r, id, p)
}

// loadPending reads a stored request for the login and consent pages. The request must belong
// to this browser: a link to someone else's pending request is refused, so a victim cannot be
// made to sign in to an attacker's authorization request.
func (s *Server) loadPending(w http.ResponseWriter, r *http.Request, id string) (*pending, *client, bool) {
	raw, err := s.store.Get(r.Context(), bucketPending, id)
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, r, &Error{Code: "invalid_request", Description: "This sign-in request has expired or was already used. Go back to the application and start again."})
		return nil, nil, false
	} else if err != nil {
		s.errorPage(w, r, errServer(err))
		return nil, nil, false
	}
	var p pending
	if json.Unmarshal(raw, &p) != nil {
		s.errorPage(w, r, errServer(errors.New("corrupt pending request")))
		return nil, nil, false
	}
	c := s.clients[p.ClientID]
	if c == nil || hashKey(s.cookie(r, csrfCookie)) != p.BrowserCookie {
		s.errorPage(w, r, &Error{Code: "invalid_request", Description: "This sign-in request belongs to another browser. Go back to the application and start again."})
		return nil, nil, false
	}
	return &p, c, true
}

// savePending writes back a pending request after the user acted on it.
func (s *Server) savePending(r *http.Request, id string, p *pending) error {
	raw, _ := json.Marshal(p)
	return s.store.Put(r.Context(), bucketPending, id, raw, pendingTTL)
}

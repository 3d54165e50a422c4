package issuer

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// pendingTTL bounds how long a user may take to sign in and consent.
const pendingTTL = 15 * time.Minute

// resumeURL is where the login and consent pages send the browser back to.
func (s *Server) resumeURL(p *state.Pending, id string) string {
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
	pushed := q.Has("request_uri")
	if pushed {
		// RFC 9126 §4: the pushed request is the request; the other parameters are ignored.
		if q, ok = s.takePushed(w, r, q); !ok {
			return
		}
	}
	req, c, ae := s.checkAuthRequest(r, q, pushed)
	if ae != nil {
		s.authorizeFailed(w, r, req, ae)
		return
	}
	req.BrowserCookie = state.Key(s.csrfToken(w, r))
	s.proceed(w, r, &state.Pending{AuthRequest: *req, Resume: PathAuthorize, Created: time.Now().Unix()}, c, "")
}

// proceed takes a request as far as it can go: to the login page, the consent page, or the
// response to the client. id is the request's pending id once it has been stored.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, p *state.Pending, c *client, id string) {
	ctx := r.Context()
	if p.Denied {
		if s.complete(w, r, p, id) {
			s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: newError("access_denied", "the user denied the request"), redirect: true})
		}
		return
	}
	sess, _, err := s.currentSession(ctx, r)
	if err != nil {
		s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: errServer(err), redirect: true})
		return
	}
	if s.needsLogin(p, sess) {
		if p.HasPrompt("none") {
			s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: newError("login_required", "the user is not signed in"), redirect: true})
			return
		}
		s.redirectToPage(w, r, p, id, PathLogin)
		return
	}
	needsConsent, err := s.needsConsent(r, p, c, sess.User)
	if err != nil {
		s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: errServer(err), redirect: true})
		return
	}
	if needsConsent {
		if p.HasPrompt("none") {
			s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: newError("consent_required", "the user has not consented"), redirect: true})
			return
		}
		s.redirectToPage(w, r, p, id, PathConsent)
		return
	}
	if !s.complete(w, r, p, id) {
		return
	}
	params, e := s.issueAuthorization(r, &p.AuthRequest, c, sess)
	if e != nil {
		s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: e, redirect: true})
		return
	}
	s.respondToClient(w, r, &p.AuthRequest, params)
}

// needsLogin reports whether the user must (again) enter a password: no session, prompt=login
// not yet satisfied by a sign-in for this request, or a max_age exceeded.
func (s *Server) needsLogin(p *state.Pending, sess *state.Session) bool {
	switch {
	case sess == nil:
		return true
	case p.SignedIn:
		return false
	case p.HasPrompt("login"):
		return true
	case p.MaxAge >= 0 && time.Now().Unix()-sess.AuthTime > p.MaxAge:
		return true
	}
	return false
}

// needsConsent reports whether the consent page must be shown. Device verifications always
// show it: the user must confirm the device they are approving.
func (s *Server) needsConsent(r *http.Request, p *state.Pending, c *client, user string) (bool, error) {
	if p.Consented || c.Consent == "skip" && !c.dynamic() && !p.HasPrompt("consent") && p.DeviceCode == "" {
		return false, nil
	}
	if p.HasPrompt("consent") || p.DeviceCode != "" || c.dynamic() {
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

// complete takes a stored request out of the store before it is answered, so that it is
// answered once however often the browser replays or races the last step; on false the page
// has been answered. A request never stored (id "") needs nothing.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, p *state.Pending, id string) bool {
	if id == "" {
		return true
	}
	switch err := s.state.TakePending(r.Context(), id); {
	case errors.Is(err, state.ErrPendingGone):
		s.errorPage(w, r, errPendingGone)
		return false
	case err != nil:
		s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: errServer(err), redirect: true})
		return false
	}
	return true
}

// pendingFailed shows why a pending request could not be written back: it was answered or
// expired meanwhile (a raced or replayed form), or the store failed.
func (s *Server) pendingFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, state.ErrPendingGone) {
		s.errorPage(w, r, errPendingGone)
		return
	}
	s.errorPage(w, r, errServer(err))
}

// errPendingGone is the page for a request that expired or was answered already.
var errPendingGone = &Error{Code: "invalid_request", Description: "This sign-in request has expired or was already used. Go back to the application and start again."}

// redirectToPage stores the request (once) and sends the browser to the login or consent page.
func (s *Server) redirectToPage(w http.ResponseWriter, r *http.Request, p *state.Pending, id, page string) {
	if id == "" {
		var e *Error
		if id, e = s.storePending(w, r, p); e != nil {
			if e.Status == http.StatusTooManyRequests {
				s.errorPage(w, r, e)
			} else {
				s.authorizeFailed(w, r, &p.AuthRequest, &authorizeError{Error: e, redirect: true})
			}
			return
		}
	}
	http.Redirect(w, r, s.base+page+"?request="+url.QueryEscape(id), http.StatusSeeOther)
}

// storePending stores a new pending request and returns its id. Each counts against its
// address and its client for pendingTTL: past PendingPerAddress or PendingPerClient the
// request is refused with 429 and Retry-After, so nobody can fill the store with requests
// that are never finished.
func (s *Server) storePending(w http.ResponseWriter, r *http.Request, p *state.Pending) (string, *Error) {
	if e := s.admitPending(w, r, p.ClientID, true); e != nil {
		return "", e
	}
	ctx := r.Context()
	id := state.NewID()
	if err := s.state.PutPending(ctx, id, p, pendingTTL); err != nil {
		return "", errServer(err)
	}
	return id, nil
}

// loadPending reads a stored request for the login and consent pages. The request must belong
// to this browser: a link to someone else's pending request is refused, so a victim cannot be
// made to sign in to an attacker's authorization request.
func (s *Server) loadPending(w http.ResponseWriter, r *http.Request, id string) (*state.Pending, *client, bool) {
	p, err := s.state.Pending(r.Context(), id)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return nil, nil, false
	}
	if p == nil {
		s.errorPage(w, r, errPendingGone)
		return nil, nil, false
	}
	c, err := s.lookupClient(r.Context(), p.ClientID)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return nil, nil, false
	}
	if c == nil || state.Key(s.cookie(r, csrfCookie)) != p.BrowserCookie {
		s.errorPage(w, r, &Error{Code: "invalid_request", Description: "This sign-in request belongs to another browser. Go back to the application and start again."})
		return nil, nil, false
	}
	return p, c, true
}

// savePending writes back a pending request after the user acted on it; it fails with
// state.ErrPendingGone when the request was answered (or expired) meanwhile.
func (s *Server) savePending(r *http.Request, id string, p *state.Pending) error {
	return s.state.SavePending(r.Context(), id, p, time.Unix(p.Created, 0).Add(pendingTTL))
}

// admitPending counts one more pending request (a stored authorization request, or a pushed
// one) of clientID, and of the request's address when perAddress, for pendingTTL; past
// PendingPerClient or PendingPerAddress it is refused with 429 and Retry-After.
func (s *Server) admitPending(w http.ResponseWriter, r *http.Request, clientID string, perAddress bool) *Error {
	ctx, now := r.Context(), time.Now()
	win := state.Window{Length: pendingTTL, Now: now}
	type bound struct {
		name   string
		limit  int
		called string
	}
	bounds := []bound{{"pending:client:" + clientID, s.cfg.Limits.PendingPerClient, limitPendingClient}}
	if perAddress {
		bounds = append([]bound{{"pending:address:" + s.clientIP(r), s.cfg.Limits.PendingPerAddress, limitPendingAddress}}, bounds...)
	}
	for _, b := range bounds {
		n, err := s.state.Count(ctx, b.name, 1, win)
		if err != nil {
			return errServer(err)
		}
		if n > int64(b.limit) {
			s.throttled(r, s.clients[clientID], b.called)
			w.Header().Set("Retry-After", retryAfter(win.Reset(), now))
			return &Error{Code: "temporarily_unavailable", Status: http.StatusTooManyRequests,
				Description: "Too many sign-in requests from here. Wait a few minutes and try again."}
		}
	}
	return nil
}

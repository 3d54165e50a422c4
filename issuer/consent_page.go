package issuer

import (
	"context"
	"net/http"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathConsent is the consent page.
const PathConsent = "/oauth2/consent"

// serveConsent asks the signed-in user to allow or deny a client's request for scopes.
// Allowing is remembered per user and client (for the scopes granted) unless prompt=consent
// asks again; denying sends access_denied to the client.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	var id string
	var f form
	switch r.Method {
	case http.MethodGet:
		id = r.URL.Query().Get("request")
	case http.MethodPost:
		var ok bool
		if f, ok = s.pageForm(w, r); !ok {
			return
		}
		id = f["request"]
	default:
		s.methodNotAllowed(w, r)
		return
	}
	p, c, ok := s.loadPending(w, r, id)
	if !ok {
		return
	}
	sess, _, err := s.currentSession(r.Context(), r)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	resume := s.resumeURL(p, id)
	if sess == nil { // signed out meanwhile: the authorization endpoint sends to the login page
		http.Redirect(w, r, resume, http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodGet {
		d := ui.ConsentData{Action: s.base + PathConsent, Redirect: p.RedirectURI, CSRF: s.csrfToken(w, r),
			Hidden: []ui.Hidden{{Name: "request", Value: id}}, ClientName: c.displayName(), ClientID: c.ID,
			Username: s.shownName(r.Context(), sess.User), Scopes: p.Scopes, SelfRegistered: c.kind == kindRegistered}
		if doc := c.document; doc != nil {
			// A document's name is whatever its author wrote: the host it came from is shown
			// with it, and stands for it when there is none.
			d.ClientHost, d.LoopbackOnly = doc.host, doc.loopbackOnly
			if c.Name == "" {
				d.ClientName = doc.host
			}
		}
		ui.Consent(w, d)
		return
	}
	switch f["decision"] {
	case "allow":
		if err := s.state.AddConsent(r.Context(), sess.User, c.ID, p.Scopes); err != nil {
			s.errorPage(w, r, errServer(err))
			return
		}
		s.audit(r, AuditConsentGranted, clientField(c), subField(sess.User), scopeField(p.Scopes))
		p.Consented = true
		if err := s.savePending(r, id, p); err != nil {
			s.pendingFailed(w, r, err)
			return
		}
		http.Redirect(w, r, resume, http.StatusSeeOther)
	case "deny":
		s.audit(r, AuditConsentDenied, clientField(c), subField(sess.User), scopeField(p.Scopes))
		p.Denied = true
		if err := s.savePending(r, id, p); err != nil {
			s.pendingFailed(w, r, err)
			return
		}
		http.Redirect(w, r, resume, http.StatusSeeOther)
	default:
		s.errorPage(w, r, errInvalidRequest("decision must be allow or deny"))
	}
}

// consentedScopes returns the scopes user has allowed client to have.
func (s *Server) consentedScopes(ctx context.Context, user, clientID string) ([]string, error) {
	m, err := s.state.Consents(ctx, user)
	if err != nil {
		return nil, err
	}
	return m[clientID], nil
}

// WithdrawConsent forgets what user allowed client and revokes the client's refresh tokens
// for the user; the next authorization asks for consent again.
func (s *Server) WithdrawConsent(ctx context.Context, user, clientID string) error {
	if err := s.state.WithdrawConsent(ctx, user, clientID); err != nil {
		return err
	}
	return s.state.RevokeBefore(ctx, user, clientID, time.Now())
}

// SignOutEverywhere ends every browser session and every refresh-token family of user.
func (s *Server) SignOutEverywhere(ctx context.Context, user string) error {
	return s.state.RevokeBefore(ctx, user, "", time.Now())
}

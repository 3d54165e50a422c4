package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// cookieName returns the name of one of the issuer's cookies. An issuer at the root of its
// host uses base as it is; an issuer under a path adds a short digest of the path, so that
// issuers under several paths of one host (and one at the root) keep separate sessions. Over
// TLS every name takes the "__Host-" prefix, which pins the cookie to this host and path "/"
// with Secure (RFC 6265bis §4.1.3.2): a sibling subdomain cannot plant one (with "__Secure-"
// and a longer Path it could, and so learn the CSRF token of a browser).
func (s *Server) cookieName(r *http.Request, base string) string {
	if r.TLS != nil {
		return "__Host-" + base + s.cookieSuffix
	}
	return base + s.cookieSuffix
}

// cookieSuffixFor is what cookieName appends for an issuer at path base ("" at the root).
func cookieSuffixFor(base string) string {
	if base == "" {
		return ""
	}
	d := sha256.Sum256([]byte(base))
	return "_" + hex.EncodeToString(d[:4])
}

// setCookie writes an HttpOnly, SameSite=Lax cookie (Secure over TLS). Lax lets the cookie
// come along on the top-level navigation from the client's site to the authorization endpoint
// while keeping it off cross-site POSTs.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: s.cookieName(r, base), Value: value, Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func (s *Server) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(s.cookieName(r, base))
	if err != nil {
		return ""
	}
	return c.Value
}

const (
	sessionCookie = "tollgate_session"
	csrfCookie    = "tollgate_csrf"
)

// currentSession returns the browser's live session and its id, or nil.
func (s *Server) currentSession(ctx context.Context, r *http.Request) (*state.Session, string, error) {
	sid := s.cookie(r, sessionCookie)
	if sid == "" {
		return nil, "", nil
	}
	sess, err := s.state.Session(ctx, sid)
	if sess == nil || err != nil {
		return nil, "", err
	}
	if u, err := s.lookupUser(ctx, sess.User); u == nil || err != nil {
		return nil, "", err // nil, nil: the user was removed
	}
	return sess, sid, nil
}

// startSession signs the browser in as user, replacing any earlier session (a new id on every
// sign-in prevents session fixation).
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, user string) (*state.Session, error) {
	return s.startSessionAt(w, r, user, time.Now())
}

// startSessionAt is startSession for a user who authenticated at authTime (an upstream
// provider's auth_time), which becomes the session's auth_time.
func (s *Server) startSessionAt(w http.ResponseWriter, r *http.Request, user string, authTime time.Time) (*state.Session, error) {
	if old := s.cookie(r, sessionCookie); old != "" {
		_ = s.state.DeleteSession(r.Context(), old)
	}
	now := time.Now()
	ttl := time.Duration(s.cfg.SessionTTL)
	sess := &state.Session{User: user, AuthTime: authTime.Unix(), Expires: now.Add(ttl).Unix(), Created: now.UnixNano()}
	sid := state.NewSecret()
	if err := s.state.PutSession(r.Context(), sid, *sess, ttl); err != nil {
		return nil, err
	}
	s.setCookie(w, r, sessionCookie, sid, ttl)
	return sess, nil
}

// endSession signs the browser out.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) error {
	s.setCookie(w, r, sessionCookie, "", -1)
	if sid := s.cookie(r, sessionCookie); sid != "" {
		return s.state.DeleteSession(r.Context(), sid)
	}
	return nil
}

// csrfToken returns the browser's CSRF token, setting the cookie when there is none. Forms
// carry it in a hidden csrf_token field (double-submit cookie); the cookie is HttpOnly and
// SameSite=Lax, so another site can neither read it nor send it with a POST.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if v := s.cookie(r, csrfCookie); len(v) >= 22 {
		return v
	}
	v := state.NewID()
	s.setCookie(w, r, csrfCookie, v, 0)
	// Later reads within this request see the new value.
	r.AddCookie(&http.Cookie{Name: s.cookieName(r, csrfCookie), Value: v})
	return v
}

// checkCSRF verifies a POSTed form's csrf_token against the cookie in constant time.
func (s *Server) checkCSRF(r *http.Request, f form) bool {
	c := s.cookie(r, csrfCookie)
	t := f["csrf_token"]
	return len(c) >= 22 && subtle.ConstantTimeCompare([]byte(c), []byte(t)) == 1
}

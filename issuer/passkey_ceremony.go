package issuer

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// A ceremony between its begin and its finish: go-webauthn's SessionData in the store
// (state.Ceremony, under Key of a random id, for passkeyCeremonyTTL), the id in a cookie of
// the browser that began it, and the Key of that browser's CSRF cookie in the record. The
// finish takes it, once, on whichever node it reaches.

// passkeyCookie holds the id of the browser's ceremony in progress: only the browser that
// began a ceremony can finish it.
const passkeyCookie = "tollgate_passkey"

// Kinds of ceremony.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
)

// errPasskeyCeremony is the answer to a finish without its ceremony: never begun, finished
// already, expired, or begun in another browser.
var errPasskeyCeremony = &Error{Code: "invalid_request", Status: http.StatusBadRequest,
	Description: "This passkey request has expired or was already used. Try again."}

// passkeyBeginAllowed checks what every begin request needs — POST, a form with the page's
// CSRF token — and counts it against the address: past passkeyCeremoniesPerAddress in a
// throttle window it is refused with 429 and Retry-After. On failure it has answered.
func (s *Server) passkeyBeginAllowed(w http.ResponseWriter, r *http.Request) bool {
	f, e := parsePostForm(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return false
	}
	if !s.checkCSRF(r, f) {
		s.writeJSONError(w, r, &Error{Code: "invalid_request", Status: http.StatusForbidden,
			Description: "The page expired or came from another site. Reload it and try again."})
		return false
	}
	now := time.Now()
	win := window(now)
	n, err := s.state.Count(r.Context(), "passkey:address:"+s.clientIP(r), 1, win)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return false
	}
	if n > passkeyCeremoniesPerAddress {
		s.throttled(r, nil, limitPasskeyAddress)
		w.Header().Set("Retry-After", retryAfter(win.Reset(), now))
		s.writeJSONError(w, r, &Error{Code: "temporarily_unavailable", Status: http.StatusTooManyRequests,
			Description: "Too many passkey attempts from here. Wait a few minutes and try again."})
		return false
	}
	return true
}

// putCeremony stores a begun ceremony and gives the browser its id in a cookie. On failure it
// has answered.
func (s *Server) putCeremony(w http.ResponseWriter, r *http.Request, kind, user string, sd *webauthn.SessionData) bool {
	raw, err := json.Marshal(sd)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return false
	}
	id := state.NewSecret()
	c := state.Ceremony{Kind: kind, User: user, Browser: state.Key(s.cookie(r, csrfCookie)), Session: raw}
	if err := s.state.PutCeremony(r.Context(), id, c, passkeyCeremonyTTL); err != nil {
		s.writeJSONError(w, r, errServer(err))
		return false
	}
	s.setCookie(w, r, passkeyCookie, id, passkeyCeremonyTTL)
	return true
}

// takeCeremony takes the browser's ceremony of kind, once, and clears its cookie.
func (s *Server) takeCeremony(w http.ResponseWriter, r *http.Request, kind string) (*state.Ceremony, webauthn.SessionData, *Error) {
	var sd webauthn.SessionData
	id := s.cookie(r, passkeyCookie)
	s.setCookie(w, r, passkeyCookie, "", -1)
	c, err := s.state.TakeCeremony(r.Context(), id)
	if err != nil {
		return nil, sd, errServer(err)
	}
	browser := state.Key(s.cookie(r, csrfCookie))
	if c == nil || c.Kind != kind || subtle.ConstantTimeCompare([]byte(c.Browser), []byte(browser)) != 1 {
		return nil, sd, errPasskeyCeremony
	}
	if err := json.Unmarshal(c.Session, &sd); err != nil {
		return nil, sd, errServer(err)
	}
	return c, sd, nil
}

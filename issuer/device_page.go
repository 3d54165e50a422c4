package issuer

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathDevice is the verification page of the device flow (RFC 8628 §3.3, verification_uri).
const PathDevice = "/oauth2/device"

// Messages of the device page. Unknown, mistyped, expired and used codes read alike, so the
// page tells a guesser nothing.
const (
	msgBadUserCode   = "That code is not valid or has expired. Check the code on your device and try again."
	msgTooManyGuess  = "Too many wrong codes. Wait a few minutes and try again."
	msgDeviceExpired = "The code has expired or was already used. Start again on your device."
)

// serveDevice is the verification page. GET shows the form, prefilled once from
// verification_uri_complete's one-time link (or from a user_code parameter); POST looks the code up and starts the sign-in and
// consent steps, which come back here with ?request=<id> (GET) once the user has acted.
func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		if id := q.Get("request"); id != "" {
			p, c, ok := s.loadPending(w, r, id)
			if ok && p.Resume != PathDevice {
				s.errorPage(w, r, errInvalidRequest("This is not a device verification."))
			} else if ok {
				s.proceedDevice(w, r, p, c, id)
			}
			return
		}
		prefill := q.Get("user_code") // a URL some device built itself: it is logged, but works
		if link := q.Get(deviceLinkParam); link != "" {
			code, err := s.state.TakeDeviceLink(r.Context(), link)
			if err != nil {
				s.errorPage(w, r, errServer(err))
				return
			}
			prefill = code // "" for a used or expired link: the person types the code
		}
		if code, ok := normalizeUserCode(prefill); ok {
			prefill = displayUserCode(code)
		} else if len(prefill) > 4*userCodeLength {
			prefill = ""
		}
		s.renderDevice(w, r, http.StatusOK, prefill, "")
	case http.MethodPost:
		s.postDevice(w, r)
	default:
		s.methodNotAllowed(w, r)
	}
}

func (s *Server) postDevice(w http.ResponseWriter, r *http.Request) {
	f, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	ctx, typed := r.Context(), f["user_code"]
	if len(typed) > 4*userCodeLength {
		typed = ""
	}
	// User-code guessing is throttled per address (RFC 8628 §5.1), counted before the code is
	// looked up; a right code takes its count back.
	win, guess := window(time.Now()), "user-code:address:"+s.clientIP(r)
	n, err := s.state.Count(ctx, guess, 1, win)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if n > int64(s.cfg.Limits.UserCodeFailuresPerAddress) {
		s.throttled(r, nil, limitUserCode)
		w.Header().Set("Retry-After", retryAfter(win.Reset(), win.Now))
		s.renderDevice(w, r, http.StatusTooManyRequests, typed, msgTooManyGuess)
		return
	}
	key, rec, err := s.lookupUserCode(ctx, typed)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	var c *client
	if rec != nil {
		if c, err = s.lookupClient(ctx, rec.ClientID); err != nil { // nil if the client was removed since
			s.errorPage(w, r, errServer(err))
			return
		}
	}
	if c == nil {
		s.renderDevice(w, r, http.StatusBadRequest, typed, msgBadUserCode)
		return
	}
	_, _ = s.state.Count(ctx, guess, -1, win)
	p := &state.Pending{
		AuthRequest: state.AuthRequest{ClientID: c.ID, Scopes: rec.Scopes, MaxAge: -1,
			BrowserCookie: state.Key(s.csrfToken(w, r))},
		Resume: PathDevice, Created: time.Now().Unix(), DeviceCode: key,
	}
	s.proceedDevice(w, r, p, c, "")
}

// lookupUserCode finds the live device authorization of a typed user code: its key and
// record, or a nil record when the code is malformed, unknown, expired or already decided.
func (s *Server) lookupUserCode(ctx context.Context, typed string) (state.DeviceKey, *state.Device, error) {
	code, ok := normalizeUserCode(typed)
	if !ok {
		return "", nil, nil
	}
	key, rec, err := s.state.DeviceByUserCode(ctx, code)
	if err != nil || rec == nil || rec.Expired(time.Now()) {
		return "", nil, err
	}
	return key, rec, nil
}

// proceedDevice takes a device verification as far as it can go: to the login page, the
// consent page (always shown for a device), or the decision. id is the pending id once stored.
func (s *Server) proceedDevice(w http.ResponseWriter, r *http.Request, p *state.Pending, c *client, id string) {
	if p.Denied {
		s.decideDevice(w, r, p, id, nil)
		return
	}
	sess, _, err := s.currentSession(r.Context(), r)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if s.needsLogin(p, sess) {
		s.redirectToPage(w, r, p, id, PathLogin)
		return
	}
	needsConsent, err := s.needsConsent(r, p, c, sess.User)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if needsConsent {
		s.redirectToPage(w, r, p, id, PathConsent)
		return
	}
	s.decideDevice(w, r, p, id, sess)
}

// decideDevice records the user's answer: approval by sess, or denial when sess is nil. A
// device code is decided once (state.Decide), and its user code cannot be entered again.
func (s *Server) decideDevice(w http.ResponseWriter, r *http.Request, p *state.Pending, id string, sess *state.Session) {
	ctx := r.Context()
	if id != "" {
		if err := s.state.TakePending(ctx, id); errors.Is(err, state.ErrPendingGone) {
			s.errorPage(w, r, errInvalidRequest(msgDeviceExpired))
			return
		} else if err != nil {
			s.errorPage(w, r, errServer(err))
			return
		}
	}
	d := state.Decision{Approved: sess != nil}
	if sess != nil {
		d.User, d.AuthTime, d.Scopes = sess.User, sess.AuthTime, p.Scopes
	}
	switch err := s.state.Decide(ctx, p.DeviceCode, d, time.Duration(s.cfg.DeviceCodeTTL)); {
	case errors.Is(err, state.ErrDecided):
		s.errorPage(w, r, errInvalidRequest(msgDeviceExpired))
		return
	case err != nil:
		s.errorPage(w, r, errServer(err))
		return
	}
	if !d.Approved {
		s.audit(r, AuditDeviceDenied, s.clientIDField(p.ClientID))
		ui.Message(w, ui.MessageData{Title: "Device not connected",
			Message: "You denied access. The device will not be signed in; you may close this page."})
		return
	}
	s.audit(r, AuditDeviceApproved, s.clientIDField(p.ClientID), subField(d.User), scopeField(d.Scopes))
	ui.Message(w, ui.MessageData{Title: "Device connected", Message: "You may return to your device."})
}

// renderDevice shows the code entry form.
func (s *Server) renderDevice(w http.ResponseWriter, r *http.Request, status int, userCode, msg string) {
	ui.Device(w, status, ui.DeviceData{Action: s.base + PathDevice, CSRF: s.csrfToken(w, r),
		UserCode: userCode, Error: msg})
}

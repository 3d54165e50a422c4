package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathDevice is the verification page of the device flow (RFC 8628 §3.3, verification_uri).
const PathDevice = "/oauth2/device"

// User-code guessing is throttled per client IP (RFC 8628 §5.1): past this many wrong codes in
// throttleWindow, the page refuses to look codes up.
const maxUserCodeFailuresPerIP = 10

// Messages of the device page. Unknown, mistyped, expired and used codes read alike, so the
// page tells a guesser nothing.
const (
	msgBadUserCode   = "That code is not valid or has expired. Check the code on your device and try again."
	msgTooManyGuess  = "Too many wrong codes. Wait a few minutes and try again."
	msgDeviceExpired = "The code has expired or was already used. Start again on your device."
)

// deviceDecision is the user's answer to a device authorization, recorded once.
type deviceDecision struct {
	Approved bool     `json:"approved"`
	User     string   `json:"user,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// serveDevice is the verification page. GET shows the form (prefilled from
// verification_uri_complete's user_code); POST looks the code up and starts the sign-in and
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
		prefill := q.Get("user_code")
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
	throttleKey := "user_code_ip:" + s.clientIP(r)
	throttled, err := s.throttled(ctx, throttleKey, maxUserCodeFailuresPerIP)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if throttled {
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
		c = s.clients[rec.ClientID] // nil if the client was removed since
	}
	if c == nil {
		s.countFailure(ctx, throttleKey)
		s.renderDevice(w, r, http.StatusBadRequest, typed, msgBadUserCode)
		return
	}
	p := &pending{
		authRequest: authRequest{ClientID: c.ID, Scopes: rec.Scopes, MaxAge: -1,
			BrowserCookie: hashKey(s.csrfToken(w, r))},
		Resume: PathDevice, Created: time.Now().Unix(), DeviceCode: key,
	}
	s.proceedDevice(w, r, p, c, "")
}

// lookupUserCode finds the live device authorization of a typed user code: its key and
// record, or a nil record when the code is malformed, unknown, expired or already decided.
func (s *Server) lookupUserCode(ctx context.Context, typed string) (string, *deviceRecord, error) {
	code, ok := normalizeUserCode(typed)
	if !ok {
		return "", nil, nil
	}
	raw, err := s.store.Get(ctx, bucketDeviceUserCodes, hashKey(code))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil
	} else if err != nil {
		return "", nil, err
	}
	key := string(raw)
	rec, err := s.loadDevice(ctx, key)
	if err != nil || rec == nil || rec.expired() {
		return "", nil, err
	}
	return key, rec, nil
}

// proceedDevice takes a device verification as far as it can go: to the login page, the
// consent page (always shown for a device), or the decision. id is the pending id once stored.
func (s *Server) proceedDevice(w http.ResponseWriter, r *http.Request, p *pending, c *client, id string) {
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
// device code is decided once: the decision is created atomically, and its user code is
// deleted so it cannot be entered again.
func (s *Server) decideDevice(w http.ResponseWriter, r *http.Request, p *pending, id string, sess *session) {
	ctx := r.Context()
	if id != "" {
		_ = s.store.Delete(ctx, bucketPending, id)
	}
	rec, err := s.loadDevice(ctx, p.DeviceCode)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if rec == nil || rec.expired() {
		s.errorPage(w, r, errInvalidRequest(msgDeviceExpired))
		return
	}
	d := deviceDecision{Approved: sess != nil}
	if sess != nil {
		d.User, d.AuthTime, d.Scopes = sess.User, sess.AuthTime, p.Scopes
	}
	raw, _ := json.Marshal(d)
	switch err := s.store.Create(ctx, bucketDeviceDecisions, p.DeviceCode, raw, s.deviceRetention(rec)); {
	case errors.Is(err, store.ErrExists):
		s.errorPage(w, r, errInvalidRequest(msgDeviceExpired))
		return
	case err != nil:
		s.errorPage(w, r, errServer(err))
		return
	}
	_ = s.store.Delete(ctx, bucketDeviceUserCodes, rec.UserCode)
	if !d.Approved {
		ui.Message(w, ui.MessageData{Title: "Device not connected",
			Message: "You denied access. The device will not be signed in; you may close this page."})
		return
	}
	ui.Message(w, ui.MessageData{Title: "Device connected", Message: "You may return to your device."})
}

// renderDevice shows the code entry form.
func (s *Server) renderDevice(w http.ResponseWriter, r *http.Request, status int, userCode, msg string) {
	ui.Device(w, status, ui.DeviceData{Action: s.base + PathDevice, CSRF: s.csrfToken(w, r),
		UserCode: userCode, Error: msg})
}

package issuer

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Error is an OAuth 2.0 error response (RFC 6749 §5.2). Grants and endpoints return Error
// values; only the endpoint writes them.
type Error struct {
	// Code is the RFC error code, e.g. "invalid_grant".
	Code string
	// Description is a short human-readable text for the client developer. It never holds a
	// secret, a token or a code.
	Description string
	// Status is the HTTP status; 400 when zero.
	Status int
	// basicChallenge asks for a `WWW-Authenticate: Basic` header (invalid_client via Basic).
	basicChallenge bool
	// cause is kept for the log, never sent.
	cause error
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

func newError(code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// Error constructors for the RFC 6749 §5.2 codes.
func errInvalidRequest(d string) *Error       { return newError("invalid_request", d) }
func errInvalidScope(d string) *Error         { return newError("invalid_scope", d) }
func errUnauthorizedClient(d string) *Error   { return newError("unauthorized_client", d) }
func errUnsupportedGrantType(d string) *Error { return newError("unsupported_grant_type", d) }
func errInvalidGrant(d string) *Error         { return newError("invalid_grant", d) }

// errInvalidTarget is RFC 8707 §2's error for a resource parameter that is malformed or names
// no audience the client may have.
func errInvalidTarget(d string) *Error { return newError("invalid_target", d) }

func errInvalidClient(basic bool) *Error {
	return &Error{Code: "invalid_client", Description: "client authentication failed",
		Status: http.StatusUnauthorized, basicChallenge: basic}
}

// errServer maps an internal failure to a response: a store outage is a 503
// temporarily_unavailable, anything else a 500 server_error. The cause goes only to the log.
func errServer(cause error) *Error {
	if errors.Is(cause, errDocumentsBusy) {
		return &Error{Code: "temporarily_unavailable", Description: "too many new clients at once, try again in a moment",
			Status: http.StatusServiceUnavailable, cause: cause}
	}
	if errors.Is(cause, store.ErrUnavailable) {
		return &Error{Code: "temporarily_unavailable", Description: "storage is unavailable, try again later",
			Status: http.StatusServiceUnavailable, cause: cause}
	}
	return &Error{Code: "server_error", Description: "internal error", Status: http.StatusInternalServerError, cause: cause}
}

// writeJSONError writes e as an RFC 6749 §5.2 JSON body with Cache-Control: no-store.
func (s *Server) writeJSONError(w http.ResponseWriter, r *http.Request, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	if e.basicChallenge {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+s.realm+`", charset="UTF-8"`)
	}
	setRetryAfter(w, status)
	if status >= 500 {
		s.log.Error("request failed", logFields(r, e)...)
	} else if c := s.log.Check(debugLevel, "client error"); c != nil {
		c.Write(logFields(r, e)...)
	}
	body := struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description}
	writeJSON(w, status, body)
}

// writeJSON writes v as JSON with the headers every token-endpoint-like response needs.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// storeRetryAfter is the Retry-After of a 503 that names no time of its own: a store
// failover (a Sentinel promoting a replica) takes a few seconds.
const storeRetryAfter = "2"

// setRetryAfter gives a 503 a Retry-After (RFC 9110 §10.2.3) unless it has one already (a
// throttle's, which knows its window).
func setRetryAfter(w http.ResponseWriter, status int) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", storeRetryAfter)
	}
}

package policy

import (
	"fmt"
	"net/http"
	"strings"
)

// RFC 6750 §3.1 error codes, the values of Denial.Code.
const (
	// CodeInvalidRequest: the request is malformed (400).
	CodeInvalidRequest = "invalid_request"
	// CodeInvalidToken: the token is expired, revoked, malformed or otherwise invalid (401).
	CodeInvalidToken = "invalid_token"
	// CodeInsufficientScope: the token lacks a scope the request needs, or its claims do not
	// satisfy the route's conditions (403).
	CodeInsufficientScope = "insufficient_scope"
)

// Reasons are the values of Denial.Reason: a small fixed set, fit for a metrics label.
const (
	ReasonNoToken           = "no_token"
	ReasonInvalidRequest    = "invalid_request"
	ReasonInvalidToken      = "invalid_token"
	ReasonExpired           = "expired"
	ReasonRevoked           = "revoked"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonClaims            = "claims"
	ReasonUnavailable       = "unavailable"
	// ReasonAmbiguousPath: the request path could be read differently by a rule and by the
	// upstream (an encoded slash, a backslash, a dot segment; see Gate.RequiredScopes). 400.
	ReasonAmbiguousPath = "ambiguous_path"
)

// RetryAfterSeconds is the Retry-After of a 503 answered while the issuer's keys are unavailable.
const RetryAfterSeconds = "5"

// Denial is why a request was refused, in RFC 6750 terms.
type Denial struct {
	// Status is the HTTP status to answer with: 400, 401, 403, or 503 while the token cannot be
	// judged (the issuer's keys or introspection endpoint are out of reach).
	Status int
	// Code is the RFC 6750 error code; empty when the request carried no token at all (§3.1:
	// then the challenge has no error attribute), and on a 503.
	Code string
	// Description is a short, generic error_description that is safe to show the client.
	Description string
	// Scope lists, space-separated, every scope the request needs (insufficient_scope only).
	Scope string
	// Err is the underlying cause, for logs only: it may name claims and keys.
	Err error

	reason string
}

// Error describes the denial for logs, including the underlying cause.
func (d *Denial) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "policy: %d", d.Status)
	if d.Code != "" {
		b.WriteString(" " + d.Code)
	}
	if d.Description != "" {
		b.WriteString(": " + d.Description)
	}
	if d.Err != nil {
		b.WriteString(": " + d.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause, so errors.Is and errors.As see it.
func (d *Denial) Unwrap() error { return d.Err }

// Reason names the kind of denial with one of the Reason constants.
func (d *Denial) Reason() string {
	switch {
	case d.reason != "":
		return d.reason
	case d.Status == http.StatusServiceUnavailable:
		return ReasonUnavailable
	case d.Code == "":
		return ReasonNoToken
	case d.Code == CodeInvalidRequest:
		return ReasonInvalidRequest
	case d.Code == CodeInsufficientScope:
		return ReasonInsufficientScope
	}
	return ReasonInvalidToken
}

// Challenge returns the WWW-Authenticate value for d (RFC 6750 §3), for example
//
//	Bearer realm="https://auth.example.com", error="invalid_token", error_description="token expired", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"
//
// A nil d, or one without Code, gives the bare challenge with only realm and resource_metadata.
// resource_metadata (RFC 9728 §5.1) is built from r's scheme and host unless the Config fixes it;
// with a nil r and no fixed URL it is left out. Attribute values are restricted to the characters
// RFC 6750 allows, so no value can break out of its quotes or the header line.
func (g *Gate) Challenge(r *http.Request, d *Denial) string {
	var b strings.Builder
	b.Grow(len(g.challenge) + 160)
	b.WriteString(g.challenge)
	if d != nil && d.Code != "" {
		writeAttr(&b, "error", d.Code)
		writeAttr(&b, "error_description", d.Description)
		writeAttr(&b, "scope", d.Scope)
	}
	writeAttr(&b, "resource_metadata", g.resourceMetadataURL(r))
	return b.String()
}

// SetChallenge sets the response headers for d: WWW-Authenticate on a 400, 401 or 403, and
// Retry-After on a 503. The caller writes the status (d.Status) and body, so that Caddy's error
// handling can take over.
func (g *Gate) SetChallenge(w http.ResponseWriter, r *http.Request, d *Denial) {
	if d != nil && d.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfterSeconds)
		return
	}
	w.Header().Set("WWW-Authenticate", g.Challenge(r, d))
}

// writeAttr appends `, name="value"`, dropping every byte outside RFC 6750's
// %x20-21 / %x23-5B / %x5D-7E; an empty value is left out.
func writeAttr(b *strings.Builder, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(", ")
	b.WriteString(name)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		if c := value[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// bareChallenge is `Bearer realm="…"` with realm as an RFC 9110 quoted-string. Control characters
// were refused by Config validation; '"' and '\' are escaped.
func bareChallenge(realm string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="`)
	for i := 0; i < len(realm); i++ {
		if c := realm[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(realm[i])
	}
	b.WriteByte('"')
	return b.String()
}

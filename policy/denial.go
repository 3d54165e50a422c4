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

// Reasons are the values of Denial.Reason: a small fixed set, fit for a metrics label. They tell
// the operator which check refused a request; the client is told no more than the RFC 6750 error
// code and a generic description (every token refusal below is invalid_token, "invalid token",
// but for "token expired", "token not yet valid" and "token revoked", which the client can act on).
const (
	// ReasonNoToken: the request carries no bearer token (none, or another scheme). 401 without
	// an error code.
	ReasonNoToken = "no_token"
	// ReasonMalformed: the credentials cannot be read as an RFC 9068 access token: bad Bearer
	// syntax (400 invalid_request), or a token that is not a JWT (and no issuer introspects),
	// whose header, payload or signature does not decode, whose header names an unknown "alg" or
	// a "crit" extension, whose "exp", "nbf" or "iat" is not a number, or that lacks "exp", or
	// "jti" while its issuer keeps a deny-list. 401.
	ReasonMalformed = "malformed"
	// ReasonExpired: "exp" has passed (beyond the leeway). 401.
	ReasonExpired = "expired"
	// ReasonNotYetValid: "nbf" or "iat" lies in the future (beyond the leeway): usually a clock
	// skew between the issuer and the edge, which is why it is not counted as expired. 401.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonSignature: the signature does not verify with the issuer's key for the token's "kid",
	// or the "alg" is outside the allow-list (none, HMAC, or one the configuration left out). 401.
	ReasonSignature = "signature"
	// ReasonIssuer: "iss" names no trusted issuer (compared exactly, trailing slash included),
	// or an introspection response names another issuer. 401.
	ReasonIssuer = "issuer"
	// ReasonAudience: "aud" is missing or names none of this API's audiences. 401.
	ReasonAudience = "audience"
	// ReasonUnknownKey: the issuer's key set has no key for the token's "kid" (after the
	// refetch an unknown kid may trigger), or the token has no "kid" and the set several keys,
	// or the key source refused the token otherwise. 401.
	ReasonUnknownKey = "unknown_key"
	// ReasonTyp: the token is not an access token: its JOSE "typ" is not at+jwt (nor, with
	// accept_jwt_typ, JWT), or it is an ID token typed JWT. 401.
	ReasonTyp = "typ"
	// ReasonRevoked: the token's "jti" is on a deny-list. 401.
	ReasonRevoked = "revoked"
	// ReasonIntrospection: the issuer's introspection endpoint called the (opaque) token
	// inactive, or vouched for claims no token may have. 401.
	ReasonIntrospection = "introspection"
	// ReasonInsufficientScope: the token lacks a scope the route needs. 403.
	ReasonInsufficientScope = "insufficient_scope"
	// ReasonClaims: the token fails one of the route's CEL claim conditions. 403.
	ReasonClaims = "claims"
	// ReasonUnavailable: the token cannot be judged now: the issuer's keys or its introspection
	// endpoint are out of reach. 503.
	ReasonUnavailable = "unavailable"
	// ReasonAmbiguousPath: the request path could be read differently by a rule and by the
	// upstream (an encoded slash, a backslash, a dot segment; see Gate.RequiredScopes). 400.
	ReasonAmbiguousPath = "ambiguous_path"
	// ReasonInvalidRequest: the request sends its token more than once (two Authorization
	// headers, two access_token parameters, or both). 400.
	ReasonInvalidRequest = "invalid_request"
	// ReasonDPoP: a DPoP refusal (RFC 9449): a DPoP-bound token sent as Bearer, an unbound
	// token sent with the DPoP scheme, or a proof that is missing, malformed, for another
	// request or key, stale or replayed. 401.
	ReasonDPoP = "dpop"
	// ReasonInvalidToken is what Reason reports for a Denial built outside this package with
	// Code invalid_token and no reason; the Gate's own denials always name their cause.
	ReasonInvalidToken = "invalid_token"
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
	// Scope lists, space-separated, every scope the request needs: on a 403 insufficient_scope,
	// and on a 401 (no token, or an invalid one) when the route needs any.
	Scope string
	// Err is the underlying cause, for logs only: it may name claims and keys.
	Err error

	reason    string
	challenge int // challengeBearer, challengeDPoP or challengeBearerDPoP (dpop.go)
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
// A nil d, or one without Code, gives the challenge without error attributes (RFC 6750 §3.1: a
// request without credentials gets none): realm, the scope a 401 announces, resource_metadata.
// resource_metadata (RFC 9728 §5.1) is the resource of r plus /.well-known/oauth-protected-resource
// (see resource_metadata.go): at the site root the RFC 9728 §3 URL, under a prefix a URL under
// it; it is built from r's scheme and host unless the Config fixes it, and with a nil r and
// nothing fixed it is left out. Attribute values are restricted to the characters RFC 6750
// allows, so no value can break out of its quotes or the header line.
func (g *Gate) Challenge(r *http.Request, d *Denial) string {
	var b strings.Builder
	b.Grow(len(g.challenge) + 160)
	b.WriteString(g.challenge)
	if d != nil && d.Code != "" {
		writeAttr(&b, "error", d.Code)
		writeAttr(&b, "error_description", d.Description)
	}
	if d != nil {
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
	switch {
	case d != nil && d.challenge == challengeDPoP:
		// RFC 9449 §7.1: the request used the DPoP scheme; so does the challenge.
		w.Header().Set("WWW-Authenticate", g.dpopChallenge(r, d, true))
	case d != nil && d.challenge == challengeBearerDPoP:
		w.Header().Set("WWW-Authenticate", g.Challenge(r, d))
		w.Header().Add("WWW-Authenticate", g.dpopChallenge(r, d, false))
	default:
		w.Header().Set("WWW-Authenticate", g.Challenge(r, d))
	}
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

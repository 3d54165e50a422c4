// Package accesstoken holds what the issuer and the edge share about access tokens: the RFC 9068
// claim set and the JOSE header type. It is a leaf package so that policy/ can use it without
// importing the issuer.
package accesstoken

import (
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// HeaderType is the JOSE "typ" of every access token (RFC 9068 §2.1).
const HeaderType = "at+jwt"

// Claims is the claim set of a JWT access token (RFC 9068 §2.2). Extra holds claims that the
// issuer adds from the user's configuration; it is not part of the signed payload when empty.
type Claims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	// Scope is the space-separated list of granted scopes (RFC 8693 §4.2).
	Scope    string `json:"scope,omitempty"`
	AuthTime int64  `json:"auth_time,omitempty"`
}

// Scopes splits Scope into its parts.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether s is one of the granted scopes.
func (c *Claims) HasScope(s string) bool {
	for _, g := range strings.Fields(c.Scope) {
		if g == s {
			return true
		}
	}
	return false
}

// IsAccessTokenType reports whether a JOSE "typ" header names an RFC 9068 access token. The
// comparison ignores case and accepts the "application/" prefix (RFC 7515 §4.1.9).
func IsAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == HeaderType || typ == "application/"+HeaderType
}

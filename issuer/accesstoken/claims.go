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
	// Act names the party acting for the subject, for a token issued by token exchange
	// (RFC 8693 §4.1); nested Acts are the earlier actors of a delegation chain.
	Act *Actor `json:"act,omitempty"`
	// Cnf is the confirmation claim (RFC 7800) of a sender-constrained token: with JKT, the
	// token is bound to a DPoP key (RFC 9449 §6) and is used only with a proof of it.
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the "cnf" claim.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key, base64url (RFC 9449 §6.1).
	JKT string `json:"jkt,omitempty"`
}

// BoundKey is the thumbprint of the DPoP key the token is bound to, "" for a bearer token.
func (c *Claims) BoundKey() string {
	if c.Cnf == nil {
		return ""
	}
	return c.Cnf.JKT
}

// Actor is the act (and may_act) claim of RFC 8693 §4.1 and §4.4: who acts, and, nested,
// who acted before.
type Actor struct {
	Subject string `json:"sub"`
	// Issuer is the actor's issuer, when it is not the token's.
	Issuer string `json:"iss,omitempty"`
	// Act is the actor before this one, if any.
	Act *Actor `json:"act,omitempty"`
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

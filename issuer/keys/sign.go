package keys

import (
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Sign serializes claims as a JWS compact token signed with the current key of alg, with the
// JOSE header "typ" set to typ (e.g. "at+jwt" for access tokens, "JWT" for ID tokens).
func (m *Manager) Sign(alg, typ string, claims jwt.Claims) (string, error) {
	k := m.set.Load().current[alg]
	if k == nil {
		return "", fmt.Errorf("keys: no signing key for %s", alg)
	}
	t := jwt.NewWithClaims(k.method, claims)
	t.Header["kid"] = k.kid
	t.Header["typ"] = typ
	return t.SignedString(k.private)
}

// Keyfunc returns the public key a token names in its "kid" header, for
// github.com/golang-jwt/jwt/v5 parsers (and the edge's policy.KeySource). The key must have
// been made for the token's algorithm, so a key cannot be used under another algorithm.
func (m *Manager) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k := m.set.Load().byKID[kid]
	if k == nil {
		return nil, fmt.Errorf("keys: unknown kid %q", kid)
	}
	if t.Method == nil || t.Method.Alg() != k.alg {
		return nil, fmt.Errorf("keys: key %q is not for this algorithm", kid)
	}
	return k.public, nil
}

// JWKS returns the public JWK Set document (RFC 7517 §5). The slice must not be modified.
func (m *Manager) JWKS() []byte { return m.set.Load().jwks }

// Algorithms returns the algorithms the manager signs with.
func (m *Manager) Algorithms() []string { return append([]string(nil), m.algs...) }

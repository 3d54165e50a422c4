package keys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Sign serializes claims as a JWS compact token signed with the current key of alg, with the
// JOSE header "typ" set to typ (e.g. "at+jwt" for access tokens, "JWT" for ID tokens). The
// signature is golang-jwt's; the header, which only depends on the key and typ, is encoded
// once per key rather than for every token (issuance is bounded by signing: this keeps it so).
func (m *Manager) Sign(alg, typ string, claims jwt.Claims) (string, error) {
	k := m.set.Load().current[alg]
	if k == nil {
		return "", fmt.Errorf("keys: no signing key for %s", alg)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keys: encoding claims: %w", err)
	}
	header := k.header(typ)
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(maxSignatureLen))
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.method.Sign(string(buf), k.private)
	if err != nil {
		return "", fmt.Errorf("keys: signing: %w", err)
	}
	buf = append(buf, '.')
	return string(enc.AppendEncode(buf, sig)), nil
}

// maxSignatureLen is the longest signature of a supported algorithm (RSA-2048: 256 bytes),
// for sizing the token buffer.
const maxSignatureLen = 256

// header returns the encoded JOSE header of a token signed with k: {"alg","kid","typ"}, the
// form golang-jwt writes too. The common types are encoded when the key is loaded.
func (k *key) header(typ string) string {
	if h, ok := k.headers[typ]; ok {
		return h
	}
	return encodeHeader(k.alg, k.kid, typ)
}

// encodeHeader encodes a JOSE header of alg, kid and typ.
func encodeHeader(alg, kid, typ string) string {
	raw, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, kid, typ})
	return base64.RawURLEncoding.EncodeToString(raw)
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

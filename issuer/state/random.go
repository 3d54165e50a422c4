package state

import (
	"crypto/rand"
	"encoding/base64"
)

// NewID returns 128 random bits, base64url-encoded (22 characters): for jti values, family ids
// and other identifiers that are unguessable but grant nothing by themselves.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewSecret returns 256 random bits, base64url-encoded (43 characters): for session ids, codes
// and tokens that grant access.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Lengths of NewID and NewSecret.
const (
	idLen     = 22
	secretLen = 43
)

// isBase64URL reports whether s is unpadded base64url text.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

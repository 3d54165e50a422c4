// Package jwttest alters JWTs for tests that try attacks on their verification.
package jwttest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Tamper widens a token's scope to "read write admin" and keeps the old signature, so the
// result must fail verification.
func Tamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["scope"] = "read write admin"
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

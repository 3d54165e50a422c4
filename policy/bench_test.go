package policy

import (
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// benchmarkAuthorize measures a whole Authorize, extraction to scope check, for a token signed
// with alg on a request that matches a rule.
func benchmarkAuthorize(b *testing.B, alg string) {
	k := sharedKeys()
	g, err := New(testConfig(), k)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v2/items/42", nil)
	r.Header.Set("Authorization", "Bearer "+k.mint(b, alg, "at+jwt", nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, d := g.Authorize(r); d != nil {
			b.Fatal(d)
		}
	}
}

// BenchmarkAuthorize is the ES256 case, the issuer's default signing algorithm.
func BenchmarkAuthorize(b *testing.B)      { benchmarkAuthorize(b, "ES256") }
func BenchmarkAuthorizeRS256(b *testing.B) { benchmarkAuthorize(b, "RS256") }
func BenchmarkAuthorizeEdDSA(b *testing.B) { benchmarkAuthorize(b, "EdDSA") }

// BenchmarkRejectExpired shows that a token failing the cheap checks costs no signature check.
func BenchmarkRejectExpired(b *testing.B) {
	k := sharedKeys()
	g, err := New(testConfig(), k)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/items", nil)
	r.Header.Set("Authorization", "Bearer "+k.mint(b, "ES256", "at+jwt", func(c jwt.MapClaims) { c["exp"] = int64(1) }))
	b.ReportAllocs()
	for b.Loop() {
		if _, d := g.Authorize(r); d == nil {
			b.Fatal("expired token allowed")
		}
	}
}

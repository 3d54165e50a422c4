package policy

import (
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// benchmarkAuthorize measures a whole Authorize, extraction to scope check, for a token signed
// with alg on a request that matches a rule. Without the cache every request is a signature
// check; with it, every request after the first is a cache hit.
func benchmarkAuthorize(b *testing.B, alg string, cache bool, edit func(*Config)) {
	k := sharedKeys()
	cfg := testConfig()
	if !cache {
		cfg.CacheSize = -1
	}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, k)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v2/items/42", nil)
	r.Header.Set("Authorization", "Bearer "+k.mint(b, alg, "at+jwt", func(c jwt.MapClaims) { c["groups"] = []string{"staff", "admin"} }))
	b.ReportAllocs()
	for b.Loop() {
		if _, d := g.Authorize(r); d != nil {
			b.Fatal(d)
		}
	}
}

// BenchmarkAuthorize is the signature check with ES256, the issuer's default algorithm.
func BenchmarkAuthorize(b *testing.B)      { benchmarkAuthorize(b, "ES256", false, nil) }
func BenchmarkAuthorizeRS256(b *testing.B) { benchmarkAuthorize(b, "RS256", false, nil) }
func BenchmarkAuthorizeEdDSA(b *testing.B) { benchmarkAuthorize(b, "EdDSA", false, nil) }

// BenchmarkAuthorizeCacheHit is a repeated token: a cache lookup instead of a signature check.
func BenchmarkAuthorizeCacheHit(b *testing.B) { benchmarkAuthorize(b, "ES256", true, nil) }

// BenchmarkAuthorizeCacheHitCEL adds a claim condition, evaluated on every request.
func BenchmarkAuthorizeCacheHitCEL(b *testing.B) {
	benchmarkAuthorize(b, "ES256", true, func(c *Config) { c.Claims = []string{`claims.groups.exists(g, g == "admin")`} })
}

// BenchmarkAuthorizeCacheHitParallel runs cache hits on every core, as a busy gateway does.
func BenchmarkAuthorizeCacheHitParallel(b *testing.B) {
	k := sharedKeys()
	g, err := New(testConfig(), k)
	if err != nil {
		b.Fatal(err)
	}
	tok := k.mint(b, "ES256", "at+jwt", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/v2/items/42", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		for pb.Next() {
			if _, d := g.Authorize(r); d != nil {
				b.Fatal(d)
			}
		}
	})
}

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

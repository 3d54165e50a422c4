package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// BenchmarkProtect measures oauth_protect's whole handler for a repeated request with a valid
// ES256 token: bearer extraction, the verified-token cache (the signature is checked once),
// revocation, scope rules, placeholders, then the next handler. The uncached cost is
// policy's BenchmarkAuthorize.
func BenchmarkProtect(b *testing.B) {
	srv, accessToken := issuerWithToken(b)

	p := &ProtectHandler{Issuer: "https://auth.test", Audience: []string{"api"}, Scopes: []string{"read"},
		Rules: []RuleConfig{{Methods: []string{"POST"}, Path: "/v1/*", Scopes: []string{"write"}}}}
	p.log = zap.NewNop()
	if err := p.compile(); err != nil {
		b.Fatal(err)
	}
	p.keys.bind(srv)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	r := httptest.NewRequest("GET", "https://api.test/v1/things", nil)
	r.Header.Set("Authorization", "Bearer "+accessToken)
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
}

package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// BenchmarkProtect measures oauth_protect's whole handler for one request with a valid ES256
// token: bearer extraction, verification, scope rules, placeholders, then the next handler.
func BenchmarkProtect(b *testing.B) {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := issuer.New(context.Background(), issuer.Config{
		Issuer: "https://auth.test",
		Clients: []issuer.Client{{ID: "svc", Secret: "s", Grants: []string{"client_credentials"},
			Scopes: []string{"read"}, Audience: []string{"api"}}},
	}, issuer.Deps{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "https://auth.test/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "s")
	srv.ServeHTTP(w, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		b.Fatalf("no token: %s", w.Body)
	}

	p := &ProtectHandler{Issuer: "https://auth.test", Audience: []string{"api"}, Scopes: []string{"read"},
		Rules: []RuleConfig{{Methods: []string{"POST"}, Path: "/v1/*", Scopes: []string{"write"}}}}
	p.log = zap.NewNop()
	if err := p.compile(); err != nil {
		b.Fatal(err)
	}
	p.keys.bind(srv)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	r := httptest.NewRequest("GET", "https://api.test/v1/things", nil)
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
}

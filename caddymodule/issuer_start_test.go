package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestIssuerWaitsForStart: a request that reaches an issuer before the tollgate app has started
// it (Caddy starts its apps in no set order) waits, and is answered 503 with Retry-After, not
// served by a half-made issuer nor passed on, when it cannot wait any longer.
func TestIssuerWaitsForStart(t *testing.T) {
	h := &IssuerHandler{ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client gave up while waiting
	r := httptest.NewRequest(http.MethodGet, "http://auth.test/oauth2/jwks", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	passed := false
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		passed = true
		return nil
	}))
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || passed {
		t.Fatalf("before start: error %v, Retry-After %q, passed on %v; want 503 with Retry-After", err, w.Header().Get("Retry-After"), passed)
	}
}

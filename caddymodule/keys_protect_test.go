package caddymodule

import (
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer"
)

// revokingIssuer is the local issuer with the deny-list method the protector looks for.
type revokingIssuer struct {
	*issuer.Server
	mu      sync.Mutex
	revoked map[string]bool
}

func (r *revokingIssuer) Revoked(jti string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revoked[jti]
}

// TestLocalRevocationPassThrough: once the in-process issuer can say a jti is revoked, the
// protector refuses the token, also when it is cached.
func TestLocalRevocationPassThrough(t *testing.T) {
	srv, accessToken := issuerWithToken(t)

	p := &ProtectHandler{Issuer: "https://auth.test", Audience: []string{"api"}, log: zap.NewNop()}
	if err := p.compile(); err != nil {
		t.Fatal(err)
	}
	ri := &revokingIssuer{Server: srv, revoked: map[string]bool{}}
	p.keys.bind(ri)
	authorize := func() int {
		r := httptest.NewRequest("GET", "https://api.test/x", nil)
		r.Header.Set("Authorization", "Bearer "+accessToken)
		if _, d := p.gate.Authorize(r); d != nil {
			return d.Status
		}
		return 200
	}
	if got := authorize(); got != 200 {
		t.Fatalf("before revocation: %d", got)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(accessToken, &jwt.RegisteredClaims{})
	if err != nil {
		t.Fatal(err)
	}
	jti := parsed.Claims.(*jwt.RegisteredClaims).ID
	ri.mu.Lock()
	ri.revoked[jti] = true
	ri.mu.Unlock()
	if got := authorize(); got != 401 {
		t.Fatalf("revoked token served from the cache: %d", got)
	}
	if st := p.gate.CacheStats(); st.Hits != 1 {
		t.Fatalf("cache stats %+v: the revoked request should have been a cache hit", st)
	}
}

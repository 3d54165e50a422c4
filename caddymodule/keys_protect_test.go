package caddymodule

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestLocalIssuerRequiresJTI: a token of the in-process issuer must carry a jti, or its
// revocation could not be checked; the same token with one passes.
func TestLocalIssuerRequiresJTI(t *testing.T) {
	srv, _ := issuerWithToken(t)
	p := &ProtectHandler{Issuer: "https://auth.test", Audience: []string{"api"}, log: zap.NewNop()}
	if err := p.compile(); err != nil {
		t.Fatal(err)
	}
	if p.keys.RequiresJTI() {
		t.Fatal("an unbound issuer requires a jti")
	}
	p.keys.bind(srv)
	if !p.keys.RequiresJTI() {
		t.Fatal("the in-process issuer's tokens do not require a jti")
	}
	sign := func(jti string) string {
		now := time.Now()
		claims := jwt.MapClaims{"iss": "https://auth.test", "aud": "api", "sub": "svc", "client_id": "svc",
			"scope": "read", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		if jti != "" {
			claims["jti"] = jti
		}
		tok, err := srv.Keys().Sign("ES256", "at+jwt", claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		jti    string
		status int
	}{{"", 401}, {"a-jti", 200}} {
		r := httptest.NewRequest("GET", "https://api.test/x", nil)
		r.Header.Set("Authorization", "Bearer "+sign(tc.jti))
		status := 200
		if _, d := p.gate.Authorize(r); d != nil {
			status = d.Status
		}
		if status != tc.status {
			t.Errorf("jti %q: %d, want %d", tc.jti, status, tc.status)
		}
	}
}

// TestLocalIssuerOtherSpelling: a protector naming the in-process issuer with a trailing slash
// is bound to it, but iss is compared exactly: its tokens are refused, and that is logged.
func TestLocalIssuerOtherSpelling(t *testing.T) {
	srv, tok := issuerWithToken(t)
	core, logs := observer.New(zap.ErrorLevel)
	p := &ProtectHandler{Issuer: "https://auth.test/", Audience: []string{"api"}, log: zap.New(core)}
	if err := p.compile(); err != nil {
		t.Fatal(err)
	}
	p.keys.bind(srv)
	if logs.FilterMessageSnippet("compared exactly").FilterField(zap.String("issuer", "https://auth.test")).Len() != 1 {
		t.Fatalf("no error logged: %v", logs.All())
	}
	r := httptest.NewRequest("GET", "https://api.test/x", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, d := p.gate.Authorize(r); d == nil || d.Status != 401 {
		t.Fatalf("token of https://auth.test at a protector of https://auth.test/: %v", d)
	}
}

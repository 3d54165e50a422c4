package caddymodule

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
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
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := issuer.New(context.Background(), issuer.Config{
		Issuer: "https://auth.test",
		Clients: []issuer.Client{{ID: "svc", Secret: "s", Grants: []string{"client_credentials"},
			Scopes: []string{"read"}, Audience: []string{"api"}}},
	}, issuer.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
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
		t.Fatalf("no token: %s", w.Body)
	}

	p := &ProtectHandler{Issuer: "https://auth.test", Audience: []string{"api"}, log: zap.NewNop()}
	if err := p.compile(); err != nil {
		t.Fatal(err)
	}
	ri := &revokingIssuer{Server: srv, revoked: map[string]bool{}}
	p.keys.bind(ri)
	authorize := func() int {
		r := httptest.NewRequest("GET", "https://api.test/x", nil)
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if _, d := p.gate.Authorize(r); d != nil {
			return d.Status
		}
		return 200
	}
	if got := authorize(); got != 200 {
		t.Fatalf("before revocation: %d", got)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, &jwt.RegisteredClaims{})
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

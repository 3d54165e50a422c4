package policy

import (
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/go-jose/go-jose/v4"
)

// keyfunc/v3's Keyfunc, the remote-JWKS key source of the edge, satisfies KeySource.
var _ KeySource = keyfunc.Keyfunc(nil)

// TestJWKSKeySource runs the gate on keyfunc/v3 fed with a real JWKS document, as the edge does
// with a remote issuer (without the HTTP fetch).
func TestJWKSKeySource(t *testing.T) {
	k := sharedKeys()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &k.es.PublicKey, KeyID: "es", Algorithm: "ES256", Use: "sig"},
		{Key: &k.rs.PublicKey, KeyID: "rs", Algorithm: "RS256", Use: "sig"},
		{Key: k.ed.Public(), KeyID: "ed", Algorithm: "EdDSA", Use: "sig"},
	}}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(testConfig(), jwks)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"ES256", k.mint(t, "ES256", "at+jwt", nil), 0},
		{"RS256", k.mint(t, "RS256", "at+jwt", nil), 0},
		{"EdDSA", k.mint(t, "EdDSA", "at+jwt", nil), 0},
		{"PS256 with an RS256-only key", k.mint(t, "PS256", "at+jwt", nil), 401},
		{"unknown kid", k.mintHeader(t, map[string]any{"kid": "gone"}), 401},
		{"HS256 with the public key", k.mint(t, "HS256", "at+jwt", nil), 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/items", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			_, d := g.Authorize(r)
			switch {
			case tc.status == 0 && d != nil:
				t.Fatalf("denied: %v", d)
			case tc.status != 0 && (d == nil || d.Status != tc.status):
				t.Fatalf("got %v, want %d", d, tc.status)
			}
		})
	}
}

// TestNoCaddyNoIssuer guards the dependency direction (docs/design.md, "Packages and what each
// owns"): policy imports neither Caddy nor the issuer (only its leaf packages accesstoken and dpop).
func TestNoCaddyNoIssuer(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not in PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const issuer = "github.com/tollgate-auth/tollgate/issuer"
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "caddyserver") ||
			(strings.HasPrefix(p, issuer) && p != issuer+"/accesstoken" && p != issuer+"/dpop") {
			t.Errorf("policy depends on %s", p)
		}
	}
}

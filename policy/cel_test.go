package policy

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestClaimConditions(t *testing.T) {
	k := sharedKeys()
	claims := func(c jwt.MapClaims) {
		c["groups"] = []string{"staff", "admin"}
		c["tenant"] = "acme"
		c["level"] = 3
		c["email_verified"] = true
		c["org"] = map[string]any{"id": "o-1", "roles": []string{"billing"}}
	}
	tok := k.mint(t, "ES256", "at+jwt", claims)
	tests := []struct {
		name   string
		expr   string
		header map[string]string
		method string
		want   bool
	}{
		{name: "group membership", expr: `claims.groups.exists(g, g == "admin")`, want: true},
		{name: "group missing", expr: `"root" in claims.groups`, want: false},
		{name: "tenant matches header", expr: `claims.tenant == request.header["X-Tenant"][0]`, header: map[string]string{"X-Tenant": "acme"}, want: true},
		{name: "header name case-insensitive", expr: `claims.tenant == request.header["x-tenant"][0]`, header: map[string]string{"X-Tenant": "acme"}, want: true},
		{name: "tenant differs", expr: `claims.tenant == request.header["X-Tenant"][0]`, header: map[string]string{"X-Tenant": "evil"}, want: false},
		{name: "header absent is false, not an error that passes", expr: `claims.tenant == request.header["X-Tenant"][0]`, want: false},
		{name: "in on header, any case", expr: `"x-tenant" in request.header`, header: map[string]string{"X-Tenant": "a"}, want: true},
		{name: "number compare", expr: `claims.level >= 3`, want: true},
		{name: "bool claim", expr: `claims.email_verified`, want: true},
		{name: "nested object", expr: `"billing" in claims.org.roles && claims.org.id.startsWith("o-")`, want: true},
		{name: "missing claim is false", expr: `claims.department == "x"`, want: false},
		{name: "has() guards a missing claim", expr: `!has(claims.department) || claims.department == "x"`, want: true},
		{name: "method and path", expr: `request.method == "DELETE" && request.path.startsWith("/v1/")`, method: "DELETE", want: true},
		{name: "ext strings", expr: `claims.tenant.upperAscii() == "ACME"`, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Claims = []string{tc.expr}
			g, err := New(cfg, k)
			if err != nil {
				t.Fatal(err)
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, "/v1/items", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			for h, v := range tc.header {
				r.Header.Set(h, v)
			}
			_, d := g.Authorize(r)
			if tc.want && d != nil {
				t.Fatalf("denied: %v", d)
			}
			if !tc.want && (d == nil || d.Status != 403 || d.Reason() != ReasonClaims) {
				t.Fatalf("got %v, want a 403 for the claim condition", d)
			}
		})
	}
}

// TestRuleConditions: a rule's conditions apply only to its requests, on top of the base ones.
func TestRuleConditions(t *testing.T) {
	k := sharedKeys()
	cfg := testConfig()
	cfg.Claims = []string{`claims.sub != "mallory"`}
	cfg.Rules = []Rule{{Path: "/admin/*", Claims: []string{`claims.groups.exists(g, g == "admin")`}}}
	g, err := New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	staff := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["groups"] = []string{"staff"} })
	admin := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["groups"] = []string{"admin"} })
	mallory := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["groups"] = []string{"admin"}; c["sub"] = "mallory" })
	for _, tc := range []struct {
		tok, path string
		ok        bool
	}{
		{staff, "/v1/x", true}, {staff, "/admin/x", false}, {admin, "/admin/x", true},
		{mallory, "/v1/x", false}, {mallory, "/admin/x", false},
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		r.Header.Set("Authorization", "Bearer "+tc.tok)
		if _, d := g.Authorize(r); (d == nil) != tc.ok {
			t.Errorf("%s: denial %v, want allowed=%v", tc.path, d, tc.ok)
		}
	}
}

// TestBadConditions: a bad expression is a configuration error naming its position.
func TestBadConditions(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`claims.groups.exists(g, g == "admin"`, "<input>:1:"},
		{`claims.tenant + 1`, "claim condition"},
		{`"a string"`, "must be a bool, not string"},
		{`unknown_var == 1`, "undeclared reference to 'unknown_var'"},
	}
	for _, tc := range tests {
		if err := CheckCondition(tc.expr); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.expr, err, tc.want)
		}
		cfg := testConfig()
		cfg.Rules = []Rule{{Path: "/x", Claims: []string{tc.expr}}}
		if _, err := New(cfg, sharedKeys()); err == nil || !strings.Contains(err.Error(), "rule 1") {
			t.Errorf("New with rule condition %s: %v", tc.expr, err)
		}
	}
}

package policy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const realmChallenge = `Bearer realm="https://auth.example.com"`

func requestChallenge(desc string) string {
	return realmChallenge + `, error="invalid_request", error_description="` + desc + `"`
}

// tokenChallenge is the 401 of an invalid token for GET /v1/items, which needs read.
func tokenChallenge(desc string) string {
	return realmChallenge + `, error="invalid_token", error_description="` + desc + `", scope="read"`
}

// noTokenChallenge is the 401 of a request for GET /v1/items without a token.
const noTokenChallenge = realmChallenge + `, scope="read"`

func scopeChallenge(scope string) string {
	return realmChallenge + `, error="insufficient_scope", scope="` + scope + `"`
}

// testConfig is the gate every table case runs against, unless the case changes it.
func testConfig() Config {
	return Config{
		Issuer:   testIssuer,
		Audience: []string{testAudience, "https://api2.example.com"},
		Scopes:   []string{"read"},
		Rules: []Rule{
			{Methods: []string{"POST"}, Path: "/v1/*", Scopes: []string{"write"}},
			{Methods: []string{"PUT", "DELETE"}, Path: "/v2/items/*", Scopes: []string{"write", "delete"}},
			{Methods: []string{"GET"}, Path: "/reports/*", Scopes: []string{"reports"}},
			{Path: "/admin/*", Scopes: []string{"admin"}},
		},
	}
}

// newTestGate is a Gate on testConfig, changed by edit when it is not nil, verifying with k.
func newTestGate(t *testing.T, k KeySource, edit func(*Config)) *Gate {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// tamper swaps the payload of a signed token for claims edited by edit, keeping the signature.
func tamper(t *testing.T, token string, edit func(jwt.MapClaims)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	claims := baseClaims()
	edit(claims)
	forged, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

func TestAuthorize(t *testing.T) {
	k := sharedKeys()
	scope := func(s string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c["scope"] = s } }
	set := func(name string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = v } }
	del := func(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }
	in := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }

	valid := k.mint(t, "ES256", "at+jwt", nil)
	readWrite := k.mint(t, "ES256", "at+jwt", scope("read write"))
	allowQuery := func(c *Config) { c.AllowQueryToken = true }

	tests := []struct {
		name      string
		cfg       func(*Config)
		method    string // default GET
		target    string // default /v1/items
		auth      []string
		body      string
		status    int // 0: allowed
		code      string
		challenge string
		err       error // errors.Is on the Denial, when set
	}{
		{name: "valid ES256", auth: []string{"Bearer " + valid}},
		{name: "valid RS256", auth: []string{"Bearer " + k.mint(t, "RS256", "at+jwt", nil)}},
		{name: "valid PS256", auth: []string{"Bearer " + k.mint(t, "PS256", "at+jwt", nil)}},
		{name: "valid EdDSA", auth: []string{"Bearer " + k.mint(t, "EdDSA", "at+jwt", nil)}},
		{name: "typ application/at+jwt", auth: []string{"Bearer " + k.mint(t, "ES256", "application/AT+JWT", nil)}},
		{name: "aud array with ours", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("aud", []string{"x", "https://api2.example.com"}))}},
		{name: "aud as string", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("aud", testAudience))}},
		{name: "lowercase bearer", auth: []string{"bearer " + valid}},
		{name: "upper-case BEARER, two spaces", auth: []string{"BEARER  " + valid}},

		// RFC 6750 §2.1 extraction.
		{name: "missing header", status: 401, challenge: noTokenChallenge, err: errNoToken},
		{name: "other scheme", auth: []string{"Basic YWxpY2U6cHc="}, status: 401, challenge: noTokenChallenge, err: errOtherScheme},
		{name: "two Authorization headers", auth: []string{"Bearer " + valid, "Bearer " + valid}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("more than one Authorization header")},
		{name: "Bearer without token", auth: []string{"Bearer"}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("malformed Bearer credentials")},
		{name: "token outside b64token", auth: []string{"Bearer not a token!"}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("malformed Bearer credentials")},
		{name: "two tokens in one header", auth: []string{"Bearer " + valid + ", Bearer " + valid}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("malformed Bearer credentials")},
		{name: "empty header", auth: []string{""}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("malformed Authorization header")},

		// Token verification.
		{name: "garbage token", auth: []string{"Bearer abc.def"}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenMalformed},
		{name: "tampered payload", auth: []string{"Bearer " + tamper(t, valid, scope("read write admin"))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenSignatureInvalid},
		{name: "alg none", auth: []string{"Bearer " + k.mint(t, "none", "at+jwt", nil)}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenSignatureInvalid},
		{name: "HS256 signed with the public key", auth: []string{"Bearer " + k.mint(t, "HS256", "at+jwt", nil)}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenSignatureInvalid},
		{name: "alg outside a narrowed allow-list", cfg: func(c *Config) { c.Algorithms = []string{"EdDSA"} }, auth: []string{"Bearer " + valid}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenSignatureInvalid},
		{name: "wrong issuer", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("iss", "https://evil.example.com"))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenInvalidIssuer},
		{name: "wrong audience", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("aud", []string{"https://other.example.com"}))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenInvalidAudience},
		{name: "missing audience", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("aud"))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenRequiredClaimMissing},
		{name: "expired", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("exp", in(-time.Minute)))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("token expired"), err: jwt.ErrTokenExpired},
		{name: "expired within leeway", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("exp", in(-2*time.Second)))}},
		{name: "nbf in the future", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("nbf", in(time.Minute)))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("token not yet valid"), err: jwt.ErrTokenNotValidYet},
		{name: "iat in the future", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("iat", in(time.Minute)))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("token not yet valid"), err: jwt.ErrTokenUsedBeforeIssued},
		{name: "missing exp", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("exp"))}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenRequiredClaimMissing},
		{name: "typ JWT (an ID token)", auth: []string{"Bearer " + k.mint(t, "ES256", "JWT", nil)}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: errNotAccessToken},
		{name: "typ absent", auth: []string{"Bearer " + k.mint(t, "ES256", "", nil)}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: errNotAccessToken},
		{name: "crit header", auth: []string{"Bearer " + k.mintHeader(t, map[string]any{"crit": []string{"exp"}})}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: errCritical},
		{name: "unknown kid", auth: []string{"Bearer " + k.mintHeader(t, map[string]any{"kid": "nope"})}, status: 401, code: CodeInvalidToken, challenge: tokenChallenge("invalid token"), err: jwt.ErrTokenUnverifiable},

		// Scopes and rules.
		{name: "insufficient base scope", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", scope("profile"))}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read")},
		{name: "no scope claim", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("scope"))}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read")},
		{name: "POST /v1/* needs write", method: "POST", auth: []string{"Bearer " + valid}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read write")},
		{name: "POST /v1/* with write", method: "POST", auth: []string{"Bearer " + readWrite}},
		{name: "GET /v1/* needs only read", auth: []string{"Bearer " + valid}},
		{name: "lower-case method post", method: "post", auth: []string{"Bearer " + valid}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read write")},
		{name: "DELETE in methods list", method: "DELETE", target: "/v2/items/7", auth: []string{"Bearer " + readWrite}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read write delete")},
		{name: "PUT in methods list, all scopes", method: "PUT", target: "/v2/items/7", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", scope("delete write read"))}},
		{name: "GET not in methods list", target: "/v2/items/7", auth: []string{"Bearer " + valid}},
		{name: "GET rule covers HEAD", method: "HEAD", target: "/reports/q3", auth: []string{"Bearer " + valid}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read reports")},
		{name: "dot segments are refused", target: "/v1/../admin/x", auth: []string{"Bearer " + valid}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("the request path has a dot segment"), err: errDotSegment},
		{name: "double slash is merged", target: "//admin/x", auth: []string{"Bearer " + valid}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read admin")},
		{name: "escaped slash is refused", target: "/admin%2Fx", auth: []string{"Bearer " + valid}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("the request path has an encoded slash"), err: errEncodedSlash},
		{name: "ambiguous path is refused before the token", target: "/v1/%2e%2e/admin", status: 400, code: CodeInvalidRequest, challenge: requestChallenge("the request path has a dot segment"), err: errDotSegment},
		{name: "path case-insensitive", target: "/ADMIN/X", auth: []string{"Bearer " + valid}, status: 403, code: CodeInsufficientScope, challenge: scopeChallenge("read admin")},
		{name: "admin with admin scope", target: "/Admin/x", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", scope("read admin"))}},

		// RFC 6750 §2.3 query token.
		{name: "query token refused by default", target: "/v1/items?access_token=" + valid, status: 401, challenge: noTokenChallenge, err: errNoToken},
		{name: "query token when allowed", cfg: allowQuery, target: "/v1/items?access_token=" + valid},
		{name: "query token beside another scheme", cfg: allowQuery, target: "/v1/items?access_token=" + valid, auth: []string{"Basic YWxpY2U6cHc="}},
		{name: "header and query token", cfg: allowQuery, target: "/v1/items?access_token=" + valid, auth: []string{"Bearer " + valid}, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("token sent by more than one method")},
		{name: "two query tokens", cfg: allowQuery, target: "/v1/items?access_token=" + valid + "&access_token=" + valid, status: 400, code: CodeInvalidRequest, challenge: requestChallenge("more than one access_token parameter")},
		{name: "malformed query token", cfg: allowQuery, target: "/v1/items?access_token=a%20b", status: 400, code: CodeInvalidRequest, challenge: requestChallenge("malformed access_token parameter")},
		{name: "body token is never read", cfg: allowQuery, method: "POST", body: "access_token=" + url.QueryEscape(valid), status: 401, challenge: realmChallenge + `, scope="read write"`, err: errNoToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGate(t, k, tc.cfg)
			method, target := tc.method, tc.target
			if method == "" {
				method = http.MethodGet
			}
			if target == "" {
				target = "/v1/items"
			}
			r := httptest.NewRequest(method, target, strings.NewReader(tc.body))
			if tc.body != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for _, a := range tc.auth {
				r.Header.Add("Authorization", a)
			}

			claims, d := g.Authorize(r)
			if tc.status == 0 {
				if d != nil {
					t.Fatalf("denied: %v", d)
				}
				if claims == nil || claims.Claims.Subject != "alice" || claims.Claims.ClientID != "webapp" {
					t.Fatalf("claims = %+v", claims)
				}
				return
			}
			if d == nil {
				t.Fatalf("allowed, want %d %s", tc.status, tc.code)
			}
			if d.Status != tc.status || d.Code != tc.code {
				t.Errorf("denial = %d %q, want %d %q (%v)", d.Status, d.Code, tc.status, tc.code, d)
			}
			w := httptest.NewRecorder()
			g.SetChallenge(w, nil, d)
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate\n got: %s\nwant: %s", got, tc.challenge)
			}
			if tc.err != nil && !errors.Is(d, tc.err) {
				t.Errorf("cause %v, want %v", d.Err, tc.err)
			}
			if d.Code == CodeInsufficientScope && claims == nil {
				t.Error("insufficient_scope without the verified claims")
			}
			if d.Code != CodeInsufficientScope && claims != nil {
				t.Error("claims returned with a token denial")
			}
		})
	}
}

// TestTamperedIsWellFormed makes sure the tampered-payload case fails on the signature, not on
// decoding, so it really exercises signature verification.
func TestTamperedIsWellFormed(t *testing.T) {
	k := sharedKeys()
	forged := tamper(t, k.mint(t, "ES256", "at+jwt", nil), func(c jwt.MapClaims) { c["scope"] = "admin" })
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(forged, ".")[1])
	if err != nil || !strings.Contains(string(payload), `"scope":"admin"`) {
		t.Fatalf("payload %s, %v", payload, err)
	}
}

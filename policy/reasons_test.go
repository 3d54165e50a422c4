package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// brokenKeys is a KeySource that fails for a reason of its own.
type brokenKeys struct{}

func (brokenKeys) Keyfunc(*jwt.Token) (any, error) {
	return nil, errors.New("the key store is corrupt")
}

// stillFetching is a KeySource whose keys have not arrived yet.
type stillFetching struct{}

func (stillFetching) Keyfunc(*jwt.Token) (any, error) { return nil, ErrKeysUnavailable }

// TestDenialReasons: each verification failure is counted under its own reason, while the
// client sees the same RFC 6750 answer as before (invalid_token with a generic description).
func TestDenialReasons(t *testing.T) {
	k := sharedKeys()
	set := func(name string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = v } }
	del := func(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }
	in := func(d time.Duration) int64 { return time.Now().Add(d).Unix() }
	valid := k.mint(t, "ES256", "at+jwt", nil)
	head, _, _ := strings.Cut(valid, ".")
	rev := new(revocations)
	revoked := "j-revoked"
	rev.jti.Store(&revoked)
	withRevocations := func(c *Config) { c.Revocations = rev }
	requireJTI := func(c *Config) { // the issuer keeps a deny-list, so its tokens need a jti
		c.Issuer = ""
		c.Issuers = []TrustedIssuer{{Issuer: testIssuer, Keys: k, Revocations: denyList{}}}
	}
	acceptJWT := func(c *Config) {
		c.Issuer = ""
		c.Issuers = []TrustedIssuer{{Issuer: testIssuer, Keys: k, AcceptJWTType: true}}
	}
	keys := func(ks KeySource) func(c *Config) {
		return func(c *Config) {
			c.Issuer = ""
			c.Issuers = []TrustedIssuer{{Issuer: testIssuer, Keys: ks}}
		}
	}
	introspected := newIntrospectionServer(t)
	introspected.active["opaque-string-exp"] = map[string]any{"active": true, "scope": "read", "aud": testAudience, "exp": "1"}
	introspection := func(c *Config) {
		c.Issuer = ""
		c.Issuers = []TrustedIssuer{{Issuer: "https://idp.example.com", Introspection: &Introspection{
			Endpoint: introspected.URL, ClientID: "gw", ClientSecret: "gw-secret"}}}
	}
	j := newJWKSIssuer(t, "k1")
	remote, rk := remoteGate(t, RemoteOptions{Issuer: j.URL(), UnknownKIDInterval: time.Hour})
	waitReady(t, rk)

	tests := []struct {
		name   string
		cfg    func(*Config)
		gate   *Gate  // instead of a gate on testConfig
		method string // default GET
		target string // default /v1/items
		auth   []string
		reason string
		status int    // default 401
		desc   string // the error_description the client sees; default "invalid token"
	}{
		{name: "no header", reason: ReasonNoToken, desc: "-"},
		{name: "another scheme", auth: []string{"Basic YWxpY2U6cHc="}, reason: ReasonNoToken, desc: "-"},

		{name: "not a JWT", auth: []string{"Bearer abc.def"}, reason: ReasonMalformed},
		{name: "payload not base64", auth: []string{"Bearer " + head + ".a.c2ln"}, reason: ReasonMalformed},
		{name: "payload not JSON", auth: []string{"Bearer " + head + "." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c2ln"}, reason: ReasonMalformed},
		{name: "bad bearer syntax", auth: []string{"Bearer a b"}, reason: ReasonMalformed, status: 400, desc: "malformed Bearer credentials"},
		{name: "empty Authorization", auth: []string{""}, reason: ReasonMalformed, status: 400, desc: "malformed Authorization header"},
		{name: "exp as a string", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("exp", "9999999999"))}, reason: ReasonMalformed},
		{name: "missing exp", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("exp"))}, reason: ReasonMalformed},
		{name: "crit header", auth: []string{"Bearer " + k.mintHeader(t, map[string]any{"crit": []string{"exp"}})}, reason: ReasonMalformed},
		{name: "unknown alg", auth: []string{"Bearer " + k.mintHeader(t, map[string]any{"alg": "XS999"})}, reason: ReasonMalformed},
		{name: "missing jti with a deny-list", cfg: requireJTI, auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("jti"))}, reason: ReasonMalformed},

		{name: "expired", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("exp", in(-time.Minute)))}, reason: ReasonExpired, desc: "token expired"},
		{name: "expired and for another audience", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) {
			c["exp"], c["aud"] = in(-time.Minute), "https://other.example.com"
		})}, reason: ReasonExpired, desc: "token expired"},
		{name: "nbf in the future", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("nbf", in(time.Minute)))}, reason: ReasonNotYetValid, desc: "token not yet valid"},
		{name: "iat in the future", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("iat", in(time.Minute)))}, reason: ReasonNotYetValid, desc: "token not yet valid"},

		{name: "tampered payload", auth: []string{"Bearer " + tamper(t, valid, set("scope", "read admin"))}, reason: ReasonSignature},
		{name: "signed by another key under our kid", auth: []string{"Bearer " + forgedES(t)}, reason: ReasonSignature},
		{name: "alg none", auth: []string{"Bearer " + k.mint(t, "none", "at+jwt", nil)}, reason: ReasonSignature},
		{name: "HS256 with the public key", auth: []string{"Bearer " + k.mint(t, "HS256", "at+jwt", nil)}, reason: ReasonSignature},
		{name: "alg outside the allow-list", cfg: func(c *Config) { c.Algorithms = []string{"EdDSA"} }, auth: []string{"Bearer " + valid}, reason: ReasonSignature},

		{name: "untrusted issuer", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("iss", "https://evil.example.com"))}, reason: ReasonIssuer},
		{name: "issuer with a trailing slash", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("iss", testIssuer+"/"))}, reason: ReasonIssuer},
		{name: "no issuer", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("iss"))}, reason: ReasonIssuer},

		{name: "another audience", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("aud", []string{"https://other.example.com"}))}, reason: ReasonAudience},
		{name: "no audience", auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", del("aud"))}, reason: ReasonAudience},

		{name: "unknown kid", auth: []string{"Bearer " + k.mintHeader(t, map[string]any{"kid": "nope"})}, reason: ReasonUnknownKey},
		{name: "unknown kid at a remote JWKS", gate: remote, auth: []string{"Bearer " + j.mint(t, "k-other", nil)}, reason: ReasonUnknownKey},
		{name: "remote JWKS, known kid", gate: remote, auth: []string{"Bearer " + j.mint(t, "k1", func(c jwt.MapClaims) { c["exp"] = in(-time.Hour) })}, reason: ReasonExpired, desc: "token expired"},

		{name: "typ JWT", auth: []string{"Bearer " + k.mint(t, "ES256", "JWT", nil)}, reason: ReasonTyp},
		{name: "no typ", auth: []string{"Bearer " + k.mint(t, "ES256", "", nil)}, reason: ReasonTyp},
		{name: "ID token typed JWT", cfg: acceptJWT, auth: []string{"Bearer " + k.mint(t, "ES256", "JWT", set("nonce", "n"))}, reason: ReasonTyp},

		{name: "revoked", cfg: withRevocations, auth: []string{"Bearer " + k.mint(t, "ES256", "at+jwt", set("jti", revoked))}, reason: ReasonRevoked, desc: "token revoked"},

		{name: "inactive opaque token", cfg: introspection, auth: []string{"Bearer opaque-unknown"}, reason: ReasonIntrospection},
		{name: "introspection vouches for a string exp", cfg: introspection, auth: []string{"Bearer opaque-string-exp"}, reason: ReasonIntrospection},

		{name: "keys not fetched yet", cfg: keys(stillFetching{}), auth: []string{"Bearer " + valid}, reason: ReasonUnavailable, status: 503, desc: "token verification temporarily unavailable"},
		{name: "a key source error that is not ErrKeysUnavailable", cfg: keys(brokenKeys{}), auth: []string{"Bearer " + valid}, reason: ReasonUnknownKey},

		{name: "insufficient scope", method: "POST", auth: []string{"Bearer " + valid}, reason: ReasonInsufficientScope, status: 403, desc: "-"},
		{name: "claim condition", cfg: func(c *Config) { c.Claims = []string{`claims.sub == "bob"`} }, auth: []string{"Bearer " + valid}, reason: ReasonClaims, status: 403,
			desc: "the token does not satisfy this resource's claim conditions"},
		{name: "ambiguous path", target: "/v1/%2e%2e/admin", auth: []string{"Bearer " + valid}, reason: ReasonAmbiguousPath, status: 400, desc: "the request path has a dot segment"},
		{name: "two Authorization headers", auth: []string{"Bearer " + valid, "Bearer " + valid}, reason: ReasonInvalidRequest, status: 400, desc: "more than one Authorization header"},
		{name: "header and query token", cfg: func(c *Config) { c.AllowQueryToken = true }, target: "/v1/items?access_token=" + valid,
			auth: []string{"Bearer " + valid}, reason: ReasonInvalidRequest, status: 400, desc: "token sent by more than one method"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.gate
			if g == nil {
				g = newTestGate(t, k, tc.cfg)
			}
			method, target := tc.method, tc.target
			if method == "" {
				method = http.MethodGet
			}
			if target == "" {
				target = "/v1/items"
			}
			r := httptest.NewRequest(method, target, nil)
			for _, a := range tc.auth {
				r.Header.Add("Authorization", a)
			}
			_, d := g.Authorize(r)
			if d == nil {
				t.Fatal("allowed")
			}
			if got := d.Reason(); got != tc.reason {
				t.Errorf("reason %q, want %q (%v)", got, tc.reason, d)
			}
			status, desc := tc.status, tc.desc
			if status == 0 {
				status = 401
			}
			if desc == "" {
				desc = "invalid token"
			}
			if desc == "-" {
				desc = ""
			}
			if d.Status != status || d.Description != desc {
				t.Errorf("the client sees %d %q, want %d %q", d.Status, d.Description, status, desc)
			}
			if status == 401 && tc.reason != ReasonNoToken && d.Code != CodeInvalidToken {
				t.Errorf("code %q", d.Code)
			}
			seen[d.Reason()] = true
		})
	}
	for _, r := range []string{ReasonNoToken, ReasonMalformed, ReasonExpired, ReasonNotYetValid, ReasonSignature,
		ReasonIssuer, ReasonAudience, ReasonUnknownKey, ReasonTyp, ReasonRevoked, ReasonIntrospection,
		ReasonInsufficientScope, ReasonClaims, ReasonUnavailable, ReasonAmbiguousPath, ReasonInvalidRequest} {
		if !seen[r] {
			t.Errorf("no case gives reason %s", r)
		}
	}
}

// forgedES signs a valid claim set with a fresh ES256 key under the test keys' kid "es".
func forgedES(t *testing.T) string {
	t.Helper()
	other := *sharedKeys()
	fresh, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other.es = fresh
	return other.mint(t, "ES256", "at+jwt", nil)
}

// TestReasonOfForeignDenial: a Denial built outside the package still has a reason.
func TestReasonOfForeignDenial(t *testing.T) {
	for d, want := range map[*Denial]string{
		{Status: 401}:                                            ReasonNoToken,
		{Status: 401, Code: CodeInvalidToken}:                    ReasonInvalidToken,
		{Status: 403, Code: CodeInsufficientScope}:               ReasonInsufficientScope,
		{Status: 400, Code: CodeInvalidRequest}:                  ReasonInvalidRequest,
		{Status: http.StatusServiceUnavailable}:                  ReasonUnavailable,
		{Status: 401, Code: CodeInvalidToken, reason: ReasonTyp}: ReasonTyp,
	} {
		if got := d.Reason(); got != want {
			t.Errorf("%+v: %s, want %s", d, got, want)
		}
	}
}

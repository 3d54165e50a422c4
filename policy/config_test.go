package policy

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		keys KeySource
		want string // fragment of the error
	}{
		{name: "no issuer", edit: func(c *Config) { c.Issuer = "" }, want: "issuer is required"},
		{name: "no audience", edit: func(c *Config) { c.Audience = nil }, want: "audience is required"},
		{name: "empty audience", edit: func(c *Config) { c.Audience = []string{""} }, want: "empty audience"},
		{name: "alg none", edit: func(c *Config) { c.Algorithms = []string{"ES256", "none"} }, want: `algorithm "none" is not allowed`},
		{name: "HS256", edit: func(c *Config) { c.Algorithms = []string{"HS256"} }, want: `algorithm "HS256" is not allowed`},
		{name: "hs512 lower case", edit: func(c *Config) { c.Algorithms = []string{"hs512"} }, want: `algorithm "hs512" is not allowed`},
		{name: "unknown alg", edit: func(c *Config) { c.Algorithms = []string{"ES256K"} }, want: `unsupported algorithm "ES256K"`},
		{name: "bad glob", edit: func(c *Config) { c.Rules = append(c.Rules, Rule{Path: "/v3/[", Scopes: []string{"x"}}) }, want: "rule 5 ( /v3/[): syntax error in pattern"},
		{name: "relative glob", edit: func(c *Config) { c.Rules = []Rule{{Methods: []string{"GET"}, Path: "v1/*"}} }, want: "rule 1 (GET v1/*): path must start with / or *"},
		{name: "empty glob", edit: func(c *Config) { c.Rules = []Rule{{Scopes: []string{"x"}}} }, want: "rule 1 ( ): empty path"},
		{name: "bad method", edit: func(c *Config) { c.Rules = []Rule{{Methods: []string{"PO ST"}, Path: "/"}} }, want: `invalid method "PO ST"`},
		{name: "scope with space", edit: func(c *Config) { c.Scopes = []string{"read write"} }, want: `scopes: invalid scope "read write"`},
		{name: "rule scope with quote", edit: func(c *Config) { c.Rules = []Rule{{Path: "/", Scopes: []string{`a"b`}}} }, want: `invalid scope "a\"b"`},
		{name: "empty scope", edit: func(c *Config) { c.Scopes = []string{""} }, want: "empty scope"},
		{name: "negative leeway", edit: func(c *Config) { c.Leeway = -time.Second }, want: "is not between 0 and"},
		// A longer leeway than the issuer's deny-list margin would let revoked tokens pass again.
		{name: "leeway past the deny-list margin", edit: func(c *Config) { c.Leeway = MaxLeeway + time.Second }, want: "is not between 0 and 5m0s"},
		{name: "realm with newline", edit: func(c *Config) { c.Realm = "api\r\nSet-Cookie: x=1" }, want: "control characters"},
		{name: "no key source", keys: KeySource(nil), want: "key source is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			keys := tc.keys
			if tc.edit != nil {
				keys = sharedKeys()
			}
			g, err := New(cfg, keys)
			if err == nil {
				t.Fatalf("New succeeded: %+v", g)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := testConfig().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Realm != testIssuer || c.Leeway != DefaultLeeway || !slices.Equal(c.Algorithms, defaultAlgorithms) {
		t.Errorf("defaults: realm %q leeway %s algs %v", c.Realm, c.Leeway, c.Algorithms)
	}
	cfg := testConfig()
	cfg.Algorithms = []string{"EdDSA", "ES256", "EdDSA"}
	if c, _ = cfg.withDefaults(); !slices.Equal(c.Algorithms, []string{"EdDSA", "ES256"}) {
		t.Errorf("algorithms not de-duplicated: %v", c.Algorithms)
	}
}

// TestChallengeQuoting: neither the realm nor a description can break out of its quotes or
// start a new header line.
func TestChallengeQuoting(t *testing.T) {
	cfg := testConfig()
	cfg.Realm = `my "api" \ realm`
	g, err := New(cfg, sharedKeys())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    *Denial
		want string
	}{
		{name: "nil", d: nil, want: `Bearer realm="my \"api\" \\ realm"`},
		{name: "no code", d: &Denial{Status: 401, Description: "ignored"}, want: `Bearer realm="my \"api\" \\ realm"`},
		{
			name: "hostile description",
			d:    &Denial{Status: 401, Code: CodeInvalidToken, Description: "bad\"\r\nX-Evil: 1\\ é"},
			want: `Bearer realm="my \"api\" \\ realm", error="invalid_token", error_description="badX-Evil: 1 "`,
		},
		{
			name: "scope",
			d:    &Denial{Status: 403, Code: CodeInsufficientScope, Scope: "read write"},
			want: `Bearer realm="my \"api\" \\ realm", error="insufficient_scope", scope="read write"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.Challenge(nil, tc.d); got != tc.want {
				t.Errorf("\n got: %s\nwant: %s", got, tc.want)
			}
			w := httptest.NewRecorder()
			g.SetChallenge(w, nil, tc.d)
			if got := w.Header().Values("WWW-Authenticate"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("header %q", got)
			}
		})
	}
}

func TestDenialError(t *testing.T) {
	d := &Denial{Status: 401, Code: CodeInvalidToken, Description: "token expired", Err: errNotAccessToken}
	if got, want := d.Error(), `policy: 401 invalid_token: token expired: JOSE header "typ" is not at+jwt`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (&Denial{Status: 401, Err: errNoToken}).Error(), "policy: 401: no bearer token in the request"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

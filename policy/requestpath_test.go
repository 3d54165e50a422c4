package policy

import (
	"bufio"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// rawRequest builds a request from a raw request line, as net/http's server parses it, so that
// the path reaches the gate exactly as a client sent it (backslashes and dot segments included).
func rawRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: api.example.com\r\n\r\n")))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return r
}

// TestEncodedPathAttacks: with `rule POST /v1/* write` (and the other rules of testConfig), a
// read-only token tries every way to reach a write route, or an admin one, that an upstream
// could read differently from the rule. Each is refused with 400, or judged by the rule the
// upstream's reading falls under.
func TestEncodedPathAttacks(t *testing.T) {
	k := sharedKeys()
	readOnly := k.mint(t, "ES256", "at+jwt", nil)
	slashes := func(c *Config) { c.AllowEncodedSlashes = true }
	tests := []struct {
		name, method, path string
		cfg                func(*Config)
		status             int    // 0: allowed
		cause              error  // for 400
		scope              string // for 403
	}{
		// The attacks.
		{name: "encoded slashes and dots", method: "POST", path: "/v1/x%2f..%2f..%2fadmin", status: 400, cause: errEncodedSlash},
		{name: "encoded dot-dot-slash", method: "POST", path: "/v1/%2e%2e%2fadmin", status: 400, cause: errEncodedSlash},
		{name: "dot-dot then encoded slash", method: "POST", path: "/v1/x/..%2f..%2fadmin", status: 400, cause: errEncodedSlash},
		{name: "upper-case %2F", method: "POST", path: "/v1/..%2F..%2Fother", status: 400, cause: errEncodedSlash},
		// Dot segments, raw or encoded, in any case.
		{name: "raw dot-dot", method: "POST", path: "/v1/../v1/x", status: 400, cause: errDotSegment},
		{name: "raw dot", method: "POST", path: "/v1/./x", status: 400, cause: errDotSegment},
		{name: "%2e%2e", method: "POST", path: "/v1/%2e%2e/admin", status: 400, cause: errDotSegment},
		{name: "%2E%2e", method: "POST", path: "/v1/%2E%2e/admin", status: 400, cause: errDotSegment},
		{name: ".%2e", method: "POST", path: "/v1/.%2e/admin", status: 400, cause: errDotSegment},
		{name: "%2e alone", method: "POST", path: "/v1/%2e/x", status: 400, cause: errDotSegment},
		{name: "trailing dot-dot", method: "GET", path: "/v1/x/..", status: 400, cause: errDotSegment},
		{name: "three dots are a name", method: "POST", path: "/v1/...", status: 403, scope: "read write"},
		{name: "an encoded dot inside a name", path: "/files/a%2ejson"},
		// Double encoding.
		{name: "%252f", method: "POST", path: "/v1/x%252f..%252fadmin", status: 400, cause: errDoubleEncoded},
		{name: "%252e%252e", method: "POST", path: "/v1/%252e%252e/admin", status: 400, cause: errDoubleEncoded},
		{name: "double-encoded letters", method: "POST", path: "/%2576%2531/x", status: 400, cause: errDoubleEncoded},
		{name: "%25 then encoded hex digits", method: "POST", path: "/v1/%25%32%66x", status: 400, cause: errDoubleEncoded},
		{name: "a literal percent", path: "/v1/100%25"},
		{name: "a literal percent before non-hex", path: "/v1/50%25off"},
		// ";" parameters.
		{name: "params then dot-dot", method: "POST", path: "/v1/x;/../admin", status: 400, cause: errDotSegment},
		{name: "dot-dot with params (Tomcat)", method: "POST", path: "/v1/..;/admin", status: 400, cause: errDotSegment},
		{name: "params hide the prefix", method: "POST", path: "/v1;x/y", status: 403, scope: "read write"},
		{name: "params hide an admin prefix", path: "/admin;jsessionid=1/y", status: 403, scope: "read admin"},
		{name: "params on a read", path: "/v1/x;a=b"},
		{name: "an encoded ; is data", method: "POST", path: "/v1%3bx/y"},
		// Backslashes and control characters.
		{name: "raw backslash", method: "POST", path: `/v1\..\admin`, status: 400, cause: errBackslash},
		{name: "%5c", method: "POST", path: "/v1/x%5c..%5cadmin", status: 400, cause: errBackslash},
		{name: "%5C", method: "POST", path: "/v1%5Cx", status: 400, cause: errBackslash},
		{name: "%00", method: "POST", path: "/v1/x%00.json", status: 400, cause: errControl},
		{name: "%0a", path: "/v1/a%0ab", status: 400, cause: errControl},
		{name: "%7f", path: "/v1/a%7f", status: 400, cause: errControl},
		// Plain tricks: judged by the rule.
		{name: "double slash first", method: "POST", path: "//v1/x", status: 403, scope: "read write"},
		{name: "double slash inside", method: "POST", path: "/v1//x", status: 403, scope: "read write"},
		{name: "upper case", method: "POST", path: "/V1/X", status: 403, scope: "read write"},
		{name: "encoded letters", method: "POST", path: "/%76%31/x", status: 403, scope: "read write"},
		{name: "encoded upper-case letters", method: "POST", path: "/%56%31/x", status: 403, scope: "read write"},
		{name: "encoded admin", path: "/%61dmin/x", status: 403, scope: "read admin"},
		{name: "lower-case method", method: "post", path: "/v1/x", status: 403, scope: "read write"},
		{name: "read is allowed", path: "/v1/x"},
		{name: "non-ASCII", path: "/v1/%E2%82%AC"},
		// allow_encoded_slashes: %2F inside a segment, judged both ways.
		{name: "encoded slash in an ID, allowed", cfg: slashes, path: "/v1/group%2Fapp"},
		{name: "encoded slash on a write route, allowed", cfg: slashes, method: "POST", path: "/v1/group%2Fapp", status: 403, scope: "read write"},
		{name: "split reading needs more", cfg: slashes, path: "/admin%2Fx", status: 403, scope: "read admin"},
		{name: "split reading has dot segments", cfg: slashes, method: "POST", path: "/v1/x%2f..%2f..%2fadmin", status: 400, cause: errDotSegment},
		{name: "split reading has dot segments, upper case", cfg: slashes, method: "POST", path: "/v1/..%2F..%2Fother", status: 400, cause: errDotSegment},
		{name: "encoded slash and params", cfg: slashes, path: "/v1/a%2Fb;c", status: 400, cause: errSlashAndParam},
		{name: "backslash still refused", cfg: slashes, path: "/v1/a%5cb", status: 400, cause: errBackslash},
		{name: "double encoding still refused", cfg: slashes, path: "/v1/a%252fb", status: 400, cause: errDoubleEncoded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGate(t, k, tc.cfg)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r := rawRequest(t, method, tc.path)
			r.Header.Set("Authorization", "Bearer "+readOnly)
			_, d := g.Authorize(r)
			switch {
			case tc.status == 0:
				if d != nil {
					t.Fatalf("denied: %v", d)
				}
				return
			case d == nil:
				t.Fatalf("allowed, want %d", tc.status)
			case d.Status != tc.status:
				t.Fatalf("denial %v, want %d", d, tc.status)
			}
			if tc.status == 400 {
				if d.Code != CodeInvalidRequest || d.Reason() != ReasonAmbiguousPath || !errors.Is(d, tc.cause) {
					t.Fatalf("denial %v (reason %s), want invalid_request for %v", d, d.Reason(), tc.cause)
				}
				if !strings.Contains(d.Error(), r.URL.EscapedPath()) {
					t.Errorf("the log line %q does not name the path", d.Error())
				}
				if _, err := g.RequiredScopes(method, r.URL.EscapedPath()); !errors.Is(err, tc.cause) {
					t.Errorf("RequiredScopes: %v, want %v", err, tc.cause)
				}
				return
			}
			if d.Scope != tc.scope {
				t.Fatalf("scope %q, want %q (%v)", d.Scope, tc.scope, d)
			}
		})
	}
}

// TestReadPath lists the readings rules judge.
func TestReadPath(t *testing.T) {
	tests := []struct {
		path  string
		allow bool
		want  []string
	}{
		{"", false, []string{"/"}},
		{"/", false, []string{"/"}},
		{"v1", false, []string{"/v1"}},
		{"/v1/x/", false, []string{"/v1/x/"}},
		{"/V1/%78", false, []string{"/v1/x"}},
		{"/a//b", false, []string{"/a/b", "/a//b"}},
		{"//", false, []string{"/", "//"}},
		{"/a/b//", false, []string{"/a/b/", "/a/b//"}},
		{"/a;p/b", false, []string{"/a;p/b", "/a/b"}},
		{"/a;p/b;q", false, []string{"/a;p/b;q", "/a/b"}},
		{"/;p/b", false, []string{"/;p/b", "/b", "//b"}},
		{"/a%3Bp/b", false, []string{"/a;p/b"}},
		{"/a%2Fb/c", true, []string{"/a%2fb/c", "/a/b/c"}},
		{"/a%2F%2Fb", true, []string{"/a%2f%2fb", "/a/b", "/a//b"}},
		{"/%C4%B0;x", false, []string{"/i;x", "/i"}}, // lower-casing İ (2 bytes) gives i (1 byte)
		{"/%FF%C0", false, []string{"/\xff\xc0"}},
	}
	for _, tc := range tests {
		f, err := readPath(tc.path, tc.allow)
		if err != nil {
			t.Errorf("%q: %v", tc.path, err)
			continue
		}
		if got := f.forms[:f.n]; !slices.Equal(got, tc.want) {
			t.Errorf("%q: readings %q, want %q", tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"/%zz", "/a%2", "/a%"} {
		if _, err := readPath(bad, false); !errors.Is(err, errBadEscape) {
			t.Errorf("%q: %v, want %v", bad, err, errBadEscape)
		}
	}
}

// TestDecodePattern: rule globs are decoded like request paths.
func TestDecodePattern(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/*":      "/v1/*",
		"/%7Eu/*":    "/~u/*",
		"/a%2Fb":     "/a%2fb",
		"/a%2a":      `/a\*`,
		"/a%5B%5D":   `/a\[\]`,
		"/caf%C3%A9": "/café",
	} {
		if got, err := decodePattern(in); err != nil || got != want {
			t.Errorf("decodePattern(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := New(Config{Issuer: testIssuer, Audience: []string{"a"}, Rules: []Rule{{Path: "/a%zz", Scopes: []string{"x"}}}}, sharedKeys()); err == nil ||
		!strings.Contains(err.Error(), "malformed percent-encoding") {
		t.Errorf("a malformed rule path: %v", err)
	}
}

// TestRequirementUnion: a request read two ways needs the scopes and conditions of both rules.
func TestRequirementUnion(t *testing.T) {
	cfg := testConfig()
	cfg.Rules = []Rule{
		{Path: "/a/*", Scopes: []string{"a"}, Claims: []string{`claims.sub == "alice"`}},
		{Path: "/a;x/*", Scopes: []string{"b"}},
	}
	g, err := New(cfg, sharedKeys())
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.RequiredScopes("GET", "/a;x/y")
	if err != nil || !slices.Equal(got, []string{"read", "b", "a"}) {
		t.Fatalf("union of two readings: %v, %v", got, err)
	}
	f, _ := readPath("/a;x/y", false)
	if need := g.requirement("GET", &f); len(need.conds) != 1 {
		t.Fatalf("conditions of the union: %d, want 1", len(need.conds))
	}
	if got, _ := g.RequiredScopes("GET", "/a/y"); !slices.Equal(got, []string{"read", "a"}) {
		t.Fatalf("one reading: %v", got)
	}
}

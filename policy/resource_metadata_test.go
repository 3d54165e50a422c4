package policy

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// stripped is a Config.OriginalURL for a router that stripped prefix before the Gate, as Caddy's
// handle_path does; it is given on each request as the X-Stripped header.
// X-Original instead gives the whole original path, as after a rewrite.
func stripped(r *http.Request) *url.URL {
	u := *r.URL
	switch {
	case r.Header.Get("X-Original") != "":
		u.Path, u.RawPath = r.Header.Get("X-Original"), ""
	case r.Header.Get("X-Stripped") != "":
		u.Path, u.RawPath = r.Header.Get("X-Stripped")+r.URL.Path, ""
	default:
		return nil
	}
	return &u
}

// TestResourceMetadataRewritten: the path-inserted RFC 9728 URL of a Gate mounted under /api
// reaches it when the site rewrites it to the Gate's own document URL (the README's snippet),
// and the document names the resource https://api.test/api, with no resource configured.
func TestResourceMetadataRewritten(t *testing.T) {
	cfg := testConfig()
	cfg.OriginalURL = stripped
	g, err := New(cfg, sharedKeys())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ original, seen, resource string }{
		{WellKnownResourcePath + "/api", "/api" + WellKnownResourcePath, "https://api.test/api"}, // handle, route
		{WellKnownResourcePath + "/api", WellKnownResourcePath, "https://api.test/api"},          // handle_path
		{WellKnownResourcePath + "/api", "/other" + WellKnownResourcePath, ""},                   // not the Gate's
		{WellKnownResourcePath + "/api", "/api/x", ""},
	} {
		r := httptest.NewRequest("GET", "https://api.test"+tc.seen, nil)
		r.TLS = &tls.ConnectionState{}
		r.Header.Set("X-Original", tc.original)
		if ok := g.IsResourceMetadata(r); ok != (tc.resource != "") {
			t.Errorf("%s seen as %s: metadata %v", tc.original, tc.seen, ok)
			continue
		}
		if doc := g.ResourceMetadataDocument(r); tc.resource != "" && !strings.HasPrefix(string(doc), `{"resource":"`+tc.resource+`"`) {
			t.Errorf("%s seen as %s: %s", tc.original, tc.seen, doc)
		}
	}
}

func TestResourceMetadata(t *testing.T) {
	wk := WellKnownResourcePath
	tests := []struct {
		name     string
		cfg      func(*Config)
		strip    string            // the prefix a router stripped before the Gate
		paths    []string          // where the document is served, as the Gate sees the request
		notAt    []string          // where it is not
		others   map[string]string // where the document of another resource is served, and that resource
		resource string
		header   string // resource_metadata of a challenge to https://api.test/v1/items
		methods  []string
	}{
		{name: "defaults: the origin", paths: []string{wk}, notAt: []string{"/v1" + wk, "/prm", "/v1" + wk + "/v1"},
			// At the root every path is the Gate's: RFC 9728 §3 path insertion names its resource.
			others:   map[string]string{wk + "/v1": "https://api.test/v1", wk + "/v1/": "https://api.test/v1", wk + "/mcp/x": "https://api.test/mcp/x"},
			resource: "https://api.test", header: "https://api.test" + wk, methods: []string{"header"}},
		{name: "query tokens", cfg: func(c *Config) { c.AllowQueryToken = true }, paths: []string{wk},
			resource: "https://api.test", header: "https://api.test" + wk, methods: []string{"header", "query"}},
		{name: "resource URL with a path", cfg: func(c *Config) { c.Resource = "https://gw.example.com/v1/" },
			paths: []string{"/v1" + wk, wk + "/v1", wk + "/v1/"}, notAt: []string{wk, wk + "/v2", "/v2" + wk},
			resource: "https://gw.example.com/v1/", header: "https://gw.example.com/v1" + wk, methods: []string{"header"}},
		{name: "resource URL at the root", cfg: func(c *Config) { c.Resource = "https://gw.example.com" },
			paths: []string{wk}, notAt: []string{"/v1" + wk},
			resource: "https://gw.example.com", header: "https://gw.example.com" + wk, methods: []string{"header"}},
		{name: "resource URN", cfg: func(c *Config) { c.Resource = "urn:example:api" }, paths: []string{wk},
			resource: "urn:example:api", header: "https://api.test" + wk, methods: []string{"header"}},
		{name: "fixed metadata URL", cfg: func(c *Config) { c.ResourceMetadataURL = "https://meta.example.com/prm" },
			paths: []string{"/prm"}, notAt: []string{wk}, resource: "https://api.test", header: "https://meta.example.com/prm", methods: []string{"header"}},
		{name: "audience on this host names the resource", cfg: func(c *Config) { c.Audience = append(c.Audience, "https://API.test:443/v1") },
			paths: []string{"/v1" + wk, wk + "/v1"}, notAt: []string{"/v2" + wk}, others: map[string]string{wk + "/v2": "https://api.test/v2"},
			resource: "https://API.test:443/v1", header: "https://API.test:443/v1" + wk, methods: []string{"header"}},
		{name: "the longest audience on this host", cfg: func(c *Config) {
			c.Audience = append(c.Audience, "https://api.test", "https://api.test/v1", "https://api.test/v1/items/x")
		}, paths: []string{"/v1" + wk}, resource: "https://api.test/v1", header: "https://api.test/v1" + wk, methods: []string{"header"}},
		{name: "audience on another path of this host", cfg: func(c *Config) { c.Audience = append(c.Audience, "https://api.test/v2") },
			paths: []string{wk}, resource: "https://api.test", header: "https://api.test" + wk, methods: []string{"header"}},
		{name: "stripped prefix", strip: "/api", paths: []string{wk}, notAt: []string{"/api" + wk, wk + "/api"},
			resource: "https://api.test/api", header: "https://api.test/api" + wk, methods: []string{"header"}},
		{name: "stripped prefix with a resource URL", strip: "/api", cfg: func(c *Config) { c.Resource = "https://gw.example.com/api" },
			paths: []string{wk}, resource: "https://gw.example.com/api", header: "https://gw.example.com/api" + wk, methods: []string{"header"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.OriginalURL = stripped
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			g, err := New(cfg, sharedKeys())
			if err != nil {
				t.Fatal(err)
			}
			request := func(target string) *http.Request {
				r := httptest.NewRequest("GET", "https://api.test"+target, nil)
				r.TLS = &tls.ConnectionState{}
				if tc.strip != "" {
					r.Header.Set("X-Stripped", tc.strip)
				}
				return r
			}
			for _, p := range tc.notAt {
				if g.IsResourceMetadata(request(p)) {
					t.Errorf("%s is a metadata path", p)
				}
			}
			for p, res := range tc.others {
				w := httptest.NewRecorder()
				if r := request(p); !g.IsResourceMetadata(r) || !strings.Contains(string(g.ResourceMetadataDocument(r)), `"resource":"`+res+`"`) {
					t.Errorf("%s: %s", p, g.ResourceMetadataDocument(r))
				} else if g.ServeResourceMetadata(w, r); !strings.HasPrefix(w.Body.String(), `{"resource":"`+res+`"`) {
					t.Errorf("%s: served %s", p, w.Body)
				}
			}
			for _, p := range tc.paths {
				r := request(p)
				if !g.IsResourceMetadata(r) {
					t.Fatalf("%s is not the metadata path", p)
				}
				w := httptest.NewRecorder()
				g.ServeResourceMetadata(w, r)
				var doc struct {
					Resource string   `json:"resource"`
					AS       []string `json:"authorization_servers"`
					Scopes   []string `json:"scopes_supported"`
					Methods  []string `json:"bearer_methods_supported"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != 200 {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				if doc.Resource != tc.resource || !slices.Equal(doc.AS, []string{testIssuer}) ||
					!slices.Equal(doc.Scopes, []string{"read", "write", "delete", "reports", "admin"}) || !slices.Equal(doc.Methods, tc.methods) {
					t.Errorf("%s: document %+v", p, doc)
				}
				if !bytes.Equal(g.ResourceMetadataDocument(r), w.Body.Bytes()) {
					t.Errorf("ResourceMetadataDocument %s", g.ResourceMetadataDocument(r))
				}
				if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Content-Type") != "application/json" {
					t.Errorf("headers %v", w.Header())
				}
			}
			d := &Denial{Status: 403, Code: CodeInsufficientScope, Scope: "read write"}
			want := `, error="insufficient_scope", scope="read write", resource_metadata="` + tc.header + `"`
			if got := g.Challenge(request("/v1/items"), d); !strings.HasSuffix(got, want) {
				t.Errorf("challenge %s, want suffix %s", got, want)
			}
		})
	}
}

// TestChallengeScope: a 401 announces the scopes of the route it refused, as RFC 6750 §3 allows
// and the MCP authorization spec asks; a route that needs none adds no scope attribute.
func TestChallengeScope(t *testing.T) {
	k := sharedKeys()
	expired := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["exp"] = int64(1) })
	tests := []struct {
		name, method, target, token string
		edit                        func(*Config)
		want                        string // the scope attribute, "" for none
	}{
		{name: "no token, base scope", method: "GET", target: "/v1/items", want: "read"},
		{name: "no token, rule scopes", method: "POST", target: "/v1/items", want: "read write"},
		{name: "expired, rule scopes", method: "DELETE", target: "/v2/items/1", token: expired, want: "read write delete"},
		{name: "garbage token", method: "GET", target: "/admin/x", token: "abc.def", want: "read admin"},
		{name: "no base scope, no rule", method: "GET", target: "/v1/items", edit: func(c *Config) { c.Scopes = nil }},
		{name: "a rule without scopes", method: "GET", target: "/open/x", edit: func(c *Config) {
			c.Scopes = nil
			c.Rules = append([]Rule{{Path: "/open/*"}}, c.Rules...)
		}},
		{name: "bad bearer syntax is a 400 without scope", method: "GET", target: "/v1/items", token: "a b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGate(t, k, tc.edit)
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			_, d := g.Authorize(r)
			if d == nil {
				t.Fatal("allowed")
			}
			got := g.Challenge(r, d)
			if tc.want == "" {
				if strings.Contains(got, "scope=") || d.Scope != "" {
					t.Fatalf("challenge %s", got)
				}
				return
			}
			if d.Status != 401 || !strings.Contains(got, `, scope="`+tc.want+`", resource_metadata=`) {
				t.Fatalf("%d %s, want scope %q", d.Status, got, tc.want)
			}
		})
	}
}

func TestResourceMetadataMethods(t *testing.T) {
	g, _ := New(testConfig(), sharedKeys())
	for method, status := range map[string]int{"GET": 200, "HEAD": 200, "OPTIONS": 204, "POST": 405, "DELETE": 405} {
		w := httptest.NewRecorder()
		g.ServeResourceMetadata(w, httptest.NewRequest(method, WellKnownResourcePath, nil))
		if w.Code != status || (method == "HEAD" && w.Body.Len() != 0) {
			t.Errorf("%s: %d (%d bytes)", method, w.Code, w.Body.Len())
		}
	}
}

func TestFormatClaim(t *testing.T) {
	var m map[string]any
	_ = json.Unmarshal([]byte(`{"o":{"b":1,"a":"x"}}`), &m)
	tests := []struct {
		in   any
		want string
	}{
		{"alice", "alice"}, {int64(1712345678), "1712345678"}, {2.5, "2.5"}, {true, "true"}, {nil, ""},
		{[]any{"read", "write"}, "read write"}, {[]any{int64(1), true, "x"}, "1 true x"},
		{m["o"], `{"a":"x","b":1}`}, {[]any{map[string]any{"k": "v"}}, `{"k":"v"}`},
	}
	for _, tc := range tests {
		if got := FormatClaim(tc.in); got != tc.want {
			t.Errorf("FormatClaim(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := headerSafe("a\r\nX-Evil: 1\tb"); got != "a  X-Evil: 1\tb" {
		t.Errorf("headerSafe: %q", got)
	}
	if v := normalizeNumbers(json.Number("1e3")); v != int64(1000) {
		t.Errorf("1e3 → %#v", v)
	}
}

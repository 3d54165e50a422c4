package policy

import (
	"crypto/tls"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestResourceMetadata(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(*Config)
		path     string // where the document is served
		resource string
		header   string // resource_metadata of a challenge to https://api.test/v1/items
		methods  []string
	}{
		{name: "defaults", path: WellKnownResourcePath, resource: testAudience,
			header: "https://api.test" + WellKnownResourcePath, methods: []string{"header"}},
		{name: "query tokens", cfg: func(c *Config) { c.AllowQueryToken = true }, path: WellKnownResourcePath,
			resource: testAudience, header: "https://api.test" + WellKnownResourcePath, methods: []string{"header", "query"}},
		{name: "resource URL with a path", cfg: func(c *Config) { c.Resource = "https://gw.example.com/v1/" },
			path: WellKnownResourcePath + "/v1", resource: "https://gw.example.com/v1/",
			header: "https://gw.example.com" + WellKnownResourcePath + "/v1", methods: []string{"header"}},
		{name: "resource URN", cfg: func(c *Config) { c.Resource = "urn:example:api" }, path: WellKnownResourcePath,
			resource: "urn:example:api", header: "https://api.test" + WellKnownResourcePath, methods: []string{"header"}},
		{name: "fixed metadata URL", cfg: func(c *Config) { c.ResourceMetadataURL = "https://meta.example.com/prm" },
			path: "/prm", resource: testAudience, header: "https://meta.example.com/prm", methods: []string{"header"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			g, err := New(cfg, sharedKeys())
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "https://api.test"+tc.path, nil)
			r.TLS = &tls.ConnectionState{}
			if !g.IsResourceMetadata(r) {
				t.Fatalf("%s is not the metadata path", tc.path)
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
				t.Errorf("document %+v", doc)
			}
			if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", w.Header())
			}
			api := httptest.NewRequest("GET", "https://api.test/v1/items", nil)
			api.TLS = &tls.ConnectionState{}
			d := &Denial{Status: 403, Code: CodeInsufficientScope, Scope: "read write"}
			want := `, error="insufficient_scope", scope="read write", resource_metadata="` + tc.header + `"`
			if got := g.Challenge(api, d); !strings.HasSuffix(got, want) {
				t.Errorf("challenge %s, want suffix %s", got, want)
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

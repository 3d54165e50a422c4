package policy

import (
	"slices"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/v1/*", "/v1/a/b", true},
		{"/v1/*", "/v1/", true},
		{"/v1/*", "/v1", false},
		{"/v1/*", "/v2/a", false},
		{"/v1/*", "/V1/A", true},
		{"/V1/*", "/v1/a", true},
		{"/v1*", "/v1", true},
		{"/v1*", "/v1x/y", true},
		{"/*", "/", true},
		{"/*", "/a/b", true},
		{"*", "/a", true},
		{"/v1/items", "/v1/items", true},
		{"/v1/items", "/v1/items/", true},
		{"/v1/items", "/v1/items/x", false},
		{"/v1/items/", "/v1/items", false},
		{"/v*/users/*", "/v1/users/a/b", true},
		{"/v*/users/*", "/v2/users/", true},
		{"/v*/users/*", "/v1/x/users/a", false},
		{"/v[0-9]/*", "/v1/a/b", true},
		{"/v[0-9]/*", "/vx/a", false},
		{"/a[^b]c/*", "/a/c/x/y", true}, // a negated class matches '/' in path.Match
		{"/a[^b]c/*", "/abc/x", false},
		{"/files/*.pdf", "/files/a.pdf", true},
		{"/files/*.pdf", "/files/x/a.pdf", false},
		{"/files/*.PDF", "/files/A.pdf", true},
		{`/a\*`, "/a*", true},
		{`/a\*`, "/ab", false},
		{"/%7Euser/*", "/~user/x", true},
		{"/~user/*", "/%7Euser/x", true},
		{"/a%2A", "/a*", true}, // a decoded meta character is literal
		{"/a%2A", "/ab", false},
		{"/users/@me/*", "/users/%40me/x", true},
		{"/caf%C3%A9/*", "/CAF%C3%89/x", true},
		{"/a?/*", "/ab/c", true},
		{"/a?/*", "/a/c", false},
	}
	for _, tc := range tests {
		g, err := compileGlob(tc.pattern)
		if err != nil {
			t.Errorf("%s: %v", tc.pattern, err)
			continue
		}
		forms, err := readPath(tc.path, false)
		if err != nil || forms.n != 1 {
			t.Errorf("%s: %d readings, %v", tc.path, forms.n, err)
			continue
		}
		if got := g.matchPath(forms.forms[0]); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestRequiredScopes(t *testing.T) {
	g, err := New(testConfig(), sharedKeys())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		want         []string
	}{
		{"GET", "/v1/x", []string{"read"}},
		{"POST", "/v1/x", []string{"read", "write"}},
		{"", "/reports/1", []string{"read", "reports"}},
		{"DELETE", "/v2/items/1", []string{"read", "write", "delete"}},
		{"PATCH", "/v2/items/1", []string{"read"}},
		{"POST", "/admin/x", []string{"read", "admin"}},
		{"GET", "/ADMIN/x", []string{"read", "admin"}},
		{"GET", "/%61dmin/x", []string{"read", "admin"}},
	}
	for _, tc := range tests {
		got, err := g.RequiredScopes(tc.method, tc.path)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("RequiredScopes(%s %s) = %v, %v, want %v", tc.method, tc.path, got, err, tc.want)
			continue
		}
		got[0] = "mutated" // a copy: the gate's own list must not change
	}
	if got, _ := g.RequiredScopes("GET", "/"); got[0] != "read" {
		t.Errorf("RequiredScopes returned the gate's own slice: %v", got)
	}

	// First match wins, and scopes are de-duplicated.
	cfg := testConfig()
	cfg.Rules = []Rule{
		{Methods: []string{"*"}, Path: "/x/*", Scopes: []string{"read", "a"}},
		{Path: "/x/y", Scopes: []string{"b"}},
	}
	g, err = New(cfg, sharedKeys())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := g.RequiredScopes("GET", "/x/y"); !slices.Equal(got, []string{"read", "a"}) {
		t.Errorf("first match: %v", got)
	}
}

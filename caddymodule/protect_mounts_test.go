package caddymodule

import "testing"

func TestPatternPrefix(t *testing.T) {
	for _, tc := range []struct {
		pattern, prefix string
		ok              bool
	}{
		{"/api/*", "/api", true},
		{"/api*", "/api", true},
		{"/api", "", false},
		{"/api/", "", false},
		{"/api/v1/*", "/api/v1", true},
		{"/*", "", false},
		{"*", "", false},
		{"/", "", false},
		{"/api/*/x", "", false},
		{"/a%2fb/*", "", false},
		{"*.json", "", false},
	} {
		prefix, ok := patternPrefix(tc.pattern)
		if prefix != tc.prefix || ok != tc.ok {
			t.Errorf("patternPrefix(%q) = %q, %v; want %q, %v", tc.pattern, prefix, ok, tc.prefix, tc.ok)
		}
	}
}

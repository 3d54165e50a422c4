package ui

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestFormPost(t *testing.T) {
	params := []Hidden{{"code", "SplxlOBeZQQYbYS6WxSbIA"}, {"state", "xyz&1"}, {"iss", "https://auth.example.com"}}
	p := serve(t, func(w http.ResponseWriter) { FormPost(w, "https://app.example.com/cb", params) })
	if p.code != http.StatusOK {
		t.Fatalf("status %d", p.code)
	}
	checkDocumentFrame(t, p)
	p.one(t, "form", "method", "post", "action", "https://app.example.com/cb")
	var got []Hidden
	for _, in := range p.all("input", "type", "hidden") {
		n, _ := attr(in, "name")
		v, _ := attr(in, "value")
		got = append(got, Hidden{n, v})
	}
	if !slices.Equal(got, params) {
		t.Errorf("posted fields = %v, want %v (and no CSRF field: the client is the target)", got, params)
	}
	noscript := p.one(t, "noscript")
	if !strings.Contains(noscript.FirstChild.Data, `<button type="submit">`) {
		t.Errorf("<noscript> has no submit button: %q", noscript.FirstChild.Data)
	}
	if got := text(p.one(t, "script")); got != formPostJS {
		t.Errorf("script = %q, want the embedded %q", got, formPostJS)
	}
}

// checkDocumentFrame checks the frame of the form_post page, which has a script.
func checkDocumentFrame(t *testing.T, p *page) {
	t.Helper()
	p.one(t, "html", "lang", "en")
	p.one(t, "main")
	p.one(t, "style")
}

func TestProgrammingErrors(t *testing.T) {
	tests := []struct {
		name   string
		render func(w http.ResponseWriter)
		want   string
	}{
		{"login without CSRF", func(w http.ResponseWriter) { Login(w, 200, LoginData{Action: "/l"}) }, "no CSRF token"},
		{"consent without CSRF", func(w http.ResponseWriter) { Consent(w, ConsentData{Action: "/c", ClientID: "c"}) }, "no CSRF token"},
		{"device without CSRF", func(w http.ResponseWriter) { Device(w, 200, DeviceData{Action: "/d"}) }, "no CSRF token"},
		{"logout without CSRF", func(w http.ResponseWriter) { Logout(w, LogoutData{Action: "/o"}) }, "no CSRF token"},
		{"hidden CSRF field", func(w http.ResponseWriter) {
			Login(w, 200, LoginData{Action: "/l", CSRF: "t", Hidden: []Hidden{{CSRFField, "other"}}})
		}, `"csrf_token" clashes`},
		{"hidden username", func(w http.ResponseWriter) {
			Login(w, 200, LoginData{Action: "/l", CSRF: "t", Hidden: []Hidden{{"username", "root"}}})
		}, `"username" clashes`},
		{"hidden decision", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/c", CSRF: "t", Hidden: []Hidden{{"decision", "allow"}}})
		}, `"decision" clashes`},
		{"hidden user_code", func(w http.ResponseWriter) {
			Device(w, 200, DeviceData{Action: "/d", CSRF: "t", Hidden: []Hidden{{"user_code", "X"}}})
		}, `"user_code" clashes`},
		{"form_post relative", func(w http.ResponseWriter) { FormPost(w, "/cb", nil) }, "absolute http or https"},
		{"form_post custom scheme", func(w http.ResponseWriter) { FormPost(w, "com.example.app:/cb", nil) }, "absolute http or https"},
		{"form_post javascript", func(w http.ResponseWriter) { FormPost(w, "javascript:alert(1)", nil) }, "absolute http or https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := serve(t, tt.render)
			if p.code != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", p.code)
			}
			if ct := p.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
				t.Error("security headers missing on the error")
			}
			if !strings.Contains(p.body, tt.want) || strings.Contains(p.body, "<form") {
				t.Errorf("body %q, want %q and no form", p.body, tt.want)
			}
		})
	}
}

func TestScopeDescription(t *testing.T) {
	for scope, want := range map[string]bool{"openid": true, "profile": true, "email": true,
		"offline_access": true, "address": true, "phone": true, "read": false, "OpenID": false, "": false} {
		if got := ScopeDescription(scope) != ""; got != want {
			t.Errorf("ScopeDescription(%q) known = %v, want %v", scope, got, want)
		}
	}
}

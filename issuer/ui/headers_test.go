package ui

import (
	"net/http"
	"strings"
	"testing"
)

func TestSecurityHeaders(t *testing.T) {
	tests := []struct {
		name       string
		render     func(w http.ResponseWriter)
		formAction string
		script     bool
	}{
		{"login", func(w http.ResponseWriter) { Login(w, 200, LoginData{Action: "/l", CSRF: "tok"}) }, "'self'", false},
		{"login with redirect", func(w http.ResponseWriter) {
			Login(w, 200, LoginData{Action: "/l", CSRF: "tok", Redirect: "https://App.Example.com:8443/cb?x=1#f"})
		}, "'self' https://app.example.com:8443", false},
		{"consent with redirect", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/c", CSRF: "tok", ClientID: "c", Redirect: "http://127.0.0.1:51004/callback"})
		}, "'self' http://127.0.0.1:51004", false},
		{"consent native app", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/c", CSRF: "tok", ClientID: "c", Redirect: "com.example.app:/oauth2redirect"})
		}, "'self' com.example.app:", false},
		{"consent javascript redirect ignored", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/c", CSRF: "tok", ClientID: "c", Redirect: "javascript:alert(1)"})
		}, "'self'", false},
		{"logout header injection ignored", func(w http.ResponseWriter) {
			Logout(w, LogoutData{Action: "/o", CSRF: "tok", Redirect: "https://a.example; script-src *"})
		}, "'self'", false},
		{"device", func(w http.ResponseWriter) { Device(w, 200, DeviceData{Action: "/d", CSRF: "tok"}) }, "'self'", false},
		{"message", func(w http.ResponseWriter) { Message(w, MessageData{Title: "x"}) }, "'self'", false},
		{"form_post", func(w http.ResponseWriter) {
			FormPost(w, "https://app.example.com/cb?tenant=1", []Hidden{{"code", "c"}})
		}, "https://app.example.com", true},
		{"form_post loopback", func(w http.ResponseWriter) {
			FormPost(w, "http://[::1]:8080/cb", []Hidden{{"code", "c"}})
		}, "http://[::1]:8080", true},
		{"SetSecurityHeaders", func(w http.ResponseWriter) {
			SetSecurityHeaders(w.Header())
			_, _ = w.Write([]byte("<!doctype html><style>" + styleCSS + "</style>"))
		}, "'self'", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := serve(t, tt.render)
			for h, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"Cache-Control":          "no-store",
				"X-Frame-Options":        "DENY",
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := p.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			for d, want := range map[string]string{
				"default-src":     "'none'",
				"style-src":       cspHash(text(p.one(t, "style"))),
				"form-action":     tt.formAction,
				"frame-ancestors": "'none'",
				"base-uri":        "'none'",
			} {
				if got := p.cspDirective(d); got != want {
					t.Errorf("CSP %s = %q, want %q (policy %q)", d, got, want, p.header.Get("Content-Security-Policy"))
				}
			}
			script := p.cspDirective("script-src")
			if !tt.script {
				if script != "" {
					t.Errorf("CSP allows scripts on a page without one: %q", script)
				}
				return
			}
			if want := cspHash(text(p.one(t, "script"))); script != want {
				t.Errorf("CSP script-src = %q, want the hash of the served script %q", script, want)
			}
		})
	}
}

func TestOriginSource(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://app.example.com/cb", "https://app.example.com", true},
		{"HTTPS://App.Example.COM:444/cb?q#f", "https://app.example.com:444", true},
		{"http://localhost:3000/", "http://localhost:3000", true},
		{"http://[::1]:8080/cb", "http://[::1]:8080", true},
		{"com.example.app:/oauth2redirect", "com.example.app:", true},
		{"", "", false},
		{"/relative/path", "", false},
		{"https:///no-host", "", false},
		{"https://user:pw@app.example.com/", "", false},
		{"javascript:alert(1)", "", false},
		{"data:text/html,hi", "", false},
		{"https://a.example;script-src *", "", false},
		{"https://a.example,b", "", false},
		{"https://a.example/'x'", "", false},
		{"https://a.example/\r\nX-Evil: 1", "", false},
	}
	for _, tt := range tests {
		got, ok := originSource(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("originSource(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEscaping(t *testing.T) {
	const evil = `<script>alert(1)</script>`
	const attrEvil = `"><img src=x onerror=alert(1)>`
	tests := []struct {
		name   string
		render func(w http.ResponseWriter)
		shown  []string // must appear as text, literally
	}{
		{"login", func(w http.ResponseWriter) {
			Login(w, 401, LoginData{Action: "/l", CSRF: attrEvil, Hidden: []Hidden{{attrEvil, attrEvil}},
				Username: attrEvil, Error: evil, ClientName: evil, IssuerHost: evil})
		}, []string{evil}},
		{"consent", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/c", CSRF: "tok", ClientName: evil, ClientID: attrEvil, Username: evil,
				Scopes: []string{evil, "openid"}})
		}, []string{evil, attrEvil}},
		{"device", func(w http.ResponseWriter) {
			Device(w, 400, DeviceData{Action: "/d", CSRF: "tok", UserCode: attrEvil, Error: evil})
		}, []string{evil}},
		{"message", func(w http.ResponseWriter) { Message(w, MessageData{Title: evil, Message: attrEvil}) }, []string{evil, attrEvil}},
		{"logout", func(w http.ResponseWriter) {
			Logout(w, LogoutData{Action: "/o", CSRF: "tok", ClientName: evil, Username: attrEvil, IssuerHost: evil})
		}, []string{evil, attrEvil}},
		{"javascript action", func(w http.ResponseWriter) {
			Login(w, 200, LoginData{Action: "javascript:alert(1)", CSRF: "tok"})
		}, nil},
		{"form_post params", func(w http.ResponseWriter) {
			FormPost(w, `https://app.example.com/cb?a="><script>`, []Hidden{{attrEvil, evil}})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := serve(t, tt.render)
			if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img") {
				t.Fatalf("markup injected:\n%s", p.body)
			}
			if n := len(p.all("img")); n != 0 {
				t.Fatal("injected <img> parsed")
			}
			if n := len(p.all("script")); n > 0 && tt.name != "form_post params" || n > 1 {
				t.Fatalf("%d <script> elements", n)
			}
			main := text(p.one(t, "main"))
			for _, s := range tt.shown {
				if !strings.Contains(main, s) {
					t.Errorf("page does not show %q as text", s)
				}
			}
			for _, f := range p.all("form") {
				if a, _ := attr(f, "action"); strings.HasPrefix(a, "javascript:") {
					t.Errorf("form action %q", a)
				}
			}
		})
	}
}

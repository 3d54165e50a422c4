package ui

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

var hidden = []Hidden{{Name: "request", Value: "r-123"}, {Name: "state", Value: "a b&c"}}

func TestPagesContract(t *testing.T) {
	tests := []struct {
		name   string
		render func(w http.ResponseWriter)
		status int
		hidden []Hidden // the hidden fields passed, which the form must carry after the CSRF field
		check  func(t *testing.T, p *page)
	}{
		{"login", func(w http.ResponseWriter) {
			Login(w, http.StatusOK, LoginData{Action: "/login", CSRF: "tok", Hidden: hidden, ClientName: "Web App", IssuerHost: "auth.example.com"})
		}, http.StatusOK, hidden, func(t *testing.T, p *page) {
			p.one(t, "input", "name", "username", "type", "text", "autocomplete", "username", "id", "username", "required", "*", "autofocus", "*")
			p.one(t, "input", "name", "password", "type", "password", "autocomplete", "current-password", "id", "password", "required", "*")
			p.one(t, "label", "for", "username")
			p.one(t, "label", "for", "password")
			if n := len(p.all("button")) + len(p.all("input", "type", "submit")); n != 1 {
				t.Errorf("%d submit buttons, want exactly 1", n)
			}
			p.one(t, "button", "type", "submit")
			for _, s := range []string{"Web App", "auth.example.com"} {
				if !strings.Contains(text(p.one(t, "main")), s) {
					t.Errorf("page does not show %q", s)
				}
			}
			if len(p.all("p", "role", "alert")) != 0 {
				t.Error("error shown without an error")
			}
		}},
		{"login after a failure", func(w http.ResponseWriter) {
			Login(w, http.StatusUnauthorized, LoginData{Action: "/login", CSRF: "tok", Username: "alice", Error: "Wrong username or password."})
		}, http.StatusUnauthorized, nil, func(t *testing.T, p *page) {
			p.one(t, "input", "name", "username", "value", "alice", "aria-invalid", "true", "aria-describedby", "error")
			p.one(t, "input", "name", "password", "autofocus", "*", "aria-invalid", "true")
			if got := text(p.one(t, "p", "role", "alert", "id", "error")); got != "Wrong username or password." {
				t.Errorf("alert = %q", got)
			}
		}},
		{"consent", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/consent", CSRF: "tok", Hidden: hidden, ClientName: "Web App", ClientID: "webapp",
				Username: "alice", Scopes: []string{"openid", "profile", "email", "offline_access", "read:invoices"}})
		}, http.StatusOK, hidden, func(t *testing.T, p *page) {
			p.one(t, "button", "type", "submit", "name", "decision", "value", DecisionAllow)
			p.one(t, "button", "type", "submit", "name", "decision", "value", DecisionDeny)
			lead := text(p.one(t, "p", "class", "lead"))
			for _, s := range []string{"Web App", "(webapp)", "alice"} {
				if !strings.Contains(lead, s) {
					t.Errorf("lead %q does not show %q", lead, s)
				}
			}
			items := p.all("li")
			want := []string{
				"Confirm who you are (your user ID) openid",
				"See your name and basic profile profile",
				"See your email address email",
				"Stay connected when you are not using it offline_access",
				"read:invoices",
			}
			if len(items) != len(want) {
				t.Fatalf("%d scopes listed, want %d", len(items), len(want))
			}
			for i, li := range items {
				if got := text(li); got != want[i] {
					t.Errorf("scope %d = %q, want %q", i, got, want[i])
				}
			}
		}},
		{"consent without a client name", func(w http.ResponseWriter) {
			Consent(w, ConsentData{Action: "/consent", CSRF: "tok", ClientID: "webapp"})
		}, http.StatusOK, nil, func(t *testing.T, p *page) {
			if got := text(p.one(t, "p", "class", "lead")); got != "webapp wants to access your account." {
				t.Errorf("lead = %q", got)
			}
			if len(p.all("ul")) != 0 {
				t.Error("empty scope list rendered")
			}
		}},
		{"device", func(w http.ResponseWriter) {
			Device(w, http.StatusOK, DeviceData{Action: "/device", CSRF: "tok", Hidden: hidden, UserCode: "WDJB-MJHT"})
		}, http.StatusOK, hidden, func(t *testing.T, p *page) {
			p.one(t, "input", "name", "user_code", "value", "WDJB-MJHT", "autocomplete", "one-time-code", "id", "user_code")
			p.one(t, "label", "for", "user_code")
			p.one(t, "button", "type", "submit")
		}},
		{"device after a wrong code", func(w http.ResponseWriter) {
			Device(w, http.StatusBadRequest, DeviceData{Action: "/device", CSRF: "tok", UserCode: "XXXX", Error: "That code is not valid."})
		}, http.StatusBadRequest, nil, func(t *testing.T, p *page) {
			p.one(t, "input", "name", "user_code", "value", "XXXX", "aria-invalid", "true")
			p.one(t, "p", "role", "alert")
		}},
		{"logout", func(w http.ResponseWriter) {
			Logout(w, LogoutData{Action: "/logout", CSRF: "tok", Hidden: hidden, ClientName: "Web App", Username: "alice"})
		}, http.StatusOK, hidden, func(t *testing.T, p *page) {
			p.one(t, "button", "type", "submit", "name", "decision", "value", DecisionLogout)
			p.one(t, "button", "type", "submit", "name", "decision", "value", DecisionCancel)
		}},
		{"message", func(w http.ResponseWriter) {
			Message(w, MessageData{Title: "Unknown client", Message: "The application is not registered.", Status: http.StatusBadRequest})
		}, http.StatusBadRequest, nil, func(t *testing.T, p *page) {
			if got := text(p.one(t, "h1")); got != "Unknown client" {
				t.Errorf("h1 = %q", got)
			}
			if got := text(p.one(t, "title")); got != "Unknown client" {
				t.Errorf("title = %q", got)
			}
			if len(p.all("form")) != 0 {
				t.Error("message page has a form")
			}
		}},
		{"message default status", func(w http.ResponseWriter) {
			Message(w, MessageData{Title: "You are signed out"})
		}, http.StatusOK, nil, func(t *testing.T, p *page) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := serve(t, tt.render)
			if p.code != tt.status {
				t.Errorf("status %d, want %d", p.code, tt.status)
			}
			checkDocument(t, p)
			if forms := p.all("form"); len(forms) > 0 {
				checkFormFields(t, p, tt.hidden)
			}
			tt.check(t, p)
		})
	}
}

// checkDocument checks what every page has: lang, <main>, one inline stylesheet, no script,
// nothing loaded from elsewhere.
func checkDocument(t *testing.T, p *page) {
	t.Helper()
	if !strings.HasPrefix(p.body, "<!doctype html>") {
		t.Error("no doctype")
	}
	p.one(t, "html", "lang", "en")
	p.one(t, "main")
	p.one(t, "meta", "name", "viewport")
	p.one(t, "style")
	p.one(t, "title")
	if n := p.all("script"); len(n) != 0 {
		t.Error("page has a script")
	}
	p.elements(func(n *html.Node) {
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" || a.Key == "srcset" || a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s %s=…>: pages load nothing from elsewhere and have no inline styles or handlers", n.Data, a.Key)
			}
		}
		if n.Data == "link" || n.Data == "img" || n.Data == "iframe" || n.Data == "object" {
			t.Errorf("<%s> on a page", n.Data)
		}
	})
}

// checkFormFields checks every form: POST, the CSRF field first, then exactly the caller's
// hidden fields in order.
func checkFormFields(t *testing.T, p *page, want []Hidden) {
	t.Helper()
	form := p.one(t, "form", "method", "post")
	if a, _ := attr(form, "action"); a == "" {
		t.Error("form without action")
	}
	var got []Hidden
	for _, in := range p.all("input", "type", "hidden") {
		n, _ := attr(in, "name")
		v, _ := attr(in, "value")
		got = append(got, Hidden{n, v})
	}
	want = append([]Hidden{{CSRFField, "tok"}}, want...)
	if !slices.Equal(got, want) {
		t.Fatalf("hidden fields = %v, want %v", got, want)
	}
}

package ui

import (
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestLoginUpstreamButtons: each upstream is a POST form of its own, outside the password
// form (which keeps its one submit button), carrying the CSRF token and the hidden fields, with
// a button data-upstream="<name>"; the page's form-action admits each provider's origin and
// nothing that is not an http(s) origin.
func TestLoginUpstreamButtons(t *testing.T) {
	w := httptest.NewRecorder()
	Login(w, 200, LoginData{Action: "/login", CSRF: "tok", Hidden: []Hidden{{Name: "request", Value: "r-1"}}, Redirect: "https://app.test/cb",
		Upstreams: []UpstreamButton{
			{Name: "corp", Text: "Corp SSO", Action: "/oauth2/upstream/corp/start", Target: "https://login.corp.example/authorize?x=1"},
			{Name: "gh", Text: "<GitHub>", Action: "/oauth2/upstream/gh/start", Target: "javascript:alert(1)"},
		}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	doc, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	var forms []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "form" {
			forms = append(forms, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if len(forms) < 3 {
		t.Fatalf("%d forms, want the password form and two upstream forms", len(forms))
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	inside := func(f *html.Node, tag string) []*html.Node {
		var out []*html.Node
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode && n.Data == tag {
				out = append(out, n)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(f)
		return out
	}
	if n := len(inside(forms[0], "button")); n != 1 || attr(forms[0], "action") != "/login" {
		t.Fatalf("password form: %d buttons, action %q", n, attr(forms[0], "action"))
	}
	for i, name := range []string{"corp", "gh"} {
		f := forms[i+1]
		if attr(f, "method") != "post" || attr(f, "action") != "/oauth2/upstream/"+name+"/start" {
			t.Fatalf("upstream form %s: method %q action %q", name, attr(f, "method"), attr(f, "action"))
		}
		buttons := inside(f, "button")
		if len(buttons) != 1 || attr(buttons[0], "data-upstream") != name || attr(buttons[0], "type") != "submit" {
			t.Fatalf("upstream form %s: buttons %v", name, buttons)
		}
		fields := map[string]string{}
		for _, in := range inside(f, "input") {
			fields[attr(in, "name")] = attr(in, "value")
		}
		if fields[CSRFField] != "tok" || fields["request"] != "r-1" || len(fields) != 2 {
			t.Fatalf("upstream form %s: fields %v", name, fields)
		}
	}
	if !strings.Contains(w.Body.String(), "Sign in with &lt;GitHub&gt;") {
		t.Error("button text not escaped")
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' https://app.test https://login.corp.example;") || strings.Contains(csp, "javascript") {
		t.Fatalf("CSP %q", csp)
	}
}

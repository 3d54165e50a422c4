package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// page is a rendered response, parsed.
type page struct {
	code   int
	header http.Header
	body   string
	root   *html.Node
}

// serve renders a page through f and parses it.
func serve(t *testing.T, f func(w http.ResponseWriter)) *page {
	t.Helper()
	w := httptest.NewRecorder()
	f(w)
	root, err := html.Parse(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return &page{code: w.Code, header: w.Header(), body: w.Body.String(), root: root}
}

// all returns the elements with this tag whose attributes include attrs (name, value pairs;
// a value of "*" only needs the attribute to be present).
func (p *page) all(tag string, attrs ...string) []*html.Node {
	var out []*html.Node
	p.elements(func(n *html.Node) {
		if n.Data == tag && hasAttrs(n, attrs) {
			out = append(out, n)
		}
	})
	return out
}

// elements calls f for every element of the page, in document order.
func (p *page) elements(f func(*html.Node)) {
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			f(n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.root)
}

// one is the single element matching, failing the test otherwise.
func (p *page) one(t *testing.T, tag string, attrs ...string) *html.Node {
	t.Helper()
	n := p.all(tag, attrs...)
	if len(n) != 1 {
		t.Fatalf("found %d <%s %v>, want 1\n%s", len(n), tag, attrs, p.body)
	}
	return n[0]
}

func hasAttrs(n *html.Node, attrs []string) bool {
	for i := 0; i+1 < len(attrs); i += 2 {
		v, ok := attr(n, attrs[i])
		if !ok || attrs[i+1] != "*" && v != attrs[i+1] {
			return false
		}
	}
	return true
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

// text is the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// cspDirective returns the value of one directive of the page's Content-Security-Policy.
func (p *page) cspDirective(name string) string {
	for _, d := range strings.Split(p.header.Get("Content-Security-Policy"), ";") {
		d = strings.TrimSpace(d)
		if v, ok := strings.CutPrefix(d, name+" "); ok {
			return v
		}
	}
	return ""
}

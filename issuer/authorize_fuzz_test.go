package issuer

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// fuzzAuthorizeClients are the clients of FuzzParseAuthRequest: a confidential web client with
// two redirect URIs (one with a query), a public SPA with one (so redirect_uri may be omitted),
// and a native app with loopback and private-use-scheme redirect URIs.
var fuzzAuthorizeClients = []Client{
	{ID: "web", Secret: "w3b", RedirectURIs: []string{"https://app.fuzz.test/cb", "https://app.fuzz.test/cb?x=1"},
		Grants: []string{GrantAuthorizationCode, GrantImplicit}, Scopes: []string{"openid", "read", "offline_access"}},
	{ID: "spa", RedirectURIs: []string{"https://spa.fuzz.test/cb"}, Scopes: []string{"read", "openid"}},
	{ID: "native", RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]:8080/cb", "com.example.app:/oauth", "http://localhost:8080/cb"},
		Grants: []string{GrantAuthorizationCode, GrantImplicit}, Scopes: []string{"openid", "read"}},
}

// FuzzParseAuthRequest: parseAuthRequest never panics and never fails with a 5xx; it trusts a
// redirect URI (returns a request, or an error with redirect=true) only when the URI is
// registered for the client (exactly, or a loopback IP one with another port, RFC 8252 §7.3);
// and what the issuer then sends to the browser (the error or the success response) goes
// only to a registered redirect URI, carrying its registered query and iss.
//
// The inputs are the main parameters (sent when not empty) and extra, a raw query string
// whose parameters are added as they are (so parameters can be repeated or sent empty).
func FuzzParseAuthRequest(f *testing.F) {
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	for _, s := range [][6]string{
		// client_id, redirect_uri, response_type, response_mode, scope, extra
		{"web", "https://app.fuzz.test/cb", "code", "", "openid read", "state=xyz&nonce=n"},
		{"web", "https://app.fuzz.test/cb?x=1", "code", "", "read", "state=s"},
		{"web", "https://app.fuzz.test/cb", "id_token token", "form_post", "openid", "nonce=n"},
		{"web", "https://app.fuzz.test/cb", "token", "query", "read", ""},
		{"web", "https://app.fuzz.test/cb", "code", "fragment", "read offline_access", ""},
		{"web", "https://app.fuzz.test/cb", "code", "bogus", "", ""},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "prompt=none login"},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "max_age=-1"},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "request=eyJ"},
		{"web", "https://app.fuzz.test/cb", "code", "", "admin", ""},
		{"web", "", "code", "", "read", ""}, // omitted, two registered
		{"web", "https://app.fuzz.test/cb", "code", "", "", "state=" + strings.Repeat("s", 2049)},
		{"web", "https://app.fuzz.test/cb", "", "", "", ""},
		{"web", "https://app.fuzz.test/cb", "magic", "", "", ""},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "code_challenge=" + challenge + "&code_challenge_method=plain"},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "redirect_uri=https://evil.test/cb"}, // repeated
		{"web", "", "code", "", "", "redirect_uri=https://evil.test/cb&redirect_uri=https://app.fuzz.test/cb"},
		{"web", "https://app.fuzz.test/cb", "code", "", "", "client_id=spa"},
		// Redirect URIs that are close to a registered one.
		{"web", "https://app.fuzz.test/cb/", "code", "", "", ""},
		{"web", "https://app.fuzz.test/CB", "code", "", "", ""},
		{"web", "HTTPS://app.fuzz.test/cb", "code", "", "", ""},
		{"web", "https://app.fuzz.test/cb?x=2", "code", "", "", ""},
		{"web", "https://app.fuzz.test/cb#frag", "code", "", "", ""},
		{"web", "https://app.fuzz.test:443/cb", "code", "", "", ""},
		{"web", "https://app.fuzz.test.evil.test/cb", "code", "", "", ""},
		{"web", "https://app.fuzz.test@evil.test/cb", "code", "", "", ""},
		{"web", "https://evil.test\\@app.fuzz.test/cb", "code", "", "", ""},
		{"web", "https://app.fuzz.test/cb/../evil", "code", "", "", ""},
		{"web", "https://app.fuzz.test/c%62", "code", "", "", ""},
		{"web", "//evil.test/cb", "code", "", "", ""},
		{"spa", "", "code", "", "read", "code_challenge=" + challenge + "&code_challenge_method=S256"},
		{"spa", "", "code", "", "openid", "code_challenge=" + challenge + "&code_challenge_method=S256"},
		{"spa", "https://spa.fuzz.test/cb", "code", "", "", ""}, // public without PKCE
		{"native", "http://127.0.0.1:53211/cb", "code", "", "openid", "code_challenge=" + challenge + "&code_challenge_method=S256"},
		{"native", "http://127.0.0.1/cb", "code", "form_post", "", ""},
		{"native", "http://[::1]:1/cb", "token", "", "read", ""},
		{"native", "http://[::1%25eth0]:1/cb", "code", "", "", ""},
		{"native", "http://127.0.0.1:1/cb?x", "code", "", "", ""},
		{"native", "http://127.0.0.1:1/cb#", "code", "", "", ""},
		{"native", "http://127.0.0.1:1/cb?", "code", "", "", ""},
		{"native", "http://127.0.0.1:1@evil.test/cb", "code", "", "", ""},
		{"native", "http://user@127.0.0.1:1/cb", "code", "", "", ""},
		{"native", "http://127.0.0.1.evil.test:1/cb", "code", "", "", ""},
		{"native", "http://127.1:1/cb", "code", "", "", ""},
		{"native", "http://localhost:9/cb", "code", "", "", ""},
		{"native", "https://127.0.0.1:1/cb", "code", "", "", ""},
		{"native", "com.example.app:/oauth", "code", "form_post", "", ""},
		{"native", "com.example.app:/oauth", "id_token", "", "openid", "nonce=n"},
		{"nobody", "https://evil.test/cb", "code", "", "", ""},
		{"", "https://evil.test/cb", "code", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	cfg := Config{Issuer: fuzzIssuerURL, Clients: fuzzAuthorizeClients}
	s := newTestServer(f, cfg)
	regs := map[string][]string{}
	for _, c := range fuzzAuthorizeClients {
		regs[c.ID] = c.RedirectURIs
	}
	f.Fuzz(func(t *testing.T, clientID, redirectURI, responseType, responseMode, scope, extra string) {
		q := url.Values{}
		for k, v := range map[string]string{"client_id": clientID, "redirect_uri": redirectURI,
			"response_type": responseType, "response_mode": responseMode, "scope": scope} {
			if v != "" {
				q.Set(k, v)
			}
		}
		more, _ := url.ParseQuery(extra) // as r.URL.Query() reads a GET request: errors dropped
		for k, vs := range more {
			q[k] = append(q[k], vs...)
		}
		r := httptest.NewRequest(http.MethodGet, fuzzIssuerURL+PathAuthorize+"?"+q.Encode(), nil)
		req, c, ae := s.parseAuthRequest(r, q)

		if ae != nil && ae.Status >= 500 {
			t.Fatalf("status %d for client input: %v", ae.Status, ae.Error)
		}
		trusted := ae == nil || ae.redirect
		if trusted {
			if req == nil || c == nil {
				t.Fatalf("redirect=%v without a request (%v) or client (%v)", ae != nil, req, c)
			}
			if len(q["client_id"]) != 1 || c.ID != q.Get("client_id") || req.ClientID != c.ID {
				t.Fatalf("client %q / request for %q, asked for %q", c.ID, req.ClientID, q["client_id"])
			}
			given := q.Get("redirect_uri")
			if !refRedirectRegistered(regs[c.ID], req.RedirectURI) {
				t.Fatalf("trusted redirect URI %q (given %q) is not registered for %s: %v", req.RedirectURI, given, c.ID, ae)
			}
			if given != "" && req.RedirectURI != given {
				t.Fatalf("redirect_uri %q given, %q used", given, req.RedirectURI)
			}
			if given == "" && (len(regs[c.ID]) != 1 || req.RedirectURI != regs[c.ID][0]) {
				t.Fatalf("redirect_uri omitted, %q used (registered %q)", req.RedirectURI, regs[c.ID])
			}
		}

		// What the browser gets.
		w := httptest.NewRecorder()
		if ae != nil {
			s.authorizeFailed(w, r, req, ae)
		} else {
			s.respondToClient(w, r, req, url.Values{"code": {"fuzz-code"}})
		}
		loc := w.Header().Get("Location")
		switch {
		case w.Code >= 500:
			t.Fatalf("answered %d: %s", w.Code, w.Body)
		case !trusted && (loc != "" || w.Code/100 == 3):
			t.Fatalf("untrusted request redirected (%d) to %q: %v", w.Code, loc, ae)
		case loc != "":
			if !trusted {
				t.Fatalf("redirect to %q for an untrusted request", loc)
			}
			if !refLocationRegistered(regs[c.ID], loc) {
				t.Fatalf("redirect to %q, which is not a registered redirect URI of %s (%q)", loc, c.ID, regs[c.ID])
			}
			if !strings.Contains(loc, "iss="+url.QueryEscape(fuzzIssuerURL)) {
				t.Fatalf("redirect to %q without iss", loc)
			}
		case w.Code == http.StatusOK && req != nil && req.ResponseMode == "form_post" && trusted:
			m := formAction.FindStringSubmatch(w.Body.String())
			if m == nil {
				t.Fatalf("form_post page without a form action: %s", w.Body)
			}
			if action := html.UnescapeString(m[1]); !refLocationRegistered(regs[c.ID], action) {
				t.Fatalf("form_post to %q, which is not a registered redirect URI of %s", action, c.ID)
			}
		case trusted && req.RedirectURI != "":
			t.Fatalf("trusted request answered %d without a redirect: %s", w.Code, w.Body)
		}
	})
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)

// loopbackPrefix is what may precede a registered loopback redirect URI's path: the http
// scheme, an IP literal host and any port (RFC 8252 §7.3).
var loopbackPrefix = regexp.MustCompile(`^(?i:http)://(127\.0\.0\.1|\[::1\])(:[0-9]*)?`)

// refRedirectRegistered is the reference for "registered": the exact string, or, for a
// registered http://127.0.0.1 or http://[::1] URI, the same URI with another (or no) port;
// one empty query or fragment marker at the end is ignored, since it names the same URI.
func refRedirectRegistered(regs []string, given string) bool {
	for _, reg := range regs {
		if given == reg {
			return true
		}
	}
	g := strings.TrimSuffix(given, "#")
	g = strings.TrimSuffix(g, "?")
	for _, reg := range regs {
		m := loopbackPrefix.FindString(reg)
		if m == "" || !strings.HasPrefix(reg, "http://") {
			continue
		}
		rest := reg[len(m):]
		gm := loopbackPrefix.FindStringSubmatch(g)
		host := loopbackPrefix.FindStringSubmatch(reg)[1]
		if gm != nil && gm[1] == host && g[len(gm[0]):] == rest {
			return true
		}
	}
	return false
}

// refLocationRegistered checks a response target (a Location or a form action): without its
// query and fragment it is a registered redirect URI (without query), and it keeps every
// parameter of that URI's registered query.
func refLocationRegistered(regs []string, loc string) bool {
	if strings.ContainsFunc(loc, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	base, query := loc, ""
	if i := strings.IndexAny(loc, "?#"); i >= 0 {
		base = loc[:i]
		if loc[i] == '?' {
			query, _, _ = strings.Cut(loc[i+1:], "#")
		}
	}
	got, _ := url.ParseQuery(query)
	for _, reg := range regs {
		regBase, regQuery, _ := strings.Cut(reg, "?")
		if !refRedirectRegistered([]string{regBase}, base) {
			continue
		}
		want, _ := url.ParseQuery(regQuery)
		ok := true
		for k, vs := range want {
			for _, v := range vs {
				if !contains(got[k], v) {
					ok = false
				}
			}
		}
		if ok {
			return true
		}
	}
	return false
}

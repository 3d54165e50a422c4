package caddymodule

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestScrubLoggedHeaders: a code redirect reaches the client with its code, and what the access
// log then reads has the code redacted; under a handler that buffers the whole response the
// header is left alone, since redacting it would break the redirect.
func TestScrubLoggedHeaders(t *testing.T) {
	const target = "https://app.test/cb?code=the-code&state=s&iss=x#access_token=the-token&token_type=Bearer"
	for _, tc := range []struct {
		name     string
		buffered bool
		logged   string // Location as the access log then sees it
	}{
		{"streamed", false, "https://app.test/cb?code=REDACTED&state=s&iss=x#access_token=REDACTED&token_type=Bearer"},
		{"buffered above", true, target},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := httptest.NewRecorder()
			var buf bytes.Buffer
			var top caddyhttp.ResponseRecorder = caddyhttp.NewResponseRecorder(client, nil, nil) // the access log's
			w := http.ResponseWriter(top)
			if tc.buffered {
				w = caddyhttp.NewResponseRecorder(top, &buf, func(int, http.Header) bool { return true })
			}
			w.Header().Set("Location", target)
			w.WriteHeader(http.StatusSeeOther)
			_, _ = w.Write([]byte("Redirecting.\n"))
			scrubLoggedHeaders(w)
			if tc.buffered {
				if err := w.(caddyhttp.ResponseRecorder).WriteResponse(); err != nil {
					t.Fatal(err)
				}
			}
			if got := client.Result().Header.Get("Location"); got != target {
				t.Fatalf("the client got Location %q, want %q", got, target)
			}
			if got := top.Header().Get("Location"); got != tc.logged {
				t.Fatalf("the access log sees %q, want %q", got, tc.logged)
			}
		})
	}
	if got, changed := redactURL("/oauth2/login?request=abc"); changed || got != "/oauth2/login?request=abc" {
		t.Fatalf("a redirect without secrets was changed: %q", got)
	}
}

func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://gw:s3cret@idp.test/introspect": "https://gw:xxxxx@idp.test/introspect",
		"https://idp.test/keys":                 "https://idp.test/keys",
		"":                                      "",
	} {
		if got := shownURL(in); got != want {
			t.Errorf("shownURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedactUpstreamStart: the redirect of an upstream sign-in's start to the provider has its
// state and nonce redacted for the access log (they take and finish the sign-in); a client's
// redirect keeps its state, and a redirect elsewhere with a state keeps it.
func TestRedactUpstreamStart(t *testing.T) {
	for in, want := range map[string]string{
		"https://idp.test/authorize?client_id=tollgate&code_challenge=c&code_challenge_method=S256&nonce=the-nonce&prompt=login" +
			"&redirect_uri=https%3A%2F%2Fauth.test%2Foauth2%2Fupstream%2Fcorp%2Fcallback&response_type=code&scope=openid&state=the-state": "https://idp.test/authorize?client_id=tollgate&code_challenge=c&code_challenge_method=S256&nonce=REDACTED&prompt=login" +
			"&redirect_uri=https%3A%2F%2Fauth.test%2Foauth2%2Fupstream%2Fcorp%2Fcallback&response_type=code&scope=openid&state=REDACTED",
		// under a path, a plain OAuth provider (no nonce)
		"https://github.test/login/oauth/authorize?state=the-state&redirect_uri=https://auth.test/idp/oauth2/upstream/gh_1/callback": "https://github.test/login/oauth/authorize?state=REDACTED&redirect_uri=https://auth.test/idp/oauth2/upstream/gh_1/callback",
		"https://app.test/cb?code=the-code&state=s1":                                          "https://app.test/cb?code=REDACTED&state=s1",
		"https://app.test/cb?state=s1&redirect_uri=https://x.test/oauth2/upstream/corp/other": "https://app.test/cb?state=s1&redirect_uri=https://x.test/oauth2/upstream/corp/other",
	} {
		if got, _ := redactURL(in); got != want {
			t.Errorf("redactURL(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

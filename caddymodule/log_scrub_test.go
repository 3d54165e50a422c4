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

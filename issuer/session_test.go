package issuer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCookieAttributes: every cookie over TLS is a __Host- cookie (Secure, Path=/, no Domain),
// for an issuer under a path too, so no sibling subdomain can plant one; issuers under different
// paths use different names.
func TestCookieAttributes(t *testing.T) {
	names := map[string]string{}
	for _, issuer := range []string{"https://id.test", "https://id.test/a", "https://id.test/b"} {
		cfg := testConfig()
		cfg.Issuer = issuer
		s := newTestServer(t, cfg)
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, issuer+"/oauth2/login", nil)
		if r.TLS == nil {
			t.Fatal("the test request has no TLS")
		}
		s.csrfToken(w, r)
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%s: %d cookies", issuer, len(cookies))
		}
		c := cookies[0]
		if !strings.HasPrefix(c.Name, "__Host-tollgate_csrf") || !c.Secure || c.Path != "/" || c.Domain != "" ||
			!c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: cookie %+v; want a __Host- cookie, Secure, HttpOnly, SameSite=Lax, Path=/", issuer, c)
		}
		names[issuer] = c.Name
	}
	if names["https://id.test"] != "__Host-tollgate_csrf" || names["https://id.test/a"] == names["https://id.test/b"] ||
		names["https://id.test/a"] == names["https://id.test"] {
		t.Errorf("cookie names %v: want the root's plain, the path issuers' distinct", names)
	}
}

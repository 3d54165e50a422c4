package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// seenRequest is what the upstream received.
type seenRequest struct {
	header http.Header
	uri    string
}

// protectSetup is a Caddy whose site gates an upstream with the given oauth_protect block.
type protectSetup struct {
	api  string
	seen chan seenRequest
}

func newProtectSetup(t *testing.T, protect string, extraSites ...string) *protectSetup {
	t.Helper()
	seen := make(chan seenRequest, 16)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- seenRequest{header: r.Header.Clone(), uri: r.RequestURI}
		fmt.Fprint(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	port := freePort(t)
	s := &protectSetup{api: "http://127.0.0.1:" + port, seen: seen}
	startCaddy(t, globalOptions+strings.Join(extraSites, "\n")+fmt.Sprintf(`
http://127.0.0.1:%s {
	bind 127.0.0.1
	%s
	reverse_proxy %s {
		header_up X-Email {http.auth.user.email}
		header_up X-User {http.auth.user.id}
	}
}
`, port, protect, strings.TrimPrefix(upstream.URL, "http://")))
	return s
}

// do sends method path with a bearer token (if any) and header pairs.
func (s *protectSetup) do(t *testing.T, method, path, token string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return bearerRequest(t, method, s.api+path, token, hdr...)
}

// expect sends a request and checks its status; on 200 it returns what the upstream saw.
func (s *protectSetup) expect(t *testing.T, status int, method, path, token string, hdr ...string) (seenRequest, *http.Response) {
	t.Helper()
	resp, body := s.do(t, method, path, token, hdr...)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d (%s; %s)", method, path, resp.StatusCode, status, body, resp.Header.Get("WWW-Authenticate"))
	}
	if status == 200 {
		return <-s.seen, resp
	}
	return seenRequest{}, resp
}

// TestProtectRemoteIssuer gates an API with a second, non-Tollgate issuer whose keys are fetched
// over HTTP and rotated, with forwarded claims, placeholders, a claim rule and RFC 9728.
func TestProtectRemoteIssuer(t *testing.T) {
	idp, _ := newStaticIssuer(t, true, "k1")
	s := newProtectSetup(t, fmt.Sprintf(`oauth_protect {
		issuer %s
		audience https://api.test
		scope read
		rule * /tenant/* {
			claim `+"`claims.tenant == request.header[\"X-Org\"][0]`"+`
		}
		forward_claim tenant X-Tenant
		forward_claim groups X-Groups
		forward_claim level X-Level
		allow_query_token
		allow_preflight
	}`, idp.url))
	claims := map[string]any{"tenant": "acme", "groups": []string{"staff", "ops"}, "level": 3, "email": "carol@example.com"}
	tok := idp.mint(t, "k1", "https://api.test", claims)

	// Keys arrive in the background; the first request may find them not there yet.
	deadline := time.Now().Add(5 * time.Second)
	for resp, _ := s.do(t, "GET", "/v1/x", tok); resp.StatusCode != 200; resp, _ = s.do(t, "GET", "/v1/x", tok) {
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("status %d while the keys load", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	<-s.seen

	t.Run("claims forwarded and spoofed copies removed", func(t *testing.T) {
		seen, _ := s.expect(t, 200, "GET", "/v1/x", tok, "X-Tenant", "evil", "X_Tenant", "evil", "X-Groups", "admin", "X-Email", "x@evil")
		h := seen.header
		if h.Get("X-Tenant") != "acme" || len(h.Values("X-Tenant")) != 1 || h.Get("X-Groups") != "staff ops" ||
			h.Get("X-Level") != "3" || h.Get("X-Email") != "carol@example.com" || h.Get("X-User") != "carol" {
			t.Fatalf("upstream headers %v", h)
		}
		for name := range h {
			if strings.Contains(name, "_") {
				t.Fatalf("spoofed %s reached the upstream", name)
			}
		}
		bare := idp.mint(t, "k1", "https://api.test", nil) // no tenant, groups or level claims
		seen, _ = s.expect(t, 200, "GET", "/v1/x", bare, "X-Tenant", "evil", "X-Groups", "admin")
		if seen.header.Get("X-Tenant") != "" || seen.header.Get("X-Groups") != "" {
			t.Fatalf("client-sent headers kept for absent claims: %v", seen.header)
		}
	})

	t.Run("claim rule over the request", func(t *testing.T) {
		s.expect(t, 200, "GET", "/tenant/a", tok, "X-Org", "acme")
		_, resp := s.expect(t, 403, "GET", "/tenant/a", tok, "X-Org", "other")
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("challenge %q", resp.Header.Get("WWW-Authenticate"))
		}
		s.expect(t, 403, "GET", "/tenant/a", tok)
	})

	t.Run("query token is accepted and not forwarded", func(t *testing.T) {
		seen, _ := s.expect(t, 200, "GET", "/v1/q?a=1&access_token="+tok, "")
		if strings.Contains(seen.uri, "access_token") || !strings.Contains(seen.uri, "a=1") {
			t.Fatalf("upstream URI %s", seen.uri)
		}
	})

	t.Run("preflight passes without a token", func(t *testing.T) {
		s.expect(t, 200, "OPTIONS", "/v1/x", "", "Origin", "https://app.test", "Access-Control-Request-Method", "POST")
		s.expect(t, 401, "OPTIONS", "/v1/x", "")
	})

	t.Run("RFC 9728 metadata and challenges", func(t *testing.T) {
		resp, body := s.do(t, "GET", "/.well-known/oauth-protected-resource", "")
		var md map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &md) != nil {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if md["resource"] != s.api || fmt.Sprint(md["authorization_servers"]) != "["+idp.url+"]" ||
			fmt.Sprint(md["bearer_methods_supported"]) != "[header query]" || fmt.Sprint(md["scopes_supported"]) != "[read]" {
			t.Fatalf("metadata %v", md)
		}
		want := `resource_metadata="` + s.api + `/.well-known/oauth-protected-resource"`
		for _, tok := range []string{"", "garbage"} {
			_, resp := s.expect(t, 401, "GET", "/v1/x", tok)
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasSuffix(got, want) {
				t.Fatalf("challenge %q lacks %s", got, want)
			}
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		idp.addKey("k2")
		idp.removeKey("k1")
		s.expect(t, 200, "GET", "/v1/x", idp.mint(t, "k2", "https://api.test", nil))
		s.expect(t, 401, "GET", "/v1/x", tok) // cached before, but its key is gone
		s.expect(t, 401, "GET", "/v1/x", idp.mint(t, "k1", "https://api.test", nil))
	})
}

// TestProtectIssuerDownAtStart: Caddy starts while the issuer is down, answers 503, and lets
// tokens through once the issuer is up.
func TestProtectIssuerDownAtStart(t *testing.T) {
	idp, start := newStaticIssuer(t, false, "k1")
	s := newProtectSetup(t, fmt.Sprintf("oauth_protect {\n issuer %s\n audience https://api.test\n}", idp.url))
	tok := idp.mint(t, "k1", "https://api.test", nil)
	_, resp := s.expect(t, 503, "GET", "/v1/x", tok)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	s.expect(t, 401, "GET", "/v1/x", "") // no token: nothing to wait for
	start()
	deadline := time.Now().Add(8 * time.Second)
	for {
		resp, _ := s.do(t, "GET", "/v1/x", tok)
		if resp.StatusCode == 200 {
			<-s.seen
			return
		}
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("status %d after the issuer came up", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

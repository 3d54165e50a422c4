package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/internal/jwttest"
)

// e2eSetup is one running Caddy with an issuer, a protected API and a test upstream.
type e2eSetup struct {
	issuer, api string
	caddyfile   string
	tokenURL    string
	seen        chan http.Header // headers the upstream received
}

func newE2E(t *testing.T) *e2eSetup {
	t.Helper()
	seen := make(chan http.Header, 16)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		fmt.Fprintf(w, "upstream saw %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	issuerPort, apiPort := freePort(t), freePort(t)
	s := &e2eSetup{issuer: "http://127.0.0.1:" + issuerPort, api: "http://127.0.0.1:" + apiPort, seen: seen}
	s.caddyfile = globalOptions + fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage bolt %[3]s
		access_token_ttl 2s
		client svc {
			secret s3cret
			grants client_credentials
			scopes read write
			audience https://api.test
		}
		client reader {
			secret r3ader
			grants client_credentials
			scopes read
			audience https://api.test
		}
		client elsewhere {
			secret 3lsewhere
			grants client_credentials
			scopes read write
			audience https://other-api.test
		}
	}
	respond "the app behind the issuer"
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[1]s
		audience https://api.test
		scope read
		rule POST /v1/* write
		forward_claim client_id X-Client
		leeway 1s
	}
	reverse_proxy %[4]s {
		header_up X-User {http.auth.user.id}
		header_up X-Scope {http.auth.user.scope}
	}
}
`, issuerPort, apiPort, filepath.Join(t.TempDir(), "tollgate.db"), strings.TrimPrefix(upstream.URL, "http://"))
	startCaddy(t, s.caddyfile)
	md := discover(t, s.issuer)
	s.tokenURL, _ = md["token_endpoint"].(string)
	if md["issuer"] != s.issuer || s.tokenURL != s.issuer+"/oauth2/token" {
		t.Fatalf("discovery document %v", md)
	}
	return s
}

// call sends a request to the protected API with an optional bearer token.
func (s *e2eSetup) call(t *testing.T, method, path, token string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return bearerRequest(t, method, s.api+path, token, hdr...)
}

func TestEndToEndClientCredentials(t *testing.T) {
	s := newE2E(t)
	full := clientCredentialsToken(t, s.tokenURL, "svc", "s3cret")
	readOnly := clientCredentialsToken(t, s.tokenURL, "reader", "r3ader")
	otherAudience := clientCredentialsToken(t, s.tokenURL, "elsewhere", "3lsewhere")
	expiring := clientCredentialsToken(t, s.tokenURL, "svc", "s3cret", "read")

	realm := `Bearer realm="` + s.issuer + `"`
	invalid := realm + `, error="invalid_token"`
	tests := []struct {
		name, method, path, token string
		status                    int
		challenge                 string // exact WWW-Authenticate, or prefix when it ends in "*"
	}{
		{"valid token GET", "GET", "/v1/things", full, 200, ""},
		{"valid token POST with write", "POST", "/v1/things", full, 200, ""},
		{"read-only token GET", "GET", "/v1/things", readOnly, 200, ""},
		{"missing token", "GET", "/v1/things", "", 401, realm + `, scope="read", resource_metadata="` + s.api + `/.well-known/oauth-protected-resource"`},
		{"read-only token POST", "POST", "/v1/things", readOnly, 403, realm + `, error="insufficient_scope", scope="read write"*`},
		{"tampered payload", "GET", "/v1/things", jwttest.Tamper(t, full), 401, invalid + "*"},
		{"alg none", "GET", "/v1/things", algNone(t, full), 401, invalid + "*"},
		{"forged with another key and the real kid", "GET", "/v1/things", forge(t, full), 401, invalid + "*"},
		{"wrong audience", "GET", "/v1/things", otherAudience, 401, invalid + "*"},
		{"not a JWT", "GET", "/v1/things", "opaque-garbage", 401, invalid + "*"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.call(t, tc.method, tc.path, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if want, prefix := strings.CutSuffix(tc.challenge, "*"); prefix && !strings.HasPrefix(got, want) || !prefix && got != want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 200 {
				h := <-s.seen
				if h.Get("X-User") == "" || h.Get("X-Client") != h.Get("X-User") || h.Get("X-Scope") == "" {
					t.Fatalf("upstream headers %v", h)
				}
			} else if strings.Contains(body, "upstream saw") {
				t.Fatal("a refused request reached the upstream")
			}
		})
	}

	t.Run("client-sent identity headers are replaced", func(t *testing.T) {
		resp, _ := s.call(t, "GET", "/v1/me", readOnly, "X-User", "admin", "X-Client", "admin", "X-Scope", "write")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		h := <-s.seen
		if h.Get("X-User") != "reader" || h.Get("X-Client") != "reader" || h.Get("X-Scope") != "read" || len(h.Values("X-Client")) != 1 {
			t.Fatalf("upstream saw spoofed headers: %v", h)
		}
	})

	t.Run("issuer passes other paths on", func(t *testing.T) {
		resp, err := http.Get(s.issuer + "/somewhere/else")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "the app behind the issuer" {
			t.Fatalf("got %q", body)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		// access_token_ttl 2s + leeway 1s at the edge; NumericDate has one-second precision.
		time.Sleep(4 * time.Second)
		resp, _ := s.call(t, "GET", "/v1/things", expiring)
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), invalid) {
			t.Fatalf("expired token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
}

// TestEndToEndRestartAndReload checks that keys survive a stop/start (tokens stay valid) and
// that a reload keeps serving with the same store.
func TestEndToEndRestartAndReload(t *testing.T) {
	s := newE2E(t)
	tok := clientCredentialsToken(t, s.tokenURL, "svc", "s3cret")
	jwksBefore := get(t, s.issuer+"/oauth2/jwks")

	reloadCaddy(t, s.caddyfile+"\n# a reload with a changed file\n")
	if resp, body := s.call(t, "GET", "/v1/x", tok); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d %s", resp.StatusCode, body)
	}
	<-s.seen

	stopCaddy(t)
	startCaddy(t, s.caddyfile)
	discover(t, s.issuer)
	if after := get(t, s.issuer+"/oauth2/jwks"); after != jwksBefore {
		t.Fatalf("JWKS changed across a restart:\n%s\n%s", jwksBefore, after)
	}
	if resp, body := s.call(t, "GET", "/v1/x", tok); resp.StatusCode != 200 {
		t.Fatalf("token from before the restart: %d %s", resp.StatusCode, body)
	}
	<-s.seen
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// algNone rewrites the header to alg "none" and drops the signature.
func algNone(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
	return h + "." + parts[1] + "."
}

// forge signs the same claims with a fresh key under the issuer's kid.
func forge(t *testing.T, tok string) string {
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := jwt.NewWithClaims(jwt.SigningMethodES256, parsed.Claims)
	f.Header["kid"] = parsed.Header["kid"]
	f.Header["typ"] = "at+jwt"
	s, err := f.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

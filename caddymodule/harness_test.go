package caddymodule

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// startCaddy adapts a Caddyfile and runs it in this process until the test ends. Caddy is a
// process-wide singleton, so tests that call it must not run in parallel.
func startCaddy(t testing.TB, caddyfile string) {
	t.Helper()
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// reloadCaddy replaces the running configuration, as `caddy reload` does.
func reloadCaddy(t testing.TB, caddyfile string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// globalOptions keep the in-process Caddy off the admin port and away from ACME.
const globalOptions = `{
	admin off
	persist_config off
	auto_https off
	log {
		level ERROR
	}
}
`

// discover reads the issuer's discovery document.
func discover(t testing.TB, issuer string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			defer resp.Body.Close()
			var md map[string]any
			if resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&md) == nil {
				return md
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery at %s failed: %v", issuer, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientCredentialsToken gets a token with x/oauth2 as a real client would.
func clientCredentialsToken(t testing.TB, tokenURL, id, secret string, scopes ...string) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: tokenURL, Scopes: scopes}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatalf("client credentials token for %s: %v", id, err)
	}
	if !strings.EqualFold(tok.TokenType, "bearer") {
		t.Fatalf("token type %q", tok.TokenType)
	}
	return tok.AccessToken
}

// stopCaddy stops the running configuration (startCaddy's cleanup then stops nothing).
func stopCaddy(t testing.TB) {
	t.Helper()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
}

// issuerWithToken starts an issuer (no HTTP server) with client svc (client_credentials, scope
// read, audience api) and returns it with one of its access tokens.
func issuerWithToken(t testing.TB) (*issuer.Server, string) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := issuer.New(context.Background(), issuer.Config{
		Issuer: "https://auth.test",
		Clients: []issuer.Client{{ID: "svc", Secret: "s", Grants: []string{"client_credentials"},
			Scopes: []string{"read"}, Audience: []string{"api"}}},
	}, issuer.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	w := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "https://auth.test/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "s")
	srv.ServeHTTP(w, req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("no token: %s", w.Body)
	}
	return srv, tok.AccessToken
}

// bearerRequest sends method url with a bearer token (when not empty) and header name/value
// pairs, added as given (even a non-canonical X_Underscore), and returns the response and body.
func bearerRequest(t testing.TB, method, url, token string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

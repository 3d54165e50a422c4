package caddymodule

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/browsertest"
)

// TestEndToEndBrowserCodeFlow is the whole product in one run: real Chromium signs in on the
// issuer's pages served by Caddy, a relying party (x/oauth2 with PKCE, go-oidc) gets tokens,
// calls an API through oauth_protect + reverse_proxy, and a revoked access token is refused
// by the edge at once.
func TestEndToEndBrowserCodeFlow(t *testing.T) {
	ctx := browsertest.New(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-User"))
	}))
	t.Cleanup(upstream.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	issuerPort, apiPort := freePort(t), freePort(t)
	issuerURL, apiURL := "http://127.0.0.1:"+issuerPort, "http://127.0.0.1:"+apiPort
	startCaddy(t, globalOptions+fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[3]s
		storage bolt %[4]s
		user alice %[5]s {
			claim email alice@example.com
		}
		client webapp {
			secret webapp-secret
			redirect_uri http://127.0.0.1/callback
			loopback_any_port # the test's relying party listens on a free port
			grants authorization_code refresh_token
			scopes openid email read offline_access
			audience https://api.test
		}
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_protect {
		issuer %[3]s
		audience https://api.test
		scope read
	}
	reverse_proxy %[6]s {
		header_up X-User {http.auth.user.id}
	}
}
`, issuerPort, apiPort, issuerURL, filepath.Join(t.TempDir(), "t.db"), hash, strings.TrimPrefix(upstream.URL, "http://")))
	discover(t, issuerURL)

	provider, err := oidc.NewProvider(context.Background(), issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	var accessToken string
	rp := httptest.NewServer(nil)
	t.Cleanup(rp.Close)
	cfg := &oauth2.Config{ClientID: "webapp", ClientSecret: "webapp-secret", Endpoint: provider.Endpoint(),
		RedirectURL: rp.URL + "/callback", Scopes: []string{"openid", "email", "read", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	rp.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1")), http.StatusFound)
			return
		}
		q := r.URL.Query()
		if q.Get("state") != "state-1" || q.Get("iss") != issuerURL {
			fmt.Fprintf(w, `<p id="result">bad callback %s</p>`, html.EscapeString(r.URL.RawQuery))
			return
		}
		tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			fmt.Fprintf(w, `<p id="result">exchange: %s</p>`, html.EscapeString(err.Error()))
			return
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: "webapp"}).Verify(r.Context(), tok.Extra("id_token").(string))
		if err != nil || idt.Nonce != "n-1" || tok.RefreshToken == "" {
			fmt.Fprintf(w, `<p id="result">id token: %v</p>`, err)
			return
		}
		accessToken = tok.AccessToken
		resp, err := cfg.Client(r.Context(), tok).Get(apiURL + "/v1/me")
		if err != nil {
			fmt.Fprintf(w, `<p id="result">api: %s</p>`, html.EscapeString(err.Error()))
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Fprintf(w, `<p id="result">%d %s</p>`, resp.StatusCode, html.EscapeString(string(body)))
	})

	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.URL + "/start")}, browsertest.SignIn("alice", "wonderland")...)
	if err := chromedp.Do(ctx, append(steps, browsertest.Decide("allow")...)...); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Text(t, ctx, "#result"); got != "200 hello alice" {
		t.Fatalf("relying party says %q", got)
	}

	// Revoke the access token at the issuer; the edge refuses it on the very next request.
	call := func() int {
		req, _ := http.NewRequest("GET", apiURL+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+accessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(); got != 200 {
		t.Fatalf("before revocation: %d", got)
	}
	req, _ := http.NewRequest("POST", issuerURL+"/oauth2/revoke", strings.NewReader(url.Values{"token": {accessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("webapp", "webapp-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if got := call(); got != 401 {
		t.Fatalf("the edge accepted a revoked token: %d", got)
	}
}

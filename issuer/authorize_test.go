package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oauthConfig is the x/oauth2 view of a client of f.
func (f *flowServer) oauthConfig(id, secret, redirect string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: f.url + PathAuthorize, TokenURL: f.url + PathToken}}
}

// callback reads the authorization response the issuer redirected the browser to.
func callback(t *testing.T, resp *http.Response, wantPrefix string) url.Values {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, wantPrefix) {
		t.Fatalf("want a redirect to %s, got %d %q", wantPrefix, resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	if u.Fragment != "" {
		v, _ := url.ParseQuery(u.Fragment)
		return v
	}
	return u.Query()
}

func TestCodeFlowWithOAuth2AndOIDC(t *testing.T) {
	f := newFlowServer(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, f.url)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	tests := []struct {
		name, id, secret, redirect string
	}{
		{"public client with PKCE on a loopback port", "spa", "", "http://127.0.0.1:49152/cb"},
		{"confidential client with PKCE", "web", "web-secret", "https://app.test/cb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := f.oauthConfig(tc.id, tc.secret, tc.redirect, "openid", "profile", "email", "read")
			verifier := oauth2.GenerateVerifier()
			b := newBrowser(t)
			resp, _ := f.authorize(b, mustQuery(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"))), "allow")
			got := callback(t, resp, tc.redirect)
			if got.Get("state") != "st-1" || got.Get("iss") != f.url || got.Get("code") == "" {
				t.Fatalf("authorization response %v", got)
			}
			tok, err := cfg.Exchange(ctx, got.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := provider.Verifier(&oidc.Config{ClientID: tc.id}).Verify(ctx, raw)
			if err != nil {
				t.Fatalf("go-oidc rejects the ID token: %v", err)
			}
			if idt.Nonce != "n-1" || idt.Subject != "alice" || idt.AccessTokenHash == "" {
				t.Fatalf("ID token %+v", idt)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Fatalf("at_hash: %v", err)
			}
			var claims struct {
				AuthTime int64  `json:"auth_time"`
				AZP      string `json:"azp"`
				Email    string `json:"email"`
			}
			_ = idt.Claims(&claims)
			if claims.AuthTime == 0 || claims.AZP != tc.id || claims.Email != "alice@example.com" {
				t.Fatalf("ID token claims %+v", claims)
			}
			ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var profile map[string]any
			_ = ui.Claims(&profile)
			if ui.Subject != "alice" || ui.Email != "alice@example.com" || !ui.EmailVerified || profile["name"] != "Alice Liddell" {
				t.Fatalf("userinfo %+v %v", ui, profile)
			}
			if tok.RefreshToken != "" {
				t.Fatal("a refresh token without offline_access")
			}
		})
	}
}

func mustQuery(authURL string) url.Values {
	u, _ := url.Parse(authURL)
	return u.Query()
}

func TestConsentIsRememberedAndPromptsWork(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
		"scope": {"openid read"}, "state": {"s"}}

	// prompt=none before signing in: login_required, back to the client.
	none := cloneWith(params, "prompt", "none")
	resp, _ := b.get(f.url + PathAuthorize + "?" + none.Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "login_required" || got.Get("state") != "s" || got.Get("iss") != f.url {
		t.Fatalf("prompt=none signed out: %v", got)
	}

	// Deny: access_denied with state and iss.
	resp, _ = f.authorize(b, params, "deny")
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "access_denied" || got.Get("state") != "s" || got.Get("iss") != f.url {
		t.Fatalf("deny: %v", got)
	}
	// Signed in now, but no consent yet: prompt=none gives consent_required.
	resp, _ = b.get(f.url + PathAuthorize + "?" + none.Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "consent_required" {
		t.Fatalf("prompt=none without consent: %v", got)
	}
	// Allow once; then the same request goes straight through, also with prompt=none.
	resp, _ = f.authorize(b, params, "allow")
	if got := callback(t, resp, "https://app.test/cb"); got.Get("code") == "" {
		t.Fatalf("allow: %v", got)
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + none.Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("code") == "" {
		t.Fatalf("remembered consent with prompt=none: %v", got)
	}
	// A wider scope asks again; prompt=consent asks again; prompt=login asks for the password.
	for _, p := range []url.Values{cloneWith(params, "scope", "openid read write"), cloneWith(params, "prompt", "consent")} {
		resp, _ = b.get(f.url + PathAuthorize + "?" + p.Encode())
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, PathConsent) {
			t.Fatalf("%v: want the consent page, got %q", p, loc)
		}
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + cloneWith(params, "prompt", "login").Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, PathLogin) {
		t.Fatalf("prompt=login: want the login page, got %q", loc)
	}
	// A first-party client with consent skip never shows the consent page.
	resp, _ = b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"first"}, "redirect_uri": {"https://first.test/cb"},
		"response_type": {"code"}, "scope": {"openid"}}.Encode())
	if got := callback(t, resp, "https://first.test/cb"); got.Get("code") == "" {
		t.Fatalf("consent skip: %v", got)
	}
}

func cloneWith(v url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// exchange posts a code to the token endpoint as client web, returning status and body.
func (f *flowServer) exchange(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "web-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// webCode runs the web client's flow and returns a fresh code, with a PKCE challenge when
// verifier is not empty.
func (f *flowServer) webCode(t *testing.T, b *browser, verifier string) string {
	t.Helper()
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid read"}}
	if verifier != "" {
		params.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		params.Set("code_challenge_method", "S256")
	}
	resp, _ := f.authorize(b, params, "allow")
	return callback(t, resp, "https://app.test/cb").Get("code")
}

func TestCodeReplayRevokesWhatTheCodeIssued(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	code := f.webCode(t, b, "")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
	status, first := f.exchange(t, form)
	if status != 200 {
		t.Fatalf("first redemption: %d %v", status, first)
	}
	at := first["access_token"].(string)
	claims, err := f.verifyAccessToken(at)
	if err != nil {
		t.Fatal(err)
	}
	status, second := f.exchange(t, form)
	if status != 400 || second["error"] != "invalid_grant" {
		t.Fatalf("replay: %d %v", status, second)
	}
	if !f.Revoked(claims.ID) {
		t.Fatal("the replay did not revoke the access token the code issued")
	}
	req, _ := http.NewRequest("GET", f.url+PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("revoked token at userinfo: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestConcurrentCodeRedemptionHasOneWinner(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	for round := 0; round < 3; round++ {
		code := f.webCode(t, b, "")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
		const racers = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		start := make(chan struct{})
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if status, _ := f.exchange(t, form); status == 200 {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins != 1 {
			t.Fatalf("round %d: %d redemptions succeeded, want exactly 1", round, wins)
		}
	}
}

// TestMaxAgeAndLoginHint: max_age asks for the password again once the sign-in is older
// than it; login_hint prefills the user name.
func TestMaxAgeAndLoginHint(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	params := url.Values{"client_id": {"first"}, "redirect_uri": {"https://first.test/cb"}, "response_type": {"code"}, "scope": {"openid"}}
	resp, _ := f.authorize(b, params, "allow")
	if got := callback(t, resp, "https://first.test/cb"); got.Get("code") == "" {
		t.Fatalf("sign-in: %v", got)
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + cloneWith(params, "max_age", "60").Encode())
	if got := callback(t, resp, "https://first.test/cb"); got.Get("code") == "" {
		t.Fatalf("max_age=60 right after signing in must not ask again: %v", got)
	}
	time.Sleep(1100 * time.Millisecond)
	resp, _ = b.get(f.url + PathAuthorize + "?" + cloneWith(params, "max_age", "0", "login_hint", "alice").Encode())
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, PathLogin) {
		t.Fatalf("max_age=0 a second after signing in: want the login page, got %q", loc)
	}
	if _, page := b.get(f.url + loc); !strings.Contains(page, `name="username" type="text" value="alice"`) {
		t.Fatal("login_hint does not prefill the user name")
	}
}

package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/pagetest"
)

// TestEndToEndPAR runs pushed authorization requests (RFC 9126) on a real Caddy: the client
// pushes its request by hand, the browser brings only client_id and request_uri, and
// golang.org/x/oauth2 exchanges the code; a reused request_uri and a request that was not
// pushed (the client has require_par) are refused.
func TestEndToEndPAR(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password-value"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	issuerPort, apiPort := freePort(t), freePort(t)
	issuerURL, apiURL := "http://127.0.0.1:"+issuerPort, "http://127.0.0.1:"+apiPort
	startCaddy(t, globalOptions+fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[3]s
		storage bolt %[4]s
		par_ttl 30s
		user alice %[5]s
		client webapp {
			secret webapp-secret-0123456789-0123456789
			redirect_uri https://app.example/cb
			grants authorization_code refresh_token
			scopes openid read offline_access
			audience https://api.test
			require_par
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
	respond "hello {http.auth.user.id}" 200
}
`, issuerPort, apiPort, issuerURL, filepath.Join(t.TempDir(), "t.db"), hash))
	md := discover(t, issuerURL)
	parURL, _ := md["pushed_authorization_request_endpoint"].(string)
	if parURL != issuerURL+"/oauth2/par" || md["require_pushed_authorization_requests"] != false {
		t.Fatalf("metadata: pushed_authorization_request_endpoint %v, require_pushed_authorization_requests %v",
			md["pushed_authorization_request_endpoint"], md["require_pushed_authorization_requests"])
	}
	cfg := &oauth2.Config{ClientID: "webapp", ClientSecret: "webapp-secret-0123456789-0123456789",
		RedirectURL: "https://app.example/cb", Scopes: []string{"openid", "read", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: md["authorization_endpoint"].(string), TokenURL: md["token_endpoint"].(string)}}
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()

	// Not pushed: refused at the redirect URI (the client has require_par).
	pc := newBrowser(t, issuerURL)
	resp, _ := pc.do("GET", cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), nil)
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther ||
		!strings.HasPrefix(loc.String(), "https://app.example/cb?") || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("a request that was not pushed: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Pushed by hand, as the client's server does: the authorization request's parameters,
	// with client_secret_basic.
	pushed := mustQuery(t, cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)))
	req, _ := http.NewRequest("POST", parURL, strings.NewReader(pushed.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(cfg.ClientID, cfg.ClientSecret)
	presp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var par struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}
	err = json.NewDecoder(presp.Body).Decode(&par)
	presp.Body.Close()
	if err != nil || presp.StatusCode != http.StatusCreated || !strings.HasPrefix(par.RequestURI, "urn:ietf:params:oauth:request_uri:") || par.ExpiresIn != 30 {
		t.Fatalf("push: %d %+v %v", presp.StatusCode, par, err)
	}

	// The browser brings only client_id and request_uri.
	front := cfg.Endpoint.AuthURL + "?" + url.Values{"client_id": {"webapp"}, "request_uri": {par.RequestURI}}.Encode()
	loc, _ := url.Parse(signInAndConsent(t, pc, front))
	got := loc.Query()
	if !strings.HasPrefix(loc.String(), "https://app.example/cb?") || got.Get("state") != "st-2" || got.Get("iss") != issuerURL || got.Get("code") == "" {
		t.Fatalf("authorization response %q", loc)
	}
	tok, err := cfg.Exchange(ctx, got.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("token response %+v", tok)
	}
	if resp, body := bearerRequest(t, "GET", apiURL+"/", tok.AccessToken); resp.StatusCode != 200 || body != "hello alice" {
		t.Fatalf("API: %d %q", resp.StatusCode, body)
	}

	// The request_uri was used once.
	resp, body := pc.do("GET", front, nil)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "expired or was already used") {
		t.Fatalf("reused request_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A confidential client that does not authenticate may not push.
	req, _ = http.NewRequest("POST", parURL, strings.NewReader(pushed.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	presp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(presp.Body).Decode(&e)
	presp.Body.Close()
	if presp.StatusCode != http.StatusUnauthorized || e.Error != "invalid_client" {
		t.Fatalf("push without client authentication: %d %q", presp.StatusCode, e.Error)
	}
}

// signInAndConsent follows an authorization request through the sign-in page (as alice) and
// the consent page, and returns the Location of the redirect back to the client.
func signInAndConsent(t *testing.T, b *browser, authURL string) string {
	t.Helper()
	resp, body := b.do("GET", authURL, nil)
	for range 10 {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
			break
		}
		next, page := b.do("GET", loc, nil)
		f := pagetest.HiddenFields(page)
		switch {
		case strings.HasPrefix(loc, "/oauth2/login"):
			f.Set("username", "alice")
			f.Set("password", "alice-password-value")
			resp, body = b.do("POST", "/oauth2/login", f)
		case strings.HasPrefix(loc, "/oauth2/consent"):
			f.Set("decision", "allow")
			resp, body = b.do("POST", "/oauth2/consent", f)
		default:
			resp, body = next, page
		}
	}
	if resp.StatusCode/100 != 3 {
		t.Fatalf("authorization stopped at %d: %.300s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// mustQuery is the query of an authorization URL.
func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

// TestCaddyfilePARSettings: the issuer's PAR settings and a client's require_par and profile
// reach the JSON config.
func TestCaddyfilePARSettings(t *testing.T) {
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`:8080 {
	oauth_issuer {
		issuer https://a.example
		par_ttl 45s
		require_pushed_authorization_requests
		client bank {
			jwks_uri https://bank.example/jwks
			redirect_uri https://bank.example/cb
			profile fapi2
		}
		client web {
			secret s
			redirect_uri https://app.example/cb
			require_par
		}
	}
}`), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"par_ttl":45000000000`, `"require_pushed_authorization_requests":true`,
		`"profile":"fapi2"`, `"require_par":true`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
}

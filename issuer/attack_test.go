package issuer

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/jwttest"
)

// TestAuthorizeRefusals tries the attacks of RFC 9700 against the authorization endpoint. A
// request whose client or redirect URI cannot be trusted gets an HTML page and never a
// redirect; other mistakes go back to the registered redirect URI with error, state and iss.
func TestAuthorizeRefusals(t *testing.T) {
	f := newFlowServer(t)
	ok := url.Values{"client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:5000/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"xyz"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	tests := []struct {
		name   string
		params url.Values
		page   bool   // an HTML error page, no redirect
		error  string // the error sent back to the client
	}{
		{"unknown client", cloneWith(ok, "client_id", "mallory"), true, ""},
		{"unregistered redirect_uri", cloneWith(ok, "redirect_uri", "https://evil.test/cb"), true, ""},
		{"redirect_uri with extra path", cloneWith(ok, "redirect_uri", "http://127.0.0.1:5000/cb/../evil"), true, ""},
		{"loopback host swap", cloneWith(ok, "redirect_uri", "http://localhost:5000/cb"), true, ""},
		{"https on a loopback registration", cloneWith(ok, "redirect_uri", "https://127.0.0.1:5000/cb"), true, ""},
		{"openid without redirect_uri", cloneWith(ok, "redirect_uri", ""), true, ""},
		{"repeated parameter", func() url.Values { v := cloneWith(ok); v.Add("scope", "read"); return v }(), true, ""},
		{"public client without PKCE", cloneWith(ok, "code_challenge", "", "code_challenge_method", ""), false, "invalid_request"},
		{"PKCE plain", cloneWith(ok, "code_challenge_method", "plain"), false, "invalid_request"},
		{"PKCE without method", cloneWith(ok, "code_challenge_method", ""), false, "invalid_request"},
		{"malformed challenge", cloneWith(ok, "code_challenge", "short"), false, "invalid_request"},
		{"unknown response_type", cloneWith(ok, "response_type", "code token id_token"), false, "unsupported_response_type"},
		{"implicit for a code-only client", cloneWith(ok, "response_type", "token", "code_challenge", "", "code_challenge_method", ""), false, "unauthorized_client"},
		{"scope the client lacks", cloneWith(ok, "scope", "openid admin"), false, "invalid_scope"},
		{"request object", cloneWith(ok, "request", "eyJ..."), false, "request_not_supported"},
		{"prompt none with login", cloneWith(ok, "prompt", "none login"), false, "invalid_request"},
		{"bad max_age", cloneWith(ok, "max_age", "-1"), false, "invalid_request"},
		{"unknown response_mode", cloneWith(ok, "response_mode", "web_message"), false, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.params {
				if len(v) == 1 && v[0] == "" {
					delete(tc.params, k)
				}
			}
			resp, body := newBrowser(t).get(f.url + PathAuthorize + "?" + tc.params.Encode())
			loc := resp.Header.Get("Location")
			if tc.page {
				if loc != "" || resp.StatusCode != 400 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
					t.Fatalf("want an HTML error page, got %d Location=%q", resp.StatusCode, loc)
				}
				if strings.Contains(body, "evil.test") {
					t.Fatal("the error page links to the attacker's URI")
				}
				return
			}
			got := callback(t, resp, "http://127.0.0.1:5000/cb")
			if got.Get("error") != tc.error || got.Get("state") != "xyz" || got.Get("iss") != f.url || got.Get("code") != "" {
				t.Fatalf("got %v, want error %s with state and iss", got, tc.error)
			}
		})
	}
}

// TestPKCEAttacks tries the token endpoint with a wrong, missing or downgraded verifier.
func TestPKCEAttacks(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	redeem := func(code, v string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
		if v != "" {
			form.Set("code_verifier", v)
		}
		return f.exchange(t, form)
	}
	code := f.webCode(t, b, verifier)
	if status, body := redeem(code, oauth2.GenerateVerifier()); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, body)
	}
	if status, body := redeem(code, ""); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("missing verifier: %d %v", status, body)
	}
	if status, body := redeem(code, "too-short"); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("malformed verifier: %d %v", status, body)
	}
	// Failed attempts by someone holding only the code do not burn it for the real client.
	if status, body := redeem(code, verifier); status != 200 {
		t.Fatalf("right verifier after failed attempts: %d %v", status, body)
	}
	// Downgrade: a code issued without a challenge refuses a verifier.
	plainCode := f.webCode(t, b, "")
	if status, body := redeem(plainCode, verifier); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("downgrade: %d %v", status, body)
	}
}

// TestCodeBinding checks that a code works only for its client and redirect URI.
func TestCodeBinding(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	code := f.webCode(t, b, "")
	status, body := f.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/other"}})
	if status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("wrong redirect_uri: %d %v", status, body)
	}
	// Another client (first, confidential) cannot redeem web's code.
	req, _ := http.NewRequest("POST", f.url+PathToken, strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {"https://app.test/cb"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("first", "first-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("another client's code: %d", resp.StatusCode)
	}
	if status, body := f.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}); status != 200 {
		t.Fatalf("the right client after the attempts: %d %v", status, body)
	}
}

// TestLoginCSRFAndBrowserBinding posts the login form without, or with a wrong, CSRF token,
// and from a browser that did not start the request.
func TestLoginCSRFAndBrowserBinding(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"read"}}
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	loginURL := f.url + resp.Header.Get("Location")
	_, page := b.get(loginURL)
	form := hiddenFields(page)
	if form.Get("csrf_token") == "" || form.Get("request") == "" {
		t.Fatalf("login page lacks hidden fields: %v", form)
	}
	form.Set("username", "alice")
	form.Set("password", alicePassword)
	for _, tc := range []struct{ name, token string }{{"missing", ""}, {"wrong", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}} {
		bad := cloneWith(form, "csrf_token", tc.token)
		if tc.token == "" {
			bad.Del("csrf_token")
		}
		resp, _ := b.post(f.url+PathLogin, bad)
		if resp.StatusCode != http.StatusForbidden || hasCookie(resp, sessionCookie) {
			t.Fatalf("%s CSRF token: %d, session cookie %v", tc.name, resp.StatusCode, hasCookie(resp, sessionCookie))
		}
	}
	// A victim's browser opening the attacker's pending request is refused.
	victim := newBrowser(t)
	if resp, _ := victim.get(loginURL); resp.StatusCode != 400 {
		t.Fatalf("another browser's pending request: %d", resp.StatusCode)
	}
	// The real browser with the right token signs in.
	resp, _ = b.post(f.url+PathLogin, form)
	if resp.StatusCode != http.StatusSeeOther || !hasCookie(resp, sessionCookie) {
		t.Fatalf("good login: %d", resp.StatusCode)
	}
}

func hasCookie(resp *http.Response, name string) bool {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.Value != "" {
			return true
		}
	}
	return false
}

// TestLoginThrottling: after too many failures the right password is refused too, and the
// unknown-user and wrong-password answers are the same.
func TestLoginThrottling(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"read"}}
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	form := hiddenFields(page)
	try := func(user, pw string) (int, string) {
		resp, body := b.post(f.url+PathLogin, cloneWith(form, "username", user, "password", pw))
		return resp.StatusCode, body
	}
	_, unknown := try("nobody", "x")
	_, wrong := try("alice", "x")
	if !strings.Contains(unknown, errBadCredentials) || !strings.Contains(wrong, "is incorrect") {
		t.Fatal("unknown user and wrong password must give the same message")
	}
	for i := 0; i < f.cfg.Limits.SignInFailuresPerUserAddress; i++ {
		try("alice", "wrong")
	}
	if status, _ := try("alice", alicePassword); status != http.StatusTooManyRequests {
		t.Fatalf("right password after %d failures: %d, want 429", f.cfg.Limits.SignInFailuresPerUserAddress, status)
	}
}

// TestLogout covers RP-initiated logout: open redirects refused, the session ended.
func TestLogout(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	cfg := f.oauthConfig("web", "web-secret", "https://app.test/cb", "openid")
	resp, _ := f.authorize(b, mustQuery(cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("nonce", "n"))), "allow")
	tok, err := cfg.Exchange(t.Context(), callback(t, resp, "https://app.test/cb").Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	idToken := tok.Extra("id_token").(string)

	// An unregistered post_logout_redirect_uri is an error page, not a redirect.
	resp, _ = b.get(f.url + PathEndSession + "?" + url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.test/"}}.Encode())
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("open redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Without a hint, a GET only asks for confirmation (no logout CSRF).
	resp, page := b.get(f.url + PathEndSession)
	if resp.StatusCode != 200 || hiddenFields(page).Get("csrf_token") == "" {
		t.Fatalf("confirmation page: %d", resp.StatusCode)
	}
	if st, _ := b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "prompt": {"none"}}.Encode()); !strings.Contains(st.Header.Get("Location"), "code=") {
		t.Fatal("the confirmation page signed the user out")
	}
	// With a valid hint and a registered URI: signed out and sent back with state.
	resp, _ = b.get(f.url + PathEndSession + "?" + url.Values{"id_token_hint": {idToken},
		"post_logout_redirect_uri": {"https://app.test/bye"}, "state": {"bye-state"}}.Encode())
	if loc := resp.Header.Get("Location"); loc != "https://app.test/bye?state=bye-state" {
		t.Fatalf("logout redirect %d %q", resp.StatusCode, loc)
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "prompt": {"none"}}.Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "login_required" {
		t.Fatalf("after logout: %v", got)
	}
}

// TestCORS: registered origins may call the token endpoint from a browser; others and the
// authorization endpoint get no CORS headers.
func TestCORS(t *testing.T) {
	f := newFlowServer(t)
	tests := []struct {
		name, method, path, origin string
		allowed                    bool
	}{
		{"token preflight from a redirect origin", "OPTIONS", PathToken, "https://app.test", true},
		{"jwks from a redirect origin", "GET", PathJWKS, "https://app.test", true},
		{"token from an unknown origin", "OPTIONS", PathToken, "https://evil.test", false},
		{"authorization endpoint", "GET", PathAuthorize, "https://app.test", false},
		{"login page", "GET", PathLogin, "https://app.test", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == tc.origin) != tc.allowed || (!tc.allowed && got != "") {
				t.Fatalf("Access-Control-Allow-Origin %q", got)
			}
		})
	}
}

// jtiUnverified reads a token's jti without verifying it (for revoked tokens).
func (f *flowServer) jtiUnverified(t *testing.T, at string) string { return jtiUnverified(t, at) }

// jtiUnverified reads a token's jti without verifying it (for revoked tokens).
func jtiUnverified(t testing.TB, at string) string {
	t.Helper()
	parts := strings.Split(at, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.JTI
}

// TestNativeAppRedirects: a private-use scheme redirect works for the query response, but
// form_post (which needs a web origin) is refused back to the app.
func TestNativeAppRedirects(t *testing.T) {
	f := newFlowServer(t, func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "native", RedirectURIs: []string{"com.example.app:/oauth/cb"},
			Scopes: []string{"openid"}})
	})
	q := url.Values{"client_id": {"native"}, "redirect_uri": {"com.example.app:/oauth/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"}, "response_mode": {"form_post"}}
	resp, _ := newBrowser(t).get(f.url + PathAuthorize + "?" + q.Encode())
	if got := callback(t, resp, "com.example.app:/oauth/cb"); got.Get("error") != "invalid_request" {
		t.Fatalf("form_post to a private-use scheme: %v", got)
	}
	q.Del("response_mode")
	resp, _ = newBrowser(t).get(f.url + PathAuthorize + "?" + q.Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, PathLogin) {
		t.Fatalf("native app code flow: %q", loc)
	}
}

// TestHugeUsername: a user name far larger than any store key allows is just a failed login,
// not a storage error.
func TestHugeUsername(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	resp, _ := b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"read"}}.Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	resp, _ = b.post(f.url+PathLogin, cloneWith(hiddenFields(page), "username", strings.Repeat("a", 60000), "password", "x"))
	if resp.StatusCode != 401 {
		t.Fatalf("huge user name: %d", resp.StatusCode)
	}
}

// TestPageFormsNeedCSRF posts the consent and logout forms without their CSRF token: the
// consent is neither given nor denied, the user stays signed in.
func TestPageFormsNeedCSRF(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid"}}
	f.webCode(t, b, "") // signed in, consent for openid read given
	resp, _ := b.get(f.url + PathAuthorize + "?" + cloneWith(params, "prompt", "consent").Encode())
	consentURL := f.url + resp.Header.Get("Location")
	_, page := b.get(consentURL)
	form := hiddenFields(page)
	form.Del("csrf_token")
	form.Set("decision", "allow")
	if resp, _ := b.post(f.url+PathConsent, form); resp.StatusCode != 403 {
		t.Fatalf("consent without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := b.post(f.url+PathEndSession, url.Values{"decision": {"logout"}}); resp.StatusCode != 200 {
		t.Fatalf("logout without CSRF: %d", resp.StatusCode)
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + cloneWith(params, "prompt", "none", "scope", "openid read").Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("code") == "" {
		t.Fatalf("a POST without CSRF signed the user out: %v", got)
	}
}

// TestUserinfoAndRevocationRefusals: userinfo needs the openid scope; a forged token sent
// for revocation revokes nothing.
func TestUserinfoAndRevocationRefusals(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	tok := f.passwordToken(t, "cli", "cli-secret", "read")
	req, _ := http.NewRequest("GET", f.url+PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("userinfo without openid: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	forged := jwttest.Tamper(t, tok.AccessToken)
	if status, _ := f.tokenCall(t, PathRevoke, "cli", "cli-secret", url.Values{"token": {forged}}); status != 200 {
		t.Fatalf("revoking a forged token: %d", status)
	}
	if f.Revoked(f.jtiUnverified(t, forged)) {
		t.Fatal("a forged token put its jti on the deny-list")
	}
}

package issuer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

const (
	testInitialToken = "initial-access-token-7f3a9c"
	mcpAudience      = "https://mcp.test/mcp"
)

// withRegistration turns on registration in mode, with scopes openid and read for
// https://mcp.test/mcp; mutate adjusts it.
func withRegistration(mode string, mutate ...func(*Registration)) func(*Config) {
	return func(c *Config) {
		c.Registration = &Registration{Mode: mode, Scopes: []string{"openid", "read"}, Audience: []string{mcpAudience}}
		if mode == RegistrationToken {
			c.Registration.InitialAccessToken = testInitialToken
		}
		for _, m := range mutate {
			m(c.Registration)
		}
	}
}

// regReply is an answer of the registration or a client configuration endpoint.
type regReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (r regReply) str(k string) string { s, _ := r.body[k].(string); return s }

// regCall sends a JSON request (body: a string is sent as it is, anything else encoded) to
// target of f, from address ip, with a Bearer token if not empty.
func regCall(t testing.TB, f *flowServer, method, target, ip, token string, body any) regReply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	if !strings.HasPrefix(target, "http") {
		target = f.url + target
	}
	req, _ := http.NewRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ip != "" {
		req.Header.Set(clientIPHeader, ip)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := regReply{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, target, resp.StatusCode, raw)
		}
	}
	return out
}

// register registers a client at f, failing the test unless it gets 201.
func register(t testing.TB, f *flowServer, token string, body any) regReply {
	t.Helper()
	r := regCall(t, f, http.MethodPost, PathRegister, "", token, body)
	if r.status != http.StatusCreated {
		t.Fatalf("registration: %d %v", r.status, r.body)
	}
	return r
}

// publicMetadata is what an MCP client registers: a public client with a loopback redirect.
func publicMetadata() map[string]any {
	return map[string]any{"client_name": "Test MCP Client", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none"}
}

// tokenCall posts form to f's token endpoint, with Basic credentials when secret is not empty
// (else client_id in the form); it returns the status and the body.
func tokenCall(t testing.TB, base, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	form = cloneWith(form)
	if secret == "" {
		form.Set("client_id", id)
	}
	req, _ := http.NewRequest(http.MethodPost, base+PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestRegistrationRefusesBadMetadata(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen, func(r *Registration) { r.PerAddress = 1000 }))
	with := func(kv ...any) map[string]any {
		m := publicMetadata()
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	many := func(n int, f func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	const meta, redirect = "invalid_client_metadata", "invalid_redirect_uri"
	tests := []struct {
		name string
		body any
		want string
	}{
		{"not JSON", "{redirect_uris", meta},
		{"an array", `[{"redirect_uris":["https://app.test/cb"]}]`, meta},
		{"redirect_uris of the wrong type", with("redirect_uris", "https://app.test/cb"), meta},
		{"scope of the wrong type", with("scope", []string{"read"}), meta},
		{"no redirect_uris", with("redirect_uris", nil), redirect},
		{"empty redirect_uris", with("redirect_uris", []string{}), redirect},
		{"plain http off loopback", with("redirect_uris", []string{"http://app.test/cb"}), redirect},
		{"a fragment", with("redirect_uris", []string{"https://app.test/cb#x"}), redirect},
		{"a relative URI", with("redirect_uris", []string{"/cb"}), redirect},
		{"javascript", with("redirect_uris", []string{"javascript:alert(1)"}), redirect},
		{"a custom scheme without a dot", with("redirect_uris", []string{"myapp:/cb"}), redirect},
		{"user info", with("redirect_uris", []string{"https://user@app.test/cb"}), redirect},
		{"https without a host", with("redirect_uris", []string{"https:/cb"}), redirect},
		{"too many redirect URIs", with("redirect_uris", many(11, func(i int) string { return fmt.Sprintf("https://app.test/%d", i) })), redirect},
		{"a redirect URI too long", with("redirect_uris", []string{"https://app.test/" + strings.Repeat("a", 2000)}), redirect},
		{"a secret in open mode", with("token_endpoint_auth_method", "client_secret_basic"), meta},
		{"client_secret_post in open mode", with("token_endpoint_auth_method", "client_secret_post"), meta},
		{"private_key_jwt", with("token_endpoint_auth_method", "private_key_jwt"), meta},
		{"client_credentials in open mode", with("grant_types", []string{"client_credentials"}), meta},
		{"implicit", with("grant_types", []string{"implicit"}), meta},
		{"password", with("grant_types", []string{"authorization_code", "password"}), meta},
		{"device_code in open mode", with("grant_types", []string{"urn:ietf:params:oauth:grant-type:device_code"}), meta},
		{"an unknown grant", with("grant_types", []string{"urn:example:magic"}), meta},
		{"refresh_token alone", with("grant_types", []string{"refresh_token"}), meta},
		{"response_type token", with("response_types", []string{"token"}), meta},
		{"response_type id_token", with("response_types", []string{"code", "id_token"}), meta},
		{"a scope beyond the configured ones", with("scope", "read write"), meta},
		{"offline_access without refresh_token", with("grant_types", []string{"authorization_code"}, "scope", "read offline_access"), meta},
		{"a malformed scope", with("scope", "re\"ad"), meta},
		{"a name too long", with("client_name", strings.Repeat("n", 101)), meta},
		{"a control character in the name", with("client_name", "Good\nApp"), meta},
		{"a right-to-left override in the name", with("client_name", "Good App\u202egnp.exe"), meta},
		{"a zero-width space in the name", with("client_name", "Go\u200bogle"), meta},
		{"an http logo", with("logo_uri", "http://app.test/logo.png"), meta},
		{"a data logo", with("logo_uri", "data:image/png;base64,AAAA"), meta},
		{"a javascript client_uri", with("client_uri", "javascript:alert(1)"), meta},
		{"a tos_uri off loopback over http", with("tos_uri", "http://app.test/tos"), meta},
		{"too many contacts", with("contacts", many(11, func(i int) string { return fmt.Sprintf("c%d@app.test", i) })), meta},
		{"a software_id too long", with("software_id", strings.Repeat("s", 201)), meta},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := regCall(t, f, http.MethodPost, PathRegister, "", "", tc.body)
			if r.status != http.StatusBadRequest || r.str("error") != tc.want || r.str("error_description") == "" {
				t.Fatalf("got %d %v, want 400 %s", r.status, r.body, tc.want)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", r.header.Get("Cache-Control"))
			}
		})
	}

	// What is allowed: a private-use scheme with a dot (RFC 8252 §7.1), loopback http on any
	// host name for it, several URIs, fields the issuer does not know (ignored), https links.
	for _, body := range []map[string]any{
		with("redirect_uris", []string{"com.example.app:/oauth2redirect"}),
		with("redirect_uris", []string{"http://localhost:8080/cb", "http://[::1]/cb", "https://app.test/cb"}),
		with("jwks_uri", "https://app.test/jwks", "software_statement", "x.y.z", "x_vendor", map[string]any{"a": 1},
			"logo_uri", "https://app.test/logo.png", "client_uri", "http://127.0.0.1:3000/", "contacts", []string{"dev@app.test"}),
		with("grant_types", nil, "response_types", nil, "token_endpoint_auth_method", nil),
	} {
		if r := regCall(t, f, http.MethodPost, PathRegister, "", "", body); r.status != http.StatusCreated {
			t.Fatalf("%v: %d %v", body, r.status, r.body)
		}
	}

	// The request itself: JSON only, POST only, bounded.
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"a form body", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.url+PathRegister, strings.NewReader("redirect_uris=https://app.test/cb"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, http.StatusUnsupportedMediaType},
		{"GET", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, f.url+PathRegister, nil); return r }, http.StatusMethodNotAllowed},
		{"a body over 64 KiB", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, f.url+PathRegister,
				strings.NewReader(`{"client_name":"`+strings.Repeat("a", 70<<10)+`"}`))
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			return r
		}, http.StatusRequestEntityTooLarge},
	} {
		resp, err := http.DefaultClient.Do(tc.req())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
}

func TestRegistrationOpenModeIsForPublicClients(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen))
	// No initial access token is asked for; a Bearer token sent anyway changes nothing.
	r := register(t, f, "whatever", publicMetadata())
	if r.str("client_secret") != "" || r.str("token_endpoint_auth_method") != "none" {
		t.Fatalf("open registration gave %v", r.body)
	}
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		m := publicMetadata()
		m["token_endpoint_auth_method"] = method
		m["grant_types"] = []string{"authorization_code", "client_credentials"}
		if r := regCall(t, f, http.MethodPost, PathRegister, "", "", m); r.status != 400 || r.str("error") != "invalid_client_metadata" {
			t.Fatalf("%s in open mode: %d %v", method, r.status, r.body)
		}
	}
}

func TestRegistrationTokenModeNeedsTheToken(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationToken))
	for _, token := range []string{"", "wrong", testInitialToken + "x", testInitialToken[:len(testInitialToken)-1]} {
		r := regCall(t, f, http.MethodPost, PathRegister, "", token, publicMetadata())
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_token" ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("token %q: %d %v %q", token, r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	// Basic is no Bearer token.
	req, _ := http.NewRequest(http.MethodPost, f.url+PathRegister, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("x", testInitialToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("Basic: %v %v", resp, err)
	}

	// A confidential client by default (RFC 7591: client_secret_basic), with client_credentials.
	r := register(t, f, testInitialToken, map[string]any{"client_name": "Backend", "grant_types": []string{"client_credentials"}})
	id, secret := r.str("client_id"), r.str("client_secret")
	if r.str("token_endpoint_auth_method") != "client_secret_basic" || len(secret) < 43 || !strings.HasPrefix(id, RegisteredClientPrefix) {
		t.Fatalf("token registration: %v", r.body)
	}
	if rt, _ := r.body["response_types"].([]any); len(rt) != 0 || r.body["redirect_uris"] != nil {
		t.Fatalf("a client_credentials client: %v", r.body)
	}
	status, tok := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	if status != 200 {
		t.Fatalf("client_credentials: %d %v", status, tok)
	}
	if aud := f.audOf(t, tok["access_token"].(string)); !slices.Equal(aud, []string{mcpAudience}) {
		t.Fatalf("aud %v", aud)
	}
	if status, _ := tokenCall(t, f.url, id, secret+"x", url.Values{"grant_type": {"client_credentials"}}); status != 401 {
		t.Fatalf("a wrong secret: %d", status)
	}
	// client_secret_post; public clients (MCP clients send none) too; but no public client_credentials.
	r = register(t, f, testInitialToken, map[string]any{"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_post"})
	form := url.Values{"grant_type": {"client_credentials"}, "client_secret": {r.str("client_secret")}}
	if status, body := tokenCall(t, f.url, r.str("client_id"), "", form); status != 200 {
		t.Fatalf("client_secret_post: %d %v", status, body)
	}
	// Each authenticates only the way it registered: the right secret the other way is refused.
	if status, _ := tokenCall(t, f.url, r.str("client_id"), r.str("client_secret"), url.Values{"grant_type": {"client_credentials"}}); status != 401 {
		t.Fatalf("a client_secret_post client's secret by Basic: %d", status)
	}
	if status, _ := tokenCall(t, f.url, id, "", url.Values{"grant_type": {"client_credentials"}, "client_secret": {secret}}); status != 401 {
		t.Fatalf("a client_secret_basic client's secret in the body: %d", status)
	}
	if r := register(t, f, testInitialToken, publicMetadata()); r.str("client_secret") != "" {
		t.Fatalf("none in token mode: %v", r.body)
	}
	m := publicMetadata()
	m["grant_types"] = []string{"client_credentials"}
	if r := regCall(t, f, http.MethodPost, PathRegister, "", testInitialToken, m); r.status != 400 {
		t.Fatalf("public client_credentials: %d %v", r.status, r.body)
	}
}

func TestRegisteredPublicClientFlow(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen))
	ctx := context.Background()
	before := time.Now().Unix()
	r := register(t, f, "", map[string]any{"client_name": "Test MCP Client", "redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
		"client_uri": "https://client.test", "software_id": "tests", "software_version": "1.0"})
	if r.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("headers %v", r.header)
	}
	id, rat := r.str("client_id"), r.str("registration_access_token")
	issued, _ := r.body["client_id_issued_at"].(float64)
	expires, _ := r.body["client_secret_expires_at"].(float64)
	lifetime := int64((720 * time.Hour).Seconds())
	if len(id) < len(RegisteredClientPrefix)+22 || len(rat) < 43 || int64(issued) < before ||
		int64(expires) < before+lifetime || int64(expires) > time.Now().Unix()+lifetime+1 ||
		r.str("registration_client_uri") != f.url+PathRegister+"/"+id || r.str("scope") != "openid read offline_access" ||
		r.str("client_name") != "Test MCP Client" || r.str("software_id") != "tests" || r.str("client_uri") != "https://client.test" {
		t.Fatalf("registration response %v", r.body)
	}
	info, err := f.RegisteredClient(ctx, id)
	if err != nil || info == nil || info.Via != "open" || info.AuthMethod != "none" || !slices.Equal(info.Audience, []string{mcpAudience}) ||
		info.Expires.Unix() != int64(expires) {
		t.Fatalf("RegisteredClient %+v %v", info, err)
	}

	// A real code flow with PKCE, on a loopback port of the app's choosing (RFC 8252 §7.3).
	redirect := "http://127.0.0.1:53127/callback"
	cfg := f.oauthConfig(id, "", redirect, "openid", "read", "offline_access")
	b := newBrowser(t)
	flow := func() *oauth2.Token {
		t.Helper()
		verifier := oauth2.GenerateVerifier()
		resp, _ := f.authorize(b, mustQuery(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))), "allow")
		got := callback(t, resp, redirect)
		tok, err := cfg.Exchange(ctx, got.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		return tok
	}
	tok := flow()
	if aud := f.audOf(t, tok.AccessToken); !slices.Equal(aud, []string{mcpAudience}) {
		t.Fatalf("aud %v", aud)
	}
	if tok.RefreshToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("token %+v", tok)
	}
	refresh := func(rt string) (int, map[string]any) {
		return tokenCall(t, f.url, id, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	status, refreshed := refresh(tok.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, refreshed)
	}
	// Without PKCE a public client gets nowhere.
	resp, _ := f.authorize(b, mustQuery(cfg.AuthCodeURL("st")), "allow")
	if u, _ := url.Parse(resp.Header.Get("Location")); u != nil && u.Query().Get("code") != "" {
		t.Fatalf("no PKCE: %v", u)
	}

	// Consent is asked every time for a registered client, even after it was allowed.
	resp, _ = b.get(f.url + PathAuthorize + "?" + mustQuery(cfg.AuthCodeURL("st",
		oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, PathConsent) {
		t.Fatalf("a second authorization of a registered client: want the consent page, got %d %q", resp.StatusCode, loc)
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + mustQuery(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "none"))).Encode())
	if got := callback(t, resp, redirect); got.Get("error") != "consent_required" {
		t.Fatalf("prompt=none for a registered client: %v", got)
	}
	tok2 := flow()

	// Deleted: no authorization, no refresh, no configuration endpoint.
	if r := regCall(t, f, http.MethodDelete, PathRegister+"/"+id, "", rat+"x", nil); r.status != 401 {
		t.Fatalf("delete with a wrong token: %d", r.status)
	}
	if r := regCall(t, f, http.MethodDelete, PathRegister+"/"+id, "", rat, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	for _, rt := range []string{refreshed["refresh_token"].(string), tok2.RefreshToken} {
		if status, body := refresh(rt); status != 401 || body["error"] != "invalid_client" {
			t.Fatalf("refresh after delete: %d %v", status, body)
		}
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + mustQuery(cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Encode())
	if resp.StatusCode/100 == 3 {
		t.Fatalf("authorization after delete redirected to %q", resp.Header.Get("Location"))
	}
	if r := regCall(t, f, http.MethodGet, PathRegister+"/"+id, "", rat, nil); r.status != 401 {
		t.Fatalf("read after delete: %d", r.status)
	}
	if info, err := f.RegisteredClient(ctx, id); info != nil || err != nil {
		t.Fatalf("RegisteredClient after delete: %+v %v", info, err)
	}
}

func TestRegistrationManagement(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationToken))
	r := register(t, f, testInitialToken, map[string]any{"client_name": "Web", "redirect_uris": []string{"https://app.test/cb"},
		"grant_types": []string{"authorization_code", "client_credentials"}, "scope": "openid read"})
	id, secret, rat := r.str("client_id"), r.str("client_secret"), r.str("registration_access_token")
	uri := r.str("registration_client_uri")
	other := register(t, f, testInitialToken, publicMetadata())

	// Read: the registration as it is, the token the request presented, never the secret.
	got := regCall(t, f, http.MethodGet, uri, "", rat, nil)
	if got.status != 200 || got.str("client_id") != id || got.str("client_secret") != "" || got.str("client_name") != "Web" ||
		got.str("registration_access_token") != rat || got.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("read: %d %v", got.status, got.body)
	}
	// Wrong tokens, another client's token, unknown clients: all the same 401.
	for _, c := range []struct{ target, token string }{
		{uri, ""}, {uri, "wrong"}, {uri, other.str("registration_access_token")}, {uri, testInitialToken},
		{PathRegister + "/" + RegisteredClientPrefix + "AAAAAAAAAAAAAAAAAAAAAA", rat},
		{PathRegister + "/web", rat},
	} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			r := regCall(t, f, method, c.target, "", c.token, map[string]any{"client_id": id})
			if r.status != 401 || r.str("error") != "invalid_token" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("%s %s with %q: %d %v", method, c.target, c.token, r.status, r.body)
			}
		}
	}
	if r := regCall(t, f, http.MethodPost, uri, "", rat, map[string]any{}); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the configuration endpoint: %d", r.status)
	}
	if h := f.Route(PathRegister + "/" + id + "/x"); h != nil {
		t.Fatal("a deeper path is routed")
	}

	// Update: what the client read, changed, sent back (fields it must not send are ignored).
	update := got.body
	update["client_name"] = "Web (renamed)"
	update["redirect_uris"] = []string{"https://app.test/cb2", "https://app.test/cb3"}
	update["scope"] = "read"
	put := regCall(t, f, http.MethodPut, uri, "", rat, update)
	if put.status != 200 || put.str("client_name") != "Web (renamed)" || put.str("scope") != "read" || put.str("client_secret") != "" {
		t.Fatalf("update: %d %v", put.status, put.body)
	}
	info, _ := f.RegisteredClient(context.Background(), id)
	if info == nil || info.Name != "Web (renamed)" || !slices.Equal(info.RedirectURIs, []string{"https://app.test/cb2", "https://app.test/cb3"}) ||
		!slices.Equal(info.Scopes, []string{"read"}) || !slices.Equal(info.Audience, []string{mcpAudience}) {
		t.Fatalf("after update: %+v", info)
	}
	// The secret is kept (not rotated) and still works; the narrowed scope applies at once.
	if status, body := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}); status != 200 {
		t.Fatalf("client_credentials after update: %d %v", status, body)
	}
	if status, _ := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid read"}}); status != 400 {
		t.Fatalf("a scope the update removed: %d", status)
	}
	// A right client_secret may be sent; it cannot be chosen.
	update["client_secret"] = secret
	if r := regCall(t, f, http.MethodPut, uri, "", rat, update); r.status != 200 {
		t.Fatalf("update with the secret: %d %v", r.status, r.body)
	}
	for _, bad := range []map[string]any{
		{"client_secret": "my-own-secret"},
		{"client_id": other.str("client_id")},
		{"client_id": nil},
		{"scope": "write"},
		{"token_endpoint_auth_method": "none"},
		{"grant_types": []string{"implicit"}},
		{"redirect_uris": []string{"http://app.test/cb"}},
		{"audience": []string{"https://elsewhere.test"}, "scope": "nope"},
	} {
		body := cloneMap(update)
		for k, v := range bad {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		if r := regCall(t, f, http.MethodPut, uri, "", rat, body); r.status != 400 {
			t.Fatalf("update %v: %d %v", bad, r.status, r.body)
		}
	}
	// The audience cannot be chosen: asked for, it is ignored.
	body := cloneMap(update)
	body["audience"] = []string{"https://elsewhere.test"}
	if r := regCall(t, f, http.MethodPut, uri, "", rat, body); r.status != 200 || r.body["audience"] != nil {
		t.Fatalf("update with an audience: %d %v", r.status, r.body)
	}
	if info, _ := f.RegisteredClient(context.Background(), id); !slices.Equal(info.Audience, []string{mcpAudience}) {
		t.Fatalf("audience after update %v", info.Audience)
	}
	// A public client stays public: omitting the method keeps none.
	ob := regCall(t, f, http.MethodGet, other.str("registration_client_uri"), "", other.str("registration_access_token"), nil).body
	delete(ob, "token_endpoint_auth_method")
	if r := regCall(t, f, http.MethodPut, other.str("registration_client_uri"), "", other.str("registration_access_token"), ob); r.status != 200 ||
		r.str("token_endpoint_auth_method") != "none" {
		t.Fatalf("update of a public client: %d %v", r.status, r.body)
	}

	// Delete: 204, then gone everywhere.
	if r := regCall(t, f, http.MethodDelete, uri, "", rat, nil); r.status != 204 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("delete: %d", r.status)
	}
	if status, _ := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}}); status != 401 {
		t.Fatalf("client_credentials after delete: %d", status)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		if r := regCall(t, f, method, uri, "", rat, update); r.status != 401 {
			t.Fatalf("%s after delete: %d", method, r.status)
		}
	}
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestRegisteredClientsExpire(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationToken, func(r *Registration) { r.Lifetime = Duration(time.Second) }))
	r := register(t, f, testInitialToken, map[string]any{"grant_types": []string{"client_credentials"}})
	id, secret := r.str("client_id"), r.str("client_secret")
	if exp, _ := r.body["client_secret_expires_at"].(float64); int64(exp) > time.Now().Unix()+2 {
		t.Fatalf("client_secret_expires_at %v", exp)
	}
	if status, _ := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}}); status != 200 {
		t.Fatalf("before expiry: %d", status)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		status, _ := tokenCall(t, f.url, id, secret, url.Values{"grant_type": {"client_credentials"}})
		if status == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client still works 3s after a 1s lifetime: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := regCall(t, f, http.MethodGet, r.str("registration_client_uri"), "", r.str("registration_access_token"), nil); r.status != 401 {
		t.Fatalf("read after expiry: %d", r.status)
	}
	if info, err := f.RegisteredClient(context.Background(), id); info != nil || err != nil {
		t.Fatalf("RegisteredClient after expiry: %+v %v", info, err)
	}
	if list, err := f.RegisteredClients(context.Background()); len(list) != 0 || err != nil {
		t.Fatalf("RegisteredClients after expiry: %+v %v", list, err)
	}
}

// floodRegistrations sends n registrations at once, from address ip(i) each, and counts the
// answers by status; every 429 must carry Retry-After.
func floodRegistrations(t *testing.T, f *flowServer, n int, ip func(int) string) map[int]int {
	t.Helper()
	statuses := make([]regReply, n)
	fns := make([]func(), n)
	for i := range fns {
		fns[i] = func() { statuses[i] = regCall(t, f, http.MethodPost, PathRegister, ip(i), "", publicMetadata()) }
	}
	release(fns...)
	out := map[int]int{}
	for _, r := range statuses {
		out[r.status]++
		if r.status == http.StatusTooManyRequests && (r.header.Get("Retry-After") == "" || r.str("error") == "") {
			t.Errorf("429 without Retry-After or error: %v %v", r.header, r.body)
		}
	}
	return out
}

func TestRegistrationFloodFromOneAddress(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen, func(r *Registration) { r.PerAddress = 5 }))
	got := floodRegistrations(t, f, 40, func(int) string { return "198.51.100.7" })
	if got[201] != 5 || got[429] != 35 {
		t.Fatalf("40 registrations at once from one address: %v, want 5 created", got)
	}
	// Another address is not affected; one IPv6 /64 is one address.
	if r := regCall(t, f, http.MethodPost, PathRegister, "198.51.100.8", "", publicMetadata()); r.status != 201 {
		t.Fatalf("another address: %d", r.status)
	}
	got = floodRegistrations(t, f, 10, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) })
	if got[201] != 5 {
		t.Fatalf("10 registrations from one /64: %v", got)
	}
	list, err := f.RegisteredClients(context.Background())
	if err != nil || len(list) != 11 || !slices.IsSortedFunc(list, func(a, b ClientInfo) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("RegisteredClients: %d %v", len(list), err)
	}
}

func TestRegistrationTotalBound(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen, func(r *Registration) { r.Total = 7 }))
	got := floodRegistrations(t, f, 30, func(i int) string { return fmt.Sprintf("203.0.113.%d", i+1) })
	if got[201] != 7 || got[429] != 23 {
		t.Fatalf("30 registrations at once from 30 addresses: %v, want 7 created", got)
	}
}

func TestRegistrationCORS(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen))
	req, _ := http.NewRequest(http.MethodOptions, f.url+PathRegister, nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	raw, _ := json.Marshal(publicMetadata())
	req, _ = http.NewRequest(http.MethodPost, f.url+PathRegister, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://localhost:6274")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("registration from a page: %d %v", resp.StatusCode, resp.Header)
	}
	// The client's origin is known to no configuration: the token endpoint answers it too, and
	// never with credentials (it reads no cookie).
	req, _ = http.NewRequest(http.MethodOptions, f.url+PathToken, nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:6274" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("token endpoint preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestRegistrationOffServesNothing(t *testing.T) {
	s := newTestServer(t, testConfig())
	for _, p := range []string{PathRegister, PathRegister + "/" + RegisteredClientPrefix + "x"} {
		if s.Route(p) != nil {
			t.Fatalf("%s is routed with registration off", p)
		}
	}
}

// TestAdminClients is the admin API's view: it works with registration off, allows what an
// operator may give, and never shows a secret after creation.
func TestAdminClients(t *testing.T) {
	s := newTestServer(t, testConfig())
	ctx := context.Background()
	out, err := s.CreateClient(ctx, []byte(`{"client_name":"Batch","grant_types":["client_credentials"],"scope":"read write admin",
		"audience":["https://api.test","https://other.test"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.Unmarshal(out, &created)
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if !strings.HasPrefix(id, RegisteredClientPrefix) || len(secret) < 43 || created["registration_access_token"] == nil ||
		created["client_secret_expires_at"] != float64(0) || created["registration_client_uri"] != nil {
		t.Fatalf("created %v", created)
	}
	_, tok := tokenOf(s, "grant_type=client_credentials&scope=admin", id, secret)
	claims, err := s.verifyAccessToken(tok.AccessToken)
	if err != nil || !slices.Equal(claims.Audience, []string{"https://api.test", "https://other.test"}) {
		t.Fatalf("admin client token: %v %v", claims, err)
	}
	info, err := s.RegisteredClient(ctx, id)
	if err != nil || info == nil || info.Via != "admin" || info.AuthMethod != "client_secret_basic" || !info.Expires.IsZero() ||
		!slices.Equal(info.Scopes, []string{"read", "write", "admin"}) || info.Created.IsZero() {
		t.Fatalf("RegisteredClient %+v %v", info, err)
	}
	if raw, _ := json.Marshal(info); bytes.Contains(raw, []byte(secret)) {
		t.Fatal("ClientInfo shows the secret")
	}
	if info, err := s.RegisteredClient(ctx, "svc"); info != nil || err != nil {
		t.Fatalf("a configured client is no registered one: %+v %v", info, err)
	}
	for _, bad := range []struct{ body, code string }{
		{`{"grant_types":["client_credentials"],"audience":["not a uri"]}`, "invalid_client_metadata"},
		{`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{`{"grant_types":["password"]}`, "invalid_client_metadata"},
		{`{}`, "invalid_redirect_uri"},
		{`nope`, "invalid_client_metadata"},
	} {
		_, err := s.CreateClient(ctx, []byte(bad.body))
		var re *RegistrationError
		if !errors.As(err, &re) || re.Code != bad.code || re.Description == "" {
			t.Fatalf("%s: %v, want %s", bad.body, err, bad.code)
		}
	}
	// A public client with a device grant, for a CLI.
	if _, err := s.CreateClient(ctx, []byte(`{"grant_types":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"],"token_endpoint_auth_method":"none"}`)); err != nil {
		t.Fatal(err)
	}
	list, err := s.RegisteredClients(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("RegisteredClients %+v %v", list, err)
	}
	if ok, err := s.DeleteClient(ctx, id); !ok || err != nil {
		t.Fatalf("DeleteClient: %v %v", ok, err)
	}
	if ok, err := s.DeleteClient(ctx, id); ok || err != nil {
		t.Fatalf("DeleteClient again: %v %v", ok, err)
	}
	if status, _ := tokenOf(s, "grant_type=client_credentials", id, secret); status != 401 {
		t.Fatalf("a deleted admin client: %d", status)
	}
}

// TestAdminClientsCappedByRegistration: with registration on, the admin API caps scopes by it
// too, and an admin client's own RFC 7592 updates cannot widen what the operator gave.
func TestAdminClientsCappedByRegistration(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen))
	ctx := context.Background()
	var re *RegistrationError
	if _, err := f.CreateClient(ctx, []byte(`{"grant_types":["client_credentials"],"scope":"write"}`)); !errors.As(err, &re) {
		t.Fatalf("a scope beyond registration's: %v", err)
	}
	out, err := f.CreateClient(ctx, []byte(`{"grant_types":["client_credentials"],"scope":"read"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.Unmarshal(out, &created)
	uri, _ := created["registration_client_uri"].(string)
	rat, _ := created["registration_access_token"].(string)
	if uri == "" || rat == "" {
		t.Fatalf("created %v", created)
	}
	body := cloneMap(created)
	body["scope"] = "read openid"
	if r := regCall(t, f, http.MethodPut, uri, "", rat, body); r.status != 400 {
		t.Fatalf("an admin client widening its scopes: %d %v", r.status, r.body)
	}
	body["scope"] = "read"
	body["grant_types"] = []string{"client_credentials", "authorization_code"}
	body["redirect_uris"] = []string{"https://app.test/cb"}
	if r := regCall(t, f, http.MethodPut, uri, "", rat, body); r.status != 400 {
		t.Fatalf("an admin client widening its grants: %d %v", r.status, r.body)
	}
}

// TestRegistrationAcrossNodes: two issuers on one Redis know the same registered clients; a
// deletion on one is refused on the other at once.
func TestRegistrationAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	withRegistration(RegistrationToken)(&cfg)
	var nodes []*Server
	for range 2 {
		st, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s, err := New(context.Background(), cfg, Deps{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	a, b := nodes[0], nodes[1]
	call := func(s *Server, method, target, token, body string) *httptest.ResponseRecorder {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r := httptest.NewRequest(method, target, rd)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	w := call(a, http.MethodPost, testIssuer+PathRegister, testInitialToken, `{"grant_types":["client_credentials"],"scope":"read"}`)
	if w.Code != 201 {
		t.Fatalf("register on A: %d %s", w.Code, w.Body)
	}
	var reg map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &reg)
	id, secret, rat := reg["client_id"].(string), reg["client_secret"].(string), reg["registration_access_token"].(string)
	for i, s := range nodes {
		if status, _ := tokenOf(s, "grant_type=client_credentials&scope=read", id, secret); status != 200 {
			t.Fatalf("client_credentials on node %d: %d", i, status)
		}
	}
	if w := call(b, http.MethodGet, testIssuer+PathRegister+"/"+id, rat, ""); w.Code != 200 {
		t.Fatalf("read on B: %d", w.Code)
	}
	if w := call(b, http.MethodDelete, testIssuer+PathRegister+"/"+id, rat, ""); w.Code != 204 {
		t.Fatalf("delete on B: %d %s", w.Code, w.Body)
	}
	if status, _ := tokenOf(a, "grant_type=client_credentials&scope=read", id, secret); status != 401 {
		t.Fatalf("client_credentials on A after the delete on B: %d", status)
	}
	if w := call(a, http.MethodGet, testIssuer+PathRegister+"/"+id, rat, ""); w.Code != 401 {
		t.Fatalf("read on A after the delete on B: %d", w.Code)
	}
}

// TestRegistrationAuditAndNoSecrets runs every registration event and searches the audit and
// operational logs for every secret of the run.
func TestRegistrationAuditAndNoSecrets(t *testing.T) {
	o := newObserved(t, withRegistration(RegistrationToken, func(r *Registration) { r.PerAddress = 6 }))
	secrets := []string{testInitialToken}
	conf := register(t, o.flowServer, testInitialToken, map[string]any{"grant_types": []string{"client_credentials"}})
	pub := register(t, o.flowServer, testInitialToken, publicMetadata())
	secrets = append(secrets, conf.str("client_secret"), conf.str("registration_access_token"), pub.str("registration_access_token"))
	id, rat, uri := conf.str("client_id"), conf.str("registration_access_token"), conf.str("registration_client_uri")
	_, tok := tokenCall(t, o.url, id, conf.str("client_secret"), url.Values{"grant_type": {"client_credentials"}})
	secrets = append(secrets, tok["access_token"].(string))
	regCall(t, o.flowServer, http.MethodPost, PathRegister, "", testInitialToken+"-wrong", publicMetadata())
	regCall(t, o.flowServer, http.MethodGet, uri, "", rat+"-wrong", nil)
	secrets = append(secrets, testInitialToken+"-wrong", rat+"-wrong")
	read := regCall(t, o.flowServer, http.MethodGet, uri, "", rat, nil)
	read.body["client_name"] = "renamed"
	read.body["client_secret"] = "guessed-secret-123"
	regCall(t, o.flowServer, http.MethodPut, uri, "", rat, read.body) // a wrong secret: refused
	delete(read.body, "client_secret")
	if r := regCall(t, o.flowServer, http.MethodPut, uri, "", rat, read.body); r.status != 200 {
		t.Fatalf("update: %d %v", r.status, r.body)
	}
	secrets = append(secrets, "guessed-secret-123")
	if r := regCall(t, o.flowServer, http.MethodDelete, uri, "", rat, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	for range 4 { // past per_address
		regCall(t, o.flowServer, http.MethodPost, PathRegister, "", testInitialToken, publicMetadata())
	}
	out, err := o.CreateClient(context.Background(), []byte(`{"grant_types":["client_credentials"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var admin map[string]any
	_ = json.Unmarshal(out, &admin)
	secrets = append(secrets, admin["client_secret"].(string), admin["registration_access_token"].(string))
	if ok, _ := o.DeleteClient(context.Background(), admin["client_id"].(string)); !ok {
		t.Fatal("admin delete")
	}

	for _, c := range []struct {
		event string
		n     int
		want  map[string]any
	}{
		{AuditClientRegistered, 2 + 3 + 1, map[string]any{"client_id": id, "via": "token"}},
		{AuditClientRegistered, 0, map[string]any{"client_id": admin["client_id"], "via": "admin"}},
		{AuditClientUpdated, 1, map[string]any{"client_id": id, "via": "client"}},
		{AuditClientDeleted, 2, map[string]any{"client_id": id, "via": "client"}},
		{AuditClientDeleted, 0, map[string]any{"client_id": admin["client_id"], "via": "admin"}},
		{AuditThrottled, 0, map[string]any{"limit": limitRegistrationAddress}},
	} {
		es := o.events(c.event)
		if c.n != 0 && len(es) != c.n {
			t.Errorf("%d %s lines, want %d", len(es), c.event, c.n)
		}
		found := false
		for _, e := range es {
			ok := true
			for k, v := range c.want {
				ok = ok && e.ContextMap()[k] == v
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no %s line with %v", c.event, c.want)
		}
	}
	throttled := false
	for _, sm := range series(t, o.reg, "tollgate_issuer_throttled_total") {
		throttled = throttled || sm.labels["limit"] == limitRegistrationAddress && sm.value >= 1
	}
	if !throttled {
		t.Error("tollgate_issuer_throttled_total{limit=registration_address} did not count")
	}
	for _, e := range append(o.audit.AllUntimed(), o.ops.AllUntimed()...) {
		line, _ := json.Marshal(map[string]any{"logger": e.LoggerName, "msg": e.Message, "fields": e.ContextMap()})
		for _, s := range secrets {
			if s == "" {
				t.Fatal("an empty secret: the run went wrong")
			}
			if strings.Contains(string(line), s) {
				t.Errorf("a secret (%.8s…) reached the log: %s", s, line)
			}
		}
	}
}

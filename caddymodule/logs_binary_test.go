package caddymodule_test

// The built Caddy with every log at DEBUG and access logs on both sites runs every grant; then
// its logs are searched for every code, token, user code, secret and password the run used.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/pagetest"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// logsCaddyfile: arguments are the issuer port, the API port, the directory, alice's hash, the
// admin port (its /metrics is scraped).
const logsCaddyfile = `{
	admin 127.0.0.1:%[5]s
	persist_config off
	auto_https off
	storage file_system %[3]s/data
	log {
		output file %[3]s/caddy.log
		level DEBUG
		# The error log records refused requests' URIs too (see the API's access log below).
		format filter {
			request>uri query {
				replace access_token REDACTED
			}
		}
	}
	# The README's recipe: the issuer's audit trail in a file of its own.
	log audit {
		output file %[3]s/audit.log
		include http.handlers.oauth_issuer.audit
	}
}

http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	log {
		output file %[3]s/issuer-access.log
		level DEBUG
	}
	# encode above the issuer holds a response's header back until its body comes (a redirect
	# of a POST has none): the redaction must still happen, after the header has left.
	encode gzip
	handle {
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage bolt %[3]s/tollgate.db
		device_poll_interval 1s
		user alice %[4]s
		client web {
			secret web-secret-value
			redirect_uri https://app.test/cb
			grants authorization_code refresh_token
			scopes openid profile read offline_access
			audience https://api.test
		}
		client spa {
			redirect_uri http://127.0.0.1/cb
			scopes openid read
			audience https://api.test
		}
		client imp {
			redirect_uri https://app.test/implicit
			grants implicit
			scopes openid read
			audience https://api.test
		}
		client svc {
			secret svc-secret-value
			grants client_credentials
			scopes read
			audience https://api.test
			resource_server
		}
		client cli {
			secret cli-secret-value
			grants password refresh_token
			scopes read offline_access
			audience https://api.test
		}
		client tv {
			grants device_code refresh_token
			scopes read offline_access
			audience https://api.test
		}
	}
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	log {
		output file %[3]s/api-access.log
		level DEBUG
		# allow_query_token puts tokens in request URIs, which Caddy logs as they arrive: the
		# filter the README recommends takes them out.
		format filter {
			request>uri query {
				replace access_token REDACTED
			}
		}
	}
	oauth_protect {
		issuer http://127.0.0.1:%[1]s
		audience https://api.test
		scope read
		allow_query_token
	}
	respond "ok" 200
}
`

// pageClient walks the issuer's pages as a person with a browser would, by the HTML contract.
// An issuer under a path (http://host/a) is walked the same way: its pages are under base.
type pageClient struct {
	t      *testing.T
	origin string // the issuer's scheme and host
	base   string // the issuer's path, "" at the root of its host
	c      *http.Client
}

func newPageClient(t *testing.T, issuer string) *pageClient {
	return newPageClientJar(t, issuer, nil)
}

// newPageClientJar is newPageClient sharing a cookie jar (nil: a new one), as several tabs of one
// browser do.
func newPageClientJar(t *testing.T, issuer string, jar http.CookieJar) *pageClient {
	if jar == nil {
		jar, _ = cookiejar.New(nil)
	}
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &pageClient{t: t, origin: u.Scheme + "://" + u.Host, base: strings.TrimSuffix(u.Path, "/"),
		c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request; a u starting with "/" is a path on the issuer's host (a Location, say).
func (p *pageClient) do(method, u string, form url.Values) (*http.Response, string) {
	p.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = p.origin + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// authorize follows an authorization request through sign-in and consent and returns the
// Location of the redirect back to the client.
func (p *pageClient) authorize(params url.Values) string {
	p.t.Helper()
	resp, body := p.follow(p.do("GET", p.base+"/oauth2/authorize?"+params.Encode(), nil))
	if resp.StatusCode/100 != 3 {
		p.t.Fatalf("authorization stopped at %d: %.300s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location")
}

// signInWrong starts an authorization request and answers the sign-in page as alice with a
// wrong password; it returns the page that comes back.
func (p *pageClient) signInWrong(params url.Values, password string) string {
	p.t.Helper()
	resp, _ := p.do("GET", p.base+"/oauth2/authorize?"+params.Encode(), nil)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, p.base+"/oauth2/login") {
		p.t.Fatalf("authorization request went to %q, want the sign-in page", loc)
	}
	_, page := p.do("GET", loc, nil)
	f := pagetest.HiddenFields(page)
	f.Set("username", "alice")
	f.Set("password", password)
	_, body := p.do("POST", p.base+"/oauth2/login", f)
	return body
}

// follow answers the sign-in and consent pages as alice and follows the issuer's own
// redirects, until a response that is not a redirect within the issuer.
func (p *pageClient) follow(resp *http.Response, body string) (*http.Response, string) {
	p.t.Helper()
	for range 10 {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, p.base+"/") {
			return resp, body
		}
		next, page := p.do("GET", loc, nil)
		switch {
		case strings.HasPrefix(loc, p.base+"/oauth2/login"):
			f := pagetest.HiddenFields(page)
			f.Set("username", "alice")
			f.Set("password", "alice-password-value")
			resp, body = p.do("POST", p.base+"/oauth2/login", f)
		case strings.HasPrefix(loc, p.base+"/oauth2/consent"):
			f := pagetest.HiddenFields(page)
			f.Set("decision", "allow")
			resp, body = p.do("POST", p.base+"/oauth2/consent", f)
		default:
			resp, body = next, page
		}
	}
	p.t.Fatal("too many redirects")
	return nil, ""
}

// TestNoSecretsInCaddyLogs runs every grant against the built Caddy at DEBUG, with access logs
// on, and then looks for every secret of the run in every log file.
func TestNoSecretsInCaddyLogs(t *testing.T) {
	bin := caddyBin(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password-value"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	issuer, api := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(logsCaddyfile, ports[0], ports[1], dir, hash, ports[2])), 0o600); err != nil {
		t.Fatal(err)
	}
	// The Caddyfile logs to caddy.log; the process's own output goes next to it.
	if err := os.WriteFile(filepath.Join(dir, "caddy.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	exited, stop := startBinaryStoppable(t, bin, dir, config)
	waitForMetadata(t, issuer, exited)
	ctx := context.Background()
	endpoint := oauth2.Endpoint{AuthURL: issuer + "/oauth2/authorize", TokenURL: issuer + "/oauth2/token",
		DeviceAuthURL: issuer + "/oauth2/device_authorization", AuthStyle: oauth2.AuthStyleInHeader}
	secrets := map[string]string{ // what → value
		"alice's password": "alice-password-value",
		"web's secret":     "web-secret-value",
		"svc's secret":     "svc-secret-value",
		"cli's secret":     "cli-secret-value",
	}
	var accessTokens []string
	keep := func(what string, tok *oauth2.Token) {
		secrets[what+" access token"] = tok.AccessToken
		accessTokens = append(accessTokens, tok.AccessToken)
		if tok.RefreshToken != "" {
			secrets[what+" refresh token"] = tok.RefreshToken
		}
		if idt, _ := tok.Extra("id_token").(string); idt != "" {
			secrets[what+" ID token"] = idt
		}
	}

	// A wrong password on the sign-in page, then the flows.
	secrets["a wrong password on the page"] = "wrong-page-password"
	if body := newPageClient(t, issuer).signInWrong(url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "state": {"s0"}}, "wrong-page-password"); !strings.Contains(body, "password") {
		t.Fatalf("a wrong password on the sign-in page got %.300s", body)
	}

	// Authorization code (confidential) and refresh.
	web := &oauth2.Config{ClientID: "web", ClientSecret: "web-secret-value", Endpoint: endpoint,
		RedirectURL: "https://app.test/cb", Scopes: []string{"openid", "read", "offline_access"}}
	pc := newPageClient(t, issuer)
	loc, _ := url.Parse(pc.authorize(url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"openid read offline_access"}, "state": {"s1"}, "nonce": {"n1"}}))
	code := loc.Query().Get("code")
	secrets["web's code"] = code
	tok, err := web.Exchange(ctx, code)
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	keep("web", tok)
	refreshed, err := web.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	keep("web refreshed", refreshed)
	if _, err := web.Exchange(ctx, code); err == nil { // a replay: refused, revokes, is logged
		t.Fatal("a replayed code was accepted")
	}

	// Authorization code with PKCE (public client).
	verifier := oauth2.GenerateVerifier()
	secrets["spa's PKCE verifier"] = verifier
	spa := &oauth2.Config{ClientID: "spa", Endpoint: endpoint, RedirectURL: "http://127.0.0.1:5000/cb", Scopes: []string{"openid", "read"}}
	loc, _ = url.Parse(pc.authorize(url.Values{"client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:5000/cb"},
		"response_type": {"code"}, "scope": {"openid read"}, "state": {"s2"}, "nonce": {"n2"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}))
	secrets["spa's code"] = loc.Query().Get("code")
	tok, err = spa.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("PKCE exchange: %v", err)
	}
	keep("spa", tok)

	// Implicit: the tokens come back in the fragment of a redirect.
	loc, _ = url.Parse(pc.authorize(url.Values{"client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"},
		"response_type": {"id_token token"}, "scope": {"openid read"}, "state": {"s3"}, "nonce": {"n3"}}))
	frag, _ := url.ParseQuery(loc.Fragment)
	if frag.Get("access_token") == "" || frag.Get("id_token") == "" {
		t.Fatalf("implicit response %s", loc)
	}
	secrets["implicit access token"], secrets["implicit ID token"] = frag.Get("access_token"), frag.Get("id_token")
	accessTokens = append(accessTokens, frag.Get("access_token"))

	// Client credentials, introspection and revocation.
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: "svc-secret-value", TokenURL: endpoint.TokenURL, Scopes: []string{"read"}}
	tok, err = cc.Token(ctx)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	keep("svc", tok)
	// It introspects web's token and revokes its own (RFC 7009: a client revokes only its own).
	for path, token := range map[string]string{"/oauth2/introspect": refreshed.AccessToken, "/oauth2/revoke": tok.AccessToken} {
		req, _ := http.NewRequest("POST", issuer+path, strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret-value")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// Password grant, a wrong password too.
	cli := &oauth2.Config{ClientID: "cli", ClientSecret: "cli-secret-value", Endpoint: endpoint, Scopes: []string{"read", "offline_access"}}
	tok, err = cli.PasswordCredentialsToken(ctx, "alice", "alice-password-value")
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	keep("cli", tok)
	secrets["a wrong password"] = "wrong-password-guess"
	_, _ = cli.PasswordCredentialsToken(ctx, "alice", "wrong-password-guess")

	// Device authorization: the device polls, the person opens verification_uri_complete.
	tv := &oauth2.Config{ClientID: "tv", Endpoint: endpoint, Scopes: []string{"read", "offline_access"}}
	da, err := tv.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	secrets["device code"], secrets["user code"] = da.DeviceCode, da.UserCode
	secrets["user code without its dash"] = strings.ReplaceAll(da.UserCode, "-", "")
	done := make(chan *oauth2.Token, 1)
	go func() {
		tok, err := tv.DeviceAccessToken(ctx, da)
		if err != nil {
			t.Errorf("device token: %v", err)
		}
		done <- tok
	}()
	dc := newPageClient(t, issuer)
	_, page := dc.do("GET", da.VerificationURIComplete, nil)
	f := pagetest.HiddenFields(page)
	f.Set("user_code", da.UserCode)
	if resp, body := dc.follow(dc.do("POST", "/oauth2/device", f)); !strings.Contains(body, "You may return to your device") {
		t.Fatalf("device verification ended at %d: %.300s", resp.StatusCode, body)
	}
	select {
	case tok := <-done:
		if tok != nil {
			keep("tv", tok)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the device never got its token")
	}

	// The edge, with every access token (revoked ones included), in the header and in the query.
	for _, at := range accessTokens {
		req, _ := http.NewRequest("GET", api+"/v1/x", nil)
		req.Header.Set("Authorization", "Bearer "+at)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		if resp, err := http.Get(api + "/v1/x?access_token=" + url.QueryEscape(at)); err == nil {
			resp.Body.Close()
		}
	}

	// Every grant counted in Caddy's metrics, and nothing secret in them.
	resp, metrics := call(t, "GET", "http://127.0.0.1:"+ports[2]+"/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /metrics: %d", resp.StatusCode)
	}
	checkIssuerMetrics(t, string(metrics))

	// Stop Caddy so every log line is written, then search.
	stop()
	logs := map[string]string{"metrics": string(metrics)}
	for _, name := range []string{"caddy.log", "issuer-access.log", "api-access.log", "audit.log"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(raw) == 0 {
			t.Fatalf("log %s: %v (%d bytes); the test must see logs to prove anything", name, err, len(raw))
		}
		logs[name] = string(raw)
	}
	if !strings.Contains(logs["issuer-access.log"], `"uri":"/oauth2/authorize`) ||
		!strings.Contains(logs["issuer-access.log"], "REDACTED") {
		t.Fatal("the issuer's access log does not show the authorization requests and redirects")
	}
	for what, secret := range secrets {
		if secret == "" {
			t.Errorf("%s: never got one", what)
			continue
		}
		for name, text := range logs {
			for _, form := range []string{secret, url.QueryEscape(secret)} {
				if i := strings.Index(text, form); i >= 0 {
					t.Errorf("%s is in %s: …%s…", what, name, text[max(0, i-120):min(len(text), i+40)])
				}
			}
		}
	}
	checkAuditTrail(t, logs["audit.log"])
	lines := 0
	for _, text := range logs {
		lines += strings.Count(text, "\n")
	}
	t.Logf("searched %d log lines for %d secrets", lines, len(secrets))
}

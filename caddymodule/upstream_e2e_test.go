package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	_ "github.com/tollgate-auth/tollgate/caddymodule"
	"github.com/tollgate-auth/tollgate/internal/browsertest"
	"github.com/tollgate-auth/tollgate/internal/pagetest"
)

// TestEndToEndUpstreamSignIn: one Tollgate (a separate Caddy process) is the upstream OpenID
// provider of another (in this process). Chromium presses the downstream sign-in page's
// [data-upstream=corp] button, signs in and consents at the upstream, comes back, consents at
// the downstream, and the relying party (x/oauth2 with PKCE, go-oidc) gets tokens whose claims
// came from the upstream: in the ID token, from userinfo, and in the access token, which
// oauth_protect passes to an API with {http.auth.user.email}. Replaying
// the upstream's callback URL afterwards is refused, and so are an upstream ID token tampered
// with on its way and a genuine one of an earlier sign-in (wrong nonce), put in the token
// response by a proxy in front of the upstream.
func TestEndToEndUpstreamSignIn(t *testing.T) {
	bin := caddyBin(t)
	ctx := browsertest.New(t)
	dir := t.TempDir()
	ports := freePorts(t, 3)
	// The upstream on another loopback address: another site for the browser, so the two
	// issuers' cookies stay apart (cookies ignore the port), as they would in production.
	// The browser and the downstream reach the upstream through tamper, a proxy at its issuer
	// URL that can change the ID token in the upstream's token responses.
	upSite, downURL := "http://127.0.0.2:"+ports[0], "http://127.0.0.1:"+ports[1]
	tamper := newTamperProxy(t, upSite)
	apiURL := "http://127.0.0.1:" + ports[2]
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Header.Get("X-User"), r.Header.Get("X-Email"))
	}))
	t.Cleanup(backend.Close)
	upURL := tamper.url
	hash, _ := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	upConfig := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(upConfig, fmt.Appendf(nil, `{
	admin off
	persist_config off
	auto_https off
}

%[5]s {
	bind 127.0.0.2
	oauth_issuer {
		issuer %[1]s
		storage bolt %[2]s
		user alice %[3]s {
			claim email alice@corp.example
			claim email_verified true
			claim name "Alice Liddell"
		}
		client tollgate-down {
			name "Downstream Tollgate"
			secret {env.TOLLGATE_E2E_DOWN_SECRET}
			redirect_uri %[4]s/oauth2/upstream/corp/callback
			grants authorization_code
			scopes openid email profile
		}
	}
}
`, upURL, quoteCaddyfile(filepath.Join(dir, "up.db")), hash, downURL, upSite), 0o600); err != nil {
		t.Fatal(err)
	}
	exited := startBinary(t, bin, dir, upConfig, "TOLLGATE_E2E_DOWN_SECRET=down-secret-0123456789abcdef0123456789")
	waitForMetadata(t, upURL, exited)

	t.Setenv("TOLLGATE_E2E_CORP_SECRET", "down-secret-0123456789abcdef0123456789")
	loadInProcess(t, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		level ERROR
	}
}

%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[1]s
		storage bolt %[2]s
		upstream corp {
			issuer %[3]s
			client_id tollgate-down
			client_secret {env.TOLLGATE_E2E_CORP_SECRET}
			scopes openid email profile
			name "Corp SSO"
			claim email email
			claim email_verified email_verified
			claim name name
			allow_domain corp.example
		}
		client webapp {
			secret webapp-secret
			redirect_uri http://127.0.0.1/callback
			loopback_any_port
			grants authorization_code
			scopes openid email profile read
			audience https://api.test
		}
	}
}

%[4]s {
	bind 127.0.0.1
	oauth_protect {
		issuer %[1]s
		audience https://api.test
		scope read
	}
	reverse_proxy %[5]s {
		header_up X-User {http.auth.user.id}
		header_up X-Email {http.auth.user.email}
	}
}
`, downURL, quoteCaddyfile(filepath.Join(dir, "down.db")), upURL, apiURL, strings.TrimPrefix(backend.URL, "http://")))
	waitForMetadata(t, downURL, nil)

	provider, err := oidc.NewProvider(context.Background(), downURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httptest.NewServer(nil)
	t.Cleanup(rp.Close)
	cfg := &oauth2.Config{ClientID: "webapp", ClientSecret: "webapp-secret", Endpoint: provider.Endpoint(),
		RedirectURL: rp.URL + "/callback", Scopes: []string{"openid", "email", "profile", "read"}}
	verifier := oauth2.GenerateVerifier()
	rp.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/start":
			http.Redirect(w, r, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1")), http.StatusFound)
			return
		case "/again": // the person is signed in at the downstream: ask for a new sign-in
			http.Redirect(w, r, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"),
				oauth2.SetAuthURLParam("prompt", "login")), http.StatusFound)
			return
		}
		fmt.Fprintf(w, `<p id="result">%s</p>`, html.EscapeString(relyingParty(r, cfg, provider, verifier, apiURL)))
	})

	var mu sync.Mutex
	var callbacks []string
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.HasPrefix(e.Request.URL, downURL+"/oauth2/upstream/corp/callback") {
			mu.Lock()
			callbacks = append(callbacks, e.Request.URL)
			mu.Unlock()
		}
	})
	allow := `button[name=decision][value=allow]`
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	do(chromedp.Navigate(rp.URL + "/start"))
	waitAt(t, ctx, downURL, `[data-upstream=corp]`)
	do(chromedp.Click(chromedp.CSS(`[data-upstream=corp]`)))
	waitAt(t, ctx, upURL, `input[name=username]`)
	do(browsertest.SignIn("alice", "wonderland")...)
	waitAt(t, ctx, upURL, allow)
	do(browsertest.Decide("allow")...)
	waitAt(t, ctx, downURL, allow)
	do(browsertest.Decide("allow")...)
	if got := browsertest.Text(t, ctx, "#result"); got != "ok" {
		t.Fatalf("relying party says %q", got)
	}

	// The upstream's answer, replayed (its state is used), signs nobody in: neither in the
	// browser that used it nor anywhere else.
	mu.Lock()
	replay := append([]string(nil), callbacks...)
	mu.Unlock()
	if len(replay) != 1 {
		t.Fatalf("%d callbacks seen", len(replay))
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(replay[0])); err != nil {
		t.Fatal(err)
	}
	if got := browsertest.Text(t, ctx, "main"); !strings.Contains(got, "expired, was already used") {
		t.Fatalf("replayed callback in the browser: %q", got)
	}
	resp, err := http.Get(replay[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), " "), "tollgate_session") {
		t.Fatalf("replayed callback: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}

	// The upstream's ID token tampered with on its way (sub changed, signature kept), then a
	// genuine ID token of the first sign-in (another nonce) in place of the new one: each is
	// refused, and the person stays on the downstream's sign-in page with the reason.
	for _, mode := range []string{"tamper", "old"} {
		tamper.setMode(mode)
		do(chromedp.Navigate(rp.URL + "/again"))
		waitAt(t, ctx, downURL, `[data-upstream=corp]`)
		do(chromedp.Click(chromedp.CSS(`[data-upstream=corp]`)))
		// prompt=login goes on to the upstream, which asks for the password again (it
		// remembers her consent).
		waitAt(t, ctx, upURL, `input[name=username]`)
		do(browsertest.SignIn("alice", "wonderland")...)
		waitAt(t, ctx, downURL, `#error`)
		if got := browsertest.Text(t, ctx, "#error"); got != "Signing in with Corp SSO did not work. Try again, or sign in another way." {
			t.Fatalf("%s: %q", mode, got)
		}
		if tamper.swapped() == 0 {
			t.Fatalf("%s: the proxy changed no ID token", mode)
		}
	}
}

// tamperProxy forwards to the upstream Tollgate and, by mode, changes the ID token of its
// token responses: "" records the first one, "tamper" changes its payload, "old" answers
// with the recorded one.
type tamperProxy struct {
	url   string
	mu    sync.Mutex
	mode  string
	first string
	n     int // ID tokens changed in the current mode
}

func newTamperProxy(t *testing.T, target string) *tamperProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{url: "http://" + ln.Addr().String()}
	to, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(to)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/oauth2/token" || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var tok map[string]any
		if err := json.Unmarshal(body, &tok); err == nil {
			if raw, ok := tok["id_token"].(string); ok {
				tok["id_token"] = p.change(raw)
				body, _ = json.Marshal(tok)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rp}}
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

func (p *tamperProxy) setMode(m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.n = m, 0
}

func (p *tamperProxy) swapped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *tamperProxy) change(raw string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "":
		if p.first == "" {
			p.first = raw
		}
		return raw
	case "tamper":
		parts := strings.Split(raw, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c map[string]any
		_ = json.Unmarshal(payload, &c)
		c["sub"] = "admin"
		payload, _ = json.Marshal(c)
		p.n++
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	default: // "old"
		p.n++
		return p.first
	}
}

// relyingParty finishes the code flow as the client: it exchanges the code with PKCE,
// verifies the ID token with go-oidc and checks that the claims came from the upstream, in
// the ID token, from userinfo and in the access token. It returns "ok" or what is wrong.
func relyingParty(r *http.Request, cfg *oauth2.Config, provider *oidc.Provider, verifier, apiURL string) string {
	q := r.URL.Query()
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		return "bad callback " + r.URL.RawQuery
	}
	tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "exchange: " + err.Error()
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "webapp"}).Verify(r.Context(), raw)
	if err != nil || idt.Nonce != "n-1" {
		return fmt.Sprintf("id token: %v", err)
	}
	want := func(where string, c map[string]any) string {
		if sub, _ := c["sub"].(string); !strings.HasPrefix(sub, "upstream:corp:") || sub != idt.Subject {
			return fmt.Sprintf("%s: sub %v", where, c["sub"])
		}
		if c["email"] != "alice@corp.example" || c["name"] != "Alice Liddell" {
			return fmt.Sprintf("%s: claims %v", where, c)
		}
		return ""
	}
	var idc map[string]any
	_ = idt.Claims(&idc)
	if bad := want("id token", idc); bad != "" {
		return bad
	}
	if idc["email_verified"] != true {
		return fmt.Sprintf("id token: email_verified %v", idc["email_verified"])
	}
	info, err := provider.UserInfo(r.Context(), oauth2.StaticTokenSource(tok))
	if err != nil {
		return "userinfo: " + err.Error()
	}
	var uic map[string]any
	_ = info.Claims(&uic)
	if bad := want("userinfo", uic); bad != "" {
		return bad
	}
	parts := strings.Split(tok.AccessToken, ".")
	var atc map[string]any
	if len(parts) != 3 {
		return "access token is not a JWT"
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &atc); err != nil {
		return "access token: " + err.Error()
	}
	if bad := want("access token", atc); bad != "" {
		return bad
	}
	// The edge sees the upstream's claims in the access token, as a local user's.
	resp, err := cfg.Client(r.Context(), tok).Get(apiURL + "/v1/me")
	if err != nil {
		return "api: " + err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); resp.StatusCode != 200 || got != idt.Subject+" alice@corp.example" {
		return fmt.Sprintf("api: %d %q", resp.StatusCode, got)
	}
	return "ok"
}

// loadInProcess adapts a Caddyfile and runs it in this process until the test ends (as the
// package's startCaddy does; this file is in the external test package, with the binary
// helpers).
func loadInProcess(t *testing.T, caddyfile string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// waitAt waits until the browser shows a page of origin with an element sel, through
// navigations (a poll inside the page ends with it).
func waitAt(t *testing.T, ctx context.Context, origin, sel string) {
	t.Helper()
	expr := fmt.Sprintf(`location.origin === %q && document.querySelector(%q) !== null`, origin, sel)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	page, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	t.Fatalf("no %s at %s; the browser is at %s:\n%s", sel, origin, loc, page)
}

// upstreamLogFilter is the README's access-log filter for the upstream callback's query.
const upstreamLogFilter = `request>uri regexp "^(.*/oauth2/upstream/[^/?]+/callback)[?].*$" "$1?REDACTED"`

// TestUpstreamSecretsNotInAccessLog: an upstream sign-in (one Tollgate the provider of another,
// both in this process) through the start, the provider and the callback leaves none of the
// provider's code, the state or the nonce in the downstream's access log, with the README's log
// filter: the start's Location is redacted by the handler, the callback's URI by the filter.
func TestUpstreamSecretsNotInAccessLog(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	upURL, downURL := "http://127.0.0.2:"+ports[0], "http://127.0.0.1:"+ports[1]
	hash, _ := bcrypt.GenerateFromPassword([]byte("alice-password-value"), bcrypt.MinCost)
	accessLog := filepath.Join(dir, "down-access.log")
	loadInProcess(t, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		level ERROR
	}
}

%[1]s {
	bind 127.0.0.2
	oauth_issuer {
		issuer %[1]s
		storage bolt %[3]s
		user alice %[4]s {
			claim email alice@corp.example
			claim email_verified true
		}
		client tollgate-down {
			secret down-secret-0123456789abcdef0123456789
			redirect_uri %[2]s/oauth2/upstream/corp/callback
			grants authorization_code
			scopes openid email profile
		}
	}
}

%[2]s {
	bind 127.0.0.1
	log {
		output file %[6]s
		format filter {
			%[7]s
		}
	}
	oauth_issuer {
		issuer %[2]s
		storage bolt %[5]s
		upstream corp {
			issuer %[1]s
			client_id tollgate-down
			client_secret down-secret-0123456789abcdef0123456789
			name "Corp SSO"
		}
		client webapp {
			secret webapp-secret
			redirect_uri http://127.0.0.1/callback
			grants authorization_code
			scopes openid email profile
		}
	}
}
`, upURL, downURL, quoteCaddyfile(filepath.Join(dir, "up.db")), hash, quoteCaddyfile(filepath.Join(dir, "down.db")),
		quoteCaddyfile(accessLog), upstreamLogFilter))
	waitForMetadata(t, upURL, nil)
	waitForMetadata(t, downURL, nil)

	jar, _ := cookiejar.New(nil)
	down, up := newPageClientJar(t, downURL, jar), newPageClientJar(t, upURL, jar)
	resp, _ := down.do("GET", "/oauth2/authorize?"+url.Values{"client_id": {"webapp"}, "redirect_uri": {"http://127.0.0.1/callback"},
		"response_type": {"code"}, "scope": {"openid email"}, "state": {"client-state"}}.Encode(), nil)
	loginPage := resp.Header.Get("Location")
	if !strings.HasPrefix(loginPage, "/oauth2/login?") {
		t.Fatalf("authorize: %d %q", resp.StatusCode, loginPage)
	}
	// The downstream's discovery of the upstream may have failed while it was starting: it is
	// tried again after a few seconds.
	var start *url.URL
	for deadline := time.Now().Add(15 * time.Second); ; {
		_, page := down.do("GET", loginPage, nil)
		resp, _ = down.do("POST", "/oauth2/upstream/corp/start", pagetest.HiddenFields(page))
		if resp.StatusCode == http.StatusSeeOther {
			start, _ = url.Parse(resp.Header.Get("Location"))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start: %d", resp.StatusCode)
		}
		time.Sleep(500 * time.Millisecond)
	}
	secrets := map[string]string{"state": start.Query().Get("state"), "nonce": start.Query().Get("nonce")}
	resp, body := up.follow(up.do("GET", start.String(), nil))
	callback, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(callback.String(), downURL+"/oauth2/upstream/corp/callback?") {
		t.Fatalf("the upstream answered %d %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	secrets["upstream code"] = callback.Query().Get("code")
	resp, body = down.follow(down.do("GET", callback.String(), nil))
	back, _ := url.Parse(resp.Header.Get("Location"))
	if back == nil || back.Host != "127.0.0.1" || back.Query().Get("code") == "" {
		t.Fatalf("no code for the client: %d %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	secrets["client code"] = back.Query().Get("code")
	for what, v := range secrets {
		if len(v) < 16 {
			t.Fatalf("%s %q: too short to search for", what, v)
		}
	}

	if err := caddy.Stop(); err != nil { // every access-log line written
		t.Fatal(err)
	}
	raw, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	logged := string(raw)
	for _, want := range []string{`"uri":"/oauth2/upstream/corp/callback?REDACTED"`, `state=REDACTED`, `nonce=REDACTED`} {
		if !strings.Contains(logged, want) {
			t.Errorf("the access log has no %s:\n%s", want, logged)
		}
	}
	for what, v := range secrets {
		if strings.Contains(logged, v) {
			t.Errorf("the access log holds the %s", what)
		}
	}
}

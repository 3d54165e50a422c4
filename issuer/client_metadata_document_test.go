package issuer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// docHost is an https server on 127.0.0.1 that serves client ID metadata documents, counting
// the requests and connections it sees.
type docHost struct {
	srv    *httptest.Server
	caFile string // its certificate, as a PEM file for RootCAFile
	conns  atomic.Int64
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	hits   map[string]int
}

func newDocHost(t testing.TB) *docHost {
	t.Helper()
	h := &docHost{routes: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits[r.URL.Path]++
		fn := h.routes[r.URL.Path]
		h.mu.Unlock()
		if fn == nil {
			http.NotFound(w, r)
			return
		}
		fn(w, r)
	}))
	h.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.conns.Add(1)
		}
	}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// url is the https URL of path on h.
func (h *docHost) url(path string) string { return h.srv.URL + path }

// handle serves path with fn.
func (h *docHost) handle(path string, fn http.HandlerFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes[path] = fn
}

// serveJSON serves doc at path as application/json, with header lines "Name: value".
func (h *docHost) serveJSON(path string, doc any, headers ...string) {
	body, _ := json.Marshal(doc)
	h.handle(path, func(w http.ResponseWriter, r *http.Request) {
		for _, hv := range headers {
			k, v, _ := strings.Cut(hv, ": ")
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(body)
	})
}

// count is how many requests for path h saw.
func (h *docHost) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits[path]
}

// total is how many requests h saw in all.
func (h *docHost) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.hits {
		n += c
	}
	return n
}

// cliDocument is the document of a command-line tool at url: a public client with a loopback
// redirect URI.
func cliDocument(url string) map[string]any {
	return map[string]any{
		"client_id":     url,
		"client_name":   "Acme CLI",
		"redirect_uris": []string{"http://127.0.0.1/callback"},
		"grant_types":   []string{"authorization_code", "refresh_token"},
	}
}

// documentConfig is a MetadataDocuments for h, with defaults, that may fetch from loopback.
func documentConfig(h *docHost) MetadataDocuments {
	return MetadataDocuments{Scopes: []string{"openid", "read"}, Audience: []string{"https://api.test"},
		AllowPrivateAddresses: true, RootCAFile: h.caFile, MaxSize: 5120, Timeout: Duration(2 * time.Second),
		CacheMin: Duration(time.Minute), CacheMax: Duration(24 * time.Hour)}
}

// newDocuments is the fetcher of cfg, failing the test when it cannot be made.
func newDocuments(t testing.TB, cfg MetadataDocuments) *documentClients {
	t.Helper()
	d, err := newDocumentClients(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// documentFlowServer is a flow server that knows metadata document clients from h.
func documentFlowServer(t *testing.T, h *docHost, mutate ...func(*MetadataDocuments)) *flowServer {
	cfg := documentConfig(h)
	for _, m := range mutate {
		m(&cfg)
	}
	return newFlowServer(t, func(c *Config) { c.MetadataDocuments = &cfg })
}

// authorizeSeeingConsent is flowServer.authorize that also returns the consent page shown.
func (f *flowServer) authorizeSeeingConsent(b *browser, params url.Values, decision string) (*http.Response, string) {
	b.t.Helper()
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	consent := ""
	for i := 0; i < 10; i++ {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
			return resp, consent
		}
		switch {
		case strings.HasPrefix(loc, PathLogin):
			_, page := b.get(f.url + loc)
			form := hiddenFields(page)
			form.Set("username", "alice")
			form.Set("password", alicePassword)
			resp, _ = b.post(f.url+PathLogin, form)
		case strings.HasPrefix(loc, PathConsent):
			_, consent = b.get(f.url + loc)
			form := hiddenFields(consent)
			form.Set("decision", decision)
			resp, _ = b.post(f.url+PathConsent, form)
		default:
			resp, _ = b.get(f.url + loc)
		}
	}
	b.t.Fatal("too many redirects")
	return nil, ""
}

// postToken posts form to f's token endpoint and returns the status and JSON body.
func (f *flowServer) postToken(t *testing.T, form url.Values, mutate ...func(*http.Request)) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.url+PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mutate {
		m(req)
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

// TestDocumentClientCodeFlow runs the authorization code flow with PKCE for a public client
// known by its metadata document: the consent page names its host and warns that it runs on
// the user's computer; the tokens are the configured audience's, with a refresh token.
func TestDocumentClientCodeFlow(t *testing.T) {
	h := newDocHost(t)
	id := h.url("/clients/acme-cli.json")
	h.serveJSON("/clients/acme-cli.json", cliDocument(id))
	f := documentFlowServer(t, h)
	verifier := oauth2.GenerateVerifier()
	params := url.Values{"client_id": {id}, "redirect_uri": {"http://127.0.0.1:50123/callback"}, "response_type": {"code"},
		"scope": {"openid read offline_access"}, "state": {"st"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	resp, consent := f.authorizeSeeingConsent(newBrowser(t), params, "allow")
	host := strings.TrimPrefix(h.srv.URL, "https://")
	for _, want := range []string{"Acme CLI", "data-client-host>" + host + "<", "data-loopback-warning",
		"runs on your own computer", `name="decision" value="allow"`, `name="decision" value="deny"`} {
		if !strings.Contains(consent, want) {
			t.Errorf("consent page lacks %q:\n%s", want, consent)
		}
	}
	got := callback(t, resp, "http://127.0.0.1:50123/callback")
	if got.Get("code") == "" || got.Get("state") != "st" {
		t.Fatalf("authorization response %v", got)
	}
	status, body := f.postToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"redirect_uri": {"http://127.0.0.1:50123/callback"}, "client_id": {id}, "code_verifier": {verifier}})
	if status != http.StatusOK || body["access_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("token response %d %v", status, body)
	}
	claims := decodeJWTClaims(t, body["access_token"].(string))
	if claims["client_id"] != id || claims["aud"] != "https://api.test" && !containsAny(claims["aud"], "https://api.test") {
		t.Fatalf("access token claims %v", claims)
	}
	// A refresh needs no credentials but the client_id: the client is public.
	status, body = f.postToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)},
		"client_id": {id}})
	if status != http.StatusOK {
		t.Fatalf("refresh %d %v", status, body)
	}
	if n := h.count("/clients/acme-cli.json"); n != 1 {
		t.Errorf("the document was fetched %d times, want 1 (cached)", n)
	}
}

// decodeJWTClaims reads a JWT's claims without verifying it.
func decodeJWTClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	var claims map[string]any
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &claims) != nil {
		t.Fatalf("JWT claims: %v", err)
	}
	return claims
}

func containsAny(v any, want string) bool {
	list, _ := v.([]any)
	for _, x := range list {
		if x == want {
			return true
		}
	}
	return false
}

// TestDocumentClientAuthorizeChecks: a redirect_uri the document does not list is refused on
// a page; PKCE is required of a public document client; an unknown (refused) document is an
// unknown client.
func TestDocumentClientAuthorizeChecks(t *testing.T) {
	h := newDocHost(t)
	id := h.url("/cli.json")
	h.serveJSON("/cli.json", cliDocument(id))
	bad := h.url("/bad.json")
	h.serveJSON("/bad.json", cliDocument(h.url("/other.json")))
	f := documentFlowServer(t, h)
	b := newBrowser(t)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := url.Values{"client_id": {id}, "redirect_uri": {"http://127.0.0.1/callback"}, "response_type": {"code"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}

	resp, body := b.get(f.url + PathAuthorize + "?" + cloneWith(base, "redirect_uri", "https://evil.test/cb").Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "redirect_uri is not registered") {
		t.Errorf("unlisted redirect_uri: %d %s", resp.StatusCode, body)
	}
	noPKCE := cloneWith(base)
	noPKCE.Del("code_challenge")
	noPKCE.Del("code_challenge_method")
	resp, _ = b.get(f.url + PathAuthorize + "?" + noPKCE.Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "http://127.0.0.1/callback?") ||
		!strings.Contains(loc, "error=invalid_request") {
		t.Errorf("no PKCE: %d %q", resp.StatusCode, loc)
	}
	resp, body = b.get(f.url + PathAuthorize + "?" + cloneWith(base, "client_id", bad).Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unknown client_id") {
		t.Errorf("refused document: %d %s", resp.StatusCode, body)
	}
}

// TestDocumentRefused: documents and URLs the draft or the issuer's limits refuse make an
// unknown client; a refused URL is never fetched.
func TestDocumentRefused(t *testing.T) {
	h := newDocHost(t)
	cfg := documentConfig(h)
	cfg.Timeout = Duration(300 * time.Millisecond)
	core, logs := observer.New(zap.DebugLevel)
	d, err := newDocumentClients(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	with := func(kv ...any) func(string) map[string]any {
		return func(u string) map[string]any {
			doc := cliDocument(u)
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(doc, kv[i].(string))
				} else {
					doc[kv[i].(string)] = kv[i+1]
				}
			}
			return doc
		}
	}
	docs := []struct {
		name string
		doc  func(url string) map[string]any // nil: handler below
		fn   http.HandlerFunc
		why  string // in the logged reason
	}{
		{"client_id is not the URL", func(u string) map[string]any { return cliDocument(u + "x") }, nil, "client_id is not its URL"},
		{"client_id differs in case", func(u string) map[string]any { return cliDocument(strings.ToUpper(u[:8]) + u[8:]) }, nil, "client_id is not its URL"},
		{"no client_id", with("client_id", nil), nil, "client_id is not its URL"},
		{"no redirect_uris", with("redirect_uris", nil), nil, "no redirect_uris"},
		{"empty redirect_uris", with("redirect_uris", []string{}), nil, "no redirect_uris"},
		{"javascript redirect_uri", with("redirect_uris", []string{"javascript:alert(1)"}), nil, "javascript scheme"},
		{"plain http redirect_uri", with("redirect_uris", []string{"http://app.example/cb"}), nil, "plain http"},
		{"client_secret", with("client_secret", "s3cret"), nil, "has client_secret"},
		{"client_secret_expires_at", with("client_secret_expires_at", 0), nil, "has client_secret_expires_at"},
		{"client_secret_basic", with("token_endpoint_auth_method", "client_secret_basic"), nil, "token_endpoint_auth_method"},
		{"client_secret_jwt", with("token_endpoint_auth_method", "client_secret_jwt"), nil, "token_endpoint_auth_method"},
		{"private_key_jwt without keys", with("token_endpoint_auth_method", "private_key_jwt"), nil, "without jwks"},
		{"private_key_jwt with a symmetric key", with("token_endpoint_auth_method", "private_key_jwt",
			"jwks", map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}}}), nil, "symmetric"},
		{"implicit grant", with("grant_types", []string{"implicit"}), nil, "grant_type \"implicit\""},
		{"client_credentials grant", with("grant_types", []string{"authorization_code", "client_credentials"}), nil, "grant_type \"client_credentials\""},
		{"token response type", with("response_types", []string{"token"}), nil, "response_type"},
		{"control character in client_name", with("client_name", "Acme\u202eILC"), nil, "control character"},
		{"client_name too long", with("client_name", strings.Repeat("A", 101)), nil, "longer than"},
		{"client_uri not https", with("client_uri", "http://acme.example/"), nil, "client_uri"},
		{"redirect_uris not a list", with("redirect_uris", "http://127.0.0.1/cb"), nil, "right types"},
		{"too big", with("client_name", "Acme", "padding", strings.Repeat("x", 6000)), nil, "max_size"},
		{"too big, no Content-Length", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"client_id":"x","padding":"`))
			w.(http.Flusher).Flush()
			for i := 0; i < 10; i++ {
				w.Write([]byte(strings.Repeat("x", 1000)))
				w.(http.Flusher).Flush()
			}
			w.Write([]byte(`"}`))
		}, "max_size"},
		{"slower than the timeout", nil, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "fetching"},
		{"redirect", nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/good.json", http.StatusFound)
		}, "status 302"},
		{"not found", nil, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "status 404"},
		{"text/html", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			json.NewEncoder(w).Encode(cliDocument("https://" + r.Host + r.URL.Path))
		}, "Content-Type"},
		{"no content type", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			json.NewEncoder(w).Encode(cliDocument("https://" + r.Host + r.URL.Path))
		}, "Content-Type"},
		{"not JSON", nil, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("<html>"))
		}, "not a JSON object"},
	}
	h.serveJSON("/good.json", cliDocument(h.url("/good.json")))
	if c, err := d.client(context.Background(), h.url("/good.json"), ""); c == nil || err != nil {
		t.Fatalf("the good document is refused: %v", err)
	}
	for i, tc := range docs {
		t.Run(tc.name, func(t *testing.T) {
			path := "/doc" + itoa(i) + ".json"
			if tc.fn != nil {
				h.handle(path, tc.fn)
			} else {
				h.serveJSON(path, tc.doc(h.url(path)))
			}
			start := time.Now()
			c, err := d.client(context.Background(), h.url(path), "")
			if c != nil || err != nil {
				t.Fatalf("got %v, %v; want an unknown client", c, err)
			}
			if h.count(path) != 1 {
				t.Fatalf("fetched %d times", h.count(path))
			}
			entries := logs.TakeAll()
			if len(entries) != 1 || !strings.Contains(entries[0].ContextMap()["error"].(string), tc.why) {
				t.Fatalf("logged %v, want a reason with %q", entries, tc.why)
			}
			if strings.Contains(entries[0].Message+entries[0].ContextMap()["error"].(string), "Acme") {
				t.Errorf("the log quotes the document: %v", entries[0])
			}
			// Every case is on one host: forget that the slow case timed out (markFailed).
			d.mu.Lock()
			clear(d.failed)
			d.mu.Unlock()
			if time.Since(start) > 2*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			// Refused once, it is not fetched again within cache_min.
			if c, _ := d.client(context.Background(), h.url(path), ""); c != nil || h.count(path) != 1 {
				t.Fatalf("refetched: %d", h.count(path))
			}
		})
	}

	allowed := documentConfig(h)
	allowed.AllowDomains = []string{"example.com"}
	da := newDocuments(t, allowed)
	before := h.total()
	urls := []struct{ name, url string }{
		{"http", strings.Replace(h.url("/good.json"), "https://", "http://", 1)},
		{"fragment", h.url("/good.json#frag")},
		{"empty fragment", h.url("/good.json#")},
		{"query", h.url("/good.json?x=1")},
		{"empty query", h.url("/good.json?")},
		{"dot segment", h.url("/a/../good.json")},
		{"single dot segment", h.url("/./good.json")},
		{"encoded dot segment", h.url("/a/%2e%2e/good.json")},
		{"user info", strings.Replace(h.url("/good.json"), "https://", "https://user:pw@", 1)},
		{"no path", h.url("")},
		{"root path", h.url("/")},
		{"no host", "https:///good.json"},
		{"too long", h.url("/" + strings.Repeat("a", 3000))},
		{"not canonical", h.url("/good json")},
		{"upper-case scheme", "HTTPS://" + strings.TrimPrefix(h.url("/good.json"), "https://")},
	}
	for _, tc := range urls {
		t.Run("URL with "+tc.name, func(t *testing.T) {
			if c, err := d.client(context.Background(), tc.url, ""); c != nil || err != nil {
				t.Fatalf("got %v, %v", c, err)
			}
		})
	}
	t.Run("host outside allow_domain", func(t *testing.T) {
		if c, err := da.client(context.Background(), h.url("/good.json"), ""); c != nil || err != nil {
			t.Fatalf("got %v, %v", c, err)
		}
	})
	if n := h.total() - before; n != 0 {
		t.Errorf("refused URLs were fetched %d times", n)
	}
	for _, tc := range []struct {
		host string
		ok   bool
	}{{"example.com", true}, {"EXAMPLE.com", true}, {"a.b.example.com", true}, {"example.com.", true},
		{"badexample.com", false}, {"example.com.evil.test", false}, {"example.org", false}} {
		_, err := da.checkURL("https://"+tc.host+"/client.json", true)
		if (err == nil) != tc.ok {
			t.Errorf("allow_domain example.com, host %s: %v", tc.host, err)
		}
	}
}

// TestDocumentSSRF: without allow_private_addresses, documents are never fetched from a
// loopback, private or link-local address, whether the URL names it or a name resolves to
// it; no connection is made.
func TestDocumentSSRF(t *testing.T) {
	h := newDocHost(t)
	port := h.srv.Listener.Addr().(*net.TCPAddr).Port
	for _, p := range []string{"/client.json"} {
		h.serveJSON(p, cliDocument(h.url(p)))
	}
	cfg := documentConfig(h)
	cfg.AllowPrivateAddresses = false
	cfg.Timeout = Duration(time.Second)
	d := newDocuments(t, cfg)
	for _, u := range []string{
		h.url("/client.json"), // 127.0.0.1
		"https://10.0.0.1/client.json",
		"https://192.168.1.1/client.json",
		"https://[::1]:" + itoa(port) + "/client.json",
		"https://[::ffff:127.0.0.1]:" + itoa(port) + "/client.json",
		"https://169.254.169.254/latest/meta-data/client.json",
		"https://[fd00::1]/client.json",
		"https://100.64.0.1/client.json",
		"https://0.0.0.0:" + itoa(port) + "/client.json",
		"https://localhost:" + itoa(port) + "/client.json", // a name that resolves to loopback
	} {
		c, err := d.client(context.Background(), u, "")
		if c != nil || err != nil {
			t.Errorf("%s: got %v, %v", u, c, err)
		}
	}
	if n := h.conns.Load(); n != 0 || h.total() != 0 {
		t.Errorf("the document host saw %d connections, %d requests", n, h.total())
	}
	// The same host is fetched when private addresses are allowed, so the refusal above is
	// the guard's.
	cfg.AllowPrivateAddresses = true
	if c, err := newDocuments(t, cfg).client(context.Background(), h.url("/client.json"), ""); c == nil || err != nil {
		t.Fatalf("allowed: %v, %v", c, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRefusedAddress lists the addresses the fetcher's dialer refuses and some it allows.
func TestRefusedAddress(t *testing.T) {
	refused := []string{"127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1",
		"255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
		"::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2002:a00:1::1", "2001:db8::1"}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"}
	for _, s := range refused {
		if !refusedAddress(netip.MustParseAddr(s)) {
			t.Errorf("%s is not refused", s)
		}
		if err := refusePrivateAddresses("tcp", netip.AddrPortFrom(netip.MustParseAddr(s), 443).String(), nil); err == nil {
			t.Errorf("the dialer connects to %s", s)
		}
	}
	for _, s := range allowed {
		if refusedAddress(netip.MustParseAddr(s)) {
			t.Errorf("%s is refused", s)
		}
	}
}

// TestDocumentCache: Cache-Control max-age is honoured within [cache_min, cache_max]; a
// refused document is remembered for cache_min; no-store means cache_min.
func TestDocumentCache(t *testing.T) {
	h := newDocHost(t)
	cfg := documentConfig(h)
	cfg.CacheMin, cfg.CacheMax = Duration(500*time.Millisecond), Duration(time.Hour)
	d := newDocuments(t, cfg)
	var mu sync.Mutex
	now := time.Now()
	d.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(by time.Duration) { mu.Lock(); now = now.Add(by); mu.Unlock() }
	lookup := func(path string) *client {
		t.Helper()
		c, err := d.client(context.Background(), h.url(path), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	h.serveJSON("/a.json", cliDocument(h.url("/a.json")), "Cache-Control: public, max-age=1")
	h.serveJSON("/b.json", cliDocument(h.url("/b.json")), "Cache-Control: no-store")
	h.serveJSON("/c.json", cliDocument(h.url("/c.json")), "Cache-Control: max-age=86400")
	h.serveJSON("/bad.json", cliDocument(h.url("/other.json")))
	for _, p := range []string{"/a.json", "/b.json", "/c.json", "/bad.json"} {
		lookup(p)
	}
	advance(900 * time.Millisecond)
	if lookup("/a.json") == nil || h.count("/a.json") != 1 {
		t.Errorf("max-age=1: refetched within a second (%d)", h.count("/a.json"))
	}
	if lookup("/b.json") == nil || h.count("/b.json") != 2 {
		t.Errorf("no-store: not refetched after cache_min (%d)", h.count("/b.json"))
	}
	if lookup("/bad.json") != nil || h.count("/bad.json") != 2 {
		t.Errorf("refused: not refetched after cache_min (%d)", h.count("/bad.json"))
	}
	advance(200 * time.Millisecond)
	if lookup("/a.json") == nil || h.count("/a.json") != 2 {
		t.Errorf("max-age=1: not refetched after a second (%d)", h.count("/a.json"))
	}
	advance(59 * time.Minute)
	if lookup("/c.json"); h.count("/c.json") != 1 {
		t.Errorf("max-age=86400: refetched before cache_max (%d)", h.count("/c.json"))
	}
	advance(2 * time.Minute)
	if lookup("/c.json"); h.count("/c.json") != 2 {
		t.Errorf("max-age=86400: not refetched after cache_max of 1h (%d)", h.count("/c.json"))
	}

	hdr := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	date := now.UTC()
	for _, tc := range []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"nothing", hdr(), 500 * time.Millisecond},
		{"max-age", hdr("Cache-Control", "max-age=600"), 10 * time.Minute},
		{"max-age over cache_max", hdr("Cache-Control", "max-age=99999999999"), time.Hour},
		{"no-cache", hdr("Cache-Control", "no-cache, max-age=600"), 500 * time.Millisecond},
		{"Expires", hdr("Date", date.Format(http.TimeFormat), "Expires", date.Add(20*time.Minute).Format(http.TimeFormat)), 20 * time.Minute},
		{"Expires in the past", hdr("Expires", date.Add(-time.Hour).Format(http.TimeFormat)), 500 * time.Millisecond},
		{"max-age wins over Expires", hdr("Cache-Control", "max-age=60", "Expires", date.Add(20*time.Minute).Format(http.TimeFormat)), time.Minute},
	} {
		if got := d.cacheTime(tc.h); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDocumentConcurrentLookupsFetchOnce: lookups of one URL racing each other share one
// fetch; past the bound of fetches in flight a lookup fails (503) instead of waiting.
func TestDocumentConcurrentLookupsFetchOnce(t *testing.T) {
	h := newDocHost(t)
	d := newDocuments(t, documentConfig(h))
	body, _ := json.Marshal(cliDocument(h.url("/shared.json")))
	h.handle("/shared.json", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond) // every lookup joins while this one is in flight
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	start := make(chan struct{})
	var wg sync.WaitGroup
	var found atomic.Int64
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if c, err := d.client(context.Background(), h.url("/shared.json"), ""); c != nil && err == nil {
				found.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if found.Load() != 50 || h.count("/shared.json") != 1 {
		t.Fatalf("%d of 50 lookups found the client; %d fetches", found.Load(), h.count("/shared.json"))
	}

	// The test's documents are all on one host: let it have every slot, to see the global bound.
	d.perHost = maxDocumentFetches
	release := make(chan struct{})
	arrived := make(chan struct{}, maxDocumentFetches)
	slow := func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		http.NotFound(w, r)
	}
	for i := 0; i < maxDocumentFetches; i++ {
		h.handle("/slow/"+itoa(i), slow)
	}
	for i := 0; i < maxDocumentFetches; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.client(context.Background(), h.url("/slow/"+itoa(i)), "")
		}()
	}
	for i := 0; i < maxDocumentFetches; i++ {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatalf("%d of %d fetches arrived", i, maxDocumentFetches)
		}
	}
	_, err := d.client(context.Background(), h.url("/slow/one-more"), "")
	close(release)
	wg.Wait()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("past the bound of fetches in flight: %v, want a 503 error", err)
	}
	if c, err := d.client(context.Background(), h.url("/shared.json"), ""); c == nil || err != nil {
		t.Fatalf("after the fetches ended: %v, %v", c, err)
	}
}

// TestNewWithUnreadableRootCA: New fails when root_ca cannot be read.
func TestNewWithUnreadableRootCA(t *testing.T) {
	for _, file := range []string{filepath.Join(t.TempDir(), "missing.pem"), writeTemp(t, "not a PEM")} {
		cfg := testConfig()
		cfg.MetadataDocuments = &MetadataDocuments{RootCAFile: file}
		st, err := bolt.Open(filepath.Join(t.TempDir(), "issuer.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if s, err := New(context.Background(), cfg, Deps{Store: st}); err == nil {
			s.Close()
			t.Errorf("root_ca %s: New succeeded", file)
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

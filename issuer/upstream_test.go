package issuer

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// fakeProvider is an attacker-controlled OpenID provider: discovery, JWKS and a token
// endpoint that answers with whatever ID token the test crafts.
type fakeProvider struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey // the key its JWKS publishes, kid "k1"

	mu        sync.Mutex
	idToken   func(nonce string) string // the next ID token, given the nonce of the sign-in
	nonces    map[string]string         // code → nonce of the sign-in it was issued for
	verifiers map[string]string         // code → code_challenge it must match
	exchanges int
	tokenDown bool // the token endpoint answers 502
}

func newFakeProvider(t *testing.T) *fakeProvider { return newFakeProviderTLS(t, false) }

// newFakeProviderTLS is newFakeProvider, over TLS with its own CA when tls is set.
func newFakeProviderTLS(t *testing.T, tls bool) *fakeProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProvider{t: t, key: key, nonces: map[string]string{}, verifiers: map[string]string{}}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	if tls {
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(p.srv.Close)
	p.idToken = func(nonce string) string { return p.sign(p.claims(nonce), jwt.SigningMethodRS256, key) }
	return p
}

func (p *fakeProvider) url() string { return p.srv.URL }

// claims are those of a good ID token for the sign-in with nonce.
func (p *fakeProvider) claims(nonce string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": p.url(), "sub": "u-42", "aud": "tollgate", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nonce": nonce, "email": "bob@corp.example", "email_verified": true, "name": "Bob Builder"}
}

func (p *fakeProvider) sign(c jwt.MapClaims, m jwt.SigningMethod, key any) string {
	tok := jwt.NewWithClaims(m, c)
	tok.Header["kid"] = "k1"
	raw, err := tok.SignedString(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return raw
}

func (p *fakeProvider) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(w, 200, map[string]any{"issuer": p.url(), "authorization_endpoint": p.url() + "/authorize",
			"token_endpoint": p.url() + "/token", "jwks_uri": p.url() + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	case "/jwks":
		writeJSON(w, 200, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	case "/token":
		_ = r.ParseForm()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.exchanges++
		if p.tokenDown {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream body <secret>"))
			return
		}
		code := r.PostForm.Get("code")
		nonce, ok := p.nonces[code]
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		id, secret, _ := r.BasicAuth()
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != p.verifiers[code] || id != "tollgate" || secret != "upstream-secret" {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "<script>alert(1)</script>"})
			return
		}
		delete(p.nonces, code)
		writeJSON(w, 200, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": p.idToken(nonce)})
	default:
		http.NotFound(w, r)
	}
}

// authorize is the provider's authorization endpoint, as the browser reaches it: it checks
// the request and returns the code it would send back.
func (p *fakeProvider) authorize(t *testing.T, target string) (code, st string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || !strings.HasPrefix(target, p.url()+"/authorize?") {
		t.Fatalf("start redirected to %q, not the provider", target)
	}
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": "tollgate", "code_challenge_method": "S256", "scope": "openid email profile"} {
		if q.Get(k) != want {
			t.Fatalf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if q.Get("nonce") == "" || q.Get("state") == "" || !strings.HasSuffix(q.Get("redirect_uri"), "/oauth2/upstream/corp/callback") {
		t.Fatalf("authorization request lacks nonce, state or redirect_uri: %v", q)
	}
	code = state.NewID()
	p.mu.Lock()
	p.nonces[code], p.verifiers[code] = q.Get("nonce"), q.Get("code_challenge")
	p.mu.Unlock()
	return code, q.Get("state")
}

// upstreamServer is a flow server with the provider as upstream "corp".
func upstreamServer(t *testing.T, p *fakeProvider, mutate ...func(*Upstream)) *flowServer {
	t.Helper()
	return newFlowServer(t, func(c *Config) {
		u := Upstream{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret", DisplayName: "Corp SSO"}
		for _, m := range mutate {
			m(&u)
		}
		c.Upstreams = []Upstream{u}
	})
}

// webParams is an authorization request of client web (confidential) for openid email profile.
func webParams() url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"scope": {"openid email profile read"}, "state": {"s1"}, "nonce": {"n1"}}
}

// startUpstream takes browser b from an authorization request to the provider: it returns the
// pending request id and the provider's answer (code and state) for the callback.
func startUpstream(t *testing.T, f *flowServer, p *fakeProvider, b *browser) (id, code, st string) {
	t.Helper()
	resp, _ := b.get(f.url + PathAuthorize + "?" + webParams().Encode())
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, PathLogin+"?request=") {
		t.Fatalf("authorize: %d %q", resp.StatusCode, loc)
	}
	code, st = pressUpstream(t, f, p, b, loc)
	return strings.TrimPrefix(loc, PathLogin+"?request="), code, st
}

// pressUpstream shows the sign-in page at loc in b and presses the corp button; it returns
// the provider's answer (code and state) for the callback.
func pressUpstream(t *testing.T, f *flowServer, p *fakeProvider, b *browser, loc string) (code, st string) {
	t.Helper()
	resp, page := b.get(f.url + loc)
	if resp.StatusCode != 200 || !strings.Contains(page, `data-upstream="corp"`) || !strings.Contains(page, "Corp SSO") {
		t.Fatalf("sign-in page without the corp button: %d\n%s", resp.StatusCode, page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !regexp.MustCompile(`form-action 'self'[^;]* ` + regexp.QuoteMeta(p.url()) + `[ ;]`).MatchString(csp) {
		t.Fatalf("sign-in page's CSP does not let the button's answer go to the provider: %q", csp)
	}
	resp, _ = b.post(f.url+"/oauth2/upstream/corp/start", hiddenFields(page))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	return p.authorize(t, resp.Header.Get("Location"))
}

// upstreamCallback sends b back from the provider.
func upstreamCallback(b *browser, f *flowServer, q url.Values) (*http.Response, string) {
	return b.get(f.url + "/oauth2/upstream/corp/callback?" + q.Encode())
}

// signedIn reports whether b has a session at f.
func signedIn(t *testing.T, f *flowServer, b *browser) bool {
	t.Helper()
	sess, _, err := f.currentSession(context.Background(), requestWithCookies(t, f, b))
	if err != nil {
		t.Fatal(err)
	}
	return sess != nil
}

func requestWithCookies(t *testing.T, f *flowServer, b *browser) *http.Request {
	u, _ := url.Parse(f.url)
	r := httptest.NewRequest("GET", f.url+"/", nil)
	for _, c := range b.client.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	return r
}

// finish takes b from a successful callback through consent to the client's redirect, and
// redeems the code as client web.
func finish(t *testing.T, f *flowServer, b *browser, resp *http.Response) tokenResponse {
	t.Helper()
	for i := 0; i < 5 && resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/"); i++ {
		loc := resp.Header.Get("Location")
		var page string
		resp, page = b.get(f.url + loc)
		if strings.HasPrefix(loc, PathConsent) {
			form := hiddenFields(page)
			form.Set("decision", "allow")
			resp, _ = b.post(f.url+PathConsent, form)
		}
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Host != "app.test" || loc.Query().Get("code") == "" {
		t.Fatalf("no code for the client: %d %v", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, tok := tokenOf(f.Server, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"https://app.test/cb"}}.Encode(), "web", "web-secret")
	if code != 200 {
		t.Fatalf("token: %d", code)
	}
	return tok
}

func TestUpstreamSignIn(t *testing.T) {
	p := newFakeProvider(t)
	f := upstreamServer(t, p)
	b := newBrowser(t)
	_, code, st := startUpstream(t, f, p, b)
	resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	if resp.Header.Get("Location") != "" {
		// The consent page names the person by the upstream's email, not the opaque subject.
		r2, _ := b.get(f.url + resp.Header.Get("Location"))
		_, page := b.get(f.url + r2.Header.Get("Location"))
		if !strings.Contains(page, "bob@corp.example (Corp SSO)") {
			t.Fatalf("consent page does not name the person:\n%s", page)
		}
		resp = r2
	}
	tok := finish(t, f, b, resp)
	want := upstreamSubject("corp", p.url(), "u-42")
	if !strings.HasPrefix(want, "upstream:corp:") || len(want) != len("upstream:corp:")+22 {
		t.Fatalf("subject %q", want)
	}
	idc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.IDToken, idc); err != nil {
		t.Fatal(err)
	}
	if idc["sub"] != want || idc["email"] != "bob@corp.example" || idc["name"] != "Bob Builder" || idc["email_verified"] != true {
		t.Fatalf("ID token claims %v", idc)
	}
	at, err := f.verifyAccessToken(tok.AccessToken)
	if err != nil || at.Subject != want {
		t.Fatalf("access token: %v %v", at, err)
	}
	atc := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(tok.AccessToken, atc)
	if atc["email"] != "bob@corp.example" || atc["name"] != "Bob Builder" || atc["client_id"] != "web" {
		t.Fatalf("access token claims %v", atc)
	}
	req := httptest.NewRequest("GET", PathUserinfo, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	w := httptest.NewRecorder()
	f.ServeHTTP(w, req)
	var ui map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &ui)
	if w.Code != 200 || ui["sub"] != want || ui["email"] != "bob@corp.example" {
		t.Fatalf("userinfo: %d %v", w.Code, ui)
	}
	// The account page names the person the same way.
	if _, page := b.get(f.url + PathAccount); !strings.Contains(page, "bob@corp.example (Corp SSO)") || strings.Contains(page, "upstream:corp:") {
		t.Fatalf("account page does not name the person:\n%s", page)
	}
	// The same person again keeps the subject; the callback URL replayed is refused.
	resp, body = upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired, was already used") {
		t.Fatalf("replayed callback: %d\n%s", resp.StatusCode, body)
	}
}

// TestUpstreamRefusesBadIDTokens: every ID token an attacker-controlled provider may craft
// that is not a good one for this sign-in is refused, with a clear page and no session.
func TestUpstreamRefusesBadIDTokens(t *testing.T) {
	p := newFakeProvider(t)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(mod func(c jwt.MapClaims)) func(string) string {
		return func(nonce string) string {
			c := p.claims(nonce)
			mod(c)
			return p.sign(c, jwt.SigningMethodRS256, p.key)
		}
	}
	tests := []struct {
		name    string
		idToken func(nonce string) string
		status  int
		domains []string
	}{
		{"tampered signature", func(n string) string {
			raw := p.sign(p.claims(n), jwt.SigningMethodRS256, p.key)
			parts := strings.Split(raw, ".")
			c := p.claims(n)
			c["sub"] = "admin"
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}, 400, nil},
		{"signed by another key", func(n string) string { return p.sign(p.claims(n), jwt.SigningMethodRS256, other) }, 400, nil},
		{"alg none", func(n string) string {
			return p.sign(p.claims(n), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
		}, 400, nil},
		{"HS256 with the public key", func(n string) string {
			der, _ := json.Marshal(jose.JSONWebKey{Key: &p.key.PublicKey})
			return p.sign(p.claims(n), jwt.SigningMethodHS256, der)
		}, 400, nil},
		{"wrong nonce", with(func(c jwt.MapClaims) { c["nonce"] = "attacker" }), 400, nil},
		{"missing nonce", with(func(c jwt.MapClaims) { delete(c, "nonce") }), 400, nil},
		{"wrong aud", with(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), 400, nil},
		{"wrong iss", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), 400, nil},
		{"expired", with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), 400, nil},
		{"no sub", with(func(c jwt.MapClaims) { delete(c, "sub") }), 400, nil},
		{"email domain not allowed", with(func(c jwt.MapClaims) { c["email"] = "bob@evil.example" }), 403, []string{"corp.example"}},
		{"email_verified false", with(func(c jwt.MapClaims) { c["email_verified"] = false }), 403, []string{"corp.example"}},
		{"email_verified missing", with(func(c jwt.MapClaims) { delete(c, "email_verified") }), 403, []string{"corp.example"}},
		{"domain as suffix", with(func(c jwt.MapClaims) { c["email"] = "bob@evilcorp.example" }), 403, []string{"corp.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := upstreamServer(t, p, func(u *Upstream) { u.AllowDomains = tt.domains })
			p.mu.Lock()
			p.idToken = tt.idToken
			p.mu.Unlock()
			b := newBrowser(t)
			_, code, st := startUpstream(t, f, p, b)
			resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
			if resp.StatusCode != tt.status || !strings.Contains(body, "Corp SSO") || !strings.Contains(body, `name="password"`) {
				t.Fatalf("callback: %d, want %d with the sign-in page\n%s", resp.StatusCode, tt.status, body)
			}
			if signedIn(t, f, b) {
				t.Fatal("the browser was signed in")
			}
		})
	}
	// The good token on the same provider passes, so the refusals above are the token's.
	p.mu.Lock()
	p.idToken = func(nonce string) string { return p.sign(p.claims(nonce), jwt.SigningMethodRS256, p.key) }
	p.mu.Unlock()
	f := upstreamServer(t, p, func(u *Upstream) { u.AllowDomains = []string{"corp.example"} })
	b := newBrowser(t)
	_, code, st := startUpstream(t, f, p, b)
	if resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusSeeOther || !signedIn(t, f, b) {
		t.Fatalf("good token refused: %d\n%s", resp.StatusCode, body)
	}
}

// TestUpstreamCallbackBindings: the state is single use, of this provider, of this browser,
// and the provider's error body never reaches the page.
func TestUpstreamCallbackBindings(t *testing.T) {
	p := newFakeProvider(t)
	f := upstreamServer(t, p, func(u *Upstream) {})
	t.Run("state from another browser", func(t *testing.T) {
		victim, attacker := newBrowser(t), newBrowser(t)
		_, code, st := startUpstream(t, f, p, attacker)
		// login CSRF: the attacker makes the victim's browser finish the attacker's sign-in.
		resp, body := upstreamCallback(victim, f, url.Values{"code": {code}, "state": {st}})
		if resp.StatusCode != 400 || signedIn(t, f, victim) || !strings.Contains(body, "another browser") {
			t.Fatalf("callback in another browser: %d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("binding cookie wrong", func(t *testing.T) {
		b := newBrowser(t)
		_, code, st := startUpstream(t, f, p, b)
		u, _ := url.Parse(f.url)
		b.client.Jar.SetCookies(u, []*http.Cookie{{Name: upstreamCookie, Value: state.NewSecret(), Path: "/"}})
		if resp, _ := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != 400 || signedIn(t, f, b) {
			t.Fatalf("callback with a wrong binding: %d", resp.StatusCode)
		}
	})
	t.Run("unknown state", func(t *testing.T) {
		b := newBrowser(t)
		startUpstream(t, f, p, b)
		if resp, _ := upstreamCallback(b, f, url.Values{"code": {"c"}, "state": {state.NewSecret()}}); resp.StatusCode != 400 || signedIn(t, f, b) {
			t.Fatalf("unknown state: %d", resp.StatusCode)
		}
	})
	t.Run("provider error", func(t *testing.T) {
		b := newBrowser(t)
		_, _, st := startUpstream(t, f, p, b)
		resp, body := upstreamCallback(b, f, url.Values{"error": {"access_denied"}, "error_description": {"<b>evil</b>"}, "state": {st}})
		if resp.StatusCode != 400 || strings.Contains(body, "evil") || !strings.Contains(body, "Signing in with Corp SSO did not work") {
			t.Fatalf("provider error: %d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("code refused by the provider", func(t *testing.T) {
		b := newBrowser(t)
		_, _, st := startUpstream(t, f, p, b)
		resp, body := upstreamCallback(b, f, url.Values{"code": {"forged"}, "state": {st}})
		if resp.StatusCode != 400 || strings.Contains(body, "alert(1)") || signedIn(t, f, b) {
			t.Fatalf("refused code: %d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("repeated state", func(t *testing.T) {
		b := newBrowser(t)
		_, code, st := startUpstream(t, f, p, b)
		resp, _ := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st, state.NewSecret()}})
		if resp.StatusCode != 400 || signedIn(t, f, b) {
			t.Fatalf("repeated state: %d", resp.StatusCode)
		}
	})
	t.Run("login_hint goes along", func(t *testing.T) {
		b := newBrowser(t)
		params := webParams()
		params.Set("login_hint", "bob@corp.example")
		resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
		_, page := b.get(f.url + resp.Header.Get("Location"))
		resp, _ = b.post(f.url+"/oauth2/upstream/corp/start", hiddenFields(page))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("login_hint") != "bob@corp.example" {
			t.Fatalf("authorization request at the provider: %s", loc)
		}
	})
	t.Run("start without CSRF token", func(t *testing.T) {
		b := newBrowser(t)
		id, _, _ := startUpstream(t, f, p, b)
		if resp, _ := b.post(f.url+"/oauth2/upstream/corp/start", url.Values{"request": {id}}); resp.StatusCode != 403 {
			t.Fatalf("start without CSRF: %d", resp.StatusCode)
		}
		if resp, _ := b.get(f.url + "/oauth2/upstream/corp/start?request=" + id); resp.StatusCode != 405 {
			t.Fatalf("GET start: %d", resp.StatusCode)
		}
	})
}

// TestUpstreamCallbackOfAnotherProvider: a state begun for one provider is refused at the
// callback of another, so one provider's code cannot be played against another's sign-in.
func TestUpstreamCallbackOfAnotherProvider(t *testing.T) {
	p, q := newFakeProvider(t), newFakeProvider(t)
	f := newFlowServer(t, func(c *Config) {
		c.Upstreams = []Upstream{
			{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret", DisplayName: "Corp SSO"},
			{Name: "partner", Issuer: q.url(), ClientID: "tollgate", ClientSecret: "upstream-secret"},
		}
	})
	b := newBrowser(t)
	_, code, st := startUpstream(t, f, p, b)
	resp, _ := b.get(f.url + "/oauth2/upstream/partner/callback?" + url.Values{"code": {code}, "state": {st}}.Encode())
	if resp.StatusCode != 400 || signedIn(t, f, b) {
		t.Fatalf("callback of another provider: %d", resp.StatusCode)
	}
	p.mu.Lock()
	n := p.exchanges
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d code exchanges", n)
	}
}

// TestUpstreamDown: a provider that cannot be reached gives the sign-in page with a clear
// message and a 503 (start) or 502 (callback), never a 500.
func TestUpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	f := newFlowServer(t, func(c *Config) {
		c.Upstreams = []Upstream{{Name: "corp", Issuer: closed, ClientID: "tollgate", DisplayName: "Corp SSO"}}
	})
	b := newBrowser(t)
	resp, _ := b.get(f.url + PathAuthorize + "?" + webParams().Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	resp, body := b.post(f.url+"/oauth2/upstream/corp/start", hiddenFields(page))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Corp SSO cannot be reached right now. Try again in a minute, or sign in another way.") ||
		!strings.Contains(body, `name="password"`) {
		t.Fatalf("start with the provider down: %d\n%s", resp.StatusCode, body)
	}

	// Down at the token endpoint only: discovery worked, the exchange fails.
	p := newFakeProvider(t)
	g := upstreamServer(t, p)
	b = newBrowser(t)
	_, code, st := startUpstream(t, g, p, b)
	p.mu.Lock()
	p.tokenDown = true
	p.mu.Unlock()
	resp, body = upstreamCallback(b, g, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(body, "secret") || !strings.Contains(body, "cannot be reached") {
		t.Fatalf("callback with the token endpoint down: %d\n%s", resp.StatusCode, body)
	}
}

// TestUpstreamTwoServersOneStore: the sign-in begins on one node and its callback lands on
// another, sharing only the store.
func TestUpstreamTwoServersOneStore(t *testing.T) {
	p := newFakeProvider(t)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "shared.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lnA, _ := net.Listen("tcp", "127.0.0.1:0")
	lnB, _ := net.Listen("tcp", "127.0.0.1:0")
	iss := "http://" + lnA.Addr().String()
	cfg := Config{Issuer: iss,
		Clients: []Client{{ID: "web", Secret: "web-secret", RedirectURIs: []string{"https://app.test/cb"},
			Grants: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "read"}}},
		Upstreams: []Upstream{{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret", DisplayName: "Corp SSO"}}}
	node := func(ln net.Listener) *flowServer {
		s, err := New(context.Background(), cfg, Deps{Store: st, ClientIP: testClientIP})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s}}
		srv.Start()
		t.Cleanup(srv.Close)
		return &flowServer{Server: s, url: "http://" + ln.Addr().String(), st: st}
	}
	a, b := node(lnA), node(lnB)
	br := newBrowser(t) // one cookie jar for both: cookies are per host, not per port
	_, code, state := startUpstream(t, a, p, br)
	resp, body := upstreamCallback(br, b, url.Values{"code": {code}, "state": {state}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback on the other node: %d\n%s", resp.StatusCode, body)
	}
	tok := finish(t, b, br, resp)
	if at, err := a.verifyAccessToken(tok.AccessToken); err != nil || !strings.HasPrefix(at.Subject, "upstream:corp:") {
		t.Fatalf("token: %v %v", at, err)
	}
	// Node a knows the account node b stored.
	if u, err := a.lookupUser(context.Background(), upstreamSubject("corp", p.url(), "u-42")); err != nil || u == nil || u.Claims["email"] != "bob@corp.example" {
		t.Fatalf("account on the other node: %v %v", u, err)
	}
}

// TestUpstreamSubjects: stable per provider and subject, apart across providers with the same
// subject, and never a local user's (a local user cannot be named upstream:…).
func TestUpstreamSubjects(t *testing.T) {
	a := upstreamSubject("corp", "https://login.corp.example", "42")
	if a != upstreamSubject("corp", "https://login.corp.example", "42") {
		t.Fatal("subject not stable")
	}
	for _, other := range []string{
		upstreamSubject("partner", "https://login.corp.example", "42"),
		upstreamSubject("corp", "https://login.partner.example", "42"),
		upstreamSubject("corp", "https://login.corp.example", "43"),
		upstreamSubject("corp", "https://login.corp.example\x004", "2"),
	} {
		if other == a {
			t.Fatalf("collision: %s", a)
		}
	}
	cfg := testConfig()
	cfg.Users = []User{{Name: a, PasswordHash: "$2a$10$abcdefghijklmnopqrstuuQ0Yz6hEiFpM9ouGv1K6x6bG8Lw0Kn3m"}}
	if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Fatalf("local user named like an upstream subject: %v", err)
	}
}

// TestCheckUpstreams: every bad upstream setting is refused with a message naming it.
func TestCheckUpstreams(t *testing.T) {
	good := Upstream{Name: "corp", Issuer: "https://login.corp.example", ClientID: "tollgate"}
	tests := []struct {
		name   string
		mutate func(u *Upstream)
		want   string
	}{
		{"good", func(u *Upstream) {}, ""},
		{"name with a slash", func(u *Upstream) { u.Name = "corp/x" }, "the name must be"},
		{"name upper case", func(u *Upstream) { u.Name = "Corp" }, "the name must be"},
		{"name empty", func(u *Upstream) { u.Name = "" }, "the name must be"},
		{"issuer http not loopback", func(u *Upstream) { u.Issuer = "http://login.corp.example" }, "http is allowed only on a loopback host"},
		{"issuer http loopback", func(u *Upstream) { u.Issuer = "http://127.0.0.1:9000" }, ""},
		{"issuer missing", func(u *Upstream) { u.Issuer = "" }, "issuer is required"},
		{"client_id missing", func(u *Upstream) { u.ClientID = "" }, "client_id is required"},
		{"scopes without openid", func(u *Upstream) { u.Scopes = []string{"email"} }, "must include openid"},
		{"claim to sub", func(u *Upstream) { u.Claims = map[string]string{"oid": "sub"} }, "set by Tollgate itself"},
		{"claim to Scope", func(u *Upstream) { u.Claims = map[string]string{"roles": "Scope"} }, "set by Tollgate itself"},
		{"two claims to one", func(u *Upstream) { u.Claims = map[string]string{"mail": "email", "email": "email"} }, "both mapped to"},
		{"bad domain", func(u *Upstream) { u.AllowDomains = []string{"@corp.example"} }, "allow_domain"},
		{"root_ca_file missing", func(u *Upstream) { u.RootCAFile = "/nonexistent/ca.pem" }, "root_ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := good
			tt.mutate(&u)
			cfg := testConfig()
			cfg.Upstreams = []Upstream{u}
			err := CheckConfig(cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("CheckConfig = %v, want %q", err, tt.want)
			}
		})
	}
	cfg := testConfig()
	cfg.Upstreams = []Upstream{good, good}
	if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Fatalf("two upstreams named corp: %v", err)
	}
}

// TestUpstreamClaimsNotInClientCredentials: a local user named like a client lends no claim
// to the client's own tokens: only grants that sign a person in set grantOf.person.
func TestUpstreamClaimsNotInClientCredentials(t *testing.T) {
	f := newFlowServer(t, func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "svc", Secret: "svc-secret", Grants: []string{"client_credentials"}, Scopes: []string{"read"}})
		c.Users = append(c.Users, User{Name: "svc", PasswordHash: c.Users[0].PasswordHash, Claims: map[string]string{"email": "svc@evil.example", "role": "admin"}})
	})
	code, tok := tokenOf(f.Server, "grant_type=client_credentials&scope=read", "svc", "svc-secret")
	if code != 200 {
		t.Fatalf("client credentials: %d", code)
	}
	// Even with scopes that would release them, a grant that is not a person's has no claims.
	svc := f.clients["svc"]
	m, err := f.mint(context.Background(), mintInput{grantOf: grantOf{client: svc, user: "svc", scopes: []string{"profile", "email"}},
		id: f.newTokenID(time.Now()), accessToken: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{tok.AccessToken, m.accessToken} {
		c := jwt.MapClaims{}
		_, _, _ = jwt.NewParser().ParseUnverified(raw, c)
		if _, ok := c["email"]; ok {
			t.Fatalf("a client's token carries a user's claims: %v", c)
		}
		if _, ok := c["role"]; ok {
			t.Fatalf("a client's token carries a user's claims: %v", c)
		}
	}
	// The same with person set: the claims are there (so the check above means something).
	m, _ = f.mint(context.Background(), mintInput{grantOf: grantOf{client: svc, user: "svc", scopes: []string{"profile", "email"}, person: true},
		id: f.newTokenID(time.Now()), accessToken: true})
	c := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(m.accessToken, c)
	if c["email"] != "svc@evil.example" || c["role"] != "admin" || c["sub"] != "svc" || c["client_id"] != "svc" {
		t.Fatalf("a person's token: %v", c)
	}
}

// TestUpstreamDeviceVerification: the device page's sign-in offers the upstream buttons, and
// a device is approved by a person the upstream signed in.
func TestUpstreamDeviceVerification(t *testing.T) {
	p := newFakeProvider(t)
	f := newFlowServer(t, withDevice, func(c *Config) {
		c.Upstreams = []Upstream{{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret", DisplayName: "Corp SSO"}}
	})
	da := f.startDevice(t, "tv", "", "openid email profile")
	b := newBrowser(t)
	resp, _ := f.enterUserCode(b, da.UserCode)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, PathLogin) {
		t.Fatalf("device page: %d %q", resp.StatusCode, loc)
	}
	code, st := pressUpstream(t, f, p, b, loc)
	resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), PathDevice+"?request=") {
		t.Fatalf("callback: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, body = f.followDevice(b, resp, body, "allow"); !strings.Contains(body, "Device connected") {
		t.Fatalf("device verification: %d\n%s", resp.StatusCode, body)
	}
	e, tok := f.pollDevice(t, "tv", "", da.DeviceCode)
	if e != "" {
		t.Fatalf("poll: %s", e)
	}
	c := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(tok.IDToken, c)
	if c["sub"] != upstreamSubject("corp", p.url(), "u-42") || c["email"] != "bob@corp.example" {
		t.Fatalf("device ID token: %v", c)
	}
}

// TestUpstreamImplicit: the implicit flow's person may come from the upstream too.
func TestUpstreamImplicit(t *testing.T) {
	p := newFakeProvider(t)
	f := upstreamServer(t, p)
	b := newBrowser(t)
	params := url.Values{"response_type": {"id_token token"}, "client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"},
		"scope": {"openid profile"}, "state": {"s"}, "nonce": {"n"}}
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	code, st := pressUpstream(t, f, p, b, resp.Header.Get("Location"))
	resp, _ = upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	for i := 0; i < 5 && strings.HasPrefix(resp.Header.Get("Location"), "/"); i++ {
		loc := resp.Header.Get("Location")
		var page string
		resp, page = b.get(f.url + loc)
		if strings.HasPrefix(loc, PathConsent) {
			form := hiddenFields(page)
			form.Set("decision", "allow")
			resp, _ = b.post(f.url+PathConsent, form)
		}
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	frag, _ := url.ParseQuery(loc.Fragment)
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(frag.Get("id_token"), c); err != nil {
		t.Fatalf("implicit answer %q: %v", resp.Header.Get("Location"), err)
	}
	if c["sub"] != upstreamSubject("corp", p.url(), "u-42") || c["name"] != "Bob Builder" {
		t.Fatalf("implicit ID token: %v", c)
	}
	at := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(frag.Get("access_token"), at)
	if at["name"] != "Bob Builder" {
		t.Fatalf("implicit access token: %v", at)
	}
}

// TestUpstreamProviderRemoved: users of a provider that is no longer configured are gone.
func TestUpstreamProviderRemoved(t *testing.T) {
	p := newFakeProvider(t)
	f := upstreamServer(t, p)
	b := newBrowser(t)
	_, code, st := startUpstream(t, f, p, b)
	if resp, _ := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d", resp.StatusCode)
	}
	sub := upstreamSubject("corp", p.url(), "u-42")
	cfg := f.cfg
	cfg.Upstreams = nil
	g, err := New(context.Background(), cfg, Deps{Store: f.st})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if u, err := g.lookupUser(context.Background(), sub); u != nil || err != nil {
		t.Fatalf("user of a removed provider: %v %v", u, err)
	}
	if u, _ := f.lookupUser(context.Background(), sub); u == nil {
		t.Fatal("user gone while the provider is configured")
	}
}

// TestUpstreamRedirectURILogged: the start log names the redirect URI to register.
func TestUpstreamRedirectURILogged(t *testing.T) {
	p := newFakeProvider(t)
	core, logs := observer.New(zap.InfoLevel)
	f := newFlowServerLogging(t, zap.New(core), func(c *Config) {
		c.Upstreams = []Upstream{{Name: "corp", Issuer: p.url(), ClientID: "tollgate"}}
	})
	got := logs.FilterMessage("register this redirect URI at the upstream provider").All()
	if len(got) != 1 || got[0].ContextMap()["redirect_uri"] != f.url+"/oauth2/upstream/corp/callback" || got[0].ContextMap()["upstream"] != "corp" {
		t.Fatalf("start log: %v", got)
	}
}

// fakeGitHub is a plain OAuth provider: an authorization endpoint the test plays, a token
// endpoint and a userinfo URL that answers for its access token (GitHub's /user, whose id is a
// number).
type fakeGitHub struct {
	srv      *httptest.Server
	mu       sync.Mutex
	codes    map[string]string // code → code_challenge
	userDown bool
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{codes: map[string]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		switch r.URL.Path {
		case "/login/oauth/access_token":
			_ = r.ParseForm()
			sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
			want, ok := g.codes[r.PostForm.Get("code")]
			if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != want {
				writeJSON(w, 400, map[string]string{"error": "bad_verification_code"})
				return
			}
			writeJSON(w, 200, map[string]any{"access_token": "gho_good", "token_type": "bearer", "scope": "read:user"})
		case "/user":
			if g.userDown {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if r.Header.Get("Authorization") != "Bearer gho_good" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = w.Write([]byte(`{"login":"octocat","id":9007199254740993,"name":"The Octocat","email":"octocat@github.example"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// TestUpstreamPlainOAuth: a provider without OpenID Connect (GitHub) behind userinfo_url:
// the person is who the userinfo URL says, with a subject from its id kept exact.
func TestUpstreamPlainOAuth(t *testing.T) {
	g := newFakeGitHub(t)
	f := newFlowServer(t, func(c *Config) {
		c.Upstreams = []Upstream{{Name: "github", ClientID: "gh-client", ClientSecret: "gh-secret", DisplayName: "GitHub",
			AuthorizationURL: g.srv.URL + "/login/oauth/authorize", TokenURL: g.srv.URL + "/login/oauth/access_token",
			UserinfoURL: g.srv.URL + "/user", SubjectClaim: "id", Scopes: []string{"read:user"},
			Claims: map[string]string{"login": "preferred_username", "name": "name", "email": "email"}}}
	})
	signIn := func(b *browser) (*http.Response, string) {
		resp, _ := b.get(f.url + PathAuthorize + "?" + webParams().Encode())
		_, page := b.get(f.url + resp.Header.Get("Location"))
		if !strings.Contains(page, `data-upstream="github"`) {
			t.Fatalf("no github button:\n%s", page)
		}
		resp, _ = b.post(f.url+"/oauth2/upstream/github/start", hiddenFields(page))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		q := loc.Query()
		if !strings.HasPrefix(resp.Header.Get("Location"), g.srv.URL+"/login/oauth/authorize?") || q.Get("client_id") != "gh-client" ||
			q.Get("scope") != "read:user" || q.Has("nonce") || q.Get("code_challenge_method") != "S256" {
			t.Fatalf("start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		code := state.NewID()
		g.mu.Lock()
		g.codes[code] = q.Get("code_challenge")
		g.mu.Unlock()
		return b.get(f.url + "/oauth2/upstream/github/callback?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode())
	}
	b := newBrowser(t)
	resp, body := signIn(b)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	tok := finish(t, f, b, resp)
	c := jwt.MapClaims{}
	_, _, _ = jwt.NewParser().ParseUnverified(tok.IDToken, c)
	want := upstreamSubject("github", g.srv.URL+"/user", "9007199254740993")
	if c["sub"] != want || c["preferred_username"] != "octocat" || c["email"] != "octocat@github.example" {
		t.Fatalf("ID token: %v (want sub %s)", c, want)
	}

	// userinfo down: a clear 502, no session.
	g.mu.Lock()
	g.userDown = true
	g.mu.Unlock()
	b = newBrowser(t)
	resp, body = signIn(b)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "GitHub cannot be reached right now") || signedIn(t, f, b) {
		t.Fatalf("userinfo down: %d\n%s", resp.StatusCode, body)
	}
}

// TestCheckPlainOAuthUpstreams: the endpoints go with userinfo_url, and only with it.
func TestCheckPlainOAuthUpstreams(t *testing.T) {
	plain := Upstream{Name: "github", ClientID: "x", UserinfoURL: "https://api.github.com/user",
		AuthorizationURL: "https://github.com/login/oauth/authorize", TokenURL: "https://github.com/login/oauth/access_token", SubjectClaim: "id"}
	tests := []struct {
		name   string
		mutate func(u *Upstream)
		want   string
	}{
		{"good", func(u *Upstream) {}, ""},
		{"with scopes without openid", func(u *Upstream) { u.Scopes = []string{"read:user"} }, ""},
		{"no token_url", func(u *Upstream) { u.TokenURL = "" }, "token_url: required with userinfo_url"},
		{"http userinfo", func(u *Upstream) { u.UserinfoURL = "http://api.github.com/user" }, "userinfo_url"},
		{"OpenID with token_url", func(u *Upstream) { u.UserinfoURL, u.AuthorizationURL = "", ""; u.Issuer = "https://login.corp.example" }, "token_url is only for a plain OAuth provider"},
		{"OpenID with subject_claim", func(u *Upstream) {
			*u = Upstream{Name: "corp", Issuer: "https://login.corp.example", ClientID: "x", SubjectClaim: "oid"}
		}, "subject_claim is only for a plain OAuth provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := plain
			tt.mutate(&u)
			err := CheckUpstreams([]Upstream{u})
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("CheckUpstreams = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestUpstreamRootCAFile: a provider behind a private CA is reached with root_ca_file, and
// without it its certificate is refused (a clear 503, not a 500).
func TestUpstreamRootCAFile(t *testing.T) {
	p := newFakeProviderTLS(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	der := p.srv.Certificate().Raw
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	f := upstreamServer(t, p, func(u *Upstream) { u.RootCAFile = caFile })
	b := newBrowser(t)
	_, code, st := startUpstream(t, f, p, b)
	if resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusSeeOther || !signedIn(t, f, b) {
		t.Fatalf("callback with root_ca_file: %d\n%s", resp.StatusCode, body)
	}

	g := upstreamServer(t, p) // the system's roots: the private CA is unknown
	b = newBrowser(t)
	resp, _ := b.get(g.url + PathAuthorize + "?" + webParams().Encode())
	_, page := b.get(g.url + resp.Header.Get("Location"))
	resp, body := b.post(g.url+"/oauth2/upstream/corp/start", hiddenFields(page))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Corp SSO cannot be reached right now") {
		t.Fatalf("start without the CA: %d\n%s", resp.StatusCode, body)
	}
}

// startUpstreamWith is startUpstream for an authorization request with params; it returns the
// provider's answer and the authorization request Tollgate sent to the provider.
func startUpstreamWith(t *testing.T, f *flowServer, p *fakeProvider, b *browser, params url.Values) (code, st string, sent url.Values) {
	t.Helper()
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, PathLogin+"?request=") {
		t.Fatalf("authorize: %d %q", resp.StatusCode, loc)
	}
	_, page := b.get(f.url + loc)
	resp, _ = b.post(f.url+"/oauth2/upstream/corp/start", hiddenFields(page))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	target, _ := url.Parse(resp.Header.Get("Location"))
	code, st = p.authorize(t, resp.Header.Get("Location"))
	return code, st, target.Query()
}

// idTokenAuthTime is the provider's ID token with auth_time at (none when at is nil).
func (p *fakeProvider) idTokenAuthTime(at *time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idToken = func(nonce string) string {
		c := p.claims(nonce)
		if at != nil {
			c["auth_time"] = at.Unix()
		}
		return p.sign(c, jwt.SigningMethodRS256, p.key)
	}
}

// authTimeOf is the auth_time of an ID token.
func authTimeOf(t *testing.T, idToken string) int64 {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(idToken, c); err != nil {
		t.Fatal(err)
	}
	f, _ := c["auth_time"].(float64)
	return int64(f)
}

// TestUpstreamStepUp: prompt=login and max_age go on to the provider, and the session's
// auth_time is the provider's, never "now" for a sign-in the provider did not make: without
// auth_time under max_age, or with one older than max_age or than the start under
// prompt=login, the sign-in is refused.
func TestUpstreamStepUp(t *testing.T) {
	p := newFakeProvider(t)
	f := upstreamServer(t, p)
	ago := func(d time.Duration) *time.Time { at := time.Now().Add(-d); return &at }
	stepUp := cloneWith(webParams(), "prompt", "login", "max_age", "0")

	// The provider is asked to authenticate again.
	b := newBrowser(t)
	p.idTokenAuthTime(nil)
	code, st, sent := startUpstreamWith(t, f, p, b, stepUp)
	if sent.Get("prompt") != "login" || sent.Get("max_age") != "0" {
		t.Fatalf("provider asked prompt=%q max_age=%q, want login and 0", sent.Get("prompt"), sent.Get("max_age"))
	}
	// max_age sent, no auth_time back: refused (auth_time is REQUIRED then).
	resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "did not confirm that you did") || signedIn(t, f, b) {
		t.Fatalf("max_age without auth_time: %d signed in %v\n%s", resp.StatusCode, signedIn(t, f, b), body)
	}
	// The provider reused a session of an hour ago: refused.
	b = newBrowser(t)
	p.idTokenAuthTime(ago(time.Hour))
	code, st, _ = startUpstreamWith(t, f, p, b, stepUp)
	if resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusBadRequest || signedIn(t, f, b) {
		t.Fatalf("stale auth_time: %d\n%s", resp.StatusCode, body)
	}
	// prompt=login alone: the provider is asked to authenticate again, and a session of
	// before the start is refused.
	b = newBrowser(t)
	code, st, sent = startUpstreamWith(t, f, p, b, cloneWith(webParams(), "prompt", "login"))
	if sent.Get("prompt") != "login" || sent.Has("max_age") {
		t.Fatalf("prompt=login: provider asked prompt=%q max_age=%q", sent.Get("prompt"), sent.Get("max_age"))
	}
	if resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusBadRequest || signedIn(t, f, b) {
		t.Fatalf("prompt=login, auth_time of an hour ago: %d\n%s", resp.StatusCode, body)
	}
	// An auth_time in the future is refused.
	b = newBrowser(t)
	p.idTokenAuthTime(ago(-time.Hour))
	code, st, _ = startUpstreamWith(t, f, p, b, webParams())
	if resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}}); resp.StatusCode != http.StatusBadRequest || signedIn(t, f, b) {
		t.Fatalf("auth_time in the future: %d\n%s", resp.StatusCode, body)
	}

	// Within max_age: signed in, with the provider's auth_time in the client's ID token.
	b = newBrowser(t)
	at := ago(30 * time.Second)
	p.idTokenAuthTime(at)
	code, st, sent = startUpstreamWith(t, f, p, b, cloneWith(webParams(), "max_age", "60"))
	if sent.Get("prompt") != "login" || sent.Get("max_age") != "60" {
		t.Fatalf("max_age=60: provider asked prompt=%q max_age=%q", sent.Get("prompt"), sent.Get("max_age"))
	}
	resp, body = upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fresh sign-in refused: %d\n%s", resp.StatusCode, body)
	}
	if got := authTimeOf(t, finish(t, f, b, resp).IDToken); got != at.Unix() {
		t.Fatalf("auth_time %d, want the provider's %d", got, at.Unix())
	}

	// No step-up: the provider's auth_time still counts, so a later max_age sees it.
	b = newBrowser(t)
	at = ago(time.Hour)
	p.idTokenAuthTime(at)
	code, st, sent = startUpstreamWith(t, f, p, b, webParams())
	if sent.Has("prompt") || sent.Has("max_age") {
		t.Fatalf("no step-up asked, yet the provider was asked prompt=%q max_age=%q", sent.Get("prompt"), sent.Get("max_age"))
	}
	resp, _ = upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if got := authTimeOf(t, finish(t, f, b, resp).IDToken); got != at.Unix() {
		t.Fatalf("auth_time %d, want the provider's %d", got, at.Unix())
	}
	resp, _ = b.get(f.url + PathAuthorize + "?" + cloneWith(webParams(), "max_age", "600").Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, PathLogin+"?request=") {
		t.Fatalf("max_age=600 after a provider sign-in of an hour ago: want the sign-in page, got %d %q", resp.StatusCode, loc)
	}
}

// TestUpstreamAccountOfReplacedProvider: an account is a user only while the provider of its
// name has the same issuer and its allow_domain still allows the account's email: replacing
// the provider under the same name, or tightening allow_domain, ends its sessions, refresh
// tokens and userinfo at once.
func TestUpstreamAccountOfReplacedProvider(t *testing.T) {
	p, other := newFakeProvider(t), newFakeProvider(t)
	f := newFlowServer(t, func(c *Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "web" {
				c.Clients[i].Grants = append(c.Clients[i].Grants, "refresh_token")
				c.Clients[i].Scopes = append(c.Clients[i].Scopes, "offline_access")
			}
		}
		c.Upstreams = []Upstream{{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret",
			DisplayName: "Corp SSO", AllowDomains: []string{"corp.example"}}}
	})
	b := newBrowser(t)
	code, st, _ := startUpstreamWith(t, f, p, b, cloneWith(webParams(), "scope", "openid email profile offline_access"))
	resp, body := upstreamCallback(b, f, url.Values{"code": {code}, "state": {st}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	tok := finish(t, f, b, resp)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	sub := upstreamSubject("corp", p.url(), "u-42")
	ctx := context.Background()
	userinfo := func(s *Server) int {
		req := httptest.NewRequest("GET", PathUserinfo, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w.Code
	}
	// with returns a server on f's store with corp changed by mod.
	with := func(mod func(u *Upstream)) *Server {
		cfg := f.cfg
		u := cfg.Upstreams[0]
		mod(&u)
		cfg.Upstreams = []Upstream{u}
		g, err := New(ctx, cfg, Deps{Store: f.st, ClientIP: testClientIP})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		return g
	}
	for _, tt := range []struct {
		name string
		mod  func(u *Upstream)
	}{
		{"another issuer under the same name", func(u *Upstream) { u.Issuer = other.url() }},
		{"allow_domain tightened", func(u *Upstream) { u.AllowDomains = []string{"other.example"} }},
		{"allow_domain tightened, plus one", func(u *Upstream) { u.AllowDomains = []string{"other.example", "corp.example.net"} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := with(tt.mod)
			if u, err := g.lookupUser(ctx, sub); u != nil || err != nil {
				t.Fatalf("user of the old provider: %v %v", u, err)
			}
			if sess, _, err := g.currentSession(ctx, requestWithCookies(t, f, b)); sess != nil || err != nil {
				t.Fatalf("session of the old provider's user: %v %v", sess, err)
			}
			if code := userinfo(g); code != http.StatusUnauthorized {
				t.Fatalf("userinfo: %d, want 401", code)
			}
			if code, _ := tokenOf(g, "grant_type=refresh_token&refresh_token="+url.QueryEscape(tok.RefreshToken), "web", "web-secret"); code != http.StatusBadRequest {
				t.Fatalf("refresh: %d, want 400", code)
			}
		})
	}
	// Unchanged (allow_domain widened even), the user is still there: the refusals are the change's.
	g := with(func(u *Upstream) { u.AllowDomains = append(u.AllowDomains, "other.example") })
	if u, _ := g.lookupUser(ctx, sub); u == nil {
		t.Fatal("user gone with the provider unchanged")
	}
	if code := userinfo(g); code != http.StatusOK {
		t.Fatalf("userinfo with the provider unchanged: %d", code)
	}
	if code, _ := tokenOf(g, "grant_type=refresh_token&refresh_token="+url.QueryEscape(tok.RefreshToken), "web", "web-secret"); code != http.StatusOK {
		t.Fatalf("refresh with the provider unchanged: %d", code)
	}
}

// TestUpstreamStartThrottled: a burst of starts from one address, with one pending request
// and one CSRF token, released together, stores at most upstreamStartsPerAddress sign-ins;
// the rest are refused with 429 and Retry-After, and audited as throttled.
func TestUpstreamStartThrottled(t *testing.T) {
	p := newFakeProvider(t)
	core, logs := observer.New(zap.InfoLevel)
	f := newFlowServerDeps(t, Deps{Audit: zap.New(core)}, func(c *Config) {
		c.Upstreams = []Upstream{{Name: "corp", Issuer: p.url(), ClientID: "tollgate", ClientSecret: "upstream-secret"}}
	})
	b := newBrowser(t)
	resp, _ := b.get(f.url + PathAuthorize + "?" + webParams().Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	form := hiddenFields(page)
	const n = upstreamStartsPerAddress + 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	retry := 0
	release := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			resp, err := b.client.PostForm(f.url+"/oauth2/upstream/corp/start", form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
				retry++
			}
		}()
	}
	close(release)
	wg.Wait()
	count := 0
	if err := f.st.Scan(context.Background(), store.Bucket("upstream_logins"), func(string, []byte) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count > upstreamStartsPerAddress || statuses[http.StatusSeeOther] > upstreamStartsPerAddress {
		t.Fatalf("%d starts from one address stored %d sign-ins (statuses %v), want at most %d", n, count, statuses, upstreamStartsPerAddress)
	}
	if statuses[http.StatusTooManyRequests] < n-upstreamStartsPerAddress || retry != statuses[http.StatusTooManyRequests] {
		t.Fatalf("statuses %v, %d with Retry-After", statuses, retry)
	}
	if got := logs.FilterField(zap.String("limit", limitUpstreamAddress)).Len(); got != statuses[http.StatusTooManyRequests] {
		t.Fatalf("%d throttled audit events, want %d", got, statuses[http.StatusTooManyRequests])
	}
}

// TestUpstreamPlainOAuthStepUp: a plain OAuth provider is sent neither prompt nor max_age (not
// standard for it), and its sign-in counts as made now (README).
func TestUpstreamPlainOAuthStepUp(t *testing.T) {
	g := newFakeGitHub(t)
	f := newFlowServer(t, func(c *Config) {
		c.Upstreams = []Upstream{{Name: "github", ClientID: "gh-client", ClientSecret: "gh-secret", DisplayName: "GitHub",
			AuthorizationURL: g.srv.URL + "/login/oauth/authorize", TokenURL: g.srv.URL + "/login/oauth/access_token",
			UserinfoURL: g.srv.URL + "/user", SubjectClaim: "id", Scopes: []string{"read:user"}}}
	})
	b := newBrowser(t)
	resp, _ := b.get(f.url + PathAuthorize + "?" + cloneWith(webParams(), "prompt", "login", "max_age", "0").Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	resp, _ = b.post(f.url+"/oauth2/upstream/github/start", hiddenFields(page))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusSeeOther || q.Has("prompt") || q.Has("max_age") {
		t.Fatalf("start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := state.NewID()
	g.mu.Lock()
	g.codes[code] = q.Get("code_challenge")
	g.mu.Unlock()
	before := time.Now().Unix()
	resp, body := b.get(f.url + "/oauth2/upstream/github/callback?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", resp.StatusCode, body)
	}
	if at := authTimeOf(t, finish(t, f, b, resp).IDToken); at < before || at > time.Now().Unix() {
		t.Fatalf("auth_time %d, want now (%d)", at, before)
	}
}

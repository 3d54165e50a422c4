package issuer

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/pagetest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// flowServer is an issuer on a real loopback HTTP server, for flows that need a browser-like
// client (cookies, forms, redirects).
type flowServer struct {
	*Server
	url string
	st  store.Store // the issuer's store, for white-box checks of what it recorded
}

const alicePassword = "correct horse battery staple"

// newFlowServer starts an issuer with users and browser clients. mutate may adjust the config.
func newFlowServer(t testing.TB, mutate ...func(*Config)) *flowServer {
	t.Helper()
	return newFlowServerLogging(t, nil, mutate...)
}

// newFlowServerLogging is newFlowServer with a logger.
func newFlowServerLogging(t testing.TB, log *zap.Logger, mutate ...func(*Config)) *flowServer {
	t.Helper()
	return newFlowServerDeps(t, Deps{Logger: log}, mutate...)
}

// newFlowServerDeps is newFlowServer with deps (its Store and ClientIP are the test's).
func newFlowServerDeps(t testing.TB, deps Deps, mutate ...func(*Config)) *flowServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	hash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	cfg := Config{
		Issuer: base,
		Users: []User{{Name: "alice", PasswordHash: string(hash),
			Claims: map[string]string{"email": "alice@example.com", "email_verified": "true", "name": "Alice Liddell"}}},
		Clients: []Client{
			{ID: "spa", Name: "Single Page App", RedirectURIs: []string{"http://127.0.0.1/cb"},
				Grants: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "read"}},
			{ID: "web", Secret: "web-secret", RedirectURIs: []string{"https://app.test/cb"},
				Grants: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "read", "write"},
				Audience: []string{"https://api.test"}, PostLogoutRedirectURIs: []string{"https://app.test/bye"}},
			{ID: "imp", RedirectURIs: []string{"https://app.test/implicit"}, Grants: []string{"implicit"},
				Scopes: []string{"openid", "profile", "read"}},
			{ID: "first", Secret: "first-secret", RedirectURIs: []string{"https://first.test/cb"}, Consent: "skip",
				Grants: []string{"authorization_code"}, Scopes: []string{"openid", "read"}},
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "issuer.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deps.Store, deps.ClientIP = st, testClientIP
	s, err := New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s}}
	srv.Start()
	t.Cleanup(func() { srv.Close(); st.Close() })
	return &flowServer{Server: s, url: base, st: st}
}

// clientIPHeader lets a test's requests come from an address of its choosing: the test
// servers' Deps.ClientIP reads it, as a Caddy behind a trusted proxy reads X-Forwarded-For.
const clientIPHeader = "X-Test-Client-IP"

// testClientIP is the Deps.ClientIP of the test servers.
func testClientIP(r *http.Request) string { return r.Header.Get(clientIPHeader) }

// browser is an HTTP client with cookies that does not follow redirects, so each step of a
// flow can be checked.
type browser struct {
	t      testing.TB
	client *http.Client
}

func newBrowser(t testing.TB) *browser { return newBrowserFrom(t, "") }

// newBrowserFrom is a browser whose requests come from address ip ("" for the real one).
func newBrowserFrom(t testing.TB, ip string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Transport: fromAddress(ip),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// fromAddress is a transport that sends requests as if from ip.
func fromAddress(ip string) http.RoundTripper {
	if ip == "" {
		return http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set(clientIPHeader, ip)
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// hiddenFields reads a page's hidden inputs.
func hiddenFields(page string) url.Values { return pagetest.HiddenFields(page) }

// authorize runs the browser through the authorization endpoint, signing in as alice and
// answering the consent page with decision, until the issuer redirects outside itself (or
// shows a page). It returns the last response and its body.
func (f *flowServer) authorize(b *browser, params url.Values, decision string) (*http.Response, string) {
	b.t.Helper()
	resp, body := b.get(f.url + PathAuthorize + "?" + params.Encode())
	for i := 0; i < 10; i++ {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
			return resp, body
		}
		target := f.url + loc
		switch {
		case strings.HasPrefix(loc, PathLogin):
			_, page := b.get(target)
			form := hiddenFields(page)
			form.Set("username", "alice")
			form.Set("password", alicePassword)
			resp, body = b.post(f.url+PathLogin, form)
		case strings.HasPrefix(loc, PathConsent):
			_, page := b.get(target)
			form := hiddenFields(page)
			form.Set("decision", decision)
			resp, body = b.post(f.url+PathConsent, form)
		default:
			resp, body = b.get(target)
		}
	}
	b.t.Fatal("too many redirects")
	return nil, ""
}

package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tollgate-auth/tollgate/internal/pagetest"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// adminCaddyfile: two issuers (so ?issuer= is needed), a protected API in front of issuer a,
// and Caddy's admin endpoint on a port of its own. Arguments: the admin port, issuer a's,
// issuer b's and the API's ports, the directory, alice's hash.
const adminCaddyfile = `{
	admin 127.0.0.1:%[1]s
	persist_config off
	auto_https off
	log {
		level ERROR
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[2]s
		storage bolt %[5]s/a.db
		registration token admin-test-initial-access-token {
			scopes read
			audience https://api.test
		}
		user alice %[6]s
		user bob@example.com %[6]s
		client app {
			redirect_uri https://app.test/cb
			scopes openid
			consent skip
		}
		client cli {
			secret cli-secret-value-for-the-admin-test
			grants password refresh_token
			scopes read offline_access
			audience https://api.test
		}
	}
}

http://127.0.0.1:%[3]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[3]s
		storage bolt %[5]s/b.db
	}
}

http://127.0.0.1:%[4]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[2]s
		audience https://api.test
		scope read
	}
	respond "api ok"
}
`

// adminSetup is a running Caddy from adminCaddyfile.
type adminSetup struct {
	admin, a, b, api string
	caddyfile        string
}

func newAdminSetup(t *testing.T) *adminSetup {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password-value"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := []string{freePort(t), freePort(t), freePort(t), freePort(t)}
	s := &adminSetup{admin: "http://127.0.0.1:" + ports[0], a: "http://127.0.0.1:" + ports[1],
		b: "http://127.0.0.1:" + ports[2], api: "http://127.0.0.1:" + ports[3]}
	s.caddyfile = fmt.Sprintf(adminCaddyfile, ports[0], ports[1], ports[2], ports[3], t.TempDir(), hash)
	startCaddy(t, s.caddyfile)
	discover(t, s.a)
	discover(t, s.b)
	return s
}

// do sends a request to the admin endpoint (path with its query) and returns the status, the
// headers and the body.
func (s *adminSetup) do(t *testing.T, method, path string, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.admin+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// want sends a request and wants status; it returns the body.
func (s *adminSetup) want(t *testing.T, status int, method, path, body string) string {
	t.Helper()
	got, _, out := s.do(t, method, path, body)
	if got != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, got, out, status)
	}
	return out
}

// onA is path with ?issuer= naming issuer a.
func (s *adminSetup) onA(path string) string {
	return path + "?" + url.Values{"issuer": {s.a}}.Encode()
}

// TestAdminAPIIssuersAndErrors: the running issuers are listed; with two running, a request that
// names none is refused naming both, and an unknown one is 404; wrong methods get 405; bad path
// segments 400.
func TestAdminAPIIssuersAndErrors(t *testing.T) {
	s := newAdminSetup(t)
	var issuers []struct{ Issuer string }
	if err := json.Unmarshal([]byte(s.want(t, 200, "GET", "/tollgate/issuers", "")), &issuers); err != nil {
		t.Fatal(err)
	}
	if len(issuers) != 2 || issuers[0].Issuer != min(s.a, s.b) || issuers[1].Issuer != max(s.a, s.b) {
		t.Fatalf("issuers %v, want %s and %s", issuers, s.a, s.b)
	}

	body := s.want(t, 400, "GET", "/tollgate/clients", "")
	if !strings.Contains(body, s.a) || !strings.Contains(body, s.b) {
		t.Errorf("ambiguous issuer: %s does not name both issuers", body)
	}
	s.want(t, 400, "GET", "/tollgate/users/alice/sessions", "")
	body = s.want(t, 404, "GET", "/tollgate/clients?issuer=http://127.0.0.1:1", "")
	if !strings.Contains(body, "http://127.0.0.1:1") || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown issuer: %s", body)
	}
	// A trailing slash names the same issuer.
	s.want(t, 200, "GET", "/tollgate/users/alice/sessions?"+url.Values{"issuer": {s.a + "/"}}.Encode(), "")

	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/tollgate/issuers", "GET"},
		{"PUT", s.onA("/tollgate/clients"), "GET, POST"},
		{"POST", s.onA("/tollgate/clients/tgc_x"), "GET, DELETE"},
		{"PATCH", s.onA("/tollgate/users/alice/sessions"), "GET, DELETE"},
		{"GET", s.onA("/tollgate/users/alice/sessions/abc"), "DELETE"},
		{"GET", s.onA("/tollgate/users/alice/refresh_families/abc"), "DELETE"},
	} {
		status, hdr, body := s.do(t, tc.method, tc.path, "")
		if status != 405 || hdr.Get("Allow") != tc.allow || !strings.Contains(body, `"error"`) {
			t.Errorf("%s %s: %d Allow %q %s; want 405, Allow %q", tc.method, tc.path, status, hdr.Get("Allow"), body, tc.allow)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{s.onA("/tollgate/users/a%2Fb/sessions"), 400},   // a slash once decoded
		{s.onA("/tollgate/users/a%252Fb/sessions"), 200}, // decoded once: the name "a%2Fb", who has nothing
		{s.onA("/tollgate/users/alice/sessions/"), 400},  // an empty segment
		{s.onA("/tollgate/nothing"), 404},
		{s.onA("/tollgate/users/alice"), 404},
	} {
		if status, _, body := s.do(t, "GET", tc.path, ""); status != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.path, status, body, tc.status)
		}
	}
	// A reload starts the new configuration before it stops the old: the API then answers from
	// the new one's issuers (the old ones' stores are closed), still two of them.
	reloadCaddy(t, s.caddyfile+"\n# reloaded\n")
	if body := s.want(t, 200, "GET", "/tollgate/issuers", ""); strings.Count(body, `"issuer"`) != 2 {
		t.Errorf("issuers after a reload: %s", body)
	}
	s.want(t, 200, "GET", s.onA("/tollgate/users/alice/sessions"), "")
	s.want(t, 200, "GET", s.onA("/tollgate/clients"), "")

	// Over the body bound.
	big := `{"client_name":"` + strings.Repeat("x", 70<<10) + `"}`
	s.want(t, 413, "POST", s.onA("/tollgate/clients"), big)
	s.want(t, 400, "POST", s.onA("/tollgate/clients"), "not json")

	// Once Caddy stops, no issuer is left for the API (the admin endpoint itself outlives
	// caddy.Stop in this process).
	stopCaddy(t)
	if left := runningIssuers(); len(left) != 0 {
		t.Errorf("issuers still listed after Stop: %v", left)
	}
	if body := s.want(t, 200, "GET", "/tollgate/issuers", ""); body != "[]" {
		t.Errorf("issuers after Stop: %s", body)
	}
	s.want(t, 404, "GET", "/tollgate/clients", "")
}

// TestAdminAPIClients: a client created through the admin API gets tokens with the secret the
// creation showed, once; listing and showing it never show the secret; once deleted, its token
// requests fail with invalid_client.
func TestAdminAPIClients(t *testing.T) {
	s := newAdminSetup(t)
	status, hdr, body := s.do(t, "POST", s.onA("/tollgate/clients"),
		`{"client_name":"nightly report","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_basic","scope":"read"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var created struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.ID == "" || created.Secret == "" {
		t.Fatalf("create answered %s (%v)", body, err)
	}
	if hdr.Get("Cache-Control") != "no-store" || !strings.HasPrefix(hdr.Get("Location"), "/tollgate/clients/"+created.ID) {
		t.Errorf("create: Cache-Control %q, Location %q", hdr.Get("Cache-Control"), hdr.Get("Location"))
	}

	tokenURL := s.a + "/oauth2/token"
	tok := clientCredentialsToken(t, tokenURL, created.ID, created.Secret, "read")
	if resp, body := bearerRequest(t, "GET", s.api+"/v1/x", tok); resp.StatusCode != 200 {
		t.Errorf("the new client's token at the API: %d %s", resp.StatusCode, body)
	}

	list := s.want(t, 200, "GET", s.onA("/tollgate/clients"), "")
	var clients []map[string]any
	if err := json.Unmarshal([]byte(list), &clients); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range clients {
		if c["client_id"] == created.ID {
			found = true
			if c["client_name"] != "nightly report" || c["via"] == "" {
				t.Errorf("listed as %v", c)
			}
		}
	}
	if !found {
		t.Errorf("the list %s has no %s", list, created.ID)
	}
	show := s.want(t, 200, "GET", s.onA("/tollgate/clients/"+url.PathEscape(created.ID)), "")
	if !strings.Contains(show, created.ID) {
		t.Errorf("show: %s", show)
	}
	for what, text := range map[string]string{"list": list, "show": show} {
		if strings.Contains(text, created.Secret) || strings.Contains(text, `"client_secret"`) {
			t.Errorf("the %s shows the secret: %s", what, text)
		}
	}
	// The other issuer does not know it.
	s.want(t, 404, "GET", "/tollgate/clients/"+created.ID+"?"+url.Values{"issuer": {s.b}}.Encode(), "")
	// Bad metadata is the registration's error, 400.
	if body := s.want(t, 400, "POST", s.onA("/tollgate/clients"), `{"grant_types":["magic"]}`); !strings.Contains(body, "invalid") {
		t.Errorf("bad metadata: %s", body)
	}

	s.want(t, 204, "DELETE", s.onA("/tollgate/clients/"+created.ID), "")
	s.want(t, 404, "DELETE", s.onA("/tollgate/clients/"+created.ID), "")
	s.want(t, 404, "GET", s.onA("/tollgate/clients/"+created.ID), "")
	cc := clientcredentials.Config{ClientID: created.ID, ClientSecret: created.Secret, TokenURL: tokenURL, Scopes: []string{"read"}}
	_, err := cc.Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("token request of the deleted client: %v, want invalid_client", err)
	}
}

// browser is a cookie jar walking issuer a's pages.
type browser struct {
	t      *testing.T
	issuer string
	c      *http.Client
}

func newBrowser(t *testing.T, issuer string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, issuer: issuer, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.issuer + path
	}
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func authRequest(prompt string) string {
	v := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	if prompt != "" {
		v.Set("prompt", prompt)
	}
	return "/oauth2/authorize?" + v.Encode()
}

// signIn signs alice in on the sign-in page and returns the session's handle: the store key of
// its cookie's value.
func (b *browser) signIn() string {
	b.t.Helper()
	resp, _ := b.do("GET", authRequest(""), nil)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/oauth2/login") {
		b.t.Fatalf("authorization went to %q, want the sign-in page", loc)
	}
	_, page := b.do("GET", loc, nil)
	f := pagetest.HiddenFields(page)
	f.Set("username", "alice")
	f.Set("password", "alice-password-value")
	resp, body := b.do("POST", "/oauth2/login", f)
	for range 5 {
		loc = resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
			break
		}
		resp, body = b.do("GET", loc, nil)
	}
	if !strings.HasPrefix(loc, "https://app.test/cb?") || !strings.Contains(loc, "code=") {
		b.t.Fatalf("sign-in ended at %d %q %.200s", resp.StatusCode, loc, body)
	}
	u, _ := url.Parse(b.issuer)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "tollgate_session" {
			return state.Key(c.Value)
		}
	}
	b.t.Fatal("no session cookie after signing in")
	return ""
}

// signedIn reports whether prompt=none gets a code (the session holds) rather than
// login_required.
func (b *browser) signedIn() bool {
	b.t.Helper()
	resp, body := b.do("GET", authRequest("none"), nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || err != nil || !strings.HasPrefix(loc.String(), "https://app.test/cb") {
		b.t.Fatalf("prompt=none: %d %q %.200s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return loc.Query().Get("code") != ""
}

type adminGrants struct {
	Sessions []struct {
		Handle           string
		AuthTime         time.Time `json:"auth_time"`
		Created, Expires time.Time
	} `json:"sessions"`
	Families []struct {
		Handle           string
		ClientID         string `json:"client_id"`
		Scopes           []string
		Created, Expires time.Time
	} `json:"refresh_families"`
}

// TestAdminAPIUserSessions: the operator lists alice's sessions and refresh families, ends one
// session (that browser is signed out, the other not), revokes one family (its refresh token is
// refused and its access token denied at the edge, the other family's still work), then signs
// her out everywhere.
func TestAdminAPIUserSessions(t *testing.T) {
	s := newAdminSetup(t)
	ctx := context.Background()
	one, two := newBrowser(t, s.a), newBrowser(t, s.a)
	handleOne, handleTwo := one.signIn(), two.signIn()
	cli := oauth2.Config{ClientID: "cli", ClientSecret: "cli-secret-value-for-the-admin-test",
		Endpoint: oauth2.Endpoint{TokenURL: s.a + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"read", "offline_access"}}
	first, err := cli.PasswordCredentialsToken(ctx, "alice", "alice-password-value")
	if err != nil {
		t.Fatal(err)
	}
	second, err := cli.PasswordCredentialsToken(ctx, "alice", "alice-password-value")
	if err != nil {
		t.Fatal(err)
	}
	if first.RefreshToken == "" || second.RefreshToken == "" {
		t.Fatal("the password grant gave no refresh token")
	}
	familyOf := func(rt string) string { return state.Key(rt[:22]) }
	users := s.onA("/tollgate/users/alice/sessions")

	raw := s.want(t, 200, "GET", users, "")
	var g adminGrants
	if err := json.Unmarshal([]byte(raw), &g); err != nil {
		t.Fatal(err)
	}
	var sessions, families []string
	for _, x := range g.Sessions {
		sessions = append(sessions, x.Handle)
		if x.Created.IsZero() || !x.Expires.After(time.Now()) || x.AuthTime.IsZero() {
			t.Errorf("session %+v", x)
		}
	}
	for _, f := range g.Families {
		families = append(families, f.Handle)
		if f.ClientID != "cli" || !slices.Contains(f.Scopes, "offline_access") || !f.Expires.After(time.Now()) {
			t.Errorf("family %+v", f)
		}
	}
	if want := []string{handleOne, handleTwo}; !sameSet(sessions, want) {
		t.Errorf("sessions %v, want %v", sessions, want)
	}
	if want := []string{familyOf(first.RefreshToken), familyOf(second.RefreshToken)}; !sameSet(families, want) {
		t.Errorf("refresh families %v, want %v", families, want)
	}
	for _, secret := range []string{first.RefreshToken, second.RefreshToken, first.AccessToken, first.RefreshToken[:22]} {
		if strings.Contains(raw, secret) {
			t.Errorf("the listing shows a token: %s", raw)
		}
	}
	// Other users and the other issuer have none of them; a name with "@" is one segment.
	for _, path := range []string{s.onA("/tollgate/users/bob%40example.com/sessions"), s.onA("/tollgate/users/bob@example.com/sessions"),
		"/tollgate/users/alice/sessions?" + url.Values{"issuer": {s.b}}.Encode()} {
		if body := s.want(t, 200, "GET", path, ""); body != `{"refresh_families":[],"sessions":[]}` {
			t.Errorf("GET %s: %s", path, body)
		}
	}

	// One session ends; not by another user's name, nor twice.
	s.want(t, 404, "DELETE", s.onA("/tollgate/users/bob@example.com/sessions/"+handleOne), "")
	s.want(t, 404, "DELETE", s.onA("/tollgate/users/alice/sessions/not-a-handle"), "")
	if !one.signedIn() {
		t.Fatal("a refused DELETE signed the browser out")
	}
	s.want(t, 204, "DELETE", s.onA("/tollgate/users/alice/sessions/"+handleOne), "")
	s.want(t, 404, "DELETE", s.onA("/tollgate/users/alice/sessions/"+handleOne), "")
	if one.signedIn() {
		t.Error("the ended session still signs its browser in")
	}
	if !two.signedIn() {
		t.Error("ending one session signed the other browser out")
	}

	// One family is revoked: its refresh token is refused, its access token denied at the edge.
	if resp, body := bearerRequest(t, "GET", s.api+"/v1/x", first.AccessToken); resp.StatusCode != 200 {
		t.Fatalf("the first access token before its revocation: %d %s", resp.StatusCode, body)
	}
	s.want(t, 404, "DELETE", s.onA("/tollgate/users/bob@example.com/refresh_families/"+familyOf(first.RefreshToken)), "")
	s.want(t, 204, "DELETE", s.onA("/tollgate/users/alice/refresh_families/"+familyOf(first.RefreshToken)), "")
	s.want(t, 404, "DELETE", s.onA("/tollgate/users/alice/refresh_families/"+familyOf(first.RefreshToken)), "")
	refresh := func(rt string) (*oauth2.Token, error) {
		return cli.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	var re *oauth2.RetrieveError
	if _, err := refresh(first.RefreshToken); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("the revoked family's refresh token: %v, want invalid_grant", err)
	}
	if resp, _ := bearerRequest(t, "GET", s.api+"/v1/x", first.AccessToken); resp.StatusCode != 401 {
		t.Errorf("the revoked family's access token at the edge: %d, want 401", resp.StatusCode)
	}
	if resp, body := bearerRequest(t, "GET", s.api+"/v1/x", second.AccessToken); resp.StatusCode != 200 {
		t.Errorf("the other family's access token: %d %s", resp.StatusCode, body)
	}
	rotated, err := refresh(second.RefreshToken)
	if err != nil {
		t.Fatalf("the other family's refresh token: %v", err)
	}
	if err := json.Unmarshal([]byte(s.want(t, 200, "GET", users, "")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Sessions) != 1 || g.Sessions[0].Handle != handleTwo || len(g.Families) != 1 || g.Families[0].Handle != familyOf(second.RefreshToken) {
		t.Errorf("after ending one of each: %+v", g)
	}

	// Everything of alice ends.
	s.want(t, 204, "DELETE", users, "")
	if two.signedIn() {
		t.Error("signed out everywhere, the browser is still signed in")
	}
	if _, err := refresh(rotated.RefreshToken); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("signed out everywhere, the refresh token: %v, want invalid_grant", err)
	}
	if body := s.want(t, 200, "GET", users, ""); body != `{"refresh_families":[],"sessions":[]}` {
		t.Errorf("after signing out everywhere: %s", body)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

package issuer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

const testIssuer = "https://auth.test"

func testConfig() Config {
	return Config{
		Issuer: testIssuer,
		Clients: []Client{
			{ID: "svc", Secret: "s3cret", Grants: []string{"client_credentials"}, Scopes: []string{"read", "write", "openid"},
				Audience: []string{"https://api.test"}},
			{ID: "spa", Scopes: []string{"read"},
				RedirectURIs: []string{"https://app.test/cb"}},
			{ID: "odd:id", Secret: "p@ss word", Grants: []string{"client_credentials"}, Scopes: []string{"read"}},
		},
	}
}

// newTestServer returns an issuer on a fresh bolt file.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "issuer.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tokenRequestOf(body string, mutate ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testIssuer+PathToken, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, m := range mutate {
		m(r)
	}
	return r
}

func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func TestTokenEndpointErrors(t *testing.T) {
	s := newTestServer(t, testConfig())
	huge := "grant_type=client_credentials&x=" + strings.Repeat("a", maxFormBytes)
	tests := []struct {
		name       string
		req        *http.Request
		status     int
		code       string
		basicAuthn bool // expect a WWW-Authenticate: Basic challenge
	}{
		{"GET", httptest.NewRequest(http.MethodGet, testIssuer+PathToken+"?grant_type=client_credentials", nil), 405, "invalid_request", false},
		{"JSON body", tokenRequestOf(`{"grant_type":"client_credentials"}`, func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }), 400, "invalid_request", false},
		{"no content type", tokenRequestOf("grant_type=client_credentials", func(r *http.Request) { r.Header.Del("Content-Type") }), 400, "invalid_request", false},
		{"body too large", tokenRequestOf(huge, basic("svc", "s3cret")), 413, "invalid_request", false},
		{"malformed form", tokenRequestOf("grant_type=%zz", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"repeated grant_type", tokenRequestOf("grant_type=client_credentials&grant_type=password", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"repeated scope", tokenRequestOf("grant_type=client_credentials&scope=read&scope=write", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"no grant_type", tokenRequestOf("scope=read", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"no client", tokenRequestOf("grant_type=client_credentials"), 401, "invalid_client", false},
		{"unknown client post", tokenRequestOf("grant_type=client_credentials&client_id=nobody&client_secret=x"), 401, "invalid_client", false},
		{"unknown client basic", tokenRequestOf("grant_type=client_credentials", basic("nobody", "x")), 401, "invalid_client", true},
		{"wrong secret basic", tokenRequestOf("grant_type=client_credentials", basic("svc", "wrong")), 401, "invalid_client", true},
		{"secret prefix basic", tokenRequestOf("grant_type=client_credentials", basic("svc", "s3cre")), 401, "invalid_client", true},
		{"empty secret basic", tokenRequestOf("grant_type=client_credentials", basic("svc", "")), 401, "invalid_client", true},
		{"wrong secret post", tokenRequestOf("grant_type=client_credentials&client_id=svc&client_secret=wrong"), 401, "invalid_client", false},
		{"confidential without secret", tokenRequestOf("grant_type=client_credentials&client_id=svc"), 401, "invalid_client", false},
		{"malformed basic", tokenRequestOf("grant_type=client_credentials", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }), 401, "invalid_client", true},
		{"basic and post", tokenRequestOf("grant_type=client_credentials&client_secret=s3cret", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"basic id mismatch", tokenRequestOf("grant_type=client_credentials&client_id=spa", basic("svc", "s3cret")), 400, "invalid_request", false},
		{"public client with secret", tokenRequestOf("grant_type=client_credentials&client_id=spa&client_secret=x"), 401, "invalid_client", false},
		{"public client cc", tokenRequestOf("grant_type=client_credentials&client_id=spa"), 400, "unauthorized_client", false},
		{"public client in Basic with empty password", tokenRequestOf("grant_type=client_credentials", basic("spa", "")), 400, "unauthorized_client", false},
		{"public client in Basic with a password", tokenRequestOf("grant_type=client_credentials", basic("spa", "guess")), 401, "invalid_client", true},
		{"unknown grant", tokenRequestOf("grant_type=magic", basic("svc", "s3cret")), 400, "unsupported_grant_type", false},
		{"grant not allowed", tokenRequestOf("grant_type=authorization_code&code=x", basic("svc", "s3cret")), 400, "unauthorized_client", false},
		{"scope not allowed", tokenRequestOf("grant_type=client_credentials&scope=admin", basic("svc", "s3cret")), 400, "invalid_scope", false},
		{"openid for a client", tokenRequestOf("grant_type=client_credentials&scope=openid", basic("svc", "s3cret")), 400, "invalid_scope", false},
		{"scope with a quote", tokenRequestOf("grant_type=client_credentials&scope=re%22ad", basic("svc", "s3cret")), 400, "invalid_scope", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tc.req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", w.Code, tc.status, w.Body)
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body is not JSON: %q", w.Body)
			}
			if body.Error != tc.code {
				t.Fatalf("error %q, want %q", body.Error, tc.code)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Fatalf("Cache-Control %q", got)
			}
			challenge := w.Header().Get("WWW-Authenticate")
			if tc.basicAuthn != strings.HasPrefix(challenge, "Basic ") {
				t.Fatalf("WWW-Authenticate %q, want Basic challenge: %v", challenge, tc.basicAuthn)
			}
			if strings.Contains(w.Body.String(), "s3cret") {
				t.Fatal("response echoes the secret")
			}
		})
	}
}

func TestClientCredentialsToken(t *testing.T) {
	s := newTestServer(t, testConfig())
	tests := []struct {
		name, body string
		auth       func(*http.Request)
		wantScope  string
		wantAud    []string
		wantSub    string
	}{
		{"basic, default scopes", "grant_type=client_credentials", basic("svc", "s3cret"), "read write", []string{"https://api.test"}, "svc"},
		{"post, narrowed scope", "grant_type=client_credentials&client_id=svc&client_secret=s3cret&scope=write", nil, "write", []string{"https://api.test"}, "svc"},
		{"repeated scope token", "grant_type=client_credentials&scope=read+read", basic("svc", "s3cret"), "read", []string{"https://api.test"}, "svc"},
		{"form-encoded basic credentials", "grant_type=client_credentials", basic("odd:id", "p@ss word"), "read", []string{"odd:id"}, "odd:id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mut []func(*http.Request)
			if tc.auth != nil {
				mut = append(mut, tc.auth)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tokenRequestOf(tc.body, mut...))
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Pragma") != "no-cache" {
				t.Fatalf("missing no-store headers: %v", w.Header())
			}
			var resp tokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != 600 || resp.Scope != tc.wantScope || resp.RefreshToken != "" {
				t.Fatalf("response %+v", resp)
			}
			var claims accesstoken.Claims
			tok, err := jwt.ParseWithClaims(resp.AccessToken, &claims, s.Keys().Keyfunc,
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(testIssuer), jwt.WithExpirationRequired())
			if err != nil {
				t.Fatal(err)
			}
			if tok.Header["typ"] != "at+jwt" || tok.Header["kid"] == "" {
				t.Fatalf("header %v", tok.Header)
			}
			if claims.Subject != tc.wantSub || claims.ClientID != tc.wantSub || claims.Scope != tc.wantScope ||
				strings.Join(claims.Audience, " ") != strings.Join(tc.wantAud, " ") || len(claims.ID) < 22 || claims.IssuedAt == nil {
				t.Fatalf("claims %+v", claims)
			}
		})
	}
}

func TestMetadataAndJWKS(t *testing.T) {
	s := newTestServer(t, testConfig())
	for _, path := range []string{PathOpenIDConfiguration, PathOAuthMetadata} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", testIssuer+path, nil))
		var md metadata
		if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %v", path, w.Code, err)
		}
		if md.Issuer != testIssuer || md.TokenEndpoint != testIssuer+PathToken || md.JWKSURI != testIssuer+PathJWKS ||
			md.IntrospectionEndpoint != testIssuer+PathIntrospect || md.RevocationEndpoint != testIssuer+PathRevoke {
			t.Fatalf("%s: %+v", path, md)
		}
		for _, g := range []string{"authorization_code", "client_credentials"} { // what testConfig's clients have
			if !contains(md.GrantTypesSupported, g) {
				t.Errorf("%s: grant %s not listed in %v", path, g, md.GrantTypesSupported)
			}
		}
		// PKCE S256 only, iss in authorization responses (RFC 9207), nothing never issued.
		if len(md.CodeChallengeMethodsSupported) != 1 || md.CodeChallengeMethodsSupported[0] != "S256" ||
			!md.AuthorizationResponseISS || contains(md.ClaimsSupported, "c_hash") {
			t.Errorf("%s: PKCE %v, iss parameter %v, claims %v", path, md.CodeChallengeMethodsSupported,
				md.AuthorizationResponseISS, md.ClaimsSupported)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", testIssuer+PathJWKS, nil))
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks %s", w.Body)
	}
	algs := map[string]string{}
	for _, k := range set.Keys {
		if k["use"] != "sig" || k["kid"] == "" {
			t.Fatalf("jwk %v", k)
		}
		algs[k["alg"].(string)] = k["kty"].(string)
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				t.Fatalf("JWKS publishes private key material %q", private)
			}
		}
	}
	if algs["ES256"] != "EC" || algs["RS256"] != "RSA" {
		t.Fatalf("want an ES256 access-token key and an RS256 ID-token key, got %v", algs)
	}
	if s.Route("/api/anything") != nil || s.Route("/oauth2/tokenx") != nil {
		t.Fatal("issuer claims a path that is not its own")
	}
}

func TestIssuerWithPath(t *testing.T) {
	cfg := testConfig()
	cfg.Issuer = "https://example.test/tenant-a"
	s := newTestServer(t, cfg)
	// RFC 8414 §3.1 path insertion, and the same for OpenID discovery (which MCP clients try).
	for _, p := range []string{"/tenant-a" + PathOpenIDConfiguration, PathOAuthMetadata + "/tenant-a",
		PathOpenIDConfiguration + "/tenant-a", "/tenant-a" + PathToken} {
		if s.Route(p) == nil {
			t.Errorf("%s is not routed", p)
		}
	}
	if s.Route(PathToken) != nil {
		t.Error("token endpoint served outside the issuer path")
	}
}

func TestKeysSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.db")
	issue := func() (string, []byte) {
		st, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, err := New(context.Background(), testConfig(), Deps{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, tokenRequestOf("grant_type=client_credentials", basic("svc", "s3cret")))
		var resp tokenResponse
		_ = json.Unmarshal(w.Body.Bytes(), &resp)
		return resp.AccessToken, append([]byte(nil), s.Keys().JWKS()...)
	}
	tok1, jwks1 := issue()
	_, jwks2 := issue()
	if string(jwks1) != string(jwks2) {
		t.Fatalf("JWKS changed across a restart:\n%s\n%s", jwks1, jwks2)
	}
	// The token from before the restart verifies against the restarted issuer's keys.
	st, _ := bolt.Open(path, bolt.Options{})
	defer st.Close()
	s, err := New(context.Background(), testConfig(), Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.ParseWithClaims(tok1, &accesstoken.Claims{}, s.Keys().Keyfunc, jwt.WithValidMethods([]string{"ES256"})); err != nil {
		t.Fatalf("old token no longer verifies: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no issuer", Config{}, "issuer is required"},
		{"http issuer off loopback", Config{Issuer: "http://auth.example.com"}, "loopback"},
		{"issuer with query", Config{Issuer: "https://a.test/?x=1"}, "query"},
		{"ftp issuer", Config{Issuer: "ftp://a.test"}, "https"},
		{"public cc", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", Grants: []string{"client_credentials"}}}}, "public client"},
		{"unknown grant", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", Grants: []string{"magic"}}}}, "unknown grant"},
		{"duplicate client", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"https://a.test/cb"}}, {ID: "c", RedirectURIs: []string{"https://a.test/cb"}}}}, "defined twice"},
		{"plain password", Config{Issuer: testIssuer, Users: []User{{Name: "u", PasswordHash: "hunter2"}}}, "plain password"},
		{"bad signing alg", Config{Issuer: testIssuer, SigningAlg: "HS256"}, `signing_alg "HS256" is not supported`},
		{"bad ID token alg", Config{Issuer: testIssuer, IDTokenSigningAlg: "none"}, `id_token_signing_alg "none" is not supported`},
		{"relative redirect", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"/cb"}}}}, "absolute"},
		{"code client without redirect_uri", Config{Issuer: testIssuer, Clients: []Client{{ID: "c"}}}, "needs a redirect_uri"},
		{"http redirect off loopback", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"http://app.test/cb"}}}}, "loopback"},
		{"javascript redirect", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"javascript:alert(1)"}}}}, "cannot be a redirect target"},
		{"javascript after logout", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"https://a.test/cb"},
			PostLogoutRedirectURIs: []string{"javascript:alert(1)"}}}}, "cannot be a redirect target"},
		{"http after logout off loopback", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", RedirectURIs: []string{"https://a.test/cb"},
			PostLogoutRedirectURIs: []string{"http://app.test/bye"}}}}, "loopback"},
		{"public password grant", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", Grants: []string{"password"}}}}, "cannot use the password grant"},
		{"bad consent", Config{Issuer: testIssuer, Clients: []Client{{ID: "c", Consent: "maybe", RedirectURIs: []string{"https://a.test/cb"}}}}, "consent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, err = New(context.Background(), tc.cfg, Deps{Store: st})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkClientCredentials measures the whole token endpoint for one client-credentials
// token: form parsing, client authentication, scope check, ES256 signing, JSON response.
func BenchmarkClientCredentials(b *testing.B) {
	benchClientCredentials(b, newTestServer(b, testConfig()))
}

// benchClientCredentials asks s for client-credentials tokens of testConfig's svc client.
func benchClientCredentials(b *testing.B, s *Server) {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:s3cret"))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, testIssuer+PathToken, strings.NewReader("grant_type=client_credentials&scope=read"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Body)
		}
	}
}

// recordToken posts body to the token endpoint with Basic client credentials.
func recordToken(s *Server, body, id, secret string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, tokenRequestOf(body, basic(id, secret)))
	return w
}

// serve sends one request to s.
func serve(s *Server, method, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, testIssuer+target, nil))
	return w
}

// serveForm posts a form body to path with Basic client credentials.
func serveForm(s *Server, path, body, id, secret string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, testIssuer+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	basic(id, secret)(r)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

package policy

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// denyList is a RevocationChecker with nothing revoked; requires says what RequiresJTI answers
// (nil: it does not implement JTIRequirer).
type denyList struct{ requires *bool }

func (denyList) Revoked(string) bool { return false }

type optionalDenyList struct{ denyList }

func (d optionalDenyList) RequiresJTI() bool { return *d.requires }

// TestStrictClaims: iss is compared exactly, exp/nbf/iat must be JSON numbers, and a token of an
// issuer with a deny-list must carry a jti.
func TestStrictClaims(t *testing.T) {
	k := sharedKeys()
	set := func(name string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[name] = v } }
	del := func(name string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, name) } }
	now := time.Now()
	no, yes := false, true
	withDenyList := func(rc RevocationChecker) func(*Config) {
		return func(c *Config) {
			c.Issuer = ""
			c.Issuers = []TrustedIssuer{{Issuer: testIssuer, Keys: k, Revocations: rc}}
		}
	}
	tests := []struct {
		name string
		cfg  func(*Config)
		edit func(jwt.MapClaims)
		err  error // nil: allowed
	}{
		{name: "iss exact", edit: nil},
		{name: "iss with a trailing slash", edit: set("iss", testIssuer+"/"), err: jwt.ErrTokenInvalidIssuer},
		{name: "configured with a trailing slash, iss without", cfg: func(c *Config) { c.Issuer = testIssuer + "/" }, err: jwt.ErrTokenInvalidIssuer},
		{name: "configured and iss with a trailing slash", cfg: func(c *Config) { c.Issuer = testIssuer + "/" }, edit: set("iss", testIssuer+"/")},
		{name: "iss of another case", edit: set("iss", strings.ToUpper(testIssuer)), err: jwt.ErrTokenInvalidIssuer},

		{name: "exp as a string", edit: set("exp", "4102444800"), err: errNotNumericDate},
		{name: "nbf as a string", edit: set("nbf", "0"), err: errNotNumericDate},
		{name: "iat as a string", edit: set("iat", "1700000000"), err: errNotNumericDate},
		{name: "exp as an object", edit: set("exp", map[string]any{"n": 1}), err: errNotNumericDate},
		{name: "exp as a fraction", edit: set("exp", float64(now.Add(time.Minute).Unix())+0.5)},
		{name: "nbf null counts as absent", edit: set("nbf", nil)},
		{name: "exp null is missing", edit: set("exp", nil), err: jwt.ErrTokenRequiredClaimMissing},

		{name: "no jti, no deny-list", edit: del("jti")},
		{name: "no jti, with a deny-list", cfg: withDenyList(denyList{}), edit: del("jti"), err: errNoJTI},
		{name: "empty jti, with a deny-list", cfg: withDenyList(denyList{}), edit: set("jti", ""), err: errNoJTI},
		{name: "jti, with a deny-list", cfg: withDenyList(denyList{})},
		{name: "no jti, a deny-list that requires it", cfg: withDenyList(optionalDenyList{denyList{&yes}}), edit: del("jti"), err: errNoJTI},
		{name: "no jti, a deny-list not in use", cfg: withDenyList(optionalDenyList{denyList{&no}}), edit: del("jti")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGate(t, k, tc.cfg)
			d := authorize(g, k.mint(t, "ES256", "at+jwt", tc.edit))
			switch {
			case tc.err == nil && d != nil:
				t.Fatalf("denied: %v", d)
			case tc.err != nil && (d == nil || d.Status != 401 || !errors.Is(d, tc.err)):
				t.Fatalf("got %v, want 401 for %v", d, tc.err)
			}
		})
	}

	_, err := New(Config{Audience: []string{"a"}, Issuers: []TrustedIssuer{
		{Issuer: "https://idp.example", Keys: k}, {Issuer: "https://idp.example/", Keys: k}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "compared exactly") {
		t.Errorf("two issuers differing by a trailing slash: %v", err)
	}
}

// TestAcceptJWTType: with AcceptJWTType, access tokens typed JWT (or untyped) pass, ID tokens do
// not; without it, only at+jwt passes.
func TestAcceptJWTType(t *testing.T) {
	k := sharedKeys()
	set := func(kv ...any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			for i := 0; i < len(kv); i += 2 {
				c[kv[i].(string)] = kv[i+1]
			}
		}
	}
	accept := func(c *Config) {
		c.Issuer = ""
		// "webapp" is also an audience here, as when an API's audience is a client id.
		c.Issuers = []TrustedIssuer{{Issuer: testIssuer, Keys: k, AcceptJWTType: true, Audience: []string{testAudience, "webapp"}}}
	}
	tests := []struct {
		name   string
		cfg    func(*Config)
		typ    string
		header map[string]any // replaces typ when set
		edit   func(jwt.MapClaims)
		err    error // nil: allowed
	}{
		{name: "typ JWT refused by default", typ: "JWT", err: errNotAccessToken},
		{name: "no typ refused by default", typ: "", err: errNotAccessToken},
		{name: "typ JWT", cfg: accept, typ: "JWT", edit: set("azp", "webapp")},
		{name: "typ jwt, lower case", cfg: accept, typ: "jwt"},
		{name: "typ application/jwt", cfg: accept, typ: "application/jwt"},
		{name: "no typ", cfg: accept, typ: ""},
		{name: "at+jwt still", cfg: accept, typ: "at+jwt"},
		{name: "at+jwt with a nonce is typed explicitly", cfg: accept, typ: "at+jwt", edit: set("nonce", "n")},
		{name: "another typ", cfg: accept, typ: "dpop+jwt", err: errNotAccessToken},
		{name: "typ not a string", cfg: accept, header: map[string]any{"typ": 1}, err: errNotAccessToken},
		{name: "Keycloak access token", cfg: accept, typ: "JWT", edit: set("typ", "Bearer", "azp", "webapp")},
		{name: "Keycloak access token with a nonce", cfg: accept, typ: "JWT", edit: set("typ", "Bearer", "azp", "webapp", "nonce", "n")},

		{name: "ID token: nonce", cfg: accept, typ: "JWT", edit: set("nonce", "n"), err: errIDToken},
		{name: "ID token: at_hash", cfg: accept, typ: "JWT", edit: set("at_hash", "x"), err: errIDToken},
		{name: "ID token: c_hash", cfg: accept, typ: "", edit: set("c_hash", "x"), err: errIDToken},
		{name: "ID token: Keycloak typ ID", cfg: accept, typ: "JWT", edit: set("typ", "ID"), err: errIDToken},
		{name: "ID token: aud is its azp", cfg: accept, typ: "JWT", edit: set("aud", "webapp", "azp", "webapp", "client_id", nil), err: errIDToken},
		{name: "ID token: aud is its client_id", cfg: accept, typ: "JWT", edit: set("aud", []string{"webapp"}), err: errIDToken},
		{name: "aud names the API and the client", cfg: accept, typ: "JWT", edit: set("aud", []string{"webapp", testAudience}, "azp", "webapp")},
		{name: "aud is a client id, but not this token's", cfg: accept, typ: "JWT", edit: set("aud", "webapp", "client_id", "other")},
		{name: "ID token: nothing but iss, aud, sub and times", cfg: accept, typ: "JWT", err: errIDToken,
			edit: func(c jwt.MapClaims) {
				delete(c, "client_id")
				delete(c, "scope")
				c["aud"], c["auth_time"] = "webapp", 1
			}},
		{name: "ID token: null markers", cfg: accept, typ: "JWT", edit: set("aud", "webapp", "client_id", nil, "scope", nil), err: errIDToken},
		{name: "access token with a scope, no client_id", cfg: accept, typ: "JWT", edit: func(c jwt.MapClaims) { delete(c, "client_id") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGate(t, k, tc.cfg)
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, baseClaims())
			if tc.edit != nil {
				tc.edit(tok.Claims.(jwt.MapClaims))
			}
			tok.Header["kid"] = "es"
			delete(tok.Header, "typ")
			if tc.typ != "" {
				tok.Header["typ"] = tc.typ
			}
			for name, v := range tc.header {
				tok.Header[name] = v
			}
			raw, err := tok.SignedString(k.es)
			if err != nil {
				t.Fatal(err)
			}
			d := authorize(g, raw)
			switch {
			case tc.err == nil && d != nil:
				t.Fatalf("denied: %v", d)
			case tc.err != nil && (d == nil || d.Status != 401 || !errors.Is(d, tc.err)):
				t.Fatalf("got %v, want 401 for %v", d, tc.err)
			}
		})
	}
}

// TestUnknownKIDFlood: while many goroutines send tokens with made-up kids (valid but for the
// kid, so they reach the key lookup), the issuer's JWKS is fetched at most once a second, and a
// key the issuer publishes in the middle of the flood is accepted on the first try, within 5 s.
// Tokens that fail the cheap checks never cause a fetch.
func TestUnknownKIDFlood(t *testing.T) {
	j := newJWKSIssuer(t, "k1")
	g, rk := remoteGate(t, RemoteOptions{Issuer: j.URL()})
	waitReady(t, rk)
	if d := authorize(g, j.mint(t, "k1", nil)); d != nil {
		t.Fatal(d)
	}

	// Cheap checks first: none of these may spend a fetch.
	before := j.jwksHits.Load()
	for name, edit := range map[string]func(jwt.MapClaims){
		"expired":        func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() },
		"wrong audience": func(c jwt.MapClaims) { c["aud"] = "https://other.example" },
		"not yet valid":  func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() },
		"string exp":     func(c jwt.MapClaims) { c["exp"] = "4102444800" },
		"wrong issuer":   func(c jwt.MapClaims) { c["iss"] = j.URL() + "/" },
	} {
		for range 20 {
			if d := authorize(g, j.mint(t, "random-"+name, edit)); d == nil || d.Status != 401 {
				t.Fatalf("%s: %v", name, d)
			}
		}
	}
	if n := j.jwksHits.Load() - before; n != 0 {
		t.Fatalf("tokens failing the cheap checks caused %d JWKS fetches", n)
	}

	flood := make([]string, 64)
	for i := range flood {
		flood[i] = j.mint(t, "made-up-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Now().Format("150405.000000"), nil)
	}
	start, startHits := time.Now(), j.jwksHits.Load()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if d := authorize(g, flood[i%len(flood)]); d == nil || d.Status != 401 {
					t.Errorf("made-up kid: %v", d)
					return
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	j.addKey("k2")
	published := time.Now()
	d := authorize(g, j.mint(t, "k2", nil))
	took := time.Since(published)
	if d != nil {
		t.Errorf("a key published during the flood, first try: %v", d)
	}
	if took > 5*time.Second {
		t.Errorf("a key published during the flood took %s", took)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	fetches := int(j.jwksHits.Load() - startHits)
	if limit := int(elapsed/time.Second) + 1; fetches > limit || fetches < 2 {
		t.Errorf("%d JWKS fetches in %s of flood, want between 2 and %d", fetches, elapsed, limit)
	}
	t.Logf("flood of %s: %d fetches; the new key was accepted after %s", elapsed.Round(time.Millisecond), fetches, took.Round(time.Millisecond))
}

// TestInsecureHTTP: plain http:// is refused beyond loopback unless allowed.
func TestInsecureHTTP(t *testing.T) {
	for _, tc := range []struct {
		url   string
		allow bool
		ok    bool
	}{
		{"https://idp.example", false, true},
		{"http://idp.example", false, false},
		{"http://idp.example", true, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://127.9.9.9", false, true},
		{"http://[::1]:8080/realm", false, true},
		{"http://localhost:9000", false, true},
		{"http://LOCALHOST.", false, true},
		{"http://auth.localhost", false, true},
		{"http://localhost.example.com", false, false},
		{"http://10.0.0.1", false, false},
		{"http://[::ffff:10.0.0.1]", false, false},
		{"ftp://idp.example", true, false},
		{"idp.example", true, false},
	} {
		err := CheckIssuerURL(tc.url, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("CheckIssuerURL(%q, %v) = %v", tc.url, tc.allow, err)
		}
		if !tc.ok && strings.HasPrefix(tc.url, "http://") && !errors.Is(err, ErrInsecureHTTP) {
			t.Errorf("%q: %v does not wrap ErrInsecureHTTP", tc.url, err)
		}
	}
	if _, err := NewRemoteKeys(RemoteOptions{Issuer: "http://idp.example"}); !errors.Is(err, ErrInsecureHTTP) {
		t.Errorf("remote keys of an http issuer: %v", err)
	}
	if _, err := NewRemoteKeys(RemoteOptions{Issuer: "https://idp.example", JWKSURL: "http://idp.example/jwks"}); !errors.Is(err, ErrInsecureHTTP) {
		t.Errorf("remote keys from an http JWKS: %v", err)
	}
	if _, err := NewRemoteKeys(RemoteOptions{Issuer: "http://idp.example", AllowInsecureHTTP: true}); err != nil {
		t.Errorf("allowed: %v", err)
	}
	_, err := New(Config{Audience: []string{"a"}, Issuers: []TrustedIssuer{{Issuer: "https://idp.example",
		Introspection: &Introspection{Endpoint: "http://idp.example/introspect", ClientID: "gw"}}}}, nil)
	if !errors.Is(err, ErrInsecureHTTP) {
		t.Errorf("introspection over http: %v", err)
	}
}

// TestDiscoveredInsecureJWKS: discovery that names a plain-http JWKS beyond loopback fails the
// fetch; the issuer's tokens get 503, not keys fetched in clear.
func TestDiscoveredInsecureJWKS(t *testing.T) {
	md := httptest.NewTLSServer(nil)
	md.Config.Handler = jsonHandler(map[string]any{"issuer": md.URL, "jwks_uri": "http://idp.example/jwks"})
	t.Cleanup(md.Close)
	events := make(chan FetchEvent, 4)
	rk, err := NewRemoteKeys(RemoteOptions{Issuer: md.URL, Client: md.Client(), RetryMin: time.Hour,
		OnFetch: func(ev FetchEvent) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	rk.Start(ctx)
	ev := <-events
	if !errors.Is(ev.Err, ErrInsecureHTTP) || rk.Ready() {
		t.Fatalf("fetch event %+v", ev)
	}
}

// jsonHandler answers every request with v as JSON.
func jsonHandler(v any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

// TestIssuerHTTPClient: a private CA is trusted only when given, and a redirect to plain http
// beyond loopback is not followed.
func TestIssuerHTTPClient(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, "http://idp.example/jwks", http.StatusFound)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	get := func(c *http.Client, path string) error {
		resp, err := c.Get(srv.URL + path)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(NewIssuerHTTPClient(ClientOptions{}), "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a private CA trusted without being configured: %v", err)
	}
	withCA := NewIssuerHTTPClient(ClientOptions{RootCAs: pool})
	if err := get(withCA, "/"); err != nil {
		t.Errorf("with the private CA: %v", err)
	}
	if err := get(withCA, "/away"); !errors.Is(err, ErrInsecureHTTP) {
		t.Errorf("redirect to plain http: %v", err)
	}
}

// TestClaimNamesExact: a claim whose name differs from a registered one only by case is not
// read as it ("Scope" does not widen "scope", "EXP" is no expiry).
func TestClaimNamesExact(t *testing.T) {
	k := sharedKeys()
	g, err := New(testConfig(), k)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/admin/x", nil)
	r.Header.Set("Authorization", "Bearer "+k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["Scope"] = "read admin" }))
	if tok, d := g.Authorize(r); d == nil || d.Status != 403 || tok.Claims.Scope != "read" {
		t.Fatalf("Scope beside scope: %v", d)
	}
	if v, _ := func() (*Token, *Denial) { return g.Authorize(r) }(); v != nil {
		if s, _ := v.ClaimText("Scope"); s != "read admin" {
			t.Errorf("the Scope claim itself is kept as a claim: %q", s)
		}
	}
	// encoding/json folds Unicode too: "ſcope" (long s) and "ſub" are variants of scope and sub.
	r.Header.Set("Authorization", "Bearer "+k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) {
		c["\u017fcope"], c["\u017fub"] = "read admin", "root"
	}))
	if tok, d := g.Authorize(r); d == nil || d.Status != 403 || tok.Claims.Scope != "read" || tok.Claims.Subject == "root" {
		t.Fatalf("ſcope and ſub beside scope and sub: %v", d)
	}
	exp := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["EXP"] = c["exp"]; delete(c, "exp") })
	if d := authorize(g, exp); d == nil || !errors.Is(d, jwt.ErrTokenRequiredClaimMissing) {
		t.Fatalf("EXP instead of exp: %v", d)
	}
}

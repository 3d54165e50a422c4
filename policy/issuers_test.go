package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestSeveralIssuers: each token is verified by the issuer its iss names, with that issuer's keys
// and audience; another issuer's key under a known kid is refused.
func TestSeveralIssuers(t *testing.T) {
	a, b := newJWKSIssuer(t, "shared-kid"), newJWKSIssuer(t, "shared-kid")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	keys := func(j *jwksIssuer) KeySource {
		rk, err := NewRemoteKeys(RemoteOptions{Issuer: j.URL(), UnknownKIDInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		rk.Start(ctx)
		waitReady(t, rk)
		return rk
	}
	g, err := New(Config{
		Audience: []string{testAudience},
		Issuers: []TrustedIssuer{
			{Issuer: a.URL(), Keys: keys(a)},
			{Issuer: b.URL(), Keys: keys(b), Audience: []string{"https://b-api.example.com"}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bAud := func(c jwt.MapClaims) { c["aud"] = "https://b-api.example.com" }
	crossSigned := b.mint(t, "shared-kid", func(c jwt.MapClaims) { c["iss"] = a.URL() }) // b's key, a's iss
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"issuer a", a.mint(t, "shared-kid", nil), true},
		{"issuer b with its audience", b.mint(t, "shared-kid", bAud), true},
		{"issuer b with the default audience", b.mint(t, "shared-kid", nil), false},
		{"b's key claiming to be a", crossSigned, false},
		{"unknown issuer", newJWKSIssuer(t, "shared-kid").mint(t, "shared-kid", nil), false},
		{"a's iss with a trailing slash", a.mint(t, "shared-kid", func(c jwt.MapClaims) { c["iss"] = a.URL() + "/" }), false},
	}
	for _, tc := range tests {
		if d := authorize(g, tc.token); (d == nil) != tc.ok {
			t.Errorf("%s: denial %v", tc.name, d)
		}
	}
	md := map[string]any{}
	_ = json.Unmarshal(g.ResourceMetadataDocument(), &md)
	if as := md["authorization_servers"].([]any); len(as) != 2 || as[0] != a.URL() {
		t.Errorf("authorization_servers %v", as)
	}
}

// introspectionServer is a real RFC 7662 endpoint: it knows the tokens in active and checks the
// caller's Basic credentials.
type introspectionServer struct {
	*httptest.Server
	calls  atomic.Int32
	active map[string]map[string]any
	fail   atomic.Bool
}

func newIntrospectionServer(t *testing.T) *introspectionServer {
	s := &introspectionServer{active: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "gw" || secret != "gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if s.fail.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.Method != http.MethodPost || r.PostFormValue("token_type_hint") != "access_token" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		resp, ok := s.active[r.PostFormValue("token")]
		if !ok {
			resp = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestIntrospection(t *testing.T) {
	is := newIntrospectionServer(t)
	exp := time.Now().Add(time.Hour).Unix()
	is.active["opaque-read"] = map[string]any{"active": true, "scope": "read", "client_id": "c1", "sub": "bob",
		"aud": testAudience, "exp": exp, "iss": "https://idp.example.com", "jti": "o-1", "tenant": "acme"}
	is.active["opaque-other-aud"] = map[string]any{"active": true, "scope": "read", "aud": "https://other", "exp": exp}
	is.active["opaque-expired"] = map[string]any{"active": true, "scope": "read", "aud": testAudience, "exp": time.Now().Add(-time.Hour).Unix()}
	is.active["opaque-slash"] = map[string]any{"active": true, "scope": "read", "aud": testAudience, "exp": exp, "iss": "https://idp.example.com/"}
	is.active["opaque-string-exp"] = map[string]any{"active": true, "scope": "read", "aud": testAudience, "exp": strconv.FormatInt(exp, 10)}
	cfg := testConfig()
	cfg.Issuer = ""
	cfg.Issuers = []TrustedIssuer{{Issuer: "https://idp.example.com", Introspection: &Introspection{
		Endpoint: is.URL, ClientID: "gw", ClientSecret: "gw-secret"}}}
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, token string) (*Token, *Denial) {
		r := httptest.NewRequest(method, "/v1/items", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return g.Authorize(r)
	}
	tok, d := call("GET", "opaque-read")
	if d != nil || !tok.Introspected || tok.Claims.Subject != "bob" {
		t.Fatalf("active token: %v %+v", d, tok)
	}
	if v, _ := tok.ClaimText("tenant"); v != "acme" {
		t.Errorf("tenant claim %q", v)
	}
	if _, ok := tok.Claim("active"); ok {
		t.Error(`"active" is not a claim of the token`)
	}
	// The cached result answers the second request; the route's scopes are still checked.
	if _, d := call("POST", "opaque-read"); d == nil || d.Status != 403 {
		t.Fatalf("POST needs write: %v", d)
	}
	if n := is.calls.Load(); n != 1 {
		t.Fatalf("%d introspection calls, want 1 (cached)", n)
	}
	for _, tc := range []struct {
		token  string
		status int
	}{{"unknown", 401}, {"opaque-other-aud", 401}, {"opaque-expired", 401}, {"opaque-slash", 401}, {"opaque-string-exp", 401}} {
		if _, d := call("GET", tc.token); d == nil || d.Status != tc.status {
			t.Errorf("%s: %v, want %d", tc.token, d, tc.status)
		}
	}
	is.fail.Store(true)
	if _, d := call("GET", "opaque-new"); d == nil || d.Status != 503 {
		t.Errorf("endpoint failing: %v, want 503", d)
	}
	// A JWT of an unknown issuer is refused without being shown to the introspection endpoint.
	before := is.calls.Load()
	if _, d := call("GET", sharedKeys().mint(t, "ES256", "at+jwt", nil)); d == nil || d.Status != 401 {
		t.Errorf("JWT of another issuer: %v", d)
	}
	if is.calls.Load() != before {
		t.Error("a foreign JWT was sent to the introspection endpoint")
	}
}

func TestIntrospectionConfigErrors(t *testing.T) {
	two := []TrustedIssuer{
		{Issuer: "https://a", Introspection: &Introspection{Endpoint: "https://a/i", ClientID: "x"}},
		{Issuer: "https://b", Introspection: &Introspection{Endpoint: "https://b/i", ClientID: "x"}},
	}
	for name, tc := range map[string]struct {
		issuers []TrustedIssuer
		want    string
	}{
		"two introspecting issuers": {two, "only one issuer may use introspection"},
		"no client id":              {[]TrustedIssuer{{Issuer: "https://a", Introspection: &Introspection{Endpoint: "https://a/i"}}}, "client_id"},
		"bad endpoint":              {[]TrustedIssuer{{Issuer: "https://a", Introspection: &Introspection{Endpoint: "ftp://a", ClientID: "x"}}}, "not an http(s) URL"},
		"no keys":                   {[]TrustedIssuer{{Issuer: "https://a"}}, "key source is required"},
		"twice":                     {[]TrustedIssuer{{Issuer: "https://a", Keys: sharedKeys()}, {Issuer: "https://a/", Keys: sharedKeys()}}, "configured twice"},
	} {
		_, err := New(Config{Audience: []string{"x"}, Issuers: tc.issuers}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

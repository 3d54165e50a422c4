package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
	"github.com/tollgate-auth/tollgate/issuer/dpop"
)

const dpopURL = "https://api.example.com/v1/items"

// dpopRequest is GET /v1/items with Authorization scheme and token, and the proofs.
func dpopRequest(scheme, token string, proofs ...string) *http.Request {
	// httptest sets r.TLS for an https target: the request came over TLS.
	r := httptest.NewRequest(http.MethodGet, dpopURL+"?page=2", nil)
	r.URL.Scheme, r.URL.Host = "", "" // as a server sees it
	r.Header.Set("Authorization", scheme+" "+token)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// plainHTTP makes r look as if it came over plain http.
func plainHTTP(r *http.Request) *http.Request {
	r.TLS = nil
	return r
}

func TestDPoPAtTheEdge(t *testing.T) {
	k := sharedKeys()
	key, other := dpoptest.NewKey(), dpoptest.NewKey()
	bound := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": key.JKT} })
	plain := k.mint(t, "ES256", "at+jwt", nil)
	g := newTestGate(t, k, nil)
	good := key.Proof("GET", dpopURL, bound)

	for _, tc := range []struct {
		name      string
		r         *http.Request
		code      string // "" allowed
		challenge string // prefix of the first WWW-Authenticate
		err       error
	}{
		{"bound, good proof", dpopRequest("DPoP", bound, good), "", "", nil},
		{"same proof again", dpopRequest("DPoP", bound, good), CodeInvalidDPoPProof, `DPoP algs="ES256 ES384 EdDSA PS256 RS256", error="invalid_dpop_proof"`, errProofReplayed},
		{"scheme case-insensitive", dpopRequest("dpop", bound, key.Proof("GET", dpopURL, bound)), "", "", nil},
		{"bound as Bearer", dpopRequest("Bearer", bound, key.Proof("GET", dpopURL, bound)), CodeInvalidToken, `Bearer realm="https://auth.example.com", error="invalid_token"`, errBoundAsBearer},
		{"no proof", dpopRequest("DPoP", bound), CodeInvalidDPoPProof, `DPoP algs=`, errNoProof},
		{"two proofs", dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, bound), key.Proof("GET", dpopURL, bound)), CodeInvalidDPoPProof, `DPoP algs=`, errManyProofs},
		{"other key", dpopRequest("DPoP", bound, other.Proof("GET", dpopURL, bound)), CodeInvalidDPoPProof, `DPoP algs=`, errProofKey},
		{"other method", dpopRequest("DPoP", bound, key.Proof("POST", dpopURL, bound)), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"other url", dpopRequest("DPoP", bound, key.Proof("GET", "https://api.example.com/v1/other", bound)), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"https proof, http request", plainHTTP(dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, bound))), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"http proof, http request", plainHTTP(dpopRequest("DPoP", bound, key.Proof("GET", "http://API.example.com:80/v1/items", bound))), "", "", nil},
		{"no ath", dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, "")), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"ath of another token", dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, plain)), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"old proof", dpopRequest("DPoP", bound, key.Sign(dpoptest.Claims{HTM: "GET", HTU: dpopURL, ATH: dpoptest.ATH(bound)}, dpoptest.Options{Age: 5 * time.Minute})), CodeInvalidDPoPProof, `DPoP algs=`, dpop.ErrInvalidProof},
		{"unbound with DPoP scheme", dpopRequest("DPoP", plain, key.Proof("GET", dpopURL, plain)), CodeInvalidToken, `DPoP algs=`, errUnboundDPoP},
		{"unbound as Bearer", dpopRequest("Bearer", plain), "", "", nil},
		{"expired, DPoP scheme", dpopRequest("DPoP", k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) {
			c["cnf"] = map[string]any{"jkt": key.JKT}
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		})), CodeInvalidToken, `DPoP algs="ES256 ES384 EdDSA PS256 RS256", error="invalid_token", error_description="token expired"`, nil},
		{"cnf without jkt", dpopRequest("DPoP", k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"x5t#S256": "abc"} }), good), CodeInvalidToken, `DPoP algs=`, errUnknownCnf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, d := g.Authorize(tc.r)
			if tc.code == "" {
				if d != nil {
					t.Fatalf("denied: %v", d)
				}
				if tok == nil {
					t.Fatal("no token")
				}
				return
			}
			if d == nil || d.Code != tc.code || d.Status != http.StatusUnauthorized {
				t.Fatalf("denial %v, want 401 %s", d, tc.code)
			}
			if tc.err != nil && !errors.Is(d, tc.err) {
				t.Fatalf("err %v, want %v", d.Err, tc.err)
			}
			if tc.err != nil && d.Reason() != ReasonDPoP {
				t.Fatalf("reason %q", d.Reason())
			}
			w := httptest.NewRecorder()
			g.SetChallenge(w, tc.r, d)
			got := w.Header().Values("WWW-Authenticate")
			if len(got) == 0 || !strings.HasPrefix(got[0], tc.challenge) {
				t.Fatalf("challenge %q, want prefix %q", got, tc.challenge)
			}
			if tc.err == errBoundAsBearer && (len(got) != 2 || !strings.HasPrefix(got[1], `DPoP algs="`)) {
				t.Fatalf("bound-as-Bearer challenges %q", got)
			}
		})
	}
}

func TestDPoPProofPerRequestDespiteCache(t *testing.T) {
	k := sharedKeys()
	key := dpoptest.NewKey()
	bound := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": key.JKT} })
	g := newTestGate(t, k, nil)
	for i := range 3 {
		if _, d := g.Authorize((dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, bound)))); d != nil {
			t.Fatalf("request %d: %v", i, d)
		}
		// The verified token is cached now; a request without a proof is still refused.
		if _, d := g.Authorize((dpopRequest("DPoP", bound))); d == nil || d.Reason() != ReasonDPoP {
			t.Fatalf("request %d without proof: %v", i, d)
		}
	}
	if s := g.CacheStats(); s.Hits == 0 {
		t.Fatalf("cache not used: %+v", s)
	}
}

// sharedReplay counts uses, standing in for a store-backed cache.
type sharedReplay struct {
	dpop.ReplayCache
	uses int
}

func (s *sharedReplay) Use(ctx context.Context, key string, until time.Time) (bool, error) {
	s.uses++
	return s.ReplayCache.Use(ctx, key, until)
}

func TestDPoPReplayCacheSharedBetweenGates(t *testing.T) {
	k := sharedKeys()
	key := dpoptest.NewKey()
	bound := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": key.JKT} })
	shared := &sharedReplay{ReplayCache: dpop.NewMemoryReplayCache(10)}
	g1 := newTestGate(t, k, func(c *Config) { c.DPoPReplay = shared })
	g2 := newTestGate(t, k, nil)
	g2.SetDPoPReplay(shared)
	proof := key.Proof("GET", dpopURL, bound)
	if _, d := g1.Authorize((dpopRequest("DPoP", bound, proof))); d != nil {
		t.Fatal(d)
	}
	if _, d := g2.Authorize((dpopRequest("DPoP", bound, proof))); d == nil || !errors.Is(d, errProofReplayed) {
		t.Fatalf("replay through the other gate: %v", d)
	}
	if shared.uses != 2 {
		t.Fatalf("uses %d", shared.uses)
	}
}

func TestDPoPOriginalURL(t *testing.T) {
	k := sharedKeys()
	key := dpoptest.NewKey()
	bound := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": key.JKT} })
	g := newTestGate(t, k, func(c *Config) {
		c.OriginalURL = func(*http.Request) *url.URL { return &url.URL{Path: "/api/v1/items"} }
	})
	// handle_path /api/* stripped /api: the client signed the URL it sent.
	r := (dpopRequest("DPoP", bound, key.Proof("GET", "https://api.example.com/api/v1/items", bound)))
	if _, d := g.Authorize(r); d != nil {
		t.Fatal(d)
	}
	r = (dpopRequest("DPoP", bound, key.Proof("GET", dpopURL, bound)))
	if _, d := g.Authorize(r); d == nil || d.Code != CodeInvalidDPoPProof {
		t.Fatalf("stripped URL accepted: %v", d)
	}
}

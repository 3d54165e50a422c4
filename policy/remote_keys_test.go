package policy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// remoteGate builds a gate on RemoteKeys for j, started until the test ends.
func remoteGate(t *testing.T, opts RemoteOptions) (*Gate, *RemoteKeys) {
	t.Helper()
	rk, err := NewRemoteKeys(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rk.Start(ctx)
	g, err := New(Config{Issuer: opts.Issuer, Audience: []string{testAudience}}, rk)
	if err != nil {
		t.Fatal(err)
	}
	return g, rk
}

func authorize(g *Gate, token string) *Denial {
	r := httptest.NewRequest("GET", "/v1/items", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	_, d := g.Authorize(r)
	return d
}

func waitReady(t *testing.T, rk *RemoteKeys) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !rk.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("keys never arrived")
		}
	}
}

// TestRemoteKeyRotation: a new kid is accepted after one refetch; a withdrawn key is refused even
// for a token that was cached while the key was valid; made-up kids cost no more fetches.
func TestRemoteKeyRotation(t *testing.T) {
	j := newJWKSIssuer(t, "k1")
	g, rk := remoteGate(t, RemoteOptions{Issuer: j.URL(), UnknownKIDInterval: time.Hour})
	waitReady(t, rk)
	old := j.mint(t, "k1", nil)
	if d := authorize(g, old); d != nil {
		t.Fatalf("k1 token: %v", d)
	}
	if n := j.jwksHits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}

	j.addKey("k2")
	j.removeKey("k1")
	if d := authorize(g, j.mint(t, "k2", nil)); d != nil {
		t.Fatalf("new kid after rotation: %v", d)
	}
	if n := j.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after the unknown kid, want 2", n)
	}
	if d := authorize(g, old); d == nil || d.Status != 401 {
		t.Fatalf("token of the withdrawn key (cached before): %v", d)
	}
	if d := authorize(g, j.mint(t, "made-up", nil)); d == nil || d.Status != 401 {
		t.Fatalf("made-up kid: %v", d)
	}
	if n := j.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches: the unknown-kid rate limit did not hold", n)
	}
}

// TestRemoteKeysSharedFetch: concurrent requests with a new kid share one fetch.
func TestRemoteKeysSharedFetch(t *testing.T) {
	j := newJWKSIssuer(t, "k1")
	g, rk := remoteGate(t, RemoteOptions{Issuer: j.URL()})
	waitReady(t, rk)
	j.addKey("k2")
	j.jwksDelay = 200 * time.Millisecond
	tok := j.mint(t, "k2", nil)
	errs := make(chan *Denial, 8)
	for range 8 {
		go func() { errs <- authorize(g, tok) }()
	}
	for range 8 {
		if d := <-errs; d != nil {
			t.Errorf("denied while sharing the fetch: %v", d)
		}
	}
	if n := j.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (start + one shared refetch)", n)
	}
}

// TestRemoteIssuerDownAtStart: 503 while the issuer is unreachable, success once it is up.
func TestRemoteIssuerDownAtStart(t *testing.T) {
	j, start := newDownIssuer(t, "k1")
	g, rk := remoteGate(t, RemoteOptions{Issuer: j.URL(), RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	tok := j.mint(t, "k1", nil)
	d := authorize(g, tok)
	if d == nil || d.Status != http.StatusServiceUnavailable || d.Reason() != ReasonUnavailable {
		t.Fatalf("while the issuer is down: %v", d)
	}
	w := httptest.NewRecorder()
	g.SetChallenge(w, nil, d)
	if w.Header().Get("Retry-After") == "" || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("503 headers: %v", w.Header())
	}
	start()
	waitReady(t, rk)
	if d := authorize(g, tok); d != nil {
		t.Fatalf("after the issuer came up: %v", d)
	}
}

// TestDiscoveryRFC8414: an issuer without OpenID discovery is found by its RFC 8414 metadata.
func TestDiscoveryRFC8414(t *testing.T) {
	j := newJWKSIssuer(t, "k1")
	j.onlyRFC = true
	md, err := Discover(context.Background(), nil, j.URL())
	if err != nil {
		t.Fatal(err)
	}
	if md.JWKSURI != j.URL()+"/jwks" || j.oidcHits.Load() != 1 {
		t.Fatalf("metadata %+v after %d OpenID attempts", md, j.oidcHits.Load())
	}
	if _, err := Discover(context.Background(), nil, j.URL()+"/tenant"); err == nil {
		t.Fatal("discovered an issuer whose metadata names another issuer")
	}
	if _, err := Discover(context.Background(), nil, j.URL()+"/"); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Fatalf("discovered a trailing-slash variant of the published issuer: %v", err)
	}
	j.onlyRFC = false
	if _, err := Discover(context.Background(), nil, j.URL()+"/"); err == nil || !strings.Contains(err.Error(), "did not match") {
		t.Fatalf("OpenID discovery of a trailing-slash variant: %v", err)
	}
}

// TestRemoteJWKSURL: a configured JWKS URL needs no discovery.
func TestRemoteJWKSURL(t *testing.T) {
	j := newJWKSIssuer(t, "k1")
	g, rk := remoteGate(t, RemoteOptions{Issuer: j.URL(), JWKSURL: j.URL() + "/jwks"})
	waitReady(t, rk)
	if d := authorize(g, j.mint(t, "k1", nil)); d != nil {
		t.Fatal(d)
	}
	if j.oidcHits.Load() != 0 {
		t.Fatal("discovery ran although jwks_uri was given")
	}
}

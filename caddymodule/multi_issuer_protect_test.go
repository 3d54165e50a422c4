package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestProtectSeveralIssuers: one oauth_protect trusts the Tollgate issuer of this Caddy (bound in
// process), a remote issuer with its own audience, and an introspecting issuer of opaque tokens.
func TestProtectSeveralIssuers(t *testing.T) {
	idp, _ := newStaticIssuer(t, true, "r1")
	var introspections atomic.Int32
	intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		introspections.Add(1)
		id, secret, _ := r.BasicAuth()
		if id != "gw" || secret != "gw-s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		resp := map[string]any{"active": false}
		if r.PostFormValue("token") == "opaque-dave" {
			resp = map[string]any{"active": true, "sub": "dave", "scope": "read", "aud": "https://api.test",
				"exp": time.Now().Add(time.Hour).Unix(), "client_id": "legacy"}
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(intro.Close)
	t.Setenv("TOLLGATE_TEST_INTROSPECTION_SECRET", "gw-s3cret")

	issuerPort := freePort(t)
	local := "http://127.0.0.1:" + issuerPort
	issuerSite := fmt.Sprintf(`
http://127.0.0.1:%s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %s
		storage bolt %s
		client svc {
			secret s3cret
			grants client_credentials
			scopes read
			audience https://api.test
		}
	}
}
`, issuerPort, local, filepath.Join(t.TempDir(), "t.db"))
	s := newProtectSetup(t, fmt.Sprintf(`oauth_protect {
		issuer %s
		issuer %s {
			audience https://b.api.test
		}
		issuer https://legacy.example {
			introspection %s
			client_id gw
			client_secret {env.TOLLGATE_TEST_INTROSPECTION_SECRET}
		}
		audience https://api.test
		scope read
		forward_claim client_id X-Client
	}`, local, idp.url, intro.URL), issuerSite)

	localTok := clientCredentialsToken(t, discover(t, local)["token_endpoint"].(string), "svc", "s3cret")
	seen, _ := s.expect(t, 200, "GET", "/x", localTok)
	if seen.header.Get("X-Client") != "svc" {
		t.Fatalf("local issuer's token: upstream saw %v", seen.header)
	}

	remoteTok := idp.mint(t, "r1", "https://b.api.test", nil)
	deadline := time.Now().Add(5 * time.Second)
	for resp, _ := s.do(t, "GET", "/x", remoteTok); resp.StatusCode != 200; resp, _ = s.do(t, "GET", "/x", remoteTok) {
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("remote issuer's token: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h := (<-s.seen).header; h.Get("X-Client") != "svc-b" {
		t.Fatalf("remote issuer's token: upstream saw %v", h)
	}
	s.expect(t, 401, "GET", "/x", idp.mint(t, "r1", "https://api.test", nil)) // the remote issuer's own audience only

	seen, _ = s.expect(t, 200, "GET", "/x", "opaque-dave")
	if seen.header.Get("X-User") != "dave" || seen.header.Get("X-Client") != "legacy" {
		t.Fatalf("introspected token: upstream saw %v", seen.header)
	}
	s.expect(t, 200, "GET", "/x", "opaque-dave")
	s.expect(t, 401, "GET", "/x", "opaque-unknown")
	if n := introspections.Load(); n != 2 {
		t.Fatalf("%d introspection calls, want 2 (one cached)", n)
	}
}

// TestProtectMetrics registers the collectors twice in one registry, as two configurations sharing
// it would, and counts a decision.
func TestProtectMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1, err := newProtectMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := newProtectMetrics(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	m1.allow()
	m2.allow()
	m2.deny("expired")
	m2.fetched("https://idp", false)
	var nilMetrics *protectMetrics
	nilMetrics.allow() // a handler without the app counts nothing, without panicking
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"tollgate_protect_allowed_total":                                      2, // one counter, shared
		"tollgate_protect_denied_total,reason=expired":                        1,
		"tollgate_protect_jwks_fetches_total,issuer=https://idp,result=error": 1,
		"tollgate_protect_cache_hits_total":                                   0,
		"tollgate_protect_cache_entries":                                      0,
	} {
		if v, ok := got[name]; !ok || (v != want && !strings.HasPrefix(name, "tollgate_protect_cache")) {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

package issuer

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// outageNode is one issuer of a two-node cluster on one Redis, with its own metrics registry
// and operational log, as a Caddy process has.
type outageNode struct {
	*Server
	reg *prometheus.Registry
	log *observer.ObservedLogs
}

// stale is the node's tollgate_issuer_denylist_stale.
func (n outageNode) stale(t *testing.T) float64 {
	t.Helper()
	return metricValue(t, n.reg, "tollgate_issuer_denylist_stale", map[string]string{})
}

// resyncs is the node's tollgate_issuer_denylist_resyncs_total of result.
func (n outageNode) resyncs(t *testing.T, result string) float64 {
	t.Helper()
	return metricValue(t, n.reg, "tollgate_issuer_denylist_resyncs_total", map[string]string{"result": result})
}

// lines are the node's log lines at level whose message starts with prefix.
func (n outageNode) lines(level zapcore.Level, prefix string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range n.log.AllUntimed() {
		if e.Level == level && strings.HasPrefix(e.Message, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// edgeAccepts judges an access token as the edge does with a local issuer (caddymodule's
// boundKeys): the signature against the keys held in memory, then the in-memory deny-list.
func (n outageNode) edgeAccepts(raw string) (bool, string) {
	var claims accesstoken.Claims
	if _, err := jwt.ParseWithClaims(raw, &claims, n.Keys().Keyfunc, jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(testIssuer), jwt.WithExpirationRequired()); err != nil {
		return false, err.Error()
	}
	if n.Revoked(claims.ID) {
		return false, "revoked"
	}
	return true, ""
}

// waitFor polls cond every 10 ms until it holds, failing the test if within passes first.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not after %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDenyListDuringStoreOutage kills the Redis two issuers share, then restarts it: during the
// outage each edge keeps refusing a token revoked before it and accepting a valid one (keys and
// deny-list are in memory; a failing key reload keeps the old keys), a revocation cannot be
// recorded (503), and the deny-list says it is stale in the metric and with one warning per
// node; after the restart both reread it at once, say so, and a revocation made right after
// reaches the other node.
func TestDenyListDuringStoreOutage(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	var nodes [2]outageNode
	for i := range nodes {
		st, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		core, logs := observer.New(zap.DebugLevel)
		reg := prometheus.NewRegistry()
		s, err := New(context.Background(), testConfig(), Deps{Store: st, Metrics: reg, Logger: zap.New(core)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = outageNode{Server: s, reg: reg, log: logs}
	}
	a, b := nodes[0], nodes[1]
	token := func(n outageNode) string {
		t.Helper()
		status, tok := tokenOf(n.Server, "grant_type=client_credentials&scope=read", "svc", "s3cret")
		if status != 200 {
			t.Fatalf("token: %d", status)
		}
		return tok.AccessToken
	}
	revoke := func(n outageNode, at string) *http.Response {
		return serveForm(n.Server, PathRevoke, "token="+url.QueryEscape(at), "svc", "s3cret").Result()
	}
	revokedBefore, valid, revokedDuring, revokedAfter := token(a), token(b), token(a), token(b)
	if r := revoke(a, revokedBefore); r.StatusCode != 200 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	for _, n := range nodes {
		waitFor(t, time.Second, "the revocation reaches both nodes", func() bool { ok, _ := n.edgeAccepts(revokedBefore); return !ok })
		if n.stale(t) != 0 || n.resyncs(t, "ok") != 1 {
			t.Fatalf("before the outage: stale %v, resyncs %v; want 0 and the one at start", n.stale(t), n.resyncs(t, "ok"))
		}
	}
	if problems, err := testutil.GatherAndLint(a.reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	srv.Kill()
	killed := time.Now()
	for i, n := range nodes {
		waitFor(t, 5*time.Second, "the metric says stale", func() bool { return n.stale(t) == 1 })
		t.Logf("node %d: deny-list stale %v after the kill", i, time.Since(killed).Round(time.Millisecond))
	}
	// Long enough for several reconnection attempts, each of which fails.
	time.Sleep(3 * time.Second)
	for i, n := range nodes {
		if ok, why := n.edgeAccepts(valid); !ok {
			t.Errorf("node %d: a valid token is refused during the outage: %s", i, why)
		}
		if ok, _ := n.edgeAccepts(revokedBefore); ok {
			t.Errorf("node %d: a token revoked before the outage passes during it", i)
		}
		if err := n.Keys().Reload(context.Background()); err == nil {
			t.Fatalf("node %d: a key reload succeeded with the store down", i)
		}
		if ok, why := n.edgeAccepts(valid); !ok {
			t.Errorf("node %d: after a failed key reload, a valid token is refused: %s", i, why)
		}
		if w := n.lines(zapcore.WarnLevel, "deny-list is stale"); len(w) != 1 {
			t.Errorf("node %d: %d stale warnings during one outage, want 1: %v", i, len(w), w)
		} else if f := w[0].ContextMap(); f["issuer"] != testIssuer || f["error"] == nil {
			t.Errorf("node %d: stale warning fields %v", i, f)
		}
	}
	// A revocation cannot be recorded, so none is acknowledged.
	r := revoke(a, revokedDuring)
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("revocation during the outage: %d, want 503", r.StatusCode)
	}

	srv.Restart()
	restarted := time.Now()
	for i, n := range nodes {
		waitFor(t, 5*time.Second, "the metric says current", func() bool { return n.stale(t) == 0 })
		t.Logf("node %d: deny-list current again %v after the restart", i, time.Since(restarted).Round(time.Millisecond))
		if got := n.resyncs(t, "ok"); got < 2 {
			t.Errorf("node %d: %v resyncs, want one more after the reconnection", i, got)
		}
		cur := n.lines(zapcore.InfoLevel, "deny-list is current again")
		if len(cur) != 1 {
			t.Fatalf("node %d: %d 'current again' lines, want 1", i, len(cur))
		}
		if f := cur[0].ContextMap(); f["issuer"] != testIssuer || f["stale_for"] == nil {
			t.Errorf("node %d: fields %v", i, f)
		}
	}
	if since := time.Since(restarted); since > 3*time.Second {
		t.Errorf("the deny-lists were reread %v after the restart, want at once (the subscription retries every 2 s at most)", since)
	}
	// The client retries what was refused during the outage, and revokes another token on the
	// other node: both reach both edges at once.
	for _, rv := range []struct {
		n  outageNode
		at string
	}{{a, revokedDuring}, {b, revokedAfter}} {
		if r := revoke(rv.n, rv.at); r.StatusCode != 200 {
			t.Fatalf("revocation after the recovery: %d", r.StatusCode)
		}
	}
	for i, n := range nodes {
		for _, at := range []string{revokedBefore, revokedDuring, revokedAfter} {
			waitFor(t, time.Second, "revocations after the recovery reach every node", func() bool { ok, _ := n.edgeAccepts(at); return !ok })
		}
		if ok, why := n.edgeAccepts(valid); !ok {
			t.Errorf("node %d: a valid token is refused after the recovery: %s", i, why)
		}
	}
}

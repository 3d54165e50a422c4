package caddymodule_test

// Two Caddy processes of the built binary on a Redis master with replicas and three Sentinels,
// all on loopback: the master is SIGKILLed, and after the Sentinels' failover issuance resumes
// within 15 s, every refresh token acknowledged before still refreshes, and every revoked
// token is still refused at both edges, which kept verifying throughout and said their
// deny-lists were stale while the store was out of reach.

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/redistest"
)

// failoverCaddyfile is one node: the shared issuer on the Sentinel URL, writes waiting for a
// replica, and an API behind oauth_protect proxied to a loopback backend. Arguments: the
// node's issuer port, the shared issuer URL, the node's API port, the data directory, alice's
// bcrypt hash, the admin port (its /metrics is scraped), the backend's address.
const failoverCaddyfile = `{
	admin 127.0.0.1:%[6]s
	persist_config off
	auto_https off
	storage file_system %[4]s
}

http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[2]s
		storage redis {env.REDIS_URL} {
			min_replicas 1
		}
		user alice %[5]s
		client cli {
			secret cli-secret
			grants password refresh_token
			scopes read offline_access
			audience https://api.test
		}
		client svc {
			secret svc-secret
			grants client_credentials
			scopes read
			audience https://api.test
		}
	}
}

http://127.0.0.1:%[3]s {
	bind 127.0.0.1
	oauth_protect {
		issuer %[2]s
		audience https://api.test
		scope read
	}
	reverse_proxy %[7]s
}
`

// failoverNode is one Caddy of the failover cluster.
type failoverNode struct {
	clusterNode
	admin string // the admin endpoint, for /metrics
	log   string // Caddy's output
}

// startFailoverCluster starts two Caddy processes of bin on redisURL, in front of backend.
func startFailoverCluster(t *testing.T, bin, redisURL, backend string) []failoverNode {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2
	ports := freePorts(t, 3*n)
	shared := "http://127.0.0.1:" + ports[0]
	nodes := make([]failoverNode, n)
	for i := range nodes {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		config := filepath.Join(dir, "Caddyfile")
		text := fmt.Sprintf(failoverCaddyfile, ports[3*i], shared, ports[3*i+1], quoteCaddyfile(filepath.Join(dir, "data")),
			hash, ports[3*i+2], strings.TrimPrefix(backend, "http://"))
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		exited := startBinary(t, bin, dir, config, "REDIS_URL="+redisURL)
		nodes[i] = failoverNode{
			clusterNode: clusterNode{issuer: "http://127.0.0.1:" + ports[3*i], api: "http://127.0.0.1:" + ports[3*i+1]},
			admin:       "http://127.0.0.1:" + ports[3*i+2],
			log:         filepath.Join(dir, "caddy.log"),
		}
		if md := waitForMetadata(t, nodes[i].issuer, exited); md.Issuer != shared {
			t.Fatalf("node %d: issuer %q, want the shared %q", i, md.Issuer, shared)
		}
	}
	return nodes
}

// denyListStale reads tollgate_issuer_denylist_stale from the node's /metrics: 0 or 1, or -1
// when it cannot be read.
func (n failoverNode) denyListStale() float64 {
	resp, err := clusterClient.Get(n.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "tollgate_issuer_denylist_stale "); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(line), 64); err == nil {
				return v
			}
		}
	}
	return -1
}

// logLines are the lines of the node's output that contain every one of parts.
func (n failoverNode) logLines(t *testing.T, parts ...string) []string {
	t.Helper()
	out, err := os.ReadFile(n.log)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
next:
	for l := range strings.Lines(string(out)) {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// revokeAt revokes token at node as client id (RFC 7009) and returns the status.
func revokeAt(t *testing.T, node clusterNode, id, secret, token string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", node.issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSentinelFailover: two Caddy on the Sentinel URL with min_replicas 1; 20 refresh tokens
// and 5 revocations acknowledged, alternating between the nodes; then the master is
// SIGKILLed. Issuance is back within 15 s of the kill; meanwhile and after, both edges keep
// refusing the revoked tokens and passing valid ones, and say their deny-lists are stale
// until their subscriptions are back; afterwards every one of the 20 refresh tokens
// refreshes, the revoked refresh tokens stay dead, and a new revocation reaches both edges.
//
// Issuance is measured twice: client credentials, and a password grant, which records a
// refresh family and so waits for a replica. With one replica the failover leaves none, so
// the killed master is restarted once it has been replaced, as a supervisor does; the
// Sentinels turn it into a replica of the new master only after it has reported itself a
// master for 8 s, so durable writes take ~12 s to come back there. With two replicas the
// remaining one follows the new master by itself.
func TestSentinelFailover(t *testing.T) {
	bin := caddyBin(t)
	tests := []struct {
		name     string
		replicas int
		restart  bool // restart the killed master once the failover is done
	}{
		{"a master and a replica, the old master restarted", 1, true},
		{"a master and two replicas", 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testFailover(t, bin, tc.replicas, tc.restart) })
	}
}

func testFailover(t *testing.T, bin string, replicas int, restart bool) {
	tp := redistest.StartSentinel(t, "tollgate", replicas)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("backend"))
	}))
	t.Cleanup(backend.Close)
	nodes := startFailoverCluster(t, bin, tp.URL(), backend.URL)
	node := func(i int) clusterNode { return nodes[i%len(nodes)].clusterNode }
	login := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"read offline_access"}}
	cc := url.Values{"grant_type": {"client_credentials"}}

	// 20 refresh tokens, acknowledged by alternating nodes.
	type family struct{ refresh, access string }
	var families []family
	for i := range 20 {
		status, body := tokenAt(t, node(i), "cli", "cli-secret", login)
		rt, _ := body["refresh_token"].(string)
		at, _ := body["access_token"].(string)
		if status != 200 || rt == "" || at == "" {
			t.Fatalf("password grant %d: %d %v", i, status, body)
		}
		families = append(families, family{rt, at})
	}
	// 5 revocations on the node that did not issue: three access tokens, and two refresh
	// tokens (their families, and the access tokens those issued, are revoked).
	var revokedAT, revokedRT []string
	for i := range 5 {
		id, secret, form := "svc", "svc-secret", cc
		if i >= 3 {
			id, secret, form = "cli", "cli-secret", login
		}
		status, body := tokenAt(t, node(i), id, secret, form)
		at, _ := body["access_token"].(string)
		if status != 200 || at == "" {
			t.Fatalf("token %d: %d %v", i, status, body)
		}
		revoke := at
		if rt, _ := body["refresh_token"].(string); rt != "" {
			revoke = rt
			revokedRT = append(revokedRT, rt)
		}
		if s := revokeAt(t, node(i+1), id, secret, revoke); s != 200 {
			t.Fatalf("revocation %d: %d", i, s)
		}
		revokedAT = append(revokedAT, at)
	}
	deadline := time.Now().Add(time.Second)
	for i, at := range revokedAT {
		for n := range nodes {
			for apiStatus(t, node(n), at) != http.StatusUnauthorized {
				if time.Now().After(deadline) {
					t.Fatalf("before the kill: revoked access token %d passes the edge of node %d", i, n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	for i, f := range families {
		for n := range nodes {
			if s := apiStatus(t, node(n), f.access); s != 200 {
				t.Fatalf("before the kill: access token %d: %d at node %d", i, s, n)
			}
		}
	}
	for n := range nodes {
		if v := nodes[n].denyListStale(); v != 0 {
			t.Fatalf("before the kill: node %d: tollgate_issuer_denylist_stale %v, want 0", n, v)
		}
	}

	// A token whose revocation is asked for during the outage.
	_, body := tokenAt(t, node(0), "svc", "svc-secret", cc)
	pending, _ := body["access_token"].(string)
	if pending == "" {
		t.Fatalf("token: %v", body)
	}

	// The edges are watched from the kill until issuance is back: the revoked tokens are
	// refused, a valid one passes (keys and deny-list are in memory), the metric says stale.
	old := tp.Master()
	old.Kill()
	killed := time.Now()
	// Nothing can be recorded before the failover, so the revocation is refused, not
	// acknowledged: the client has to retry it.
	if s := revokeAt(t, node(1), "svc", "svc-secret", pending); s != http.StatusServiceUnavailable {
		t.Fatalf("a revocation right after the kill: %d, want 503", s)
	}
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	var stopOnce sync.Once
	stopWatcher := func() { stopOnce.Do(func() { close(stop); watcher.Wait() }) }
	defer stopWatcher() // also when the test fails below
	var sawStale [2]bool
	var current [2]time.Duration // when the metric said current again, after stale
	var edgeChecks int
	watcher.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for n := range nodes {
				switch nodes[n].denyListStale() {
				case 1:
					sawStale[n] = true
				case 0:
					if sawStale[n] && current[n] == 0 {
						current[n] = time.Since(killed)
					}
				}
				if s := apiStatus(t, node(n), revokedAT[k%len(revokedAT)]); s != http.StatusUnauthorized {
					t.Errorf("%v after the kill: revoked access token %d got %d at node %d", time.Since(killed), k%len(revokedAT), s, n)
				}
				if s := apiStatus(t, node(n), families[k%len(families)].access); s != 200 {
					t.Errorf("%v after the kill: valid access token %d got %d at node %d", time.Since(killed), k%len(families), s, n)
				}
			}
			edgeChecks++
		}
	})
	if restart {
		tp.WaitForFailover(t, 15*time.Second)
		t.Logf("failover done %v after the kill; restarting the old master", time.Since(killed).Round(time.Millisecond))
		old.Restart()
	}
	// Issuance is back within 15 s. A durable write needs a replica: with one, that is the old
	// master once the Sentinels have turned it into a replica, which they do only after it has
	// reported itself a master for 8 s (Sentinel's own safety wait), so it gets longer.
	const within = 15 * time.Second
	durableWithin := within
	if restart {
		durableWithin = 25 * time.Second
	}
	var ccBack, pwBack time.Duration
	var lastCC, lastPW int
	for k := 0; ccBack == 0 || pwBack == 0; k++ {
		if since := time.Since(killed); ccBack == 0 && since > within || since > durableWithin {
			t.Fatalf("issuance not back %v after the kill: client credentials %d, password grant %d", since, lastCC, lastPW)
		}
		if ccBack == 0 {
			if lastCC, _ = tokenAt(t, node(k), "svc", "svc-secret", cc); lastCC == 200 {
				ccBack = time.Since(killed)
			}
		}
		if pwBack == 0 {
			if lastPW, _ = tokenAt(t, node(k), "cli", "cli-secret", login); lastPW == 200 {
				pwBack = time.Since(killed)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Both deny-lists are current again (each reread follows its reconnection).
	for n := range nodes {
		for nodes[n].denyListStale() != 0 {
			if time.Since(killed) > durableWithin {
				t.Fatalf("node %d: tollgate_issuer_denylist_stale still %v %v after the kill", n, nodes[n].denyListStale(), time.Since(killed))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	stopWatcher()
	t.Logf("after the SIGKILL of the master: client-credentials issuance back in %v, password grant (a durable write) in %v; "+
		"deny-lists current again in %v and %v; %d edge checks meanwhile",
		ccBack.Round(time.Millisecond), pwBack.Round(time.Millisecond), current[0].Round(time.Millisecond),
		current[1].Round(time.Millisecond), edgeChecks)
	for n := range nodes {
		if !sawStale[n] {
			t.Errorf("node %d: tollgate_issuer_denylist_stale never said 1 during the failover", n)
		}
		w := nodes[n].logLines(t, `"level":"warn"`, "deny-list is stale")
		i := nodes[n].logLines(t, `"level":"info"`, "deny-list is current again", `"stale_for"`)
		if len(w) != 1 || len(i) != 1 {
			t.Errorf("node %d: %d stale warnings and %d 'current again' lines, want 1 each:\n%s", n, len(w), len(i),
				strings.Join(append(w, i...), ""))
		} else if n == 0 {
			t.Logf("node 0 logged:\n%s%s", w[0], i[0])
		}
	}

	// Every refresh token acknowledged before the kill still refreshes, on the other node.
	for i, f := range families {
		status, body := tokenAt(t, node(i+1), "cli", "cli-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refresh}})
		at, _ := body["access_token"].(string)
		if status != 200 || at == "" {
			t.Fatalf("after the failover: refresh token %d: %d %v", i, status, body)
		}
		for n := range nodes {
			if s := apiStatus(t, node(n), at); s != 200 {
				t.Errorf("after the failover: refreshed access token %d: %d at node %d", i, s, n)
			}
		}
	}
	// Every revoked token is still refused, at both edges and both token endpoints.
	for n := range nodes {
		for i, at := range revokedAT {
			if s := apiStatus(t, node(n), at); s != http.StatusUnauthorized {
				t.Errorf("after the failover: revoked access token %d: %d at node %d", i, s, n)
			}
		}
		for i, rt := range revokedRT {
			status, body := tokenAt(t, node(n), "cli", "cli-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			if status != 400 || body["error"] != "invalid_grant" {
				t.Errorf("after the failover: revoked refresh token %d at node %d: %d %v", i, n, status, body)
			}
		}
	}
	// The revocation refused during the outage, retried, and one of a fresh token: each
	// reaches the other node's edge at once.
	_, body = tokenAt(t, node(0), "svc", "svc-secret", cc)
	fresh, _ := body["access_token"].(string)
	for i, at := range []string{pending, fresh} {
		if s := apiStatus(t, node(1), at); s != 200 {
			t.Fatalf("after the failover: token %d before its revocation: %d", i, s)
		}
		if s := revokeAt(t, node(0), "svc", "svc-secret", at); s != 200 {
			t.Fatalf("after the failover: revocation %d: %d", i, s)
		}
		revoked := time.Now()
		for apiStatus(t, node(1), at) != http.StatusUnauthorized {
			if time.Since(revoked) > time.Second {
				t.Fatalf("after the failover: revocation %d on one node does not reach the other's edge within 1s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

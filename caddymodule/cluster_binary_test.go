package caddymodule_test

// Two Caddy processes of the built binary on one redis-server, as two instances behind a load
// balancer: what one node revokes, the other's edge refuses within milliseconds (verified-token
// cache included), and a refresh token replayed on one node while the other rotates it kills
// the family on both.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/redistest"
)

// clusterCaddyfile is one node: an issuer whose identity (the first node's URL) and Redis
// store both nodes share, and an API behind oauth_protect. Arguments: the node's issuer port,
// the shared issuer URL, the node's API port, the data directory, alice's bcrypt hash.
const clusterCaddyfile = `{
	admin off
	persist_config off
	auto_https off
	storage file_system %[4]s
}

http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[2]s
		storage redis {env.REDIS_URL}
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
	respond "ok" 200
}
`

// clusterNode is one running Caddy of the cluster.
type clusterNode struct{ issuer, api string }

// startCluster starts n Caddy processes of bin on one fresh redis-server.
func startCluster(t *testing.T, bin string, n int) []clusterNode {
	t.Helper()
	srv := redistest.Start(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2*n)
	shared := "http://127.0.0.1:" + ports[0]
	nodes := make([]clusterNode, n)
	for i := range nodes {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		config := filepath.Join(dir, "Caddyfile")
		text := fmt.Sprintf(clusterCaddyfile, ports[2*i], shared, ports[2*i+1], quoteCaddyfile(filepath.Join(dir, "data")), hash)
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		exited := startBinary(t, bin, dir, config, "REDIS_URL="+srv.URL())
		nodes[i] = clusterNode{issuer: "http://127.0.0.1:" + ports[2*i], api: "http://127.0.0.1:" + ports[2*i+1]}
		if md := waitForMetadata(t, nodes[i].issuer, exited); md.Issuer != shared {
			t.Fatalf("node %d: issuer %q, want the shared %q", i, md.Issuer, shared)
		}
	}
	return nodes
}

// clusterClient keeps connections open, as a load balancer does.
var clusterClient = &http.Client{Timeout: 10 * time.Second}

// tokenAt posts a token request to node's token endpoint; it returns the status and body.
func tokenAt(t *testing.T, node clusterNode, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", node.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// apiStatus calls node's API with token.
func apiStatus(t *testing.T, node clusterNode, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", node.api+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := clusterClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTwoCaddyRevocationPropagation revokes on one Caddy a token the other's edge has just
// verified (and cached), and measures until that edge refuses it: p99 under 100 ms.
func TestTwoCaddyRevocationPropagation(t *testing.T) {
	nodes := startCluster(t, caddyBin(t), 2)
	const rounds = 100
	var lat []time.Duration
	for r := range rounds {
		from, to := nodes[r%2], nodes[(r+1)%2]
		status, tok := tokenAt(t, from, "svc", "svc-secret", url.Values{"grant_type": {"client_credentials"}})
		if status != 200 {
			t.Fatalf("round %d: token: %d %v", r, status, tok)
		}
		at := tok["access_token"].(string)
		for _, n := range nodes { // both edges verify it, and cache it
			if s := apiStatus(t, n, at); s != 200 {
				t.Fatalf("round %d: the API refuses a fresh token: %d", r, s)
			}
		}
		req, _ := http.NewRequest("POST", from.issuer+"/oauth2/revoke", strings.NewReader("token="+at))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", "svc-secret")
		resp, err := clusterClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("round %d: revoke: %v %v", r, err, resp)
		}
		resp.Body.Close()
		revoked := time.Now()
		for apiStatus(t, to, at) != http.StatusUnauthorized {
			if time.Since(revoked) > 2*time.Second {
				t.Fatalf("round %d: the other Caddy still accepts the token 2s after its revocation", r)
			}
		}
		lat = append(lat, time.Since(revoked))
		if s := apiStatus(t, from, at); s != http.StatusUnauthorized {
			t.Fatalf("round %d: the revoking Caddy still accepts the token: %d", r, s)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("revocation on one Caddy refused by the other's edge after: p50 %v, p99 %v, max %v (%d rounds)",
		p50, p99, lat[len(lat)-1], rounds)
	if p99 > 100*time.Millisecond {
		t.Fatalf("p99 %v, want under 100ms", p99)
	}
}

// TestTwoCaddyReuseRace rotates a refresh token on one Caddy while the rotated one is replayed
// on the other, released together: every time, the family ends dead on both, and every access
// token it issued is refused by both edges.
func TestTwoCaddyReuseRace(t *testing.T) {
	nodes := startCluster(t, caddyBin(t), 2)
	const trials = 50
	login := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"read offline_access"}}
	refresh := func(node clusterNode, rt string) (int, map[string]any) {
		return tokenAt(t, node, "cli", "cli-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	won := 0
	for trial := range trials {
		a, b := nodes[trial%2], nodes[(trial+1)%2]
		status, t0 := tokenAt(t, a, "cli", "cli-secret", login)
		if status != 200 {
			t.Fatalf("trial %d: password grant: %d %v", trial, status, t0)
		}
		status, t1 := refresh(b, t0["refresh_token"].(string))
		if status != 200 {
			t.Fatalf("trial %d: rotation: %d %v", trial, status, t1)
		}
		var rotated, replayed int
		var t2 map[string]any
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; rotated, t2 = refresh(a, t1["refresh_token"].(string)) })
		wg.Go(func() { <-start; replayed, _ = refresh(b, t0["refresh_token"].(string)) })
		close(start)
		wg.Wait()
		if replayed != 400 {
			t.Fatalf("trial %d: the replayed token got %d, want 400", trial, replayed)
		}
		issued := []string{t0["access_token"].(string), t1["access_token"].(string)}
		if rotated == 200 {
			won++
			issued = append(issued, t2["access_token"].(string))
			if s, body := refresh(a, t2["refresh_token"].(string)); s != 400 {
				t.Fatalf("trial %d: the rotation won and its successor still refreshes: %d %v", trial, s, body)
			}
		}
		deadline := time.Now().Add(time.Second)
		for i, at := range issued {
			for _, n := range nodes {
				for apiStatus(t, n, at) != http.StatusUnauthorized {
					if time.Now().After(deadline) {
						t.Fatalf("trial %d: access token %d of the dead family still passes an edge", trial, i)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}
	}
	t.Logf("%d trials, the rotation won the race %d times; every family died", trials, won)
}

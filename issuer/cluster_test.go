package issuer

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// cluster is one or more issuers sharing one store, as Caddy instances behind a load balancer
// share one Redis, or the old and new configuration share one bolt file during a reload.
type cluster struct {
	name  string
	nodes []*Server
}

// node is the node request i goes to.
func (c *cluster) node(i int) *Server { return c.nodes[i%len(c.nodes)] }

// clusterConfig is testConfig with a user and a client that gets refresh tokens through the
// password grant (a cheap bcrypt, so many families can be started).
func clusterConfig(t testing.TB) Config {
	cfg := testConfig()
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Users = []User{{Name: "alice", PasswordHash: string(hash)}}
	cfg.Clients = append(cfg.Clients, Client{ID: "cli", Secret: "cli-secret", Grants: []string{"password", "refresh_token"},
		Scopes: []string{"read", "offline_access"}})
	return cfg
}

// clusters returns the three shapes every cross-node guarantee is tested on: one node, two
// nodes on one bolt file, two nodes on one Redis (with a store each, as two processes have),
// and two nodes on a three-master Redis Cluster with replicas.
func clusters(t *testing.T, cfg Config) []*cluster {
	t.Helper()
	newNode := func(st store.Store) *Server {
		s, err := New(context.Background(), cfg, Deps{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	openBolt := func() store.Store {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "shared.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	one, shared := openBolt(), openBolt()
	out := []*cluster{
		{name: "one node", nodes: []*Server{newNode(one)}},
		{name: "two nodes on one bolt file", nodes: []*Server{newNode(shared), newNode(shared)}},
	}
	srv := redistest.Start(t)
	var redisNodes []*Server
	for range 2 {
		st, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		redisNodes = append(redisNodes, newNode(st))
	}
	out = append(out, &cluster{name: "two nodes on one Redis", nodes: redisNodes})
	// A Redis Cluster of three masters, each with a replica, and every durable write waiting
	// for it: the guarantees must not rest on a whole bucket living on one master.
	rc := redistest.StartCluster(t, 3, 1)
	var clusterNodes []*Server
	for range 2 {
		st, err := redisstore.OpenCluster(context.Background(), rc.URL(), redisstore.Options{
			DurableBuckets: append(state.DurableBuckets(), keys.Bucket), MinReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		clusterNodes = append(clusterNodes, newNode(st))
	}
	return append(out, &cluster{name: "two nodes on a Redis Cluster", nodes: clusterNodes})
}

// tokenOf posts a token request to s and decodes a 200 answer; it returns the status.
func tokenOf(s *Server, body, id, secret string) (int, tokenResponse) {
	w := recordToken(s, body, id, secret)
	var tok tokenResponse
	if w.Code == 200 {
		_ = jsonDecode(w.Body.Bytes(), &tok)
	}
	return w.Code, tok
}

// jtiOf reads the jti of one of s's access tokens.
func jtiOf(t testing.TB, s *Server, at string) string {
	t.Helper()
	claims, err := s.verifyAccessToken(at)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	return claims.ID
}

// waitDenied waits until every node denies every jti, at most a second: revocations reach
// other nodes through the store's messages.
func (c *cluster) waitDenied(t *testing.T, what string, jtis ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		var missing []string
		for n, s := range c.nodes {
			for _, j := range jtis {
				if !s.Revoked(j) {
					missing = append(missing, fmt.Sprintf("node %d: %s", n, j))
				}
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 1s, not denied: %v", what, missing)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// release runs fns in goroutines of their own, released at the same moment.
func release(fns ...func()) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(len(fns))
	for _, fn := range fns {
		done.Go(func() {
			ready.Done()
			<-start
			fn()
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// TestRefreshReuseRacingRotation is the attack of a stolen refresh token: the client refreshes
// R1 on one node while the attacker replays the rotated R0 on another, released together, 200
// times. Whatever the order, the family must end dead: the new refresh token R2 (if the
// rotation won) is refused, and every access token the family issued is denied on every node.
func TestRefreshReuseRacingRotation(t *testing.T) {
	const trials = 200
	for _, c := range clusters(t, clusterConfig(t)) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			outcomes := map[string]int{}
			login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+offline_access"
			for trial := range trials {
				status, t0 := tokenOf(c.node(trial), login, "cli", "cli-secret")
				if status != 200 {
					t.Fatalf("trial %d: password grant: %d", trial, status)
				}
				status, t1 := tokenOf(c.node(trial+1), "grant_type=refresh_token&refresh_token="+t0.RefreshToken, "cli", "cli-secret")
				if status != 200 {
					t.Fatalf("trial %d: first rotation: %d", trial, status)
				}
				var rotated, replayed int
				var t2 tokenResponse
				release(
					func() {
						rotated, t2 = tokenOf(c.node(trial), "grant_type=refresh_token&refresh_token="+t1.RefreshToken, "cli", "cli-secret")
					},
					func() {
						replayed, _ = tokenOf(c.node(trial+1), "grant_type=refresh_token&refresh_token="+t0.RefreshToken, "cli", "cli-secret")
					},
				)
				if replayed != 400 {
					t.Fatalf("trial %d: the replay of a rotated token got %d, want 400", trial, replayed)
				}
				issued := []string{jtiUnverified(t, t0.AccessToken), jtiUnverified(t, t1.AccessToken)}
				if rotated == 200 {
					issued = append(issued, jtiUnverified(t, t2.AccessToken))
					if s, _ := tokenOf(c.node(trial), "grant_type=refresh_token&refresh_token="+t2.RefreshToken, "cli", "cli-secret"); s != 400 {
						t.Fatalf("trial %d: the rotation won the race, and its R2 still refreshes (%d): the family survived the reuse", trial, s)
					}
				}
				outcomes[fmt.Sprintf("rotation %d", rotated)]++
				c.waitDenied(t, fmt.Sprintf("trial %d", trial), issued...)
			}
			keys := make([]string, 0, len(outcomes))
			for k := range outcomes {
				keys = append(keys, fmt.Sprintf("%s: %d", k, outcomes[k]))
			}
			sort.Strings(keys)
			t.Logf("%d trials: %s", trials, strings.Join(keys, ", "))
		})
	}
}

// TestConcurrentRefreshAcrossNodes sends one refresh token to every node many times at once:
// without a grace window exactly one rotation wins and the racing reuse kills the family.
func TestConcurrentRefreshAcrossNodes(t *testing.T) {
	const racers = 16
	for _, c := range clusters(t, clusterConfig(t)) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+offline_access"
			for round := range 10 {
				_, tok := tokenOf(c.node(round), login, "cli", "cli-secret")
				statuses := make([]int, racers)
				fns := make([]func(), racers)
				for i := range fns {
					fns[i] = func() {
						statuses[i], _ = tokenOf(c.node(i), "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "cli", "cli-secret")
					}
				}
				release(fns...)
				wins := 0
				for _, s := range statuses {
					if s == 200 {
						wins++
					}
				}
				if wins > 1 {
					t.Fatalf("round %d: %d racers rotated one token: the family forked", round, wins)
				}
			}
		})
	}
}

// TestRevocationReachesOtherNodes: an access token revoked on one node is refused by every
// node at once (pushed, not polled), and every node signs with the same keys.
func TestRevocationReachesOtherNodes(t *testing.T) {
	for _, c := range clusters(t, clusterConfig(t)) {
		if len(c.nodes) < 2 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			a, b := c.nodes[0], c.nodes[1]
			if string(a.Keys().JWKS()) != string(b.Keys().JWKS()) {
				t.Fatal("the nodes publish different keys")
			}
			var lat []time.Duration
			for range 50 {
				status, tok := tokenOf(a, "grant_type=client_credentials", "svc", "s3cret")
				if status != 200 {
					t.Fatalf("token: %d", status)
				}
				jti := jtiOf(t, b, tok.AccessToken) // node B accepts node A's token
				start := time.Now()
				if w := serveForm(b, PathRevoke, "token="+url.QueryEscape(tok.AccessToken), "svc", "s3cret"); w.Code != 200 {
					t.Fatalf("revoke on node B: %d %s", w.Code, w.Body)
				}
				if !b.Revoked(jti) {
					t.Fatal("the revoking node itself still accepts the token once the revocation has answered")
				}
				for !a.Revoked(jti) {
					if time.Since(start) > time.Second {
						t.Fatal("node A did not learn of node B's revocation within a second")
					}
					time.Sleep(100 * time.Microsecond)
				}
				lat = append(lat, time.Since(start))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p99 := lat[len(lat)*99/100]
			t.Logf("revocation on B seen on A: p50 %v, p99 %v, max %v (includes the revocation request)",
				lat[len(lat)/2], p99, lat[len(lat)-1])
			if p99 > 100*time.Millisecond {
				t.Fatalf("p99 %v between two nodes, want under 100ms", p99)
			}
		})
	}
}

// TestRefreshRechecksClientScopes restarts the issuer with a scope taken away from a client:
// its refresh tokens issued before no longer refresh that scope (RFC 6749 §6 lets a refresh
// narrow, and the client's configuration of today bounds it).
func TestRefreshRechecksClientScopes(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "restart.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := func(scopes ...string) *Server {
		cfg := clusterConfig(t)
		cfg.Clients[len(cfg.Clients)-1].Scopes = scopes
		s, err := New(context.Background(), cfg, Deps{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	before := start("read", "write", "offline_access")
	login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+write+offline_access"
	status, tok := tokenOf(before, login, "cli", "cli-secret")
	if status != 200 || tok.Scope != "read write offline_access" {
		t.Fatalf("password grant: %d %+v", status, tok)
	}
	before.Close()
	after := start("read", "offline_access") // write is gone
	if w := recordToken(after, "grant_type=refresh_token&scope=write&refresh_token="+tok.RefreshToken, "cli", "cli-secret"); w.Code != 400 ||
		!strings.Contains(w.Body.String(), "invalid_scope") {
		t.Fatalf("refresh asking for a scope the client lost: %d %s", w.Code, w.Body)
	}
	status, next := tokenOf(after, "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "cli", "cli-secret")
	if status != 200 || next.Scope != "read offline_access" {
		t.Fatalf("refresh after the client lost write: %d, scope %q; want read offline_access", status, next.Scope)
	}
}

// TestPublicClientRevokes: a public client names itself with client_id and revokes its own
// refresh token, ending the family (RFC 7009 §2.1), as a browser app does at sign-out; it
// cannot revoke another client's token, nor introspect.
func TestPublicClientRevokes(t *testing.T) {
	cfg := clusterConfig(t)
	cfg.Clients = append(cfg.Clients, Client{ID: "pub", Grants: []string{"authorization_code", "refresh_token"},
		RedirectURIs: []string{"https://app.test/cb"}, Scopes: []string{"read", "offline_access"}})
	s := newTestServer(t, cfg)
	login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+offline_access"
	post := func(path, body string) (int, string) {
		r := tokenRequestOf(body)
		r.URL.Path = path
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	verifier := oauth2.GenerateVerifier()
	code := state.NewSecret()
	err := s.state.PutCode(context.Background(), code, state.Code{ClientID: "pub", RedirectURI: "https://app.test/cb",
		Challenge: oauth2.S256ChallengeFromVerifier(verifier), Scopes: []string{"read", "offline_access"}, User: "alice",
		AuthTime: time.Now().Unix()}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body := post(PathToken, "grant_type=authorization_code&client_id=pub&code="+code+"&code_verifier="+verifier)
	var tok tokenResponse
	if status != 200 || jsonDecode([]byte(body), &tok) != nil {
		t.Fatalf("public code grant: %d %s", status, body)
	}
	_, other := tokenOf(s, login, "cli", "cli-secret")
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"another client's token", PathRevoke, "client_id=pub&token=" + other.RefreshToken, 400, "unauthorized_client"},
		{"a public client with a secret", PathRevoke, "client_id=pub&client_secret=x&token=" + tok.RefreshToken, 401, "invalid_client"},
		{"introspection", PathIntrospect, "client_id=pub&token=" + tok.RefreshToken, 401, "invalid_client"},
		{"its own token", PathRevoke, "client_id=pub&token=" + tok.RefreshToken, 200, ""},
	} {
		if status, body := post(tc.path, tc.body); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.want)
		}
	}
	if status, _ := post(PathToken, "grant_type=refresh_token&client_id=pub&refresh_token="+tok.RefreshToken); status != 400 {
		t.Fatalf("refresh after the public client revoked it: %d", status)
	}
	if !s.Revoked(jtiUnverified(t, tok.AccessToken)) {
		t.Fatal("the family's access token is not denied after the revocation")
	}
	if status, _ := tokenOf(s, "grant_type=refresh_token&refresh_token="+other.RefreshToken, "cli", "cli-secret"); status != 200 {
		t.Fatal("the failed revocation of another client's token revoked it")
	}
}

// TestWrongHintDoesNotHideAToken: RFC 7009 §2.1 — a wrong token_type_hint must not stop the
// search: an access token revoked with hint refresh_token is revoked.
func TestWrongHintDoesNotHideAToken(t *testing.T) {
	s := newTestServer(t, clusterConfig(t))
	_, tok := tokenOf(s, "grant_type=client_credentials", "svc", "s3cret")
	if w := serveForm(s, PathRevoke, "token_type_hint=refresh_token&token="+tok.AccessToken, "svc", "s3cret"); w.Code != 200 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	if !s.Revoked(jtiUnverified(t, tok.AccessToken)) {
		t.Fatal("an access token revoked with the hint refresh_token is still active")
	}
}

// TestRevokedStaysRevokedInTheLeeway: a revoked token past its exp, but within the clock skew
// verifiers allow, is still refused (it must not come back to life when its deny-list entry
// would have expired).
func TestRevokedStaysRevokedInTheLeeway(t *testing.T) {
	cfg := clusterConfig(t)
	cfg.AccessTokenTTL = Duration(2 * time.Second)
	s := newTestServer(t, cfg)
	_, tok := tokenOf(s, "grant_type=client_credentials", "svc", "s3cret")
	if w := serveForm(s, PathRevoke, "token="+tok.AccessToken, "svc", "s3cret"); w.Code != 200 {
		t.Fatalf("revoke: %d", w.Code)
	}
	time.Sleep(3 * time.Second) // past exp, within the 5 s leeway of verifyAccessToken
	if w := serveForm(s, PathIntrospect, "token="+tok.AccessToken, "svc", "s3cret"); !strings.Contains(w.Body.String(), `"active":false`) {
		t.Fatalf("a revoked token in the leeway introspects as %s", w.Body)
	}
}

// TestReplayThroughAnotherClientRevokesNothing: a used code replayed by another client is
// refused but revokes nothing: the code was bound to its client, and a stranger naming some
// public client must not be able to end the victim's session with a leaked, used code.
func TestReplayThroughAnotherClientRevokesNothing(t *testing.T) {
	cfg := clusterConfig(t)
	for _, id := range []string{"a", "b"} {
		cfg.Clients = append(cfg.Clients, Client{ID: id, Secret: id + "-secret", RedirectURIs: []string{"https://app.test/cb"},
			Grants: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read", "offline_access"}})
	}
	s := newTestServer(t, cfg)
	code := "a-code-of-client-a-that-is-long-enough-to-look-real"
	err := s.state.PutCode(context.Background(), code, state.Code{ClientID: "a", RedirectURI: "https://app.test/cb",
		Scopes: []string{"read", "offline_access"}, User: "alice", AuthTime: time.Now().Unix()}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	redeem := "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.test%2Fcb&code=" + code
	status, tok := tokenOf(s, redeem, "a", "a-secret")
	if status != 200 {
		t.Fatalf("redemption: %d", status)
	}
	if status, _ := tokenOf(s, redeem, "b", "b-secret"); status != 400 {
		t.Fatalf("replay by another client: %d", status)
	}
	if s.Revoked(jtiUnverified(t, tok.AccessToken)) {
		t.Fatal("a replay through another client revoked the victim's access token")
	}
	if status, _ := tokenOf(s, "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "a", "a-secret"); status != 200 {
		t.Fatal("a replay through another client revoked the victim's refresh family")
	}
	if status, _ := tokenOf(s, redeem, "a", "a-secret"); status != 400 || !s.Revoked(jtiUnverified(t, tok.AccessToken)) {
		t.Fatal("a replay by the code's own client must revoke what it issued")
	}
}

// TestRemovedUserCannotRefresh: a user taken out of the configuration loses their refresh
// tokens at once (the issuer restarts with the user gone, the store stays).
func TestRemovedUserCannotRefresh(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "users.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := clusterConfig(t)
	before, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+offline_access"
	_, tok := tokenOf(before, login, "cli", "cli-secret")
	before.Close()
	cfg.Users = nil
	after, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { after.Close() })
	if status, _ := tokenOf(after, "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "cli", "cli-secret"); status != 400 {
		t.Fatalf("a removed user's refresh token: %d, want 400", status)
	}
}

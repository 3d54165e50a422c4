package redisstore

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
)

// failoverOpts are short timeouts, so that an outage shows at once and the store finds the
// new master quickly.
var failoverOpts = Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}

// TestSentinelContract runs the contract suite, and its two-store checks, on a master with a
// replica found through three Sentinels.
func TestSentinelContract(t *testing.T) {
	t.Parallel()
	tp := redistest.StartSentinel(t, "tollgate", 1)
	openFn := func(t *testing.T) store.Store {
		s, err := Open(t.Context(), tp.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("Contract", func(t *testing.T) { storetest.Run(t, openFn) })
	t.Run("Shared", func(t *testing.T) { storetest.RunShared(t, openFn) })
	// Every write followed by WAIT in its pipeline keeps the contract, races included.
	durableFn := func(t *testing.T) store.Store {
		s, err := Open(t.Context(), tp.URL(), Options{MinReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		s.allDurable = true
		return s
	}
	t.Run("DurableContract", func(t *testing.T) { storetest.Run(t, durableFn) })
	t.Run("DurableShared", func(t *testing.T) { storetest.RunShared(t, durableFn) })
}

// TestSentinelFailover kills the master under a live store and a live subscription: writes
// work again within seconds on the new master without reopening the store, what was
// acknowledged with a replica's WAIT is still there, and the subscription resubscribes on the
// new master, calls Resync and delivers again.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	tp := redistest.StartSentinel(t, "tollgate", 1)
	opts := failoverOpts
	opts.DurableBuckets = []store.Bucket{"families"}
	s := open(t, tp.URL(), opts)
	pub := open(t, tp.URL(), failoverOpts)
	if s.MinReplicas() != 1 {
		t.Fatalf("MinReplicas() = %d with one replica connected, want 1", s.MinReplicas())
	}
	ctx := t.Context()
	if err := s.Put(ctx, "families", "f1", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	resyncs := make(chan struct{}, 10)
	err := s.Subscribe(ctx, "revoked", store.Subscriber{
		Message: func(m []byte) { mu.Lock(); got = append(got, string(m)); mu.Unlock() },
		Resync:  func() { resyncs <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-resyncs:
	case <-time.After(5 * time.Second):
		t.Fatal("no first Resync")
	}

	old := tp.Master()
	old.Kill()
	killed := time.Now()
	// Writes fail while the master is down, then work again through the same store. Durable
	// ones cannot (the only replica is the new master); plain ones must.
	var back time.Duration
	for {
		err := s.Put(ctx, "codes", "c", []byte("after"), time.Minute)
		if err == nil {
			back = time.Since(killed)
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Put while failing over: %v, want ErrUnavailable", err)
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("no write succeeded within 15s of killing the master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("writes work again %v after the master was killed", back.Round(time.Millisecond))
	next := tp.WaitForFailover(t, 5*time.Second)
	if next == old {
		t.Fatal("no new master")
	}
	if v, err := s.Get(ctx, "families", "f1"); err != nil || string(v) != "kept" {
		t.Fatalf("durable entry after the failover = %q, %v", v, err)
	}
	// With no replica left, a durable write is applied but not acknowledged.
	start := time.Now()
	if err := s.Put(ctx, "families", "f2", []byte("unreplicated"), 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("durable Put with no replica left: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("durable Put with no replica took %v", d)
	}

	select {
	case <-resyncs:
	case <-time.After(15 * time.Second):
		t.Fatal("no Resync after the failover")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = pub.Publish(ctx, "revoked", []byte("m"))
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no message delivered after the failover")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSentinelOpenErrors: a bad or unreachable Sentinel URL fails Open quickly and clearly, and
// no error shows a password, neither the Sentinels' (in the user info) nor the master's (the
// password parameter).
func TestSentinelOpenErrors(t *testing.T) {
	t.Parallel()
	const sentinelSecret, masterSecret = "s3ntinel-Pa55", "ma5ter-Pa55"
	closed := redistest.FreeAddr(t)
	cases := []struct {
		name, url string
		want      []string
		down      bool
	}{
		{"Refused", "redis://u:" + sentinelSecret + "@" + closed + "/0?master_name=m&password=" + masterSecret,
			[]string{"redis://u:xxxxx@" + closed + "/0?master_name=m&password=xxxxx"}, true},
		{"UnknownOption", "redis://u:" + sentinelSecret + "@" + closed + "/0?master_name=m&password=" + masterSecret + "&bogus=1",
			[]string{"unexpected option: bogus", "password=xxxxx"}, false},
		{"BadAddr", "redis://" + closed + "/0?master_name=m&password=" + masterSecret + "&addr=nohostport",
			[]string{"unable to parse addr param", "password=xxxxx"}, false},
		{"EmptyMasterName", "redis://" + closed + "/0?master_name=&password=" + masterSecret,
			[]string{"master_name is empty"}, false},
		{"NotAURL", "redis://u:" + sentinelSecret + "%zz@" + closed + "/0?master_name=m&password=" + masterSecret,
			[]string{"not a valid URL", "redis://xxxxx@" + closed + "/0?master_name=m&password=xxxxx"}, false},
		{"AddrWithoutMasterName", "redis://:" + masterSecret + "@" + closed + "/0?addr=" + closed,
			[]string{"unexpected option: addr", "master_name"}, false},
		// go-redis panics on the first two (a failover client cannot route reads), and all of
		// them would read from replicas that may lack a revocation.
		{"RouteRandomly", "redis://" + closed + "/0?master_name=m&route_randomly=true&password=" + masterSecret,
			[]string{"not supported", "password=xxxxx"}, false},
		{"RouteByLatency", "redis://" + closed + "/0?master_name=m&route_by_latency=true",
			[]string{"not supported"}, false},
		{"ReplicaOnly", "redis://" + closed + "/0?master_name=m&replica_only=true",
			[]string{"not supported"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s, err := Open(t.Context(), c.url, Options{DialTimeout: 300 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Open took %v to fail", d)
			}
			if cerr := CheckURL(c.url); (cerr == nil) != c.down {
				t.Errorf("CheckURL = %v; want an error exactly when the URL itself is bad", cerr)
			}
			msg := err.Error()
			if strings.Contains(msg, sentinelSecret) || strings.Contains(msg, masterSecret) || strings.Contains(msg, "Pa55") {
				t.Errorf("error shows a password: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if errors.Is(err, store.ErrUnavailable) != c.down {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !c.down, c.down)
			}
		})
	}
}

// TestSentinelWrongMasterName: Sentinels that do not know the master name make Open fail with
// ErrUnavailable.
func TestSentinelWrongMasterName(t *testing.T) {
	t.Parallel()
	tp := redistest.StartSentinel(t, "tollgate", 0)
	s, err := Open(t.Context(), tp.SentinelURL("nosuch"), failoverOpts)
	if err == nil {
		s.Close()
		t.Fatal("Open with an unknown master name succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open with an unknown master name: %v, want ErrUnavailable", err)
	}
}

// TestRedisURLRedactPasswordParams: the master password of a Sentinel URL, a query parameter,
// is redacted like the user's, in URLs that parse and in URLs that do not.
func TestRedisURLRedactPasswordParams(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://s:1/0?master_name=m&password=pw":                 "redis://s:1/0?master_name=m&password=xxxxx",
		"redis://u:pw@s:1/0?password=pw2&addr=s:2":                "redis://u:xxxxx@s:1/0?password=xxxxx&addr=s:2",
		"redis://s:1?master_name=m&PASSWORD=pw#frag":              "redis://s:1?master_name=m&PASSWORD=xxxxx#frag",
		"redis://u:p%zz@s:1/0?master_name=m&password=pw":          "redis://xxxxx@s:1/0?master_name=m&password=xxxxx",
		"redis://u:p%zz@s:1?master_name=m&password=pw&addr=s:2":   "redis://xxxxx@s:1?master_name=m&password=xxxxx&addr=s:2",
		"redis://s:1/0?master_name=m&sentinel_password=pw&addr=x": "redis://s:1/0?master_name=m&sentinel_password=xxxxx&addr=x",
		"redis://n1:1?addr=n2:2&addr=n3:3":                        "redis://n1:1?addr=n2:2&addr=n3:3",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSentinelMasterPassword: the master's password travels as the URL's password parameter
// (the user info is the Sentinels'); without it Open fails with NOAUTH, and no error shows it.
func TestSentinelMasterPassword(t *testing.T) {
	t.Parallel()
	const pw = "ma5ter-Secret"
	tp := redistest.StartSentinel(t, "tollgate", 1, "--requirepass", pw)
	s := open(t, tp.URL()+"&password="+pw, Options{})
	if err := s.Put(t.Context(), "b", "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if s.MinReplicas() != 1 {
		t.Errorf("MinReplicas() = %d, want 1", s.MinReplicas())
	}
	for _, u := range []string{tp.URL(), tp.URL() + "&password=wrong-" + pw} {
		bad, err := Open(t.Context(), u, failoverOpts)
		if err == nil {
			bad.Close()
			t.Fatalf("Open without the right master password succeeded")
		}
		if !errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), pw) {
			t.Errorf("Open without the right master password: %v; want ErrUnavailable, no password", err)
		}
	}
}

package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
)

// openCluster opens a cluster store on url and closes it when t ends.
func openCluster(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := OpenCluster(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestClusterContract runs the contract suite, and its two-store checks, on a Redis Cluster of
// three masters.
func TestClusterContract(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	openFn := func(t *testing.T) store.Store {
		s, err := OpenCluster(t.Context(), c.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("Contract", func(t *testing.T) { storetest.Run(t, openFn) })
	t.Run("Shared", func(t *testing.T) { storetest.RunShared(t, openFn) })
}

// TestClusterContractDurable runs the contract suite on a cluster of three masters with a
// replica each, every write followed by WAIT 1 on its master's connection.
func TestClusterContractDurable(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 1)
	openFn := func(t *testing.T) store.Store {
		s, err := OpenCluster(t.Context(), c.URL(), Options{MinReplicas: 1})
		if err != nil {
			t.Fatal(err)
		}
		s.allDurable = true
		return s
	}
	t.Run("Contract", func(t *testing.T) { storetest.Run(t, openFn) })
	t.Run("Shared", func(t *testing.T) { storetest.RunShared(t, openFn) })
}

// TestClusterKeyLayout: on a cluster, one bucket spreads over many hash slots and over every
// master, every script's keys (the entry and its index shard) share one slot, the keys are
// where the package documentation says, and Scan finds every entry across the shards.
func TestClusterKeyLayout(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	s := openCluster(t, c.URL(), Options{})
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Nodes[0].Addr}})
	t.Cleanup(func() { raw.Close() })
	ctx := t.Context()
	const b = store.Bucket("revoked_access_tokens")
	const n = 300
	slots := map[int64]bool{}
	masters := map[string]bool{}
	for i := range n {
		key := "jti-" + strconv.Itoa(i)
		if err := s.Put(ctx, b, key, []byte("v"+strconv.Itoa(i)), time.Hour); err != nil {
			t.Fatal(err)
		}
		keys := s.keys(b, key)
		want := "tollgate:{21:revoked_access_tokens:" + strconv.Itoa(shard(key)) + "}"
		if keys[1] != want || keys[0] != want+":"+key {
			t.Fatalf("keys of %q = %q, want %s and its entry", key, keys, want)
		}
		entrySlot, err := raw.ClusterKeySlot(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		indexSlot, err := raw.ClusterKeySlot(ctx, keys[1]).Result()
		if err != nil || entrySlot != indexSlot {
			t.Fatalf("%q: entry in slot %d, index in slot %d (%v)", key, entrySlot, indexSlot, err)
		}
		slots[entrySlot] = true
		m, err := raw.MasterForKey(ctx, keys[0])
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
		if v, err := raw.Get(ctx, keys[0]).Result(); err != nil || v != "v"+strconv.Itoa(i) {
			t.Fatalf("raw GET %s = %q, %v", keys[0], v, err)
		}
		if _, err := raw.ZScore(ctx, keys[1], key).Result(); err != nil {
			t.Fatalf("%s is not in its index shard: %v", key, err)
		}
	}
	if len(slots) < clusterShards/2 || len(masters) != 3 {
		t.Errorf("%d entries of one bucket are in %d slots on %d masters; want about %d slots on all 3", n, len(slots), len(masters), clusterShards)
	}
	seen := map[string]bool{}
	err := s.Scan(ctx, b, func(k string, v []byte) error {
		if seen[k] {
			t.Errorf("Scan gave %q twice", k)
		}
		seen[k] = true
		return nil
	})
	if err != nil || len(seen) != n {
		t.Fatalf("Scan saw %d of %d entries, %v", len(seen), n, err)
	}
	// The plain layout keeps one bucket in one hash tag, as deployed stores have it.
	plain := &Store{prefix: "tollgate"}
	if got := plain.keys(b, "jti-1"); got[1] != "tollgate:{21:revoked_access_tokens}" || got[0] != got[1]+":jti-1" {
		t.Errorf("plain layout keys = %q", got)
	}
	if got := plain.indexes(b); len(got) != 1 {
		t.Errorf("plain layout has %d index shards", len(got))
	}
}

// TestClusterDurable: on a cluster whose masters each have a replica, the default waits for
// one; a durable write returns once the replica of the key's master has it, and fails with
// ErrUnavailable when the replicas are frozen, which shows that WAIT runs on the master and
// connection of the write.
func TestClusterDurable(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 1)
	opts := durableOpts(0)
	s := openCluster(t, c.URL(), opts)
	if s.MinReplicas() != 1 {
		t.Fatalf("MinReplicas() = %d on a cluster with a replica per master, want 1", s.MinReplicas())
	}
	ctx := t.Context()
	var replicas []*redistest.Server
	var readers []*redis.Client
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, PoolSize: 1,
			OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }})
		t.Cleanup(func() { cl.Close() })
		info, err := cl.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "role:slave") {
			replicas = append(replicas, n)
			readers = append(readers, cl)
		}
	}
	if len(replicas) != 3 {
		t.Fatalf("%d replicas, want 3", len(replicas))
	}
	for i := range 30 {
		key := "f" + strconv.Itoa(i)
		if err := s.Put(ctx, durableBucket, key, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, r := range readers {
			if v, err := r.Get(ctx, s.entryKey(durableBucket, key)).Result(); err == nil && v == "v" {
				found++
			}
		}
		if found != 1 {
			t.Fatalf("%s is on %d replicas right after the durable Put, want its master's one", key, found)
		}
	}
	for _, r := range replicas {
		r.Signal(syscall.SIGSTOP)
	}
	for _, w := range durableWrites {
		if err := w.write(ctx, s, durableBucket, "frozen-"+w.name); !errors.Is(err, store.ErrUnavailable) &&
			!(w.prepare != nil && errors.Is(err, store.ErrNotFound)) {
			t.Errorf("%s with the replicas frozen: %v, want ErrUnavailable", w.name, err)
		}
	}
	if err := s.Put(ctx, "codes", "c", []byte("v"), time.Minute); err != nil {
		t.Errorf("Put to a bucket that is not durable with the replicas frozen: %v", err)
	}
	for _, r := range replicas {
		r.Signal(syscall.SIGCONT)
	}
	if err := s.Put(ctx, durableBucket, "after", []byte("v"), 0); err != nil {
		t.Errorf("durable Put once the replicas are back: %v", err)
	}
}

// TestClusterOpenErrors: a bad cluster URL fails without showing the password.
func TestClusterOpenErrors(t *testing.T) {
	t.Parallel()
	const secret = "c1uster-Pa55"
	closed := redistest.FreeAddr(t)
	for _, c := range []struct {
		name, url, want string
		down            bool
	}{
		{"Refused", "redis://u:" + secret + "@" + closed + "?addr=" + closed, "redis://u:xxxxx@" + closed, true},
		{"MasterName", "redis://u:" + secret + "@" + closed + "?master_name=m", "unexpected option: master_name", false},
		{"Scheme", "http://u:" + secret + "@" + closed, "invalid URL scheme", false},
		{"ReadOnly", "redis://u:" + secret + "@" + closed + "?read_only=true", "not supported", false},
		{"RouteRandomly", "redis://" + closed + "?route_randomly=true", "not supported", false},
		{"RouteByLatency", "redis://" + closed + "?route_by_latency=true", "not supported", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := OpenCluster(t.Context(), c.url, Options{DialTimeout: 300 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("OpenCluster succeeded")
			}
			if (CheckClusterURL(c.url) == nil) != c.down {
				t.Errorf("CheckClusterURL disagrees about %s", c.url)
			}
			if msg := err.Error(); strings.Contains(msg, secret) || !strings.Contains(msg, c.want) {
				t.Errorf("error %q: want %q and no password", msg, c.want)
			}
			if errors.Is(err, store.ErrUnavailable) != c.down {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v", err, !c.down)
			}
		})
	}
}

// TestClusterFailover kills the master of a key under live stores: once the cluster has
// promoted its replica, reads and writes of the key work again through the same stores, what
// a durable write acknowledged before is still there, and a durable write now fails (the new
// master has no replica) instead of being acknowledged.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 1)
	opts := failoverOpts
	opts.DurableBuckets = []store.Bucket{durableBucket}
	durable := openCluster(t, c.URL(), opts)
	opts.MinReplicas = NoReplicaWait
	plain := openCluster(t, c.URL(), opts)
	ctx := t.Context()
	if err := durable.Put(ctx, durableBucket, "f", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.Nodes[0].Addr}})
	t.Cleanup(func() { raw.Close() })
	m, err := raw.MasterForKey(ctx, durable.entryKey(durableBucket, "f"))
	if err != nil {
		t.Fatal(err)
	}
	var victim *redistest.Server
	for _, n := range c.Nodes {
		if n.Addr == m.Options().Addr {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no node at %s", m.Options().Addr)
	}
	victim.Kill()
	killed := time.Now()
	for {
		v, err := plain.Get(ctx, durableBucket, "f")
		if err == nil {
			if string(v) != "kept" {
				t.Fatalf("after the failover the entry is %q, want kept", v)
			}
			err = plain.Put(ctx, durableBucket, "f", []byte("after"), 0)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("call during the failover: %v, want ErrUnavailable", err)
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("the store did not recover within 20s of killing a master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the store works again %v after a master was killed", time.Since(killed).Round(time.Millisecond))
	if err := durable.Put(ctx, durableBucket, "f", []byte("unreplicated"), 0); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("durable Put on a master without replica: %v, want ErrUnavailable", err)
	}
}

// TestClusterWrongBackend: the plain backend on a cluster node, which would answer MOVED for
// most keys, and the cluster backend on a plain server both fail Open and say so.
func TestClusterWrongBackend(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	if s, err := Open(t.Context(), c.Nodes[0].URL(), Options{}); err == nil {
		s.Close()
		t.Error("Open of a cluster node with the plain backend succeeded")
	} else if !strings.Contains(err.Error(), "storage redis_cluster") {
		t.Errorf("Open of a cluster node: %v, want a hint at redis_cluster", err)
	}
	plain := redistest.Start(t)
	if s, err := OpenCluster(t.Context(), plain.URL(), Options{}); err == nil {
		s.Close()
		t.Error("OpenCluster of a plain server succeeded")
	} else if !strings.Contains(err.Error(), "cluster support disabled") {
		t.Errorf("OpenCluster of a plain server: %v", err)
	}
}

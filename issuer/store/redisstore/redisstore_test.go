package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
)

// open opens a store on url and closes it when t ends.
func open(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain go-redis client on srv, for looking at what the store wrote.
func rawClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisContract runs the contract suite with every subtest's store on one server, as the
// stores of a cluster share one database.
func TestRedisContract(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), srv.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestRedisPersistence runs the persistence suite on a server with an append-only file, killed
// and started again between the suite's stores, so the data comes back from the disk.
func TestRedisPersistence(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	started := false
	storetest.RunPersistence(t, func(t *testing.T) store.Store {
		if started {
			srv.Restart()
		}
		started = true
		s, err := Open(t.Context(), srv.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestRedisKeyLayout checks the documented key layout and that prefixes keep issuers apart.
func TestRedisKeyLayout(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := t.Context()
	def := open(t, srv.URL(), Options{})
	other := open(t, srv.URL(), Options{KeyPrefix: "other"})
	if err := def.Put(ctx, "codes", "k:1", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := def.Incr(ctx, "n", "forever", 1, 0); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv)
	if v, err := raw.Get(ctx, "tollgate:{5:codes}:k:1").Result(); err != nil || v != "v" {
		t.Errorf("raw GET of the entry = %q, %v", v, err)
	}
	if ttl := raw.PTTL(ctx, "tollgate:{5:codes}:k:1").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("entry PTTL = %v, want about 1h", ttl)
	}
	score := raw.ZScore(ctx, "tollgate:{5:codes}", "k:1").Val()
	if exp := time.UnixMilli(int64(score)); time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour+time.Minute {
		t.Errorf("index score is %v, want an hour from now", exp)
	}
	if got := raw.ZScore(ctx, "tollgate:{1:n}", "forever").Val(); got < 1e300 {
		t.Errorf("index score of a counter without ttl = %v, want +inf", got)
	}
	if _, err := other.Get(ctx, "codes", "k:1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a store with another prefix sees the entry: %v", err)
	}
	if n, err := count(ctx, other, "codes"); err != nil || n != 0 {
		t.Errorf("Scan with another prefix saw %d entries, %v", n, err)
	}
	for _, p := range []string{"a{b", "a}b"} {
		if s, err := Open(ctx, srv.URL(), Options{KeyPrefix: p}); err == nil {
			s.Close()
			t.Errorf("Open with prefix %q succeeded", p)
		}
	}
}

// TestRedisNotACounter: Incr on a value that is no counter says so (the contract suite checks
// the rest of the caller mistakes).
func TestRedisNotACounter(t *testing.T) {
	t.Parallel()
	s := open(t, redistest.Start(t).URL(), Options{})
	if err := s.Put(t.Context(), "b", "text", []byte("not a number"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(t.Context(), "b", "text", 1, 0); !errors.Is(err, errNotCounter) {
		t.Errorf("Incr on text: %v, want errNotCounter", err)
	}
}

// TestRedisIndexForgetsExpired checks that the index of a bucket of short-lived entries that is
// never listed does not grow: writes drop members that expired over a second ago.
func TestRedisIndexForgetsExpired(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{})
	ctx := t.Context()
	const b = store.Bucket("codes")
	for i := range 100 {
		key := string(rune('a'+i%26)) + strings.Repeat("x", i)
		if err := s.Create(ctx, b, key, []byte("c"), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, b, "n"+key, 1, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, b, "forever", []byte("f"), 0); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv)
	if n := raw.ZCard(ctx, "tollgate:{5:codes}").Val(); n != 201 {
		t.Fatalf("index holds %d members, want 201", n)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := s.Put(ctx, b, "late", []byte("l"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if m, err := raw.ZRange(ctx, "tollgate:{5:codes}", 0, -1).Result(); err != nil || len(m) != 2 {
		t.Errorf("index after a later write = %q, %v; want forever and late", m, err)
	}
	if n, err := count(ctx, s, b); err != nil || n != 2 {
		t.Errorf("Scan saw %d entries, %v; want forever and late", n, err)
	}
}

// count is how many entries Scan sees in b.
func count(ctx context.Context, s *Store, b store.Bucket) (int, error) {
	n := 0
	err := s.Scan(ctx, b, func(string, []byte) error { n++; return nil })
	return n, err
}

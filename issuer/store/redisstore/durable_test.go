package redisstore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
)

// durableBucket is the durable bucket of these tests; "codes" is not durable.
const durableBucket = store.Bucket("families")

// durableOpts make "families" durable with a short replica timeout.
func durableOpts(min int) Options {
	return Options{DurableBuckets: []store.Bucket{durableBucket}, MinReplicas: min, ReplicaTimeout: 300 * time.Millisecond}
}

// durableWrite is one kind of write, its expected effect on the entry seen from a replica.
type durableWrite struct {
	name string
	// prepare runs first, without the replica stopped; may be nil.
	prepare func(ctx context.Context, s *Store, b store.Bucket, key string) error
	write   func(ctx context.Context, s *Store, b store.Bucket, key string) error
	want    string // the entry on the replica afterwards; "" means absent
}

var durableWrites = []durableWrite{
	{"Put", nil, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		return s.Put(ctx, b, k, []byte("put"), time.Hour)
	}, "put"},
	{"Create", nil, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		return s.Create(ctx, b, k, []byte("created"), 0)
	}, "created"},
	{"Take", putFirst, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		_, err := s.Take(ctx, b, k)
		return err
	}, ""},
	{"Delete", putFirst, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		return s.Delete(ctx, b, k)
	}, ""},
	{"Incr", nil, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		_, err := s.Incr(ctx, b, k, 7, time.Hour)
		return err
	}, "7"},
	{"Update", putFirst, func(ctx context.Context, s *Store, b store.Bucket, k string) error {
		return s.Update(ctx, b, k, func(cur []byte, _ bool) ([]byte, time.Duration, error) {
			return append(cur, "+updated"...), time.Hour, nil
		})
	}, "first+updated"},
}

// putFirst puts "first" under key.
func putFirst(ctx context.Context, s *Store, b store.Bucket, k string) error {
	return s.Put(ctx, b, k, []byte("first"), 0)
}

// TestDurableWritesReachReplica: with a replica running, every kind of write to a durable
// bucket returns only once the replica has it: a read from the replica right after the call
// sees it, also with many writers at once.
func TestDurableWritesReachReplica(t *testing.T) {
	t.Parallel()
	master, reps := redistest.StartReplicated(t, 1)
	s := open(t, master.URL(), durableOpts(0))
	if s.MinReplicas() != 1 {
		t.Fatalf("MinReplicas() = %d with a replica connected, want the default 1", s.MinReplicas())
	}
	replica := rawClient(t, reps[0])
	ctx := t.Context()
	for _, w := range durableWrites {
		t.Run(w.name, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					key := w.name + strconv.Itoa(i)
					if w.prepare != nil {
						if err := w.prepare(ctx, s, durableBucket, key); err != nil {
							t.Error(err)
							return
						}
					}
					if err := w.write(ctx, s, durableBucket, key); err != nil {
						t.Errorf("%s: %v", key, err)
						return
					}
					got, err := replica.Get(ctx, s.entryKey(durableBucket, key)).Result()
					switch {
					case w.want == "" && !errors.Is(err, redis.Nil):
						t.Errorf("%s on the replica right after the call = %q, %v; want it gone", key, got, err)
					case w.want != "" && (err != nil || got != w.want):
						t.Errorf("%s on the replica right after the call = %q, %v; want %q", key, got, err, w.want)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestDurableWritesNeedReplica: with the replica frozen (SIGSTOP: connected, but it
// acknowledges nothing), every write to a durable bucket fails with ErrUnavailable within
// about the replica timeout, although the master applied it, while writes to other buckets
// succeed at once and writes that change nothing give their own answer; once the replica is back, durable writes work.
func TestDurableWritesNeedReplica(t *testing.T) {
	t.Parallel()
	master, reps := redistest.StartReplicated(t, 1)
	s := open(t, master.URL(), durableOpts(0))
	ctx := t.Context()
	for _, w := range durableWrites {
		if w.prepare != nil {
			if err := w.prepare(ctx, s, durableBucket, w.name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Put(ctx, durableBucket, "exists", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	reps[0].Signal(syscall.SIGSTOP)
	for _, w := range durableWrites {
		start := time.Now()
		err := w.write(ctx, s, durableBucket, w.name)
		d := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s to a durable bucket with the replica frozen: %v, want ErrUnavailable", w.name, err)
		}
		if d < 250*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("%s failed after %v, want about the replica timeout of 300ms", w.name, d)
		}
	}
	raw := rawClient(t, master)
	if v, err := raw.Get(ctx, s.entryKey(durableBucket, "Put")).Result(); err != nil || v != "put" {
		t.Errorf("the master has %q, %v for the unacknowledged Put; want it applied", v, err)
	}
	start := time.Now()
	if err := s.Put(ctx, "codes", "c", []byte("v"), time.Minute); err != nil {
		t.Errorf("Put to a bucket that is not durable with the replica frozen: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a write to a bucket that is not durable took %v with the replica frozen", d)
	}
	// A durable write that changes nothing gives its own answer; its WAIT, sent in the same
	// pipeline, still waits (for the connection's earlier writes) but does not count.
	start = time.Now()
	if err := s.Create(ctx, durableBucket, "exists", []byte("y"), 0); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create of a taken key with the replica frozen: %v, want ErrExists (nothing written)", err)
	}
	if _, err := s.Take(ctx, durableBucket, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Take of an absent key with the replica frozen: %v, want ErrNotFound", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two durable writes that changed nothing took %v with the replica frozen", d)
	}
	reps[0].Signal(syscall.SIGCONT)
	if err := s.Put(ctx, durableBucket, "after", []byte("v"), 0); err != nil {
		t.Errorf("durable Put once the replica is back: %v", err)
	}
}

// TestDurableMinReplicas: the default follows the replicas connected at Open, an explicit
// count always wins, and NoReplicaWait never waits.
func TestDurableMinReplicas(t *testing.T) {
	t.Parallel()
	alone := redistest.Start(t)
	master, reps := redistest.StartReplicated(t, 1)
	ctx := t.Context()
	cases := []struct {
		name    string
		url     string
		min     int
		freeze  bool // freeze the replica before writing
		want    int  // MinReplicas()
		durable bool // the durable Put succeeds
	}{
		{"DefaultWithoutReplicas", alone.URL(), 0, false, 0, true},
		{"ExplicitWithoutReplicas", alone.URL(), 1, false, 1, false},
		{"DefaultWithReplica", master.URL(), 0, false, 1, true},
		{"TwoOfOne", master.URL(), 2, false, 2, false},
		{"NoWaitFrozen", master.URL(), NoReplicaWait, true, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t, c.url, durableOpts(c.min))
			if got := s.MinReplicas(); got != c.want {
				t.Errorf("MinReplicas() = %d, want %d", got, c.want)
			}
			if c.freeze {
				reps[0].Signal(syscall.SIGSTOP)
				defer reps[0].Signal(syscall.SIGCONT)
			}
			err := s.Put(ctx, durableBucket, c.name, []byte("v"), 0)
			if ok := err == nil; ok != c.durable {
				t.Errorf("durable Put: %v; want success %v", err, c.durable)
			}
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("durable Put: %v, want ErrUnavailable", err)
			}
		})
	}
	if s, err := Open(ctx, alone.URL(), Options{MinReplicas: -2}); err == nil {
		s.Close()
		t.Error("Open with MinReplicas -2 succeeded")
	}
}

// TestDurableReadTimeout: a replica timeout longer than the read timeout still waits the
// whole replica timeout (the read timeout grows to fit it) and fails with ErrUnavailable, not
// with a read timeout.
func TestDurableReadTimeout(t *testing.T) {
	t.Parallel()
	master, reps := redistest.StartReplicated(t, 1)
	opts := durableOpts(1)
	opts.ReadTimeout = 200 * time.Millisecond
	opts.ReplicaTimeout = 700 * time.Millisecond
	s := open(t, master.URL(), opts)
	reps[0].Signal(syscall.SIGSTOP)
	defer reps[0].Signal(syscall.SIGCONT)
	start := time.Now()
	err := s.Put(t.Context(), durableBucket, "k", []byte("v"), 0)
	if d := time.Since(start); d < 650*time.Millisecond || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("durable Put with the replica frozen: %v after %v; want ErrUnavailable after the 700ms replica timeout", err, d)
	}
}

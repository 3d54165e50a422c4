package state

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

func TestDenyList(t *testing.T) {
	d := NewDenyList()
	now := time.Now().Unix()
	ours, other, nonCanonical := NewID(), "jti-from-elsewhere", "AAAAAAAAAAAAAAAAAAAAAB" // 22 chars, non-zero padding bits
	for _, tc := range []struct {
		jti string
		exp int64
	}{{ours, now + 60}, {other, now + 60}, {"just expired", now - 1}, {"long expired", now - int64(DenyMargin/time.Second) - 1}} {
		d.add(tc.jti, tc.exp)
	}
	// A token just past its expiry stays denied: a verifier's leeway would still let it pass.
	for jti, want := range map[string]bool{ours: true, other: true, "just expired": true, "long expired": false,
		NewID(): false, nonCanonical: false, "": false} {
		if got := d.Revoked(jti); got != want {
			t.Errorf("Revoked(%q) = %v, want %v", jti, got, want)
		}
	}
	if _, ok := compact(ours); !ok {
		t.Error("a NewID jti is not kept compact")
	}
	if _, ok := compact(nonCanonical); ok {
		t.Error("a non-canonical base64 jti would share an entry with another")
	}
	// Pruning drops only expired entries.
	for i := range 3 * pruneEvery {
		d.add(NewID(), now-int64(DenyMargin/time.Second)-1+int64(i%2)*int64(2*DenyMargin/time.Second))
	}
	if n := d.Len(); n > 3*pruneEvery {
		t.Errorf("%d entries after adding %d, half of them expired: not pruned", n, 3*pruneEvery)
	}
	if !d.Revoked(ours) || !d.Revoked(other) {
		t.Error("pruning dropped a live entry")
	}
}

// TestWatchKeepsNodesCurrent: two States on one Redis, each with its DenyList; what either
// denies reaches both lists without a reread, and a list that starts later loads what was
// denied before it.
func TestWatchKeepsNodesCurrent(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *State {
		st, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return New(st, Options{})
	}
	ctx := t.Context()
	a, b := open(), open()
	before := NewID()
	if err := a.Deny(ctx, before, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	lists := []*DenyList{NewDenyList(), NewDenyList()}
	for i, s := range []*State{a, b} {
		synced := make(chan error, 4)
		if err := s.Watch(ctx, lists[i], func(err error) { synced <- err }, nil); err != nil {
			t.Fatal(err)
		}
		if err := <-synced; err != nil {
			t.Fatal(err)
		}
	}
	jtis := []string{before}
	for i := range 20 {
		jti := NewID()
		jtis = append(jtis, jti)
		if err := []*State{a, b}[i%2].Deny(ctx, jti, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, d := range lists {
		for _, jti := range jtis {
			for !d.Revoked(jti) {
				if time.Now().After(deadline) {
					t.Fatalf("%s never reached a node's deny-list", jti)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// BenchmarkDenyListMemory is the memory a node's deny-list takes per revoked token, at 1,000,000
// entries (jti as Tollgate mints them).
func BenchmarkDenyListMemory(b *testing.B) {
	const n = 1_000_000
	jtis := make([]string, n)
	for i := range jtis {
		jtis[i] = NewID()
	}
	exp := time.Now().Add(time.Hour).Unix()
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		d := NewDenyList()
		for _, j := range jtis {
			d.add(j, exp)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "bytes/entry")
		runtime.KeepAlive(d)
	}
}

// BenchmarkDenyListResync is a node rereading a deny-list of 1,000,000 entries from the store
// after a reconnection (or at start): one Scan into its DenyList. Filling the store takes a
// while (1,000,000 writes, untimed); run it with -benchtime 1x.
func BenchmarkDenyListResync(b *testing.B) {
	const n = 1_000_000
	for _, be := range []struct {
		name string
		open func() store.Store
	}{
		{"redis", func() store.Store {
			st, err := redisstore.Open(context.Background(), redistest.Start(b).URL(), redisstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	} {
		b.Run(be.name, func(b *testing.B) {
			st := be.open()
			defer st.Close()
			s := New(st, Options{})
			fill(b, st, n)
			for b.Loop() {
				d := NewDenyList()
				start := time.Now()
				if err := s.Load(context.Background(), d); err != nil {
					b.Fatal(err)
				}
				if d.Len() != n {
					b.Fatalf("resync loaded %d entries, want %d", d.Len(), n)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/resync")
			}
		})
	}
}

// fill writes n deny-list records from 32 goroutines at once. (Only Redis: a node of a bolt
// store reads its deny-list once, at start, and every later denial reaches it in process.)
func fill(b *testing.B, st store.Store, n int) {
	b.Helper()
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := st.Put(context.Background(), bucketRevokedAccessTokens, NewID(), []byte(exp), time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// loadingStore is a real store whose subscription the test drives by hand and whose Scan
// fails while loading is set, as Redis answers LOADING while it reads its data back after a
// restart (SUBSCRIBE is served then; SCAN is not).
type loadingStore struct {
	store.Store
	sub     store.Subscriber
	loading atomic.Int32 // Scans still to fail
}

func (l *loadingStore) Subscribe(_ context.Context, _ string, sub store.Subscriber) error {
	l.sub = sub
	sub.Resync()
	return nil
}

func (l *loadingStore) Scan(ctx context.Context, b store.Bucket, fn func(string, []byte) error) error {
	if l.loading.Add(-1) >= 0 {
		return errors.New("LOADING Redis is loading the dataset in memory")
	}
	return l.Store.Scan(ctx, b, fn)
}

// TestWatchRetriesFailedReread: the subscription comes back but its reread fails (the store
// is not ready yet): the reread is tried again until it succeeds, so a revocation made by
// another node during the outage reaches this node's copy without another reconnection.
func TestWatchRetriesFailedReread(t *testing.T) {
	for _, failures := range []int32{1, 2} {
		t.Run(strconv.Itoa(int(failures)), func(t *testing.T) {
			raw, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			l := &loadingStore{Store: raw}
			node := New(l, Options{})
			d := NewDenyList()
			var outcomes sync.Map // attempt → error string
			var attempts atomic.Int32
			if err := node.Watch(t.Context(), d, func(err error) {
				outcomes.Store(attempts.Add(1), err)
			}, nil); err != nil {
				t.Fatal(err)
			}
			jti := NewID()
			if err := New(raw, Options{}).Deny(t.Context(), jti, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			l.loading.Store(failures)
			l.sub.Resync() // back, but the store cannot answer a Scan yet
			deadline := time.Now().Add(rereadRetryMin*(1<<failures) + 2*time.Second)
			for !d.Revoked(jti) {
				if time.Now().After(deadline) {
					t.Fatalf("%d failed rereads: the revocation made during the outage never reached this node (%d rereads)", failures, attempts.Load())
				}
				time.Sleep(20 * time.Millisecond)
			}
			last, _ := outcomes.Load(attempts.Load())
			if last != nil && last.(error) != nil {
				t.Fatalf("the last reread reported %v", last)
			}
			if got, want := attempts.Load(), 2+failures; got != want { // start, the failures, the success
				t.Fatalf("%d rereads reported, want %d", got, want)
			}
		})
	}
}

package redisstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
)

// TestRedisTwoStores checks what a cluster of two Caddy instances relies on: two stores on one
// Redis see each other's writes at once, and closing one leaves the other working.
func TestRedisTwoStores(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := open(t, srv.URL(), Options{}), open(t, srv.URL(), Options{})
	ctx := t.Context()
	const keys = store.Bucket("keys")
	if err := a.Put(ctx, keys, "kid-1", []byte("key one"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, keys, "kid-1"); err != nil || string(got) != "key one" {
		t.Fatalf("b.Get of a's Put = %q, %v", got, err)
	}
	if err := b.Create(ctx, keys, "kid-2", []byte("key two"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, keys, "kid-2", []byte("mine"), time.Hour); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a.Create of b's key: %v, want ErrExists", err)
	}
	for _, s := range []*Store{a, b} {
		m, err := s.List(ctx, keys)
		if err != nil || len(m) != 2 || string(m["kid-1"]) != "key one" || string(m["kid-2"]) != "key two" {
			t.Fatalf("List = %q, %v; want both keys", m, err)
		}
	}
	for i, s := range []*Store{a, b, a} {
		if n, err := s.Incr(ctx, "throttle", "ip", time.Minute); err != nil || n != int64(i+1) {
			t.Fatalf("Incr #%d = %d, %v", i+1, n, err)
		}
	}
	if err := b.Delete(ctx, keys, "kid-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, keys, "kid-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a.Get after b.Delete: %v, want ErrNotFound", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, keys, "kid-2"); err != nil || string(got) != "key two" {
		t.Fatalf("b.Get after a.Close = %q, %v", got, err)
	}
}

// TestRedisTakeRaceAcrossStores races Takes of one code from two stores, as two instances
// redeeming one authorization code would: exactly one wins, whichever store it used.
func TestRedisTakeRaceAcrossStores(t *testing.T) {
	t.Parallel()
	const racers, rounds = 32, 20
	srv := redistest.Start(t)
	stores := []*Store{open(t, srv.URL(), Options{}), open(t, srv.URL(), Options{})}
	ctx := t.Context()
	wins := [2]int{}
	for r := range rounds {
		key, want := fmt.Sprintf("code-%d", r), fmt.Sprintf("grant %d", r)
		if err := stores[r%2].Put(ctx, "codes", key, []byte(want), time.Minute); err != nil {
			t.Fatal(err)
		}
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		got, errs := make([][]byte, racers), make([]error, racers)
		ready.Add(racers)
		for i := range racers {
			done.Go(func() {
				ready.Done()
				<-start
				got[i], errs[i] = stores[i%2].Take(ctx, "codes", key)
			})
		}
		ready.Wait()
		close(start)
		done.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both took the code", r, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrNotFound):
				t.Fatalf("round %d: racer %d: %v", r, i, err)
			}
		}
		if winner < 0 || string(got[winner]) != want {
			t.Fatalf("round %d: winner %d took %q", r, winner, got[max(winner, 0)])
		}
		wins[winner%2]++
	}
	t.Logf("wins per store: %v", wins)
}

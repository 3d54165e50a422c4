package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
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
		m := map[string]string{}
		err := s.Scan(ctx, keys, func(k string, v []byte) error { m[k] = string(v); return nil })
		if err != nil || len(m) != 2 || m["kid-1"] != "key one" || m["kid-2"] != "key two" {
			t.Fatalf("Scan = %q, %v; want both keys", m, err)
		}
	}
	for i, s := range []*Store{a, b, a} {
		if n, err := s.Incr(ctx, "throttle", "ip", 1, time.Minute); err != nil || n != int64(i+1) {
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

// TestRedisShared runs the contract's cross-store checks on two stores of one server, as two
// Caddy instances use one Redis: every race with its racers spread over both stores (a code
// taken once, a family revoked once with nothing appended escaping it), and messages
// published on one delivered on the other.
func TestRedisShared(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	storetest.RunShared(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), srv.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// RunPersistence checks that data outlives the store that wrote it: it opens a store, writes
// entries with and without a TTL, closes it, opens the same data again and checks what is
// there, then does so once more after the short-lived entries have expired.
//
// reopen must return a new store over the same underlying data on every call (the same file,
// the same Redis database). RunPersistence closes each store before it opens the next, so
// reopen never finds the data in use. It takes a little over one second.
func RunPersistence(t *testing.T, reopen func(t *testing.T) store.Store) {
	b, counters, other := bucket(t, "persist"), bucket(t, "persist-n"), bucket(t, "persist-o")
	ctx := t.Context()

	// First life: write.
	s := openStore(t, reopen)
	c := startClock(t)
	mustPut(t, s, b, "forever", []byte("f"), 0)
	mustPut(t, s, b, "long", []byte("l"), time.Hour)
	mustPut(t, s, b, "short", []byte("s"), shortTTL)
	mustPut(t, s, b, "deleted", []byte("d"), 0)
	mustPut(t, s, b, "taken", []byte("t"), time.Hour)
	if err := s.Create(ctx, b, "created", []byte("c"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, b, "deleted"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, b, "taken"); err != nil {
		t.Fatal(err)
	}
	wantIncr(t, s, counters, "count", 0, 1)
	wantIncr(t, s, counters, "count", 0, 2)
	wantIncr(t, s, counters, "window", shortTTL, 1)
	mustPut(t, s, other, "o", []byte("o"), 0)
	c.written()
	closeStore(t, s)

	// Second life: everything is there, short-lived entries included.
	s = openStore(t, reopen)
	wantValue(t, s, b, "short", []byte("s"))
	wantList(t, s, b, map[string][]byte{
		"forever": []byte("f"), "long": []byte("l"), "short": []byte("s"), "created": []byte("c"),
	})
	wantIncr(t, s, counters, "window", shortTTL, 2)
	c.live()
	wantNotFound(t, s, b, "deleted")
	wantNotFound(t, s, b, "taken")
	if err := s.Create(ctx, b, "created", []byte("again"), 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create of a key created before the restart: %v, want ErrExists", err)
	}
	wantIncr(t, s, counters, "count", 0, 3)
	wantList(t, s, other, map[string][]byte{"o": []byte("o")})
	closeStore(t, s)

	// Third life, after expiry: short-lived entries are gone, the rest is still there.
	c.expire()
	s = openStore(t, reopen)
	wantNotFound(t, s, b, "short")
	wantList(t, s, b, map[string][]byte{
		"forever": []byte("f"), "long": []byte("l"), "created": []byte("c"),
	})
	wantIncr(t, s, counters, "window", shortTTL, 1)
	wantIncr(t, s, counters, "count", 0, 4)
	closeStore(t, s)
}

// closeStore closes s and fails the test if that fails.
func closeStore(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

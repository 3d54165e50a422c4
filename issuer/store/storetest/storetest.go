package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// test is one contract check, given a store of its own.
type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run checks that the stores open returns honour the store.Store contract.
//
// open is called once per subtest, possibly from several goroutines at once, and must return
// a new, ready store each time; Run closes it when the subtest ends (closing one store must
// not affect the others). Stores may share their underlying data: every subtest uses buckets
// of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	// The TTL checks spend their time asleep, so they all run at once, alongside the others.
	// As plain subtests (not t.Parallel) started from goroutines of their own they take no
	// -parallel slot, so the suite takes about one TTL however few slots there are.
	var wg sync.WaitGroup
	wg.Go(func() {
		t.Run("TTL", func(t *testing.T) {
			var ttl sync.WaitGroup
			for _, tc := range ttlTests {
				ttl.Go(func() { runTest(t, tc, open) })
			}
			ttl.Wait()
		})
	})
	t.Run("Basic", func(t *testing.T) {
		for _, tc := range basicTests {
			runTest(t, tc, open)
		}
	})
	t.Run("Race", func(t *testing.T) {
		for _, tc := range raceTests {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, []store.Store{openStore(t, open)}) })
		}
	})
	wg.Wait()
}

// RunShared checks the guarantees that must hold between several stores on one backend (two
// Caddy instances on one Redis): every race of the suite with its racers spread over two
// stores, and messages published on one delivered on the other. open is called twice per
// subtest and must return two stores that share their data; Run closes them.
func RunShared(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range raceTests {
		t.Run("Race/"+tc.name, func(t *testing.T) {
			tc.fn(t, []store.Store{openStore(t, open), openStore(t, open)})
		})
	}
	t.Run("PublishAcross", func(t *testing.T) {
		testPublishAcross(t, []store.Store{openStore(t, open), openStore(t, open)})
	})
}

// runTest runs tc as a subtest of t, on a store of its own.
func runTest(t *testing.T, tc test, open func(t *testing.T) store.Store) {
	t.Run(tc.name, func(t *testing.T) { tc.fn(t, openStore(t, open)) })
}

// openStore opens a store for t and closes it when t ends.
func openStore(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// bucket returns a bucket name no other subtest or run uses.
func bucket(t *testing.T, name string) store.Bucket {
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return store.Bucket("storetest/" + name + "/" + hex.EncodeToString(r[:]))
}

func mustPut(t *testing.T, s store.Store, b store.Bucket, key string, v []byte, ttl time.Duration) {
	t.Helper()
	if err := s.Put(t.Context(), b, key, v, ttl); err != nil {
		t.Fatalf("Put(%s, %q): %v", b, key, err)
	}
}

func wantValue(t *testing.T, s store.Store, b store.Bucket, key string, want []byte) {
	t.Helper()
	got, err := s.Get(t.Context(), b, key)
	if err != nil {
		t.Fatalf("Get(%s, %q): %v, want %q", b, key, err, abbrev(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s, %q) = %q, want %q", b, key, abbrev(got), abbrev(want))
	}
}

func wantNotFound(t *testing.T, s store.Store, b store.Bucket, key string) {
	t.Helper()
	got, err := s.Get(t.Context(), b, key)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s, %q) = %q, %v; want ErrNotFound", b, key, abbrev(got), err)
	}
}

func wantList(t *testing.T, s store.Store, b store.Bucket, want map[string][]byte) {
	t.Helper()
	got := list(t, s, b)
	if !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("Scan(%s) saw keys %q, want %q (or values differ)", b, sortedKeys(got), sortedKeys(want))
	}
}

// list collects what Scan sees in b.
func list(t *testing.T, s store.Store, b store.Bucket) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	err := s.Scan(t.Context(), b, func(k string, v []byte) error {
		got[k] = bytes.Clone(v)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%s): %v", b, err)
	}
	return got
}

func wantIncr(t *testing.T, s store.Store, b store.Bucket, key string, ttl time.Duration, want int64) {
	t.Helper()
	wantIncrBy(t, s, b, key, 1, ttl, want)
}

func wantIncrBy(t *testing.T, s store.Store, b store.Bucket, key string, by int64, ttl time.Duration, want int64) {
	t.Helper()
	got, err := s.Incr(t.Context(), b, key, by, ttl)
	if err != nil || got != want {
		t.Fatalf("Incr(%s, %q, %d, %v) = %d, %v; want %d", b, key, by, ttl, got, err, want)
	}
}

func sortedKeys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }

// abbrev keeps failure messages about 64 KiB values readable.
func abbrev(v []byte) []byte {
	if len(v) > 40 {
		return append(v[:40:40], "..."...)
	}
	return v
}

package bolt

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// TestLazyExpiry checks that expired records read as absent before any sweep.
func TestLazyExpiry(t *testing.T) {
	t.Parallel()
	s := open(t, Options{SweepInterval: -1})
	ctx := t.Context()
	const b = store.Bucket("b")
	past := encode(now()-1, []byte("old"))
	rawPut(t, s, b, map[string][]byte{"get": past, "take": past, "create": past, "incr": past,
		"live": encode(now()+int64(time.Hour), []byte("new"))})
	if v, err := s.Get(ctx, b, "get"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get = %q, %v; want ErrNotFound", v, err)
	}
	if v, err := s.Take(ctx, b, "take"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Take = %q, %v; want ErrNotFound", v, err)
	}
	if err := s.Create(ctx, b, "create", []byte("c"), 0); err != nil {
		t.Errorf("Create: %v", err)
	}
	if n, err := s.Incr(ctx, b, "incr", 1, time.Hour); n != 1 || err != nil {
		t.Errorf("Incr = %d, %v; want 1", n, err)
	}
	m := map[string][]byte{}
	err := s.Scan(ctx, b, func(k string, v []byte) error { m[k] = clone(v); return nil })
	if err != nil || len(m) != 3 || string(m["live"]) != "new" || string(m["create"]) != "c" || string(m["incr"]) != "1" {
		t.Errorf("Scan = %q, %v; want live, create and incr", m, err)
	}
}

// TestSweep checks that a sweep deletes exactly the expired records, across buckets and
// across several batches.
func TestSweep(t *testing.T) {
	t.Parallel()
	s := open(t, Options{SweepInterval: -1})
	past, future := now()-1, now()+int64(time.Hour)
	counts := map[store.Bucket][2]int{"a": {2*sweepBatch + 17, 5}, "b": {3, 0}, "c": {0, 2}, "d": {sweepBatch, 1}}
	for b, c := range counts {
		recs := map[string][]byte{}
		for i := range c[0] {
			recs["expired"+strconv.Itoa(i)] = encode(past, []byte("x"))
		}
		for i := range c[1] {
			recs["live"+strconv.Itoa(i)] = encode(future, []byte("y"))
			recs["forever"+strconv.Itoa(i)] = encode(0, []byte("z"))
		}
		rawPut(t, s, b, recs)
	}
	n, err := s.sweep(t.Context())
	if err != nil || n != 3*sweepBatch+20 {
		t.Errorf("sweep = %d, %v; want %d", n, err, 3*sweepBatch+20)
	}
	for b, c := range counts {
		if got := rawCount(t, s, b); got != 2*c[1] {
			t.Errorf("bucket %s holds %d records after the sweep, want %d", b, got, 2*c[1])
		}
	}
	if n, err := s.sweep(t.Context()); n != 0 || err != nil {
		t.Errorf("second sweep = %d, %v; want 0, nil", n, err)
	}
}

// TestSweeper checks that the background sweeper runs on its own.
func TestSweeper(t *testing.T) {
	t.Parallel()
	s := open(t, Options{SweepInterval: 20 * time.Millisecond})
	ctx := t.Context()
	for i := range 5 {
		if err := s.Put(ctx, "codes", strconv.Itoa(i), []byte("c"), 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, "codes", "keep", []byte("k"))
	deadline := time.Now().Add(5 * time.Second)
	for rawCount(t, s, "codes") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d records, want 1", rawCount(t, s, "codes"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

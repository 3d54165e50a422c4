package storetest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

var basicTests = []test{
	{"GetMissing", testGetMissing},
	{"Roundtrip", testRoundtrip},
	{"PutReplaces", testPutReplaces},
	{"Create", testCreate},
	{"Take", testTake},
	{"Delete", testDelete},
	{"Incr", testIncr},
	{"IncrBy", testIncrBy},
	{"Scan", testScan},
	{"Update", testUpdate},
	{"PublishSubscribe", testPublishSubscribe},
	{"BucketIsolation", testBucketIsolation},
	{"ValuesAreCopied", testCopies},
	{"CanceledContext", testCanceled},
	{"Closed", testClosed},
	{"CloseWhileBusy", testCloseWhileBusy},
	{"CallerMistakes", testCallerMistakes},
}

func testGetMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "missing")
	wantNotFound(t, s, b, "never-written") // bucket never used
	if _, err := s.Take(ctx, b, "never-written"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Take in an unused bucket: %v, want ErrNotFound", err)
	}
	wantList(t, s, b, map[string][]byte{})
	mustPut(t, s, b, "other", []byte("x"), 0)
	wantNotFound(t, s, b, "never-written") // bucket in use
	wantNotFound(t, s, b, "othe")
	wantNotFound(t, s, b, "other\x00")
}

func testRoundtrip(t *testing.T, s store.Store) {
	large := make([]byte, 64<<10)
	rand.Read(large)
	cases := []struct {
		name, key string
		value     []byte
	}{
		{"Simple", "key", []byte("value")},
		{"EmptyValue", "empty", []byte{}},
		{"BinaryKeyAndValue", "\x00\xff\x80k\x00", []byte{0, 1, 0xfe, 0xff, 0}},
		{"LongKey", strings.Repeat("k", 1024), []byte("v")},
		{"Value64KiB", "large", large},
	}
	ctx := t.Context()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bucket(t, "roundtrip")
			mustPut(t, s, b, c.key, c.value, 0)
			wantValue(t, s, b, c.key, c.value)
			wantList(t, s, b, map[string][]byte{c.key: c.value})
			got, err := s.Take(ctx, b, c.key)
			if err != nil || !bytes.Equal(got, c.value) {
				t.Fatalf("Take = %q, %v; want %q", abbrev(got), err, abbrev(c.value))
			}
			wantNotFound(t, s, b, c.key)
			if err := s.Create(ctx, b, c.key, c.value, time.Hour); err != nil {
				t.Fatalf("Create: %v", err)
			}
			wantValue(t, s, b, c.key, c.value)
		})
	}
}

func testPutReplaces(t *testing.T, s store.Store) {
	b := bucket(t, "replace")
	mustPut(t, s, b, "k", []byte("first"), 0)
	mustPut(t, s, b, "k", []byte("second, longer"), time.Hour)
	wantValue(t, s, b, "k", []byte("second, longer"))
	mustPut(t, s, b, "k", []byte("3"), 0)
	wantValue(t, s, b, "k", []byte("3"))
	wantList(t, s, b, map[string][]byte{"k": []byte("3")})
}

func testCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "create")
	if err := s.Create(ctx, b, "k", []byte("first"), 0); err != nil {
		t.Fatalf("Create on an absent key: %v", err)
	}
	if err := s.Create(ctx, b, "k", []byte("second"), 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create on a present key: %v, want ErrExists", err)
	}
	wantValue(t, s, b, "k", []byte("first"))
	mustPut(t, s, b, "put", []byte("p"), time.Hour)
	if err := s.Create(ctx, b, "put", []byte("c"), 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create on a key from Put: %v, want ErrExists", err)
	}
	if err := s.Delete(ctx, b, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, b, "k", []byte("after delete"), 0); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	if _, err := s.Take(ctx, b, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, b, "k", []byte("after take"), 0); err != nil {
		t.Fatalf("Create after Take: %v", err)
	}
	wantValue(t, s, b, "k", []byte("after take"))
}

func testTake(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "take")
	mustPut(t, s, b, "code", []byte("grant"), time.Hour)
	mustPut(t, s, b, "other", []byte("o"), 0)
	got, err := s.Take(ctx, b, "code")
	if err != nil || string(got) != "grant" {
		t.Fatalf("Take = %q, %v; want \"grant\"", got, err)
	}
	if got, err := s.Take(ctx, b, "code"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Take = %q, %v; want ErrNotFound", got, err)
	}
	wantNotFound(t, s, b, "code")
	wantList(t, s, b, map[string][]byte{"other": []byte("o")})
}

func testDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "delete")
	if err := s.Delete(ctx, b, "k"); err != nil {
		t.Fatalf("Delete in an unused bucket: %v", err)
	}
	mustPut(t, s, b, "k", []byte("v"), 0)
	mustPut(t, s, b, "keep", []byte("v"), 0)
	for i := range 2 {
		if err := s.Delete(ctx, b, "k"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
		wantNotFound(t, s, b, "k")
	}
	if err := s.Delete(ctx, b, "never"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	wantValue(t, s, b, "keep", []byte("v"))
}

func testIncr(t *testing.T, s store.Store) {
	b := bucket(t, "incr")
	for _, ttl := range []time.Duration{0, time.Hour} {
		a, c := "a"+ttl.String(), "c"+ttl.String()
		wantIncr(t, s, b, a, ttl, 1)
		wantIncr(t, s, b, a, ttl, 2)
		wantIncr(t, s, b, c, ttl, 1)
		wantIncr(t, s, b, a, ttl, 3)
		wantIncr(t, s, b, c, ttl, 2)
	}
	if err := s.Delete(t.Context(), b, "a0s"); err != nil {
		t.Fatal(err)
	}
	wantIncr(t, s, b, "a0s", 0, 1)
}

// testIncrBy checks steps other than one: a counter starts at its first step and never goes
// below zero.
func testIncrBy(t *testing.T, s store.Store) {
	b := bucket(t, "incr-by")
	wantIncrBy(t, s, b, "n", 5, time.Hour, 5)
	wantIncrBy(t, s, b, "n", -2, time.Hour, 3)
	wantIncrBy(t, s, b, "n", -10, time.Hour, 0)
	wantIncrBy(t, s, b, "n", 1, time.Hour, 1)
	wantIncrBy(t, s, b, "new", -1, time.Hour, 0)
	wantIncrBy(t, s, b, "new", 2, time.Hour, 2)
	wantValue(t, s, b, "new", []byte("2")) // Get reads a counter in decimal
}

func testScan(t *testing.T, s store.Store) {
	ctx := t.Context()
	b1, b2 := bucket(t, "scan"), bucket(t, "scan")
	mustPut(t, s, b1, "k1", []byte("one"), 0)
	mustPut(t, s, b1, "k2", []byte("two"), time.Hour)
	mustPut(t, s, b2, "k1", []byte("other one"), 0)
	mustPut(t, s, b2, "k3", []byte("three"), 0)
	wantList(t, s, b1, map[string][]byte{"k1": []byte("one"), "k2": []byte("two")})
	wantList(t, s, b2, map[string][]byte{"k1": []byte("other one"), "k3": []byte("three")})
	if err := s.Delete(ctx, b1, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, b2, "k3"); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, b1, map[string][]byte{"k2": []byte("two")})
	wantList(t, s, b2, map[string][]byte{"k1": []byte("other one")})

	// An error from fn stops the scan and comes back as it is.
	stop := errors.New("enough")
	mustPut(t, s, b1, "k3", []byte("three"), 0)
	calls := 0
	err := s.Scan(ctx, b1, func(string, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || errors.Is(err, store.ErrUnavailable) || calls != 1 {
		t.Fatalf("Scan with a failing fn: %v after %d calls; want the fn's error after 1", err, calls)
	}
}

func testBucketIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := bucket(t, "iso-a"), bucket(t, "iso-b")
	mustPut(t, s, a, "k", []byte("in a"), 0)
	wantNotFound(t, s, b, "k")
	if err := s.Create(ctx, b, "k", []byte("in b"), 0); err != nil {
		t.Fatalf("Create in b while a holds the key: %v", err)
	}
	if got, err := s.Take(ctx, a, "k"); err != nil || string(got) != "in a" {
		t.Fatalf("Take from a = %q, %v", got, err)
	}
	wantValue(t, s, b, "k", []byte("in b"))
	wantIncr(t, s, a, "n", 0, 1)
	wantIncr(t, s, b, "n", 0, 1)
	wantIncr(t, s, a, "n", 0, 2)
	if err := s.Delete(ctx, a, "n"); err != nil {
		t.Fatal(err)
	}
	wantIncr(t, s, b, "n", 0, 2)

	// Bucket and key must not run together: ("x", "y:z") and ("x:y", "z") are two entries.
	for _, sep := range []string{":", "/", "|", ".", "\x00"} {
		x := bucket(t, "sep") + "x"
		xy := x + store.Bucket(sep) + "y"
		k1, k2 := "y"+sep+"z", "z"
		mustPut(t, s, x, k1, []byte("1"), 0)
		mustPut(t, s, xy, k2, []byte("2"), 0)
		wantValue(t, s, x, k1, []byte("1"))
		wantValue(t, s, xy, k2, []byte("2"))
		wantNotFound(t, s, xy, k1)
		wantNotFound(t, s, x, k2)
		wantList(t, s, x, map[string][]byte{k1: []byte("1")})
		wantList(t, s, xy, map[string][]byte{k2: []byte("2")})
	}
}

// testCopies checks that callers and store share no memory: a backend that hands out its
// own buffers (bolt's memory map, say) fails here. Large values are in the table because
// small ones may be copied by accident (bolt keeps a small bucket inline and clones it).
func testCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, size := range []int{8, 8 << 10} {
		b := bucket(t, "copies")
		want := bytes.Repeat([]byte("o"), size)
		in, created := bytes.Clone(want), bytes.Clone(want)
		mustPut(t, s, b, "put", in, 0)
		if err := s.Create(ctx, b, "create", created, 0); err != nil {
			t.Fatal(err)
		}
		clear(in)
		clear(created)
		for _, key := range []string{"put", "create"} {
			wantValue(t, s, b, key, want)
			got, _ := s.Get(ctx, b, key)
			clear(got)
			wantValue(t, s, b, key, want)
		}
		if err := s.Scan(ctx, b, func(_ string, v []byte) error { clear(v); return nil }); err != nil {
			t.Fatal(err)
		}
		wantList(t, s, b, map[string][]byte{"put": want, "create": want})
		taken, err := s.Take(ctx, b, "put")
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, s, b, "after", want, 0) // would reuse the page taken aliases, if it did
		if !bytes.Equal(taken, want) {
			t.Fatalf("value from Take changed after a later Put")
		}
		clear(taken)
		wantValue(t, s, b, "after", want)
	}
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// shortTTL is the lifetime of the short-lived entries the suite writes. Checks that an entry
// is still there run well within it; checks that it is gone wait until shortTTL plus slack
// has passed since the write returned.
const (
	shortTTL = 1200 * time.Millisecond
	slack    = 250 * time.Millisecond
)

var ttlTests = []test{
	{"Get", testTTLGet},
	{"Take", testTTLTake},
	{"Create", testTTLCreate},
	{"Incr", testTTLIncr},
	{"Scan", testTTLList},
	{"Update", testUpdateTTL},
	{"PutReplacesTTL", testTTLPut},
}

// clock tracks one batch of short-lived writes.
type clock struct {
	t     *testing.T
	start time.Time // before the first write: no entry expires before start+shortTTL
	last  time.Time // after the last write: every entry has expired by last+shortTTL
}

func startClock(t *testing.T) *clock { return &clock{t: t, start: time.Now()} }

// written records that the short-lived writes are done.
func (c *clock) written() { c.last = time.Now() }

// live fails the test if the entries might already have expired, which would make a check
// that they are still there meaningless.
func (c *clock) live() {
	c.t.Helper()
	if d := time.Since(c.start); d >= shortTTL-slack {
		c.t.Fatalf("machine too slow: %v passed before a check meant to run within the %v TTL", d, shortTTL)
	}
}

// expire sleeps until every short-lived entry has expired.
func (c *clock) expire() { time.Sleep(time.Until(c.last.Add(shortTTL + slack))) }

func testTTLGet(t *testing.T, s store.Store) {
	b := bucket(t, "ttl-get")
	c := startClock(t)
	mustPut(t, s, b, "short", []byte("s"), shortTTL)
	mustPut(t, s, b, "forever", []byte("f"), 0)
	mustPut(t, s, b, "long", []byte("l"), time.Hour)
	c.written()
	wantValue(t, s, b, "short", []byte("s"))
	c.live()
	c.expire()
	wantNotFound(t, s, b, "short")
	wantValue(t, s, b, "forever", []byte("f"))
	wantValue(t, s, b, "long", []byte("l"))
	if err := s.Delete(t.Context(), b, "short"); err != nil {
		t.Fatalf("Delete of an expired key: %v", err)
	}
}

func testTTLTake(t *testing.T, s store.Store) {
	b := bucket(t, "ttl-take")
	c := startClock(t)
	mustPut(t, s, b, "early", []byte("e"), shortTTL)
	mustPut(t, s, b, "late", []byte("l"), shortTTL)
	c.written()
	if got, err := s.Take(t.Context(), b, "early"); err != nil || string(got) != "e" {
		t.Fatalf("Take before expiry = %q, %v", got, err)
	}
	c.live()
	c.expire()
	if got, err := s.Take(t.Context(), b, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Take after expiry = %q, %v; want ErrNotFound", got, err)
	}
}

func testTTLCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "ttl-create")
	c := startClock(t)
	if err := s.Create(ctx, b, "created", []byte("1"), shortTTL); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, b, "put", []byte("1"), shortTTL)
	c.written()
	for _, key := range []string{"created", "put"} {
		if err := s.Create(ctx, b, key, []byte("2"), 0); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Create(%q) before expiry: %v, want ErrExists", key, err)
		}
	}
	c.live()
	c.expire()
	for _, key := range []string{"created", "put"} {
		if err := s.Create(ctx, b, key, []byte("3"), 0); err != nil {
			t.Fatalf("Create(%q) after expiry: %v", key, err)
		}
		wantValue(t, s, b, key, []byte("3"))
	}
}

// testTTLIncr checks that a counter's window starts at its first Incr, is not extended by
// later ones, and restarts after it ends.
func testTTLIncr(t *testing.T, s store.Store) {
	b := bucket(t, "ttl-incr")
	c := startClock(t)
	wantIncr(t, s, b, "window", shortTTL, 1)
	wantIncr(t, s, b, "forever", 0, 1)
	c.written()
	time.Sleep(shortTTL / 2)
	wantIncr(t, s, b, "window", shortTTL, 2) // a sliding window would now end at shortTTL*1.5
	c.live()
	c.expire()
	wantIncr(t, s, b, "window", shortTTL, 1)
	wantIncr(t, s, b, "window", shortTTL, 2)
	wantIncr(t, s, b, "forever", 0, 2)
}

func testTTLList(t *testing.T, s store.Store) {
	b, other := bucket(t, "ttl-list"), bucket(t, "ttl-list")
	c := startClock(t)
	mustPut(t, s, b, "a", []byte("a"), 0)
	mustPut(t, s, b, "b", []byte("b"), shortTTL)
	mustPut(t, s, b, "c", []byte("c"), shortTTL)
	mustPut(t, s, other, "d", []byte("d"), 0)
	c.written()
	wantList(t, s, b, map[string][]byte{"a": []byte("a"), "b": []byte("b"), "c": []byte("c")})
	c.live()
	c.expire()
	wantList(t, s, b, map[string][]byte{"a": []byte("a")})
	wantList(t, s, other, map[string][]byte{"d": []byte("d")})
}

// testTTLPut checks that Put replaces the TTL along with the value.
func testTTLPut(t *testing.T, s store.Store) {
	b := bucket(t, "ttl-put")
	c := startClock(t)
	mustPut(t, s, b, "to-forever", []byte("1"), shortTTL)
	mustPut(t, s, b, "to-long", []byte("1"), shortTTL)
	mustPut(t, s, b, "to-short", []byte("1"), 0)
	mustPut(t, s, b, "to-forever", []byte("2"), 0)
	mustPut(t, s, b, "to-long", []byte("2"), time.Hour)
	mustPut(t, s, b, "to-short", []byte("2"), shortTTL)
	c.written()
	c.live()
	c.expire()
	wantValue(t, s, b, "to-forever", []byte("2"))
	wantValue(t, s, b, "to-long", []byte("2"))
	wantNotFound(t, s, b, "to-short")
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// testCallerMistakes checks that a caller's mistakes (empty bucket or key, negative ttl,
// Incr on a value that is no counter) give plain errors, not ErrUnavailable or a panic, and
// change nothing.
func testCallerMistakes(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "mistakes")
	mustPut(t, s, b, "text", []byte("not a number"), 0)
	mistakes := map[string]error{
		"Put empty bucket":  s.Put(ctx, "", "k", nil, 0),
		"Put empty key":     s.Put(ctx, b, "", nil, 0),
		"Put negative ttl":  s.Put(ctx, b, "k", nil, -time.Second),
		"Create negative":   s.Create(ctx, b, "k", nil, -time.Second),
		"Incr negative":     second(s.Incr(ctx, b, "k", 1, -time.Second)),
		"Get empty key":     second(s.Get(ctx, b, "")),
		"Take empty key":    second(s.Take(ctx, b, "")),
		"Delete empty key":  s.Delete(ctx, b, ""),
		"Scan empty bucket": s.Scan(ctx, "", func(string, []byte) error { return nil }),
		"Incr on text":      second(s.Incr(ctx, b, "text", 1, 0)),
	}
	for name, err := range mistakes {
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want a plain error", name, err)
		}
	}
	wantValue(t, s, b, "text", []byte("not a number"))
	if _, err := s.Get(ctx, b, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused write stored something: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

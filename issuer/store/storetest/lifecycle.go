package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// calls invoke each store method once, so a check can cover all of them.
var calls = []struct {
	name string
	do   func(ctx context.Context, s store.Store, b store.Bucket) error
}{
	{"Get", func(ctx context.Context, s store.Store, b store.Bucket) error {
		_, err := s.Get(ctx, b, "k")
		return err
	}},
	{"Put", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Put(ctx, b, "put", []byte("v"), 0)
	}},
	{"Create", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Create(ctx, b, "create", []byte("v"), time.Hour)
	}},
	{"Take", func(ctx context.Context, s store.Store, b store.Bucket) error {
		_, err := s.Take(ctx, b, "k")
		return err
	}},
	{"Delete", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Delete(ctx, b, "k")
	}},
	{"Incr", func(ctx context.Context, s store.Store, b store.Bucket) error {
		_, err := s.Incr(ctx, b, "n", 1, 0)
		return err
	}},
	{"Update", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Update(ctx, b, "k", func([]byte, bool) ([]byte, time.Duration, error) { return []byte("u"), 0, nil })
	}},
	{"Scan", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Scan(ctx, b, func(string, []byte) error { return nil })
	}},
	{"Publish", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Publish(ctx, string(b), []byte("m"))
	}},
	{"Subscribe", func(ctx context.Context, s store.Store, b store.Bucket) error {
		return s.Subscribe(ctx, string(b), store.Subscriber{Message: func([]byte) {}, Resync: func() {}})
	}},
}

// testCanceled checks that a canceled context fails every method and changes nothing.
func testCanceled(t *testing.T, s store.Store) {
	b := bucket(t, "canceled")
	mustPut(t, s, b, "k", []byte("v"), 0)
	wantIncr(t, s, b, "n", 0, 1)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range calls {
		if err := c.do(ctx, s, b); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", c.name, err)
		}
	}
	wantValue(t, s, b, "k", []byte("v")) // not taken, not deleted
	wantNotFound(t, s, b, "put")
	wantNotFound(t, s, b, "create")
	wantIncr(t, s, b, "n", 0, 2)
}

// testClosed checks that Close is idempotent and that a closed store fails every method with
// ErrUnavailable instead of panicking.
func testClosed(t *testing.T, s store.Store) {
	b := bucket(t, "closed")
	mustPut(t, s, b, "k", []byte("v"), 0)
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	for _, c := range calls {
		if err := c.do(t.Context(), s, b); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", c.name, err)
		}
	}
}

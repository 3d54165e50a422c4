package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// testCloseWhileBusy closes a store under concurrent use: calls in flight finish or fail with
// ErrUnavailable, none panics or hangs, and every later call fails with ErrUnavailable.
func testCloseWhileBusy(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "busy")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for g := range errs {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("%d-%d", g, i)
				var err error
				switch i % 4 {
				case 0:
					err = s.Put(ctx, b, key, []byte("v"), time.Minute)
				case 1:
					_, err = s.Incr(ctx, b, "n", 1, 0)
				case 2:
					_, err = s.Take(ctx, b, fmt.Sprintf("%d-%d", g, i-2))
				case 3:
					err = s.Scan(ctx, b, func(string, []byte) error { return nil })
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					errs[g] = err
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for g, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("goroutine %d stopped with %v, want ErrUnavailable", g, err)
		}
	}
	if _, err := s.Get(ctx, b, "n"); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Get after Close: %v", err)
	}
}

// BenchmarkPutTake measures one Put and one Take of a fresh key, about the size of a stored
// authorization code: what redeeming a single-use code costs a backend.
func BenchmarkPutTake(b *testing.B, s store.Store) {
	ctx := context.Background()
	v := make([]byte, 200)
	for i := 0; b.Loop(); i++ {
		key := strconv.Itoa(i)
		if err := s.Put(ctx, "codes", key, v, time.Minute); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Take(ctx, "codes", key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateContention measures Update of one record by 50 goroutines at once (25 per
// GOMAXPROCS on two cores), as racing refreshes of one family do: every op is one committed
// read-modify-write, however many times a backend had to retry it.
func BenchmarkUpdateContention(b *testing.B, s store.Store) {
	ctx := context.Background()
	key := "family-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := s.Update(ctx, "families", key, func(cur []byte, _ bool) ([]byte, time.Duration, error) {
				n, _ := strconv.ParseInt(string(cur), 10, 64)
				return strconv.AppendInt(nil, n+1, 10), time.Hour, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	got, err := s.Get(ctx, "families", key)
	if err != nil || string(got) != strconv.Itoa(b.N) {
		b.Fatalf("after %d updates the record holds %q, %v", b.N, got, err)
	}
}

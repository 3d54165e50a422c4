package redisstore

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
)

// BenchmarkPutTake against a local redis-server without persistence: two scripts, two round
// trips.
func BenchmarkPutTake(b *testing.B) {
	storetest.BenchmarkPutTake(b, open(b, redistest.Start(b).URL(), Options{}))
}

// BenchmarkPutTakeParallel is BenchmarkPutTake from GOMAXPROCS goroutines at once, as
// concurrent token requests would call it.
func BenchmarkPutTakeParallel(b *testing.B) {
	s := open(b, redistest.Start(b).URL(), Options{})
	ctx := context.Background()
	v := make([]byte, 200)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := strconv.FormatInt(next.Add(1), 10)
			if err := s.Put(ctx, "codes", key, v, time.Minute); err != nil {
				b.Error(err)
				return
			}
			if _, err := s.Take(ctx, "codes", key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGet measures a Get from a bucket of 10000 entries.
func BenchmarkGet(b *testing.B) {
	const n = 10000
	srv := redistest.Start(b)
	s := open(b, srv.URL(), Options{})
	ctx := context.Background()
	raw := rawClient(b, srv)
	_, err := raw.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			p.Set(ctx, s.entryKey("keys", strconv.Itoa(i)), make([]byte, 200), 0)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(ctx, "keys", strconv.Itoa(i%n)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateContention: 50 goroutines updating one record, each update a GET and a
// compare-and-swap script, retried when another writer got in between.
func BenchmarkUpdateContention(b *testing.B) {
	storetest.BenchmarkUpdateContention(b, open(b, redistest.Start(b).URL(), Options{}))
}

// BenchmarkUpdate is one uncontended Update: a GET and the compare-and-swap script.
func BenchmarkUpdate(b *testing.B) {
	s := open(b, redistest.Start(b).URL(), Options{})
	ctx := context.Background()
	for b.Loop() {
		err := s.Update(ctx, "families", "f", func(cur []byte, _ bool) ([]byte, time.Duration, error) {
			return append(cur[:0:0], "family record of about this size"...), time.Hour, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutTakeDurable is BenchmarkPutTake on a master with one replica, once with "codes"
// an ordinary bucket and once a durable one (each write followed by WAIT 1 in its pipeline):
// the difference is the price of waiting for the replica.
func BenchmarkPutTakeDurable(b *testing.B) {
	master, _ := redistest.StartReplicated(b, 1)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"NotDurable", Options{}},
		{"Durable", Options{DurableBuckets: []store.Bucket{"codes"}, MinReplicas: 1}},
	} {
		b.Run(c.name, func(b *testing.B) {
			storetest.BenchmarkPutTake(b, open(b, master.URL(), c.opts))
		})
	}
}

package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const (
	racers = 32 // goroutines per race
	rounds = 4  // races per test
)

var raceTests = []test{
	{"Take", testTakeRace},
	{"Create", testCreateRace},
	{"Incr", testIncrRace},
}

// race runs fn(0) … fn(n-1) in n goroutines released at the same moment.
func race(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-start
			fn(i)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// winner checks that exactly one of errs is nil and all others match loser; it returns the
// winner's index.
func winner(t *testing.T, op string, errs []error, loser error) int {
	t.Helper()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("%s: racers %d and %d both succeeded", op, won, i)
		case err == nil:
			won = i
		case !errors.Is(err, loser):
			t.Fatalf("%s: racer %d: %v, want %v", op, i, err, loser)
		}
	}
	if won < 0 {
		t.Fatalf("%s: no racer succeeded", op)
	}
	return won
}

func testTakeRace(t *testing.T, s store.Store) {
	b := bucket(t, "take-race")
	for r := range rounds {
		key, want := fmt.Sprintf("code-%d", r), []byte(fmt.Sprintf("grant %d", r))
		mustPut(t, s, b, key, want, time.Hour)
		errs, got := make([]error, racers), make([][]byte, racers)
		race(racers, func(i int) { got[i], errs[i] = s.Take(t.Context(), b, key) })
		w := winner(t, "Take "+key, errs, store.ErrNotFound)
		if !bytes.Equal(got[w], want) {
			t.Fatalf("winning Take = %q, want %q", got[w], want)
		}
		wantNotFound(t, s, b, key)
	}
}

func testCreateRace(t *testing.T, s store.Store) {
	b := bucket(t, "create-race")
	for r := range rounds {
		key := fmt.Sprintf("jti-%d", r)
		errs := make([]error, racers)
		race(racers, func(i int) {
			errs[i] = s.Create(t.Context(), b, key, fmt.Appendf(nil, "racer %d", i), time.Hour)
		})
		w := winner(t, "Create "+key, errs, store.ErrExists)
		wantValue(t, s, b, key, fmt.Appendf(nil, "racer %d", w))
	}
}

// testIncrRace checks that concurrent increments are neither lost nor duplicated.
func testIncrRace(t *testing.T, s store.Store) {
	const each = 2
	b := bucket(t, "incr-race")
	for _, ttl := range []time.Duration{0, time.Hour} {
		key := "n" + ttl.String()
		got := make([]int64, racers*each)
		errs := make([]error, racers*each)
		race(racers, func(i int) {
			for j := range each {
				got[i*each+j], errs[i*each+j] = s.Incr(t.Context(), b, key, ttl)
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Incr: %v", err)
		}
		slices.Sort(got)
		for i, n := range got {
			if n != int64(i+1) {
				t.Fatalf("ttl %v: sorted Incr results = %v, want 1…%d each once", ttl, got, len(got))
			}
		}
		wantIncr(t, s, b, key, ttl, racers*each+1)
	}
}

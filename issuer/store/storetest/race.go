package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const (
	racers = 50 // goroutines per race
	rounds = 4  // races per test
)

// raceTest is a race check. It gets one or more views of the same data (two stores on one
// Redis, say); racer i uses views[i%len(views)], so with two views every race is also a race
// between two stores.
type raceTest struct {
	name string
	fn   func(t *testing.T, views []store.Store)
}

var raceTests = []raceTest{
	{"Take", testTakeRace},
	{"Create", testCreateRace},
	{"Incr", testIncrRace},
	{"Update", testUpdateRace},
	{"UpdateRevokeVsAppend", testRevokeVsAppendRace},
}

// view is the store racer i uses.
func view(views []store.Store, i int) store.Store { return views[i%len(views)] }

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

func testTakeRace(t *testing.T, views []store.Store) {
	s := views[0]
	b := bucket(t, "take-race")
	for r := range rounds {
		key, want := fmt.Sprintf("code-%d", r), []byte(fmt.Sprintf("grant %d", r))
		mustPut(t, s, b, key, want, time.Hour)
		errs, got := make([]error, racers), make([][]byte, racers)
		race(racers, func(i int) { got[i], errs[i] = view(views, i).Take(t.Context(), b, key) })
		w := winner(t, "Take "+key, errs, store.ErrNotFound)
		if !bytes.Equal(got[w], want) {
			t.Fatalf("winning Take = %q, want %q", got[w], want)
		}
		wantNotFound(t, s, b, key)
	}
}

func testCreateRace(t *testing.T, views []store.Store) {
	s := views[0]
	b := bucket(t, "create-race")
	for r := range rounds {
		key := fmt.Sprintf("jti-%d", r)
		errs := make([]error, racers)
		race(racers, func(i int) {
			errs[i] = view(views, i).Create(t.Context(), b, key, fmt.Appendf(nil, "racer %d", i), time.Hour)
		})
		w := winner(t, "Create "+key, errs, store.ErrExists)
		wantValue(t, s, b, key, fmt.Appendf(nil, "racer %d", w))
	}
}

// testIncrRace checks that concurrent increments are neither lost nor duplicated.
func testIncrRace(t *testing.T, views []store.Store) {
	s := views[0]
	const each = 2
	b := bucket(t, "incr-race")
	for _, ttl := range []time.Duration{0, time.Hour} {
		key := "n" + ttl.String()
		got := make([]int64, racers*each)
		errs := make([]error, racers*each)
		race(racers, func(i int) {
			for j := range each {
				got[i*each+j], errs[i*each+j] = view(views, i).Incr(t.Context(), b, key, 1, ttl)
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

// testUpdateRace checks that concurrent read-modify-writes of one record are neither lost nor
// applied twice: every racer increments a decimal counter through Update, and the values the
// racers wrote are 1…n, each once.
func testUpdateRace(t *testing.T, views []store.Store) {
	const each = 2
	b := bucket(t, "update-race")
	for _, ttl := range []time.Duration{0, time.Hour} {
		key := "n" + ttl.String()
		wrote := make([]int64, racers*each)
		errs := make([]error, racers*each)
		race(racers, func(i int) {
			for j := range each {
				errs[i*each+j] = view(views, i).Update(t.Context(), b, key, func(cur []byte, found bool) ([]byte, time.Duration, error) {
					n := int64(0)
					if found {
						var err error
						if n, err = strconv.ParseInt(string(cur), 10, 64); err != nil {
							return nil, 0, err
						}
					}
					wrote[i*each+j] = n + 1
					return strconv.AppendInt(nil, n+1, 10), ttl, nil
				})
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Update: %v", err)
		}
		slices.Sort(wrote)
		for i, n := range wrote {
			if n != int64(i+1) {
				t.Fatalf("ttl %v: sorted values written = %v, want 1…%d each once", ttl, wrote, len(wrote))
			}
		}
		wantValue(t, views[0], b, key, strconv.AppendInt(nil, racers*each, 10))
	}
}

// family is the record of testRevokeVsAppendRace: a list that is closed for good once revoked,
// the shape of a refresh-token family and the access tokens it issued.
type family struct {
	Revoked bool  `json:"revoked"`
	Items   []int `json:"items"`
}

// testRevokeVsAppendRace checks the guarantee refresh families rest on: racers append to a
// record unless it is revoked, others revoke it and take the list to deny. Exactly one
// revocation wins, and every append that succeeded is in the list it took: nothing added
// concurrently escapes the revocation.
func testRevokeVsAppendRace(t *testing.T, views []store.Store) {
	b := bucket(t, "revoke-race")
	for r := range rounds {
		key := fmt.Sprintf("family-%d", r)
		raw, _ := json.Marshal(family{Items: []int{-1}})
		mustPut(t, views[0], b, key, raw, time.Hour)
		appended := make([]bool, racers)
		var revocations [][]int
		var mu sync.Mutex
		errs := make([]error, racers)
		race(racers, func(i int) {
			var took []int
			won := false
			errs[i] = view(views, i).Update(t.Context(), b, key, func(cur []byte, found bool) ([]byte, time.Duration, error) {
				appended[i], won, took = false, false, nil
				var f family
				if !found || json.Unmarshal(cur, &f) != nil {
					return nil, 0, errors.New("family record lost")
				}
				if f.Revoked {
					return nil, 0, store.ErrKeep
				}
				if i%5 == 4 { // one racer in five revokes
					f.Revoked, won, took = true, true, f.Items
				} else {
					f.Items = append(f.Items, i)
					appended[i] = true
				}
				next, _ := json.Marshal(f)
				return next, time.Hour, nil
			})
			if won && errs[i] == nil {
				mu.Lock()
				revocations = append(revocations, took)
				mu.Unlock()
			}
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if len(revocations) != 1 {
			t.Fatalf("round %d: %d revocations won, want exactly one", r, len(revocations))
		}
		denied := map[int]bool{}
		for _, i := range revocations[0] {
			denied[i] = true
		}
		for i, ok := range appended {
			if ok && !denied[i] {
				t.Fatalf("round %d: racer %d appended, but the revocation did not take its item", r, i)
			}
		}
	}
}

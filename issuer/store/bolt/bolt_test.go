package bolt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/storetest"
)

// open opens a store in a new file of t's and closes it when t ends.
func open(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "tollgate", "store.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestContract runs the contract suite with a sweeper that runs every few milliseconds, so
// that it races the suite's own calls; TestLazyExpiry (expiry_test.go) covers expired records
// the sweeper has not reached yet.
func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(filepath.Join(t.TempDir(), "store.db"), Options{SweepInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	storetest.RunPersistence(t, func(t *testing.T) store.Store {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "tollgate")
	s, err := Open(filepath.Join(dir, "store.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, "store.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open with an empty path succeeded")
	}
}

// TestOpenLocked checks that a second Open of a file in use fails, promptly and clearly,
// and that the file can be opened again once the first store is closed.
func TestOpenLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	start := time.Now()
	second, err := Open(path, Options{LockTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !strings.Contains(err.Error(), "locked") || !errors.Is(err, bbolt.ErrTimeout) {
		t.Errorf("second Open: %v; want a 'locked' error wrapping bbolt.ErrTimeout", err)
	}
	if elapsed < timeout/2 || elapsed > timeout+time.Second { // bolt polls the lock every 50ms
		t.Errorf("second Open gave up after %v, want about %v", elapsed, timeout)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(path, Options{LockTimeout: timeout})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	third.Close()
}

// TestDamagedRecord checks that a damaged file counts as unavailable, and a key longer than
// bolt allows is a plain error (the contract suite checks the other caller mistakes).
func TestDamagedRecord(t *testing.T) {
	t.Parallel()
	s := open(t, Options{SweepInterval: -1})
	ctx := t.Context()
	const b = store.Bucket("b")
	rawPut(t, s, b, map[string][]byte{"short": []byte("1234567")})
	if err := s.Put(ctx, b, strings.Repeat("k", bbolt.MaxKeySize+1), nil, 0); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put long key: %v, want a plain error", err)
	}
	damaged := map[string]error{
		"Get":  second(s.Get(ctx, b, "short")),
		"Take": second(s.Take(ctx, b, "short")),
		"Scan": s.Scan(ctx, b, func(string, []byte) error { return nil }),
		"Incr": second(s.Incr(ctx, b, "short", 1, 0)),
		"Update": s.Update(ctx, b, "short", func([]byte, bool) ([]byte, time.Duration, error) {
			return []byte("x"), 0, nil
		}),
	}
	for name, err := range damaged {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s of a damaged record: %v, want ErrUnavailable", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func mustPut(t testing.TB, s *Store, b store.Bucket, key string, v []byte) {
	t.Helper()
	if err := s.Put(context.Background(), b, key, v, 0); err != nil {
		t.Fatal(err)
	}
}

// rawPut writes records as they are into bucket b, in one transaction.
func rawPut(t testing.TB, s *Store, b store.Bucket, recs map[string][]byte) {
	t.Helper()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(b))
		if err != nil {
			return err
		}
		for k, rec := range recs {
			if err := bk.Put([]byte(k), rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawCount counts the records in bucket b, expired or not.
func rawCount(t testing.TB, s *Store, b store.Bucket) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		if bk := tx.Bucket([]byte(b)); bk != nil {
			n = bk.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// BenchmarkPutTake: two write transactions, two fsyncs.
func BenchmarkPutTake(b *testing.B) { storetest.BenchmarkPutTake(b, open(b, Options{})) }

// BenchmarkGet measures a Get from a bucket of 10000 entries.
func BenchmarkGet(b *testing.B) {
	const n = 10000
	s := open(b, Options{})
	recs := make(map[string][]byte, n)
	for i := range n {
		recs[strconv.Itoa(i)] = encode(0, make([]byte, 200))
	}
	rawPut(b, s, "keys", recs)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(ctx, "keys", strconv.Itoa(i%n)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateContention: 50 goroutines updating one record, one write transaction (and
// fsync) each, run one at a time by bolt.
func BenchmarkUpdateContention(b *testing.B) {
	storetest.BenchmarkUpdateContention(b, open(b, Options{}))
}

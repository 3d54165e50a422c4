package bolt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const (
	// DefaultLockTimeout is the LockTimeout of the zero Options.
	DefaultLockTimeout = 2 * time.Second
	// DefaultSweepInterval is the SweepInterval of the zero Options.
	DefaultSweepInterval = time.Minute
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// LockTimeout is how long Open waits for the file lock while another Store (in this or
	// another process) holds the file. Zero or negative means DefaultLockTimeout.
	LockTimeout time.Duration
	// SweepInterval is how often expired entries are deleted from the file. Default
	// DefaultSweepInterval; a negative value disables the sweeper (expired entries still read
	// as absent, but keep their space).
	SweepInterval time.Duration
}

// Store is a store.Store kept in one bbolt file. Open creates it; Close releases the file.
// Its methods are safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	closed atomic.Bool
	stop   context.CancelFunc // stops the sweeper
	swept  chan struct{}      // closed when the sweeper has stopped

	closeOnce sync.Once
	closeErr  error

	hub hub // Publish and Subscribe within this process
}

var _ store.Store = (*Store)(nil)

var (
	errClosed     = errors.New("store is closed")
	errCorrupt    = errors.New("corrupt record")
	errNotCounter = errors.New("store/bolt: incr: value is not a counter")
)

// Open opens the store file at path, creating it (mode 0600) and its directory (mode 0700)
// if needed, and starts the sweeper.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store/bolt: empty path")
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store/bolt: %w", err)
	}
	bo := *bbolt.DefaultOptions
	bo.Timeout = timeout
	db, err := bbolt.Open(path, 0o600, &bo)
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("store/bolt: %s is locked by another process or another open store (waited %v): %w",
			path, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{db: db, stop: stop, swept: make(chan struct{})}
	interval := opts.SweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	if interval > 0 {
		go s.sweepEvery(ctx, interval)
	} else {
		close(s.swept)
	}
	return s, nil
}

// Get returns the value of key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, "get", b, key, func(tx *bbolt.Tx) error {
		v, _, err := lookup(tx.Bucket([]byte(b)), key, now())
		if err == nil {
			out = clone(v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Put stores value under key, replacing any previous value and TTL.
func (s *Store) Put(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("store/bolt: put: negative ttl %v", ttl)
	}
	rec := encode(expiry(now(), ttl), value)
	return s.update(ctx, "put", b, key, func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(b))
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), rec)
	})
}

// Create stores value under key if the key is absent or expired, and returns
// store.ErrExists otherwise.
func (s *Store) Create(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("store/bolt: create: negative ttl %v", ttl)
	}
	rec := encode(expiry(now(), ttl), value)
	return s.update(ctx, "create", b, key, func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(b))
		if err != nil {
			return err
		}
		switch _, _, err := lookup(bk, key, now()); {
		case err == nil:
			return store.ErrExists
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return bk.Put([]byte(key), rec)
	})
}

// Take returns the value of key and deletes it in one transaction, or returns
// store.ErrNotFound.
func (s *Store) Take(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	var out []byte
	err := s.update(ctx, "take", b, key, func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte(b))
		v, _, err := lookup(bk, key, now())
		if err != nil {
			return err
		}
		out = clone(v) // v lives in the page that Delete changes
		return bk.Delete([]byte(key))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, b store.Bucket, key string) error {
	return s.update(ctx, "delete", b, key, func(tx *bbolt.Tx) error {
		if bk := tx.Bucket([]byte(b)); bk != nil {
			return bk.Delete([]byte(key))
		}
		return nil
	})
}

// Update runs fn on the current value of key and writes its result, all in one write
// transaction: bolt runs those one at a time, so no other write comes in between.
func (s *Store) Update(ctx context.Context, b store.Bucket, key string, fn store.UpdateFunc) error {
	err := s.update(ctx, "update", b, key, func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(b))
		if err != nil {
			return err
		}
		cur, _, err := lookup(bk, key, now())
		found := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if found {
			cur = clone(cur) // fn may keep it; bolt's memory is only valid in the transaction
		}
		next, ttl, err := fn(cur, found)
		switch {
		case err != nil:
			return &callerError{err}
		case ttl < 0:
			return &callerError{fmt.Errorf("store/bolt: update: negative ttl %v", ttl)}
		case next == nil:
			return bk.Delete([]byte(key))
		}
		return bk.Put([]byte(key), encode(expiry(now(), ttl), next))
	})
	if errors.Is(err, store.ErrKeep) {
		return nil
	}
	return err
}

// Incr adds by to the counter at key and returns the new value. A new counter starts at by
// and expires ttl after that first Incr; later ones keep its expiry. The result is never
// below zero.
func (s *Store) Incr(ctx context.Context, b store.Bucket, key string, by int64, ttl time.Duration) (int64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("store/bolt: incr: negative ttl %v", ttl)
	}
	var n int64
	err := s.update(ctx, "incr", b, key, func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(b))
		if err != nil {
			return err
		}
		t := now()
		v, exp, err := lookup(bk, key, t)
		switch {
		case err == nil:
			c, perr := strconv.ParseInt(string(v), 10, 64)
			if perr != nil || by > 0 && c > math.MaxInt64-by {
				return errNotCounter
			}
			n = c + by
		case errors.Is(err, store.ErrNotFound):
			n, exp = by, expiry(t, ttl)
		default:
			return err
		}
		n = max(n, 0)
		return bk.Put([]byte(key), encode(exp, strconv.AppendInt(nil, n, 10)))
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Scan calls fn with every unexpired entry of bucket b, in key order, inside one read-only
// transaction. Writers go on meanwhile, except one that must grow the file, which waits for
// the scan to end.
func (s *Store) Scan(ctx context.Context, b store.Bucket, fn func(key string, value []byte) error) error {
	if err := checkBucket("scan", b); err != nil {
		return err
	}
	return s.run(ctx, "scan", false, func(tx *bbolt.Tx) error {
		bk := tx.Bucket([]byte(b))
		if bk == nil {
			return nil
		}
		t := now()
		return bk.ForEach(func(k, rec []byte) error {
			if rec == nil {
				return nil // a nested bucket; the store makes none
			}
			exp, v, err := decode(rec)
			if err != nil {
				return err
			}
			if !live(exp, t) {
				return nil
			}
			if err := fn(string(k), clone(v)); err != nil { // the caller may change its copy
				return &callerError{err}
			}
			return nil
		})
	})
}

// Close stops the sweeper and closes the file. Later calls return the first call's result;
// methods called after Close fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.hub.close()
		s.stop()
		<-s.swept
		if err := s.db.Close(); err != nil {
			s.closeErr = unavailable("close", err)
		}
	})
	return s.closeErr
}

package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// headerLen is the length of a record's expiry prefix.
const headerLen = 8

// encode returns a new record holding exp (Unix nanoseconds, 0 for never) and a copy of value.
func encode(exp int64, value []byte) []byte {
	rec := make([]byte, headerLen+len(value))
	binary.BigEndian.PutUint64(rec, uint64(exp))
	copy(rec[headerLen:], value)
	return rec
}

// decode splits a record into expiry and value; the value aliases rec.
func decode(rec []byte) (exp int64, value []byte, err error) {
	if len(rec) < headerLen {
		return 0, nil, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(rec)), rec[headerLen:], nil
}

// lookup returns the value and expiry of key in bk if it is there and live at t, and
// store.ErrNotFound otherwise. bk may be nil (the bucket does not exist yet).
func lookup(bk *bbolt.Bucket, key string, t int64) (value []byte, exp int64, err error) {
	if bk == nil {
		return nil, 0, store.ErrNotFound
	}
	rec := bk.Get([]byte(key))
	if rec == nil {
		return nil, 0, store.ErrNotFound
	}
	exp, value, err = decode(rec)
	if err != nil {
		return nil, 0, err
	}
	if !live(exp, t) {
		return nil, 0, store.ErrNotFound
	}
	return value, exp, nil
}

// now is the current time in Unix nanoseconds, the unit of record expiries.
func now() int64 { return time.Now().UnixNano() }

// expiry returns the expiry of an entry written at t with ttl: 0 for never.
func expiry(t int64, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	if exp := t + int64(ttl); exp > t {
		return exp
	}
	return math.MaxInt64 // overflow: as good as never
}

// live reports whether a record with expiry exp is still live at t.
func live(exp, t int64) bool { return exp == 0 || t < exp }

// clone copies v out of bolt's memory, which is only valid during the transaction. The copy
// of an empty value is empty, not nil.
func clone(v []byte) []byte { return append(make([]byte, 0, len(v)), v...) }

// checkBucket rejects bucket names bolt cannot store.
func checkBucket(op string, b store.Bucket) error {
	if b == "" || len(b) > bbolt.MaxKeySize {
		return fmt.Errorf("store/bolt: %s: invalid bucket name of %d bytes", op, len(b))
	}
	return nil
}

// checkKey rejects keys bolt cannot store, and bucket names as checkBucket does.
func checkKey(op string, b store.Bucket, key string) error {
	if err := checkBucket(op, b); err != nil {
		return err
	}
	if key == "" || len(key) > bbolt.MaxKeySize {
		return fmt.Errorf("store/bolt: %s: invalid key of %d bytes", op, len(key))
	}
	return nil
}

// unavailable wraps a failure of bolt itself so that callers see store.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: bolt %s: %w", store.ErrUnavailable, op, err)
}

// view checks its arguments and runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, op string, b store.Bucket, key string, fn func(*bbolt.Tx) error) error {
	if err := checkKey(op, b, key); err != nil {
		return err
	}
	return s.run(ctx, op, false, fn)
}

// update checks its arguments and runs fn in a read-write transaction, committed only if fn
// returns nil.
func (s *Store) update(ctx context.Context, op string, b store.Bucket, key string, fn func(*bbolt.Tx) error) error {
	if err := checkKey(op, b, key); err != nil {
		return err
	}
	return s.run(ctx, op, true, fn)
}

// run runs fn in a transaction unless ctx is done or the store closed. The store's own
// verdicts (ErrNotFound, ErrExists, not a counter) and the caller's errors (from an
// UpdateFunc or a Scan callback, wrapped in callerError) come back as they are; anything else
// went wrong in bolt and is wrapped as store.ErrUnavailable.
func (s *Store) run(ctx context.Context, op string, write bool, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable(op, errClosed)
	}
	var err error
	if write {
		err = s.db.Update(fn)
	} else {
		err = s.db.View(fn)
	}
	var ce *callerError
	switch {
	case errors.As(err, &ce):
		return ce.err
	case err == nil, errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExists),
		errors.Is(err, errNotCounter):
		return err
	}
	return unavailable(op, err)
}

// callerError carries an error of the caller's own function (an UpdateFunc, a Scan callback)
// out of a transaction, so that run returns it as it is instead of as a failure of bolt.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }

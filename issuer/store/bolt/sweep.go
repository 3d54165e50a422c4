package bolt

import (
	"bytes"
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// sweepBatch is how many expired records one sweep transaction deletes at most, which bounds
// how long a sweep holds up writers.
const sweepBatch = 1000

// ref names one record.
type ref struct{ bucket, key []byte }

// sweepEvery sweeps every interval until ctx is done, then closes s.swept. Errors are left to
// the next round: the same failure reaches callers of the other methods anyway.
func (s *Store) sweepEvery(ctx context.Context, interval time.Duration) {
	defer close(s.swept)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = s.sweep(ctx)
		}
	}
}

// sweep deletes every record that has expired and returns how many it deleted. It finds them
// in read-only transactions, which do not block writers, and deletes them in batches, each
// checked again in its own write transaction.
func (s *Store) sweep(ctx context.Context) (int, error) {
	deleted := 0
	var from *ref
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		found, next, err := s.expired(from, sweepBatch)
		if err != nil {
			return deleted, err
		}
		if len(found) > 0 {
			n, err := s.drop(found)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
		if next == nil {
			return deleted, nil
		}
		from = next
	}
}

// expired returns up to limit expired records, scanning buckets and keys in order from from
// (nil: the start). If it stopped at limit, next is where to resume.
func (s *Store) expired(from *ref, limit int) (found []ref, next *ref, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		t := now()
		root := tx.Cursor()
		name, v := root.First()
		if from != nil {
			name, v = root.Seek(from.bucket)
		}
		for ; name != nil; name, v = root.Next() {
			if v != nil {
				continue // not a bucket
			}
			c := tx.Bucket(name).Cursor()
			k, rec := c.First()
			if from != nil && bytes.Equal(name, from.bucket) {
				k, rec = c.Seek(from.key)
			}
			for ; k != nil; k, rec = c.Next() {
				exp, _, err := decode(rec)
				if rec == nil || err != nil || live(exp, t) {
					continue // nested bucket, corrupt or live: not the sweeper's business
				}
				found = append(found, ref{clone(name), clone(k)})
				if len(found) == limit {
					next = &ref{clone(name), append(clone(k), 0)} // the least key after k
					return nil
				}
			}
		}
		return nil
	})
	return found, next, err
}

// drop deletes those of refs that are still expired and returns how many it deleted.
func (s *Store) drop(refs []ref) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		n = 0
		t := now()
		for _, r := range refs {
			bk := tx.Bucket(r.bucket)
			if bk == nil {
				continue
			}
			if exp, _, err := decode(bk.Get(r.key)); err != nil || live(exp, t) {
				continue // gone, or replaced by a live record since the scan
			}
			if err := bk.Delete(r.key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// scanPage is the COUNT hint of Scan's ZSCAN: about how many entries one page (one ZSCAN and
// one MGET) reads.
const scanPage = 5000

// Get returns the value of key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	if err := s.begin(ctx, "get", b, key, 0); err != nil {
		return nil, err
	}
	v, err := s.rdb.Get(ctx, s.entryKey(b, key)).Bytes()
	if err != nil {
		return nil, fail(ctx, "get", err)
	}
	return v, nil
}

// Put stores value under key, replacing any previous value and TTL.
func (s *Store) Put(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	if err := s.begin(ctx, "put", b, key, ttl); err != nil {
		return err
	}
	cmd, waitErr := s.run(ctx, b, putScript, s.keys(b, key), []any{key, value, millis(ttl)}, always)
	if err := cmd.Err(); err != nil {
		return fail(ctx, "put", err)
	}
	return waitErr
}

// Create stores value under key if the key is absent or expired, and returns
// store.ErrExists otherwise.
func (s *Store) Create(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	if err := s.begin(ctx, "create", b, key, ttl); err != nil {
		return err
	}
	cmd, waitErr := s.run(ctx, b, createScript, s.keys(b, key), []any{key, value, millis(ttl)}, returnedOne)
	n, err := cmd.Int()
	switch {
	case err != nil:
		return fail(ctx, "create", err)
	case n == 0:
		return store.ErrExists
	}
	return waitErr
}

// Take returns the value of key and deletes it in one step, or returns store.ErrNotFound.
func (s *Store) Take(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	if err := s.begin(ctx, "take", b, key, 0); err != nil {
		return nil, err
	}
	cmd, waitErr := s.run(ctx, b, takeScript, s.keys(b, key), []any{key}, always)
	v, err := cmd.Text()
	if err != nil {
		return nil, fail(ctx, "take", err)
	}
	if waitErr != nil {
		return nil, waitErr
	}
	return []byte(v), nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, b store.Bucket, key string) error {
	if err := s.begin(ctx, "delete", b, key, 0); err != nil {
		return err
	}
	cmd, waitErr := s.run(ctx, b, deleteScript, s.keys(b, key), []any{key}, always)
	if err := cmd.Err(); err != nil {
		return fail(ctx, "delete", err)
	}
	return waitErr
}

// Incr adds by to the counter at key and returns the new value. A new counter starts at by
// and expires ttl after that first Incr; later ones keep its expiry. The result is never
// below zero.
func (s *Store) Incr(ctx context.Context, b store.Bucket, key string, by int64, ttl time.Duration) (int64, error) {
	if err := s.begin(ctx, "incr", b, key, ttl); err != nil {
		return 0, err
	}
	cmd, waitErr := s.run(ctx, b, incrScript, s.keys(b, key), []any{key, millis(ttl), by}, always)
	n, err := cmd.Int64()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOTCOUNTER") {
			return 0, fmt.Errorf("%w (%v)", errNotCounter, strings.TrimPrefix(err.Error(), "NOTCOUNTER "))
		}
		return 0, fail(ctx, "incr", err)
	}
	if waitErr != nil {
		return 0, waitErr
	}
	return n, nil
}

// Scan calls fn with every unexpired entry of bucket b. It walks the bucket's index with
// ZSCAN, which returns every member present for the whole walk at least once however the
// index changes meanwhile, and reads each page of entries with one MGET; members whose entry
// has expired or gone are skipped.
func (s *Store) Scan(ctx context.Context, b store.Bucket, fn func(key string, value []byte) error) error {
	if err := s.begin(ctx, "scan", b, "", 0); err != nil {
		return err
	}
	for _, idx := range s.indexes(b) {
		if err := s.scanIndex(ctx, idx, fn); err != nil {
			return err
		}
	}
	return nil
}

// scanIndex is Scan of one index shard: every entry key it names carries its hash tag, so
// each MGET reads one hash slot.
func (s *Store) scanIndex(ctx context.Context, idx string, fn func(key string, value []byte) error) error {
	var cursor uint64
	for {
		page, next, err := s.rdb.ZScan(ctx, idx, cursor, "", scanPage).Result()
		if err != nil {
			return fail(ctx, "scan", err)
		}
		members := make([]string, 0, len(page)/2)
		for i := 0; i < len(page); i += 2 { // member, score, member, score, ...
			members = append(members, page[i])
		}
		if len(members) > 0 {
			keys := make([]string, len(members))
			for i, m := range members {
				keys[i] = idx + ":" + m
			}
			vals, err := s.rdb.MGet(ctx, keys...).Result()
			if err != nil {
				return fail(ctx, "scan", err)
			}
			for i, v := range vals {
				if str, ok := v.(string); ok {
					if err := fn(members[i], []byte(str)); err != nil {
						return err
					}
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Update reads the entry, runs fn on it and writes the result with casScript, which writes
// only if nobody else wrote the entry in between; otherwise it reads again and retries, after
// a short random pause that grows with the attempts, up to maxUpdateAttempts times.
func (s *Store) Update(ctx context.Context, b store.Bucket, key string, fn store.UpdateFunc) error {
	if err := s.begin(ctx, "update", b, key, 0); err != nil {
		return err
	}
	keys := s.keys(b, key)
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return fail(ctx, "update", err)
			}
		}
		cur, err := s.rdb.Get(ctx, keys[0]).Bytes()
		found := err == nil
		if err != nil && !errors.Is(err, redis.Nil) {
			return fail(ctx, "update", err)
		}
		next, ttl, err := fn(cur, found)
		switch {
		case errors.Is(err, store.ErrKeep):
			return nil
		case err != nil:
			return err
		case ttl < 0:
			return fmt.Errorf("store/redis: update: negative ttl %v", ttl)
		}
		mode, op := "absent", "set"
		if found {
			mode = "present"
		}
		if next == nil {
			if !found {
				return nil // nothing to delete
			}
			op = "delete"
		}
		cmd, waitErr := s.run(ctx, b, casScript, keys, []any{key, mode, op, next, millis(ttl), cur}, returnedOne)
		n, err := cmd.Int()
		if err != nil {
			return fail(ctx, "update", err)
		}
		if n == 1 {
			return waitErr
		}
	}
	return unavailable("update", fmt.Errorf("%d conflicting writers in a row", maxUpdateAttempts))
}

// maxUpdateAttempts bounds the retries of one Update under contention. Each round lets at
// least one of the contenders through, so only a record written this often without pause
// reaches it.
const maxUpdateAttempts = 1000

// backoff waits before the attempt-th retry of an Update: a random time up to 50µs << attempt,
// at most 5ms, so that contenders spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	limit := min(50*time.Microsecond<<min(attempt, 10), 5*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

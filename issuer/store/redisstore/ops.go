package redisstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// listBatch is how many entries one MGET of List reads at most.
const listBatch = 512

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
	err := putScript.Run(ctx, s.rdb, s.keys(b, key), key, value, millis(ttl)).Err()
	if err != nil {
		return fail(ctx, "put", err)
	}
	return nil
}

// Create stores value under key if the key is absent or expired, and returns
// store.ErrExists otherwise.
func (s *Store) Create(ctx context.Context, b store.Bucket, key string, value []byte, ttl time.Duration) error {
	if err := s.begin(ctx, "create", b, key, ttl); err != nil {
		return err
	}
	n, err := createScript.Run(ctx, s.rdb, s.keys(b, key), key, value, millis(ttl)).Int()
	switch {
	case err != nil:
		return fail(ctx, "create", err)
	case n == 0:
		return store.ErrExists
	}
	return nil
}

// Take returns the value of key and deletes it in one step, or returns store.ErrNotFound.
func (s *Store) Take(ctx context.Context, b store.Bucket, key string) ([]byte, error) {
	if err := s.begin(ctx, "take", b, key, 0); err != nil {
		return nil, err
	}
	v, err := takeScript.Run(ctx, s.rdb, s.keys(b, key), key).Text()
	if err != nil {
		return nil, fail(ctx, "take", err)
	}
	return []byte(v), nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, b store.Bucket, key string) error {
	if err := s.begin(ctx, "delete", b, key, 0); err != nil {
		return err
	}
	if err := deleteScript.Run(ctx, s.rdb, s.keys(b, key), key).Err(); err != nil {
		return fail(ctx, "delete", err)
	}
	return nil
}

// Incr adds one to the counter at key and returns the new value. A new counter starts at one
// and expires ttl after that first Incr; later ones keep its expiry.
func (s *Store) Incr(ctx context.Context, b store.Bucket, key string, ttl time.Duration) (int64, error) {
	if err := s.begin(ctx, "incr", b, key, ttl); err != nil {
		return 0, err
	}
	n, err := incrScript.Run(ctx, s.rdb, s.keys(b, key), key, millis(ttl)).Int64()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOTCOUNTER") {
			return 0, fmt.Errorf("%w (%v)", errNotCounter, strings.TrimPrefix(err.Error(), "NOTCOUNTER "))
		}
		return 0, fail(ctx, "incr", err)
	}
	return n, nil
}

// List returns every unexpired entry of bucket b. It reads the bucket's index, then the
// entries in batches; an entry that expires or goes in between is left out.
func (s *Store) List(ctx context.Context, b store.Bucket) (map[string][]byte, error) {
	if err := s.begin(ctx, "list", b, "", 0); err != nil {
		return nil, err
	}
	members, err := s.rdb.ZRange(ctx, s.bucketKey(b), 0, -1).Result()
	if err != nil {
		return nil, fail(ctx, "list", err)
	}
	out := make(map[string][]byte, len(members))
	for len(members) > 0 {
		batch := members[:min(len(members), listBatch)]
		members = members[len(batch):]
		keys := make([]string, len(batch))
		for i, m := range batch {
			keys[i] = s.entryKey(b, m)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fail(ctx, "list", err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				out[batch[i]] = []byte(str)
			}
		}
	}
	return out, nil
}

// keys returns the script keys of key in b: the entry, then the bucket's index.
func (s *Store) keys(b store.Bucket, key string) []string {
	idx := s.bucketKey(b)
	return []string{idx + ":" + key, idx}
}

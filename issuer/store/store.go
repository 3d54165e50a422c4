// Package store defines the issuer's storage contract: a small namespaced key-value store with
// per-entry expiry and atomic single-use reads. Every backend (bolt, redis) passes the same
// contract suite in storetest.
//
// Keys that stand for secrets (authorization codes, refresh tokens, device codes) are always a
// hash of the secret, computed by the caller; a backend never sees a raw secret.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a key does not exist or has expired.
var ErrNotFound = errors.New("store: not found")

// ErrExists is returned by Create when the key already exists and has not expired.
var ErrExists = errors.New("store: already exists")

// ErrUnavailable wraps a backend failure (I/O error, lost connection). Callers answer such
// errors with 503 and issue nothing they could not record.
var ErrUnavailable = errors.New("store: unavailable")

// Bucket names a namespace of keys. Buckets are fixed by the issuer, not by user input.
type Bucket string

// Store is the storage contract every backend implements. All methods are safe for
// concurrent use. A ttl of zero means the entry never expires; a negative ttl is an error
// (callers computing a remaining lifetime skip entries that have already expired).
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, b Bucket, key string) ([]byte, error)
	// Put stores value under key, replacing any previous value.
	Put(ctx context.Context, b Bucket, key string, value []byte, ttl time.Duration) error
	// Create stores value under key only if the key is absent (or expired); otherwise it
	// returns ErrExists. Two racing Creates of one key give exactly one success.
	Create(ctx context.Context, b Bucket, key string, value []byte, ttl time.Duration) error
	// Take atomically returns and deletes the value of key, or returns ErrNotFound. Two
	// racing Takes of one key give exactly one success.
	Take(ctx context.Context, b Bucket, key string) ([]byte, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, b Bucket, key string) error
	// Incr adds one to the counter at key and returns the new value. A new counter starts at
	// one and expires ttl after its creation (the window does not slide).
	Incr(ctx context.Context, b Bucket, key string, ttl time.Duration) (int64, error)
	// List returns every unexpired entry of a bucket. It is meant for small buckets such as
	// signing keys, not for codes or tokens.
	List(ctx context.Context, b Bucket) (map[string][]byte, error)
	// Close releases the backend. It is safe to call more than once.
	Close() error
}

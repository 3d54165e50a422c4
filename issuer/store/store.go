// Package store defines the issuer's storage contract: a small namespaced key-value store with
// per-entry expiry and the atomic primitives the protocol's guarantees rest on — single-use
// take, exclusive create, read-modify-write of one record, a counter with a window — plus a
// broadcast that reaches every holder of the same store. Every backend (bolt, redis) passes the
// same contract suite in storetest. docs/design.md in the repository explains what rests on
// which primitive.
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

// ErrKeep is returned by an UpdateFunc that wants the record left as it is; Update then
// returns nil without writing.
var ErrKeep = errors.New("store: keep the current value")

// Bucket names a namespace of keys. Buckets are fixed by the issuer, not by user input.
type Bucket string

// UpdateFunc computes the new value of a record from its current one, for Update. cur is the
// current value and found says whether there is one (an expired record is not found); cur is
// only valid during the call. It returns the new value and its ttl (zero: no expiry), a nil
// value to delete the record, ErrKeep to leave it, or any other error to abort the Update
// with that error.
//
// An UpdateFunc may be called more than once for one Update (a backend that detects a
// conflicting writer calls it again with the newer value), so it must compute its result from
// cur alone and keep what it learns in variables that each call overwrites.
type UpdateFunc func(cur []byte, found bool) (next []byte, ttl time.Duration, err error)

// Subscriber receives the messages of one topic, for Subscribe. Its functions may be called
// from several goroutines at once and must return quickly.
type Subscriber struct {
	// Message is called with every message published on the topic.
	Message func(msg []byte)
	// Resync is called once the subscription is in place, and again whenever messages may
	// have been missed since (after a lost connection): the subscriber rereads from the store
	// the state the messages are about. Messages published after Resync is called are
	// delivered.
	Resync func()
	// Lost is called when delivery has stopped working; the next Resync says it works
	// again. Optional.
	Lost func(err error)
}

// Store is the storage contract every backend implements. All methods are safe for
// concurrent use, also by several Store values on one backend (several Caddy instances on one
// Redis). A ttl of zero means the entry never expires; a negative ttl is an error (callers
// computing a remaining lifetime skip entries that have already expired).
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
	// Update atomically replaces the record at key with what fn computes from it: no other
	// write of key comes between the value fn saw and the value it returned. It returns fn's
	// error, if any (ErrKeep excepted), and then writes nothing.
	Update(ctx context.Context, b Bucket, key string, fn UpdateFunc) error
	// Incr adds by (which may be negative) to the counter at key and returns the new value. A
	// new counter starts at by and expires ttl after its creation (the window does not
	// slide); a counter never goes below zero. Get returns a counter's value in decimal.
	Incr(ctx context.Context, b Bucket, key string, by int64, ttl time.Duration) (int64, error)
	// Scan calls fn with every unexpired entry of a bucket, in no particular order, until fn
	// returns an error, which Scan returns. Every entry that is live for the whole scan is
	// seen at least once; one written, deleted or expiring meanwhile may or may not be. fn owns
	// value. Scan is for buckets that are read whole: signing keys,
	// the deny-list at start and resync.
	Scan(ctx context.Context, b Bucket, fn func(key string, value []byte) error) error
	// Publish sends msg to every current Subscriber of topic, on this store and on every other
	// store of the same backend (every Caddy instance on one Redis). Delivery is best effort:
	// a subscriber that may have missed messages is told to Resync.
	Publish(ctx context.Context, topic string, msg []byte) error
	// Subscribe delivers the messages of topic to sub until ctx ends or the store is closed.
	// It returns once the subscription is set up; the first Resync may come later (once
	// connected). Topics are fixed by the issuer, like buckets.
	Subscribe(ctx context.Context, topic string, sub Subscriber) error
	// Close releases the backend and ends its subscriptions. It is safe to call more than once.
	Close() error
}

package state

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// State is the issuer's typed view of its store. It is safe for concurrent use; any number of
// States (in one process or many) may share one store, and every guarantee documented on a
// method holds between all of them, because each rests on one atomic store primitive.
type State struct {
	st    store.Store
	opts  Options
	local atomic.Pointer[DenyList] // this node's deny-list, once Watch keeps it
}

// Options are the lifetimes State needs to compute the TTLs of what it writes.
type Options struct {
	// FamilyIdle ends a refresh family that is not used for this long.
	FamilyIdle time.Duration
	// ReuseGrace lets a duplicate refresh of the last rotated token, within this long of the
	// rotation, get the same successor instead of revoking the family. Zero: off.
	ReuseGrace time.Duration
	// Tombstone is how long a family revoked before it was started (a replayed code) is
	// remembered, so that the racing redemption cannot start it afterwards: as long as a
	// redeemed code is remembered.
	Tombstone time.Duration
	// RevokedBefore is how long a "revoke everything of this user before now" mark is kept:
	// the longest a session or family can live.
	RevokedBefore time.Duration
}

// New returns the State of st.
func New(st store.Store, opts Options) *State { return &State{st: st, opts: opts} }

// ErrCorrupt wraps a record that cannot be decoded. Callers treat it as a server error.
var ErrCorrupt = errors.New("state: corrupt record")

// Key derives the store key of a secret value (session id, code, token): the store never
// holds the secret itself.
func Key(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// sameKey compares two keys in constant time.
func sameKey(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// until is the ttl of a record that must live until t, or false when t has passed.
func until(t time.Time, now time.Time) (time.Duration, bool) {
	d := t.Sub(now)
	return d, d > 0
}

// get reads the JSON record at key of bucket b: nil, nil when there is none.
func get[T any](ctx context.Context, st store.Store, b store.Bucket, key string) (*T, error) {
	return found[T](b)(st.Get(ctx, b, key))
}

// take atomically reads and deletes the JSON record at key of bucket b: nil, nil when there is
// none.
func take[T any](ctx context.Context, st store.Store, b store.Bucket, key string) (*T, error) {
	return found[T](b)(st.Take(ctx, b, key))
}

// found decodes what a store read returned: nil, nil for store.ErrNotFound.
func found[T any](b store.Bucket) func(raw []byte, err error) (*T, error) {
	return func(raw []byte, err error) (*T, error) {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return decode[T](b, raw)
	}
}

func decode[T any](b store.Bucket, raw []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("%w in %s: %w", ErrCorrupt, b, err)
	}
	return v, nil
}

// put writes v as JSON at key of bucket b.
func put(ctx context.Context, st store.Store, b store.Bucket, key string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.Put(ctx, b, key, raw, ttl)
}

// create writes v as JSON at key of bucket b unless the key exists (store.ErrExists).
func create(ctx context.Context, st store.Store, b store.Bucket, key string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.Create(ctx, b, key, raw, ttl)
}

// update is store.Update for a JSON record: fn gets the current record (nil when absent) and
// returns the new one (nil deletes it) and its ttl, or store.ErrKeep, or an error to abort.
func update[T any](ctx context.Context, st store.Store, b store.Bucket, key string, fn func(cur *T) (*T, time.Duration, error)) error {
	return st.Update(ctx, b, key, func(raw []byte, found bool) ([]byte, time.Duration, error) {
		var cur *T
		if found {
			var err error
			if cur, err = decode[T](b, raw); err != nil {
				return nil, 0, err
			}
		}
		next, ttl, err := fn(cur)
		if err != nil || next == nil {
			return nil, 0, err
		}
		out, err := json.Marshal(next)
		return out, ttl, err
	})
}

package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Buckets of the throttles.
const (
	bucketThrottle        store.Bucket = "throttle"          // Key(counter name, window) → count
	bucketSignInAddresses store.Bucket = "sign_in_addresses" // Key(user\0address) → "1"
)

// Window is one fixed window of a counter: windows are aligned on the clock (every node agrees
// on them without talking), so the end of the current one is known, for Retry-After.
type Window struct {
	Length time.Duration
	Now    time.Time
}

// index and end of the window that holds w.Now.
func (w Window) index() int64 { return w.Now.UnixNano() / int64(w.Length) }

// Reset is when the window ends and its counters start again from zero.
func (w Window) Reset() time.Time { return time.Unix(0, (w.index()+1)*int64(w.Length)) }

// key is the store key of counter name in w.
func (w Window) key(name string) string {
	return Key(name + "\x00" + strconv.FormatInt(w.index(), 10) + "/" + strconv.FormatInt(int64(w.Length), 10))
}

// Count adds by to counter name in window w and returns the new value; a counter never goes
// below zero. It is one atomic store operation, so callers count first and decide on the value
// it returns: a burst of attempts cannot all see the count from before it. Names hold
// client-chosen text (a user name of any length) and are stored hashed.
func (s *State) Count(ctx context.Context, name string, by int64, w Window) (int64, error) {
	return s.st.Incr(ctx, bucketThrottle, w.key(name), by, w.Reset().Sub(w.Now)+time.Second)
}

// Counted returns counter name in window w without changing it (zero when there is none): a
// read, for a check that must cost no write on a hot path.
func (s *State) Counted(ctx context.Context, name string, w Window) (int64, error) {
	raw, err := s.st.Get(ctx, bucketThrottle, w.key(name))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: throttle counter %q", ErrCorrupt, raw)
	}
	return n, nil
}

// RememberAddress records that user signed in from address, for ttl.
func (s *State) RememberAddress(ctx context.Context, user, address string, ttl time.Duration) error {
	return s.st.Put(ctx, bucketSignInAddresses, Key(user+"\x00"+address), []byte("1"), ttl)
}

// KnownAddress reports whether user signed in from address lately.
func (s *State) KnownAddress(ctx context.Context, user, address string) (bool, error) {
	_, err := s.st.Get(ctx, bucketSignInAddresses, Key(user+"\x00"+address))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

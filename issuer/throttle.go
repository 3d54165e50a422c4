package issuer

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Brute-force throttling of password and code guessing: failures are counted per user and per
// client IP in fixed windows; past the limit, attempts are refused without checking the
// password, so the login page and the password grant are no password oracle.
const (
	bucketThrottle     store.Bucket = "throttle"
	throttleWindow                  = 15 * time.Minute
	maxFailuresPerUser              = 10
	maxFailuresPerIP                = 50
)

// throttled reports whether attempts for this key (e.g. "user:alice", "ip:10.0.0.1") are
// currently refused.
func (s *Server) throttled(ctx context.Context, key string, limit int64) (bool, error) {
	raw, err := s.store.Get(ctx, bucketThrottle, hashKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	n, _ := strconv.ParseInt(string(raw), 10, 64)
	return n >= limit, nil
}

// loginThrottled reports whether a sign-in for user from ip must be refused for now.
func (s *Server) loginThrottled(ctx context.Context, user, ip string) (bool, error) {
	if t, err := s.throttled(ctx, "user:"+user, maxFailuresPerUser); t || err != nil {
		return t, err
	}
	return s.throttled(ctx, "ip:"+ip, maxFailuresPerIP)
}

// loginFailed counts a failed sign-in against the user and the IP.
func (s *Server) loginFailed(ctx context.Context, user, ip string) {
	s.countFailure(ctx, "user:"+user)
	s.countFailure(ctx, "ip:"+ip)
}

// countFailure counts one failed attempt against key. Keys are stored hashed: they hold
// client-chosen text (a user name of any length) and must stay small.
func (s *Server) countFailure(ctx context.Context, key string) {
	_, _ = s.store.Incr(ctx, bucketThrottle, hashKey(key), 1, throttleWindow)
}

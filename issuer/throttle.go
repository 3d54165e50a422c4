package issuer

import (
	"context"
	"strconv"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/users"
)

// Brute-force throttling (docs/design.md, "Throttles and bounds"). Every counter counts in a
// fixed window of throttleWindow, and an attempt is counted before it is checked: a burst of
// attempts cannot all see the count from before it, so at most the limit of them are ever
// checked. Refusals look and take the same as wrong guesses, for known and unknown users
// alike, so no endpoint is a password or user oracle.
const (
	throttleWindow = 15 * time.Minute
	// knownAddressTTL is how long an address a user signed in from keeps them clear of the
	// per-user back-off.
	knownAddressTTL = 30 * 24 * time.Hour
	// backoffBase and backoffMax bound the per-user back-off interval.
	backoffBase = 2 * time.Second
	backoffMax  = time.Minute
)

// window is the current throttle window.
func window(now time.Time) state.Window { return state.Window{Length: throttleWindow, Now: now} }

// signIn checks a user's password behind the sign-in throttles, for the sign-in page and the
// password grant. It returns the user when the password is right, and refused when the
// attempt was not checked at all:
//
//   - per address and user: past SignInFailuresPerUserAddress failures the address is refused
//     for that user;
//   - per address: past SignInFailuresPerAddress failures (any user) the address is refused;
//   - per user, from every address: past SignInFailuresPerUser failures, addresses the user has
//     not signed in from lately share one attempt per back-off interval, so a distributed
//     guesser is slowed down while the user's own addresses are not locked out.
//
// A right password takes its attempt back from the counters and remembers the address.
func (s *Server) signIn(ctx context.Context, name, password, ip string) (u *users.User, refused bool, err error) {
	lim, w := s.cfg.Limits, window(time.Now())
	counted := make([]string, 0, 3)
	defer func() {
		if u != nil { // a right password is no failure
			for _, c := range counted {
				_, _ = s.state.Count(ctx, c, -1, w)
			}
		}
	}()
	for _, c := range []struct {
		name  string
		limit int
	}{
		{"sign-in:address:" + ip, lim.SignInFailuresPerAddress},
		{"sign-in:user-address:" + name + "\x00" + ip, lim.SignInFailuresPerUserAddress},
	} {
		n, err := s.state.Count(ctx, c.name, 1, w)
		if err != nil {
			return nil, false, err
		}
		counted = append(counted, c.name)
		if n > int64(c.limit) {
			return nil, true, nil
		}
	}
	perUser := "sign-in:user:" + name
	n, err := s.state.Count(ctx, perUser, 1, w)
	if err != nil {
		return nil, false, err
	}
	counted = append(counted, perUser)
	if over := n - int64(lim.SignInFailuresPerUser); over > 0 {
		ok, err := s.backoffSlot(ctx, name, ip, over, int64(lim.SignInFailuresPerUser))
		if err != nil || !ok {
			return nil, !ok, err
		}
	}
	user, ok := s.users.Authenticate(name, password)
	if !ok {
		return nil, false, nil
	}
	if err := s.state.RememberAddress(ctx, user.Name, ip, knownAddressTTL); err != nil {
		return nil, false, err
	}
	return user, false, nil
}

// backoffSlot decides an attempt for a user past the per-user limit by over failures: an
// address the user signed in from lately passes; any other needs the user's one slot of the
// current back-off interval, which doubles every step failures, from backoffBase to backoffMax.
func (s *Server) backoffSlot(ctx context.Context, name, ip string, over, step int64) (bool, error) {
	known, err := s.state.KnownAddress(ctx, name, ip)
	if err != nil || known {
		return known, err
	}
	interval := min(backoffBase<<min((over-1)/step, 16), backoffMax)
	slot := "sign-in:backoff:" + name + "\x00" + strconv.FormatInt(int64(interval), 10)
	n, err := s.state.Count(ctx, slot, 1, state.Window{Length: interval, Now: time.Now()})
	return n == 1, err
}

// clientAuthAllowed reports whether ip may still try to authenticate as client id: a read
// only, because every token request asks.
func (s *Server) clientAuthAllowed(ctx context.Context, id, ip string) (bool, error) {
	n, err := s.state.Counted(ctx, "client-auth:"+id+"\x00"+ip, window(time.Now()))
	return n < int64(s.cfg.Limits.ClientAuthFailuresPerAddress), err
}

// clientAuthFailed counts a failed client authentication of ip as client id.
func (s *Server) clientAuthFailed(ctx context.Context, id, ip string) {
	_, _ = s.state.Count(ctx, "client-auth:"+id+"\x00"+ip, 1, window(time.Now()))
}

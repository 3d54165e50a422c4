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
// checked. Known and unknown users get the same counters, answers and work, so no endpoint is
// a user oracle; a refused attempt is not checked at all, so it is no password oracle either.
const (
	throttleWindow = 15 * time.Minute
	// knownAddressTTL is how long an address a user signed in from keeps them clear of the
	// per-user back-off.
	knownAddressTTL = 30 * 24 * time.Hour
	// backoffBase and backoffMax bound the per-user back-off interval.
	backoffBase = 2 * time.Second
	backoffMax  = time.Minute
)

// The throttles and bounds by name: the limit of tollgate_issuer_throttled_total and of the
// audit log's throttled events.
const (
	limitSignInAddress     = "sign_in_address"
	limitSignInUserAddress = "sign_in_user_address"
	limitSignInUser        = "sign_in_user" // the per-user back-off
	limitClientAuth        = "client_auth"
	limitUserCode          = "user_code"
	limitPendingAddress    = "pending_address"
	limitPendingClient     = "pending_client"
	limitDeviceAddress     = "device_address"
	limitDeviceClient      = "device_client"
	// Client registrations (RFC 7591) per address and from all addresses, per hour.
	limitRegistrationAddress = "registration_address"
	limitRegistrationTotal   = "registration_total"
	limitRegistrationClients = "registration_clients"
)

var throttleLimits = []string{limitSignInAddress, limitSignInUserAddress, limitSignInUser, limitClientAuth, limitUserCode,
	limitPendingAddress, limitPendingClient, limitDeviceAddress, limitDeviceClient, limitRegistrationAddress,
	limitRegistrationTotal, limitRegistrationClients, limitPasskeyAddress, limitUpstreamAddress}

// window is the current throttle window.
func window(now time.Time) state.Window { return state.Window{Length: throttleWindow, Now: now} }

// signIn checks a user's password behind the sign-in throttles, for the sign-in page and the
// password grant. It returns the user when the password is right, and refused, the name of
// the limit that refused it, when the attempt was not checked at all:
//
//   - per address and user: past SignInFailuresPerUserAddress failures the address is refused
//     for that user;
//   - per address: past SignInFailuresPerAddress failures (any user) the address is refused,
//     except for users who signed in from it lately (so guesses for made-up names from a shared
//     address — a NAT, or the server of an app using the password grant — lock nobody out);
//   - per user, from every address: past SignInFailuresPerUser failures, addresses the user has
//     not signed in from lately share one attempt per back-off interval, so a distributed
//     guesser is slowed down while the user's own addresses are not.
//
// Every attempt is counted before it is checked. A right password takes its attempt back from
// the counters and remembers the address. A refused attempt costs no password hash; its answer
// is the same for known and unknown users.
func (s *Server) signIn(ctx context.Context, name, password, ip string) (u *users.User, refused string, err error) {
	lim, w := s.cfg.Limits, window(time.Now())
	known, err := s.state.KnownAddress(ctx, name, ip)
	if err != nil {
		return nil, "", err
	}
	counted := make([]string, 0, 3)
	defer func() {
		if u != nil { // a right password is no failure
			for _, c := range counted {
				_, _ = s.state.Count(ctx, c, -1, w)
			}
		}
	}()
	for _, c := range []struct {
		name   string
		limit  int
		exempt bool
		called string
	}{
		{"sign-in:address:" + ip, lim.SignInFailuresPerAddress, known, limitSignInAddress},
		{"sign-in:user-address:" + name + "\x00" + ip, lim.SignInFailuresPerUserAddress, false, limitSignInUserAddress},
	} {
		n, err := s.state.Count(ctx, c.name, 1, w)
		if err != nil {
			return nil, "", err
		}
		counted = append(counted, c.name)
		if n > int64(c.limit) && !c.exempt {
			return nil, c.called, nil
		}
	}
	perUser := "sign-in:user:" + name
	n, err := s.state.Count(ctx, perUser, 1, w)
	if err != nil {
		return nil, "", err
	}
	counted = append(counted, perUser)
	if over := n - int64(lim.SignInFailuresPerUser); over > 0 && !known {
		ok, err := s.backoffSlot(ctx, name, over, int64(lim.SignInFailuresPerUser))
		if err != nil {
			return nil, "", err
		} else if !ok {
			return nil, limitSignInUser, nil
		}
	}
	// passkeys required (passkey.go): a right password of a user with a passkey signs nobody
	// in; the attempt stays counted, as a failure is. Read before the password is checked, so
	// that a right and a wrong password cost the same.
	off, err := s.passwordOff(ctx, name)
	if err != nil {
		return nil, "", err
	}
	user, ok := s.users.Authenticate(name, password)
	if !ok {
		return nil, "", nil
	}
	if off {
		return nil, refusedPasskeyOnly, nil
	}
	if err := s.state.RememberAddress(ctx, user.Name, ip, knownAddressTTL); err != nil {
		return nil, "", err
	}
	return user, "", nil
}

// backoffSlot decides an attempt for a user past the per-user limit by over failures, from an
// address the user has not signed in from lately: it needs the user's one slot of the current
// back-off interval, which doubles every step failures, from backoffBase to backoffMax.
func (s *Server) backoffSlot(ctx context.Context, name string, over, step int64) (bool, error) {
	interval := min(backoffBase<<min((over-1)/step, 16), backoffMax)
	slot := "sign-in:backoff:" + name + "\x00" + strconv.FormatInt(int64(interval), 10)
	n, err := s.state.Count(ctx, slot, 1, state.Window{Length: interval, Now: time.Now()})
	return n == 1, err
}

// clientAuthAllowed reports whether ip may still try to authenticate as client c (nil for an
// unknown id): a read only, because every token request asks. Client secrets are high-entropy,
// and a write per token request would cap issuance at the store's write rate; so requests in
// flight when the limit is reached are still checked (docs/design.md, "Throttles and bounds").
func (s *Server) clientAuthAllowed(ctx context.Context, c *client, ip string) (bool, error) {
	n, err := s.state.Counted(ctx, clientAuthCounter(c, ip), window(time.Now()))
	return n < int64(s.cfg.Limits.ClientAuthFailuresPerAddress), err
}

// clientAuthFailed counts a failed client authentication of ip as client c (nil: unknown).
func (s *Server) clientAuthFailed(ctx context.Context, c *client, ip string) {
	_, _ = s.state.Count(ctx, clientAuthCounter(c, ip), 1, window(time.Now()))
}

// clientAuthCounter names the failure counter of ip for client c. Unknown client ids share one
// counter per address, so made-up ids do not each leave a record.
func clientAuthCounter(c *client, ip string) string {
	if c == nil {
		return "client-auth:unknown\x00" + ip
	}
	return "client-auth:" + c.ID + "\x00" + ip
}

package issuer

import (
	"context"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// slowDownStep is what RFC 8628 §3.5 adds to the interval on slow_down: "the interval MUST be
// increased by 5 seconds for this and all subsequent requests".
const slowDownStep = 5

// deviceCode is the Device Authorization Grant at the token endpoint (RFC 8628 §3.4, §3.5).
// While the user has not decided, polls get authorization_pending, or slow_down when they
// come faster than the interval. Once approved, the first poll redeems the device code
// (state.Redeem) and gets the tokens; any later or racing poll is refused and revokes what
// the first got (access token and refresh family), as for a replayed authorization code.
type deviceCode struct{ s *Server }

func (g deviceCode) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s := g.s
	code := req.form["device_code"]
	if code == "" {
		return nil, errInvalidRequest("device_code is required")
	}
	rec, err := s.state.Device(ctx, code)
	if err != nil {
		return nil, errServer(err)
	}
	if rec == nil {
		return nil, s.replayed(ctx, req, state.DeviceCode, code, "the device code is invalid or expired")
	}
	// RFC 8628 §3.4: the device code is bound to the client that asked for it.
	if rec.ClientID != req.client.ID {
		return nil, errInvalidGrant("the device code was issued to another client")
	}
	now := time.Now()
	if rec.Expired(now) {
		return nil, newError("expired_token", "the device code has expired; start a new device authorization")
	}
	// RFC 8707 §2.2: the poll may narrow the resources of the device authorization; the
	// refresh family keeps those of the device authorization.
	aud, e := req.client.grantAudience(req.resources, rec.Resources)
	if e != nil {
		return nil, e
	}
	d, err := s.state.Decision(ctx, code)
	switch {
	case err != nil:
		return nil, errServer(err)
	case d == nil:
		return nil, s.pollPending(ctx, code, rec, now)
	case !d.Approved:
		return nil, newError("access_denied", "the user denied the request")
	}
	// Remembered as long as what it issued may live, so a late replay still revokes it.
	return s.redeemOnce(ctx, req, state.DeviceCode, code, max(s.redemptionTTL(), s.deviceRetention(rec, now)),
		grantOf{client: req.client, user: d.User, scopes: d.Scopes, authTime: d.AuthTime, audience: aud, resources: rec.Resources, person: true})
}

// pollPending answers a poll while the user has not decided, and records it. A poll counts as
// too fast when it comes less than 4/5 of the interval after the previous one: the client
// waits the whole interval, and the slack absorbs network jitter so that a well-behaved
// client is never slowed down. Polls are recorded atomically, so of two racing polls at most
// one passes.
func (s *Server) pollPending(ctx context.Context, code string, rec *state.Device, now time.Time) *Error {
	minGap := func(interval int64) time.Duration { return time.Duration(interval) * time.Second * 4 / 5 }
	tooFast, err := s.state.Poll(ctx, code, rec, now, slowDownStep, minGap, s.deviceRetention(rec, now))
	switch {
	case err != nil:
		return errServer(err)
	case tooFast:
		return newError("slow_down", "polling too fast; wait the interval plus 5 seconds between requests")
	}
	return newError("authorization_pending", "the user has not yet approved the request")
}

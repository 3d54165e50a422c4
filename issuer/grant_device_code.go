package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// slowDownStep is what RFC 8628 §3.5 adds to the interval on slow_down: "the interval MUST be
// increased by 5 seconds for this and all subsequent requests".
const slowDownStep = 5

// devicePoll is the polling state of one device code.
type devicePoll struct {
	Last     time.Time `json:"last"`
	Interval int64     `json:"interval"` // seconds; grows by slowDownStep on every slow_down
}

// deviceCode is the Device Authorization Grant at the token endpoint (RFC 8628 §3.4, §3.5).
// While the user has not decided, polls get authorization_pending, or slow_down when they
// come faster than the interval. Once approved, the first poll atomically creates the code's
// redemption record and gets the tokens; any later or racing poll finds the record, is
// refused, and revokes what the first got (access token and refresh family), as for a
// replayed authorization code.
type deviceCode struct{ s *Server }

func (g deviceCode) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s := g.s
	code := req.form["device_code"]
	if code == "" {
		return nil, errInvalidRequest("device_code is required")
	}
	key := hashKey(code)
	rec, err := s.loadDevice(ctx, key)
	if err != nil {
		return nil, errServer(err)
	}
	if rec == nil {
		if e := s.revokeRedeemed(ctx, bucketDeviceRedeemed, key); e != nil {
			return nil, e
		}
		return nil, errInvalidGrant("the device code is invalid or expired")
	}
	// RFC 8628 §3.4: the device code is bound to the client that asked for it.
	if rec.ClientID != req.client.ID {
		return nil, errInvalidGrant("the device code was issued to another client")
	}
	if rec.expired() {
		return nil, newError("expired_token", "the device code has expired; start a new device authorization")
	}
	d, err := s.loadDeviceDecision(ctx, key)
	switch {
	case err != nil:
		return nil, errServer(err)
	case d == nil:
		return nil, s.pollPending(ctx, key, rec)
	case !d.Approved:
		return nil, newError("access_denied", "the user denied the request")
	}
	// Remembered as long as what it issued may live, so a late replay still revokes it.
	return s.redeemOnce(ctx, bucketDeviceRedeemed, key, max(s.redemptionTTL(), s.deviceRetention(rec)),
		grantOf{client: req.client, user: d.User, scopes: d.Scopes, authTime: d.AuthTime})
}

// pollPending answers a poll while the user has not decided, and records it. A poll counts as
// too fast when it comes less than 4/5 of the interval after the previous one: the client
// waits the whole interval, and the slack absorbs network jitter so that a well-behaved
// client is never slowed down. Two racing polls may both pass; slow_down is advice to a
// client, not a security boundary.
func (s *Server) pollPending(ctx context.Context, key string, rec *deviceRecord) *Error {
	now := time.Now()
	poll := devicePoll{Interval: rec.Interval}
	raw, err := s.store.Get(ctx, bucketDevicePolls, key)
	if err == nil {
		err = json.Unmarshal(raw, &poll)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return errServer(err)
	}
	minGap := time.Duration(poll.Interval) * time.Second * 4 / 5
	tooFast := !poll.Last.IsZero() && now.Sub(poll.Last) < minGap
	if tooFast {
		poll.Interval += slowDownStep
	}
	poll.Last = now
	raw, _ = json.Marshal(poll)
	if err := s.store.Put(ctx, bucketDevicePolls, key, raw, s.deviceRetention(rec)); err != nil {
		return errServer(err)
	}
	if tooFast {
		return newError("slow_down", "polling too fast; wait the interval plus 5 seconds between requests")
	}
	return newError("authorization_pending", "the user has not yet approved the request")
}

// loadDeviceDecision returns the user's decision on a device code, or nil while there is none.
func (s *Server) loadDeviceDecision(ctx context.Context, key string) (*deviceDecision, error) {
	return getJSON[deviceDecision](ctx, s.store, bucketDeviceDecisions, key)
}

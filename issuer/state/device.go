package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Buckets of the device flow (RFC 8628). Every key is a hash: of the device code, or of the
// normalized user code; the store never holds either code.
const (
	bucketDeviceCodes     store.Bucket = "device_codes"      // Key(device code) → Device
	bucketDeviceUserCodes store.Bucket = "device_user_codes" // Key(user code) → DeviceKey
	bucketDevicePolls     store.Bucket = "device_polls"      // Key(device code) → devicePoll
	bucketDeviceDecisions store.Bucket = "device_decisions"  // Key(device code) → Decision
)

// DeviceKey names a device authorization without its device code: what the verification page
// learns from a user code and keeps in the pending request.
type DeviceKey string

// Device is what a device code stands for. It does not change after the device authorization
// request: the user's decision, the polls and the redemption are records of their own, so a
// poll never overwrites a decision.
type Device struct {
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Expires  time.Time `json:"expires"`
	Interval int64     `json:"interval"`  // seconds
	UserCode string    `json:"user_code"` // Key of the normalized user code
	// Resources are the RFC 8707 resources the device authorization asked for; none (and
	// every record written before they were kept) means the client's audiences.
	Resources []string `json:"resources,omitempty"`
}

// Expired reports whether the device code is past its expires_in at now.
func (d *Device) Expired(now time.Time) bool { return !now.Before(d.Expires) }

// Decision is the user's answer to a device authorization, recorded once.
type Decision struct {
	Approved bool     `json:"approved"`
	User     string   `json:"user,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// ErrUserCodeTaken is returned by StartDevice when the user code is in use; pick another.
var ErrUserCodeTaken = errors.New("state: user code in use")

// StartDevice records a new device authorization: its user code, which must be free
// (ErrUserCodeTaken otherwise) and lives until the code expires, and the device record, kept
// for retain (longer, so a device polling late hears expired_token).
func (s *State) StartDevice(ctx context.Context, deviceCode, userCode string, d Device, retain time.Duration) error {
	d.UserCode = Key(userCode)
	key := Key(deviceCode)
	ttl, ok := until(d.Expires, time.Now())
	if !ok {
		return errors.New("state: device code already expired")
	}
	switch err := s.st.Create(ctx, bucketDeviceUserCodes, d.UserCode, []byte(key), ttl); {
	case errors.Is(err, store.ErrExists):
		return ErrUserCodeTaken
	case err != nil:
		return err
	}
	return put(ctx, s.st, bucketDeviceCodes, key, d, retain)
}

// Device returns the record of a device code, or nil when there is none.
func (s *State) Device(ctx context.Context, deviceCode string) (*Device, error) {
	return s.deviceByKey(ctx, DeviceKey(Key(deviceCode)))
}

func (s *State) deviceByKey(ctx context.Context, key DeviceKey) (*Device, error) {
	return get[Device](ctx, s.st, bucketDeviceCodes, string(key))
}

// DeviceByUserCode finds the device authorization of a normalized user code: its key and
// record, or a nil record when the code is unknown or already decided.
func (s *State) DeviceByUserCode(ctx context.Context, userCode string) (DeviceKey, *Device, error) {
	raw, err := s.st.Get(ctx, bucketDeviceUserCodes, Key(userCode))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, nil
	} else if err != nil {
		return "", nil, err
	}
	key := DeviceKey(raw)
	d, err := s.deviceByKey(ctx, key)
	if d == nil || err != nil {
		return "", nil, err
	}
	return key, d, nil
}

// ErrDecided is returned by Decide for a device authorization that has a decision already,
// or has gone.
var ErrDecided = errors.New("state: device authorization already decided or gone")

// Decide records the user's one decision on a device authorization, kept until afterExpiry
// past the device code's expiry (as long as the device record), and retires its user code so
// it cannot be entered again. Of two racing decisions exactly one is recorded; the other, and
// a decision on an expired or unknown device code, gets ErrDecided.
func (s *State) Decide(ctx context.Context, key DeviceKey, d Decision, afterExpiry time.Duration) error {
	dev, err := s.deviceByKey(ctx, key)
	if err != nil {
		return err
	}
	now := time.Now()
	if dev == nil || dev.Expired(now) {
		return ErrDecided
	}
	switch err := create(ctx, s.st, bucketDeviceDecisions, string(key), d, dev.Expires.Sub(now)+afterExpiry); {
	case errors.Is(err, store.ErrExists):
		return ErrDecided
	case err != nil:
		return err
	}
	_ = s.st.Delete(ctx, bucketDeviceUserCodes, dev.UserCode) // expires soon anyway
	return nil
}

// Decision returns the user's decision on a device code, or nil while there is none.
func (s *State) Decision(ctx context.Context, deviceCode string) (*Decision, error) {
	return get[Decision](ctx, s.st, bucketDeviceDecisions, Key(deviceCode))
}

// devicePoll is the polling state of one device code.
type devicePoll struct {
	Last     time.Time `json:"last"`
	Interval int64     `json:"interval"` // seconds; grows on every slow_down
}

// Poll records a token request with a device code at now and reports whether it came too
// soon after the previous one: less than minGap(interval) after it, interval being the
// current polling interval in seconds (d.Interval, grown by step on every poll that came too
// soon, RFC 8628 §3.5). One atomic step, so of two racing polls at most one passes.
func (s *State) Poll(ctx context.Context, deviceCode string, d *Device, now time.Time, step int64,
	minGap func(interval int64) time.Duration, retain time.Duration) (tooFast bool, err error) {
	err = update(ctx, s.st, bucketDevicePolls, Key(deviceCode), func(p *devicePoll) (*devicePoll, time.Duration, error) {
		if p == nil {
			p = &devicePoll{Interval: d.Interval}
		}
		tooFast = !p.Last.IsZero() && now.Sub(p.Last) < minGap(p.Interval)
		if tooFast {
			p.Interval += step
		}
		p.Last = now
		return p, retain, nil
	})
	return tooFast, err
}

// bucketDeviceLinks holds the links of verification_uri_complete: Key(link) → the user code
// sealed under the link, so the store holds no user code that works without the link.
const bucketDeviceLinks store.Bucket = "device_links"

// PutDeviceLink makes link (NewSecret) stand for userCode until ttl: opening
// verification_uri_complete with it prefills the code once, without the code ever being in a
// URL that a log could keep.
func (s *State) PutDeviceLink(ctx context.Context, link, userCode string, ttl time.Duration) error {
	return s.st.Put(ctx, bucketDeviceLinks, Key(link), seal(purposeDeviceLink, link, userCode), ttl)
}

// TakeDeviceLink returns the user code of link and forgets the link, or "" when it is unknown,
// expired or used: a link prefills once.
func (s *State) TakeDeviceLink(ctx context.Context, link string) (string, error) {
	sealed, err := s.st.Take(ctx, bucketDeviceLinks, Key(link))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	code, err := unseal(purposeDeviceLink, link, sealed)
	if err != nil {
		return "", fmt.Errorf("%w: device link", ErrCorrupt)
	}
	return code, nil
}

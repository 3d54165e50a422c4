package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// PathDeviceAuthorization is the device authorization endpoint (RFC 8628 §3.1).
const PathDeviceAuthorization = "/oauth2/device_authorization"

// Store buckets of the device flow. Every key is a hash: of the device code, or of the
// normalized user code; the store never holds either code.
const (
	bucketDeviceCodes     store.Bucket = "device_codes"      // hash(device code) → deviceRecord
	bucketDeviceUserCodes store.Bucket = "device_user_codes" // hash(user code) → hash(device code)
	bucketDevicePolls     store.Bucket = "device_polls"      // hash(device code) → devicePoll
	bucketDeviceDecisions store.Bucket = "device_decisions"  // hash(device code) → deviceDecision
	bucketDeviceRedeemed  store.Bucket = "device_redeemed"   // hash(device code) → redemption
)

// deviceRecord is what a device code stands for. It does not change after the device
// authorization request: the user's decision, the polls and the redemption are separate
// records, so a poll never overwrites a decision.
type deviceRecord struct {
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Expires  time.Time `json:"expires"`
	Interval int64     `json:"interval"`  // seconds
	UserCode string    `json:"user_code"` // hash of the normalized user code
}

// expired reports whether the device code is past its expires_in.
func (d *deviceRecord) expired() bool { return !time.Now().Before(d.Expires) }

// deviceAuthorizationResponse is RFC 8628 §3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// serveDeviceAuthorization is the device authorization endpoint: a client that has the
// device_code grant gets a device code to poll with and a user code to show.
func (s *Server) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	resp, e := s.deviceAuthorization(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) (*deviceAuthorizationResponse, *Error) {
	f, e := parsePostForm(w, r)
	if e != nil {
		return nil, e
	}
	// RFC 8628 §3.1: client authentication as at the token endpoint; a public client sends
	// its client_id.
	c, e := s.authenticateClient(r, f)
	if e != nil {
		return nil, e
	}
	if !c.grants[GrantDeviceCode] {
		return nil, errUnauthorizedClient("the client is not allowed to use the device_code grant")
	}
	scopes, e := c.grantedScopes(f["scope"], []string{"openid", "offline_access"}, nil)
	if e != nil {
		return nil, e
	}
	ctx := r.Context()
	deviceCode := randomSecret()
	key := hashKey(deviceCode)
	userCode, err := s.reserveUserCode(ctx, key)
	if err != nil {
		return nil, errServer(err)
	}
	rec := deviceRecord{ClientID: c.ID, Scopes: scopes, Expires: time.Now().Add(s.cfg.DeviceCodeTTL),
		Interval: int64(s.cfg.DevicePollInterval / time.Second), UserCode: hashKey(userCode)}
	raw, _ := json.Marshal(rec)
	if err := s.store.Put(ctx, bucketDeviceCodes, key, raw, s.deviceRetention(&rec)); err != nil {
		return nil, errServer(err)
	}
	shown := displayUserCode(userCode)
	return &deviceAuthorizationResponse{
		DeviceCode:              deviceCode,
		UserCode:                shown,
		VerificationURI:         s.endpoint(PathDevice),
		VerificationURIComplete: s.endpoint(PathDevice) + "?user_code=" + url.QueryEscape(shown),
		ExpiresIn:               int64(s.cfg.DeviceCodeTTL / time.Second),
		Interval:                rec.Interval,
	}, nil
}

// reserveUserCode picks a user code no live device authorization uses and points it at the
// device code's key. It lives exactly as long as the device code may be approved.
func (s *Server) reserveUserCode(ctx context.Context, deviceKey string) (string, error) {
	for range 5 { // with 20^8 codes a second collision means something else is wrong
		code := newUserCode()
		err := s.store.Create(ctx, bucketDeviceUserCodes, hashKey(code), []byte(deviceKey), s.cfg.DeviceCodeTTL)
		if !errors.Is(err, store.ErrExists) {
			return code, err
		}
	}
	return "", errors.New("no free user code after 5 attempts")
}

// deviceRetention is how long the records of a device code are kept: its lifetime and as long
// again, so a device polling late hears expired_token rather than invalid_grant.
func (s *Server) deviceRetention(rec *deviceRecord) time.Duration {
	return max(time.Until(rec.Expires)+s.cfg.DeviceCodeTTL, time.Second)
}

// loadDevice returns the record of a device code by its key, or nil when there is none.
func (s *Server) loadDevice(ctx context.Context, key string) (*deviceRecord, error) {
	return getJSON[deviceRecord](ctx, s.store, bucketDeviceCodes, key)
}

package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// PathDeviceAuthorization is the device authorization endpoint (RFC 8628 §3.1).
const PathDeviceAuthorization = "/oauth2/device_authorization"

// deviceLinkParam is the query parameter of verification_uri_complete's one-time link.
const deviceLinkParam = "link"

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
	f, resources, e := parseResourceForm(w, r)
	if e != nil {
		return nil, e
	}
	// RFC 8628 §3.1: client authentication as at the token endpoint; a public client sends
	// its client_id.
	ip := s.clientIP(r)
	c, e := s.authenticateClient(r, f, ip)
	if e != nil {
		return nil, e
	}
	if !c.grants[GrantDeviceCode] {
		return nil, errUnauthorizedClient("the client is not allowed to use the device_code grant")
	}
	scopes, e := c.grantScopes(f["scope"], scopeGrant{notByDefault: []string{"openid", "offline_access"}})
	if e != nil {
		return nil, e
	}
	aud, e := c.grantAudience(resources, nil)
	if e != nil {
		return nil, e
	}
	ctx, now := r.Context(), time.Now()
	ttl := time.Duration(s.cfg.DeviceCodeTTL)
	if e := s.boundDeviceCodes(r, w, c, ip, now); e != nil {
		return nil, e
	}
	deviceCode := state.NewSecret()
	rec := state.Device{ClientID: c.ID, Scopes: scopes, Resources: recordedResources(resources, aud), Expires: now.Add(ttl),
		Interval: int64(time.Duration(s.cfg.DevicePollInterval) / time.Second)}
	userCode, err := s.startDevice(ctx, deviceCode, rec, now)
	if err != nil {
		return nil, errServer(err)
	}
	// verification_uri_complete names a one-time link, not the user code itself: the URL is
	// logged wherever it is opened (Caddy's access log among them), and a used link is worth
	// nothing (RFC 8628 §3.3.1 allows "other information with the same function").
	link := state.NewSecret()
	if err := s.state.PutDeviceLink(ctx, link, userCode, ttl); err != nil {
		return nil, errServer(err)
	}
	return &deviceAuthorizationResponse{
		DeviceCode:              deviceCode,
		UserCode:                displayUserCode(userCode),
		VerificationURI:         s.endpoint(PathDevice),
		VerificationURIComplete: s.endpoint(PathDevice) + "?" + deviceLinkParam + "=" + url.QueryEscape(link),
		ExpiresIn:               int64(ttl / time.Second),
		Interval:                rec.Interval,
	}, nil
}

// boundDeviceCodes counts a new device authorization against its address and its client, and
// refuses it past DeviceCodesPerAddress or DeviceCodesPerClient in one device_code_ttl: 429
// with Retry-After and slow_down (RFC 8628's word for "too many, too fast").
func (s *Server) boundDeviceCodes(r *http.Request, w http.ResponseWriter, c *client, ip string, now time.Time) *Error {
	win := state.Window{Length: time.Duration(s.cfg.DeviceCodeTTL), Now: now}
	for _, b := range []struct {
		name   string
		limit  int
		called string
	}{
		{"device:address:" + ip, s.cfg.Limits.DeviceCodesPerAddress, limitDeviceAddress},
		{"device:client:" + c.ID, s.cfg.Limits.DeviceCodesPerClient, limitDeviceClient},
	} {
		n, err := s.state.Count(r.Context(), b.name, 1, win)
		if err != nil {
			return errServer(err)
		}
		if n > int64(b.limit) {
			s.throttled(r, c, b.called)
			w.Header().Set("Retry-After", retryAfter(win.Reset(), now))
			return &Error{Code: "slow_down", Status: http.StatusTooManyRequests,
				Description: "too many device authorizations; try again later"}
		}
	}
	return nil
}

// retryAfter is the Retry-After value (whole seconds, at least 1) until t.
func retryAfter(t, now time.Time) string {
	return strconv.FormatInt(max(int64(t.Sub(now)+time.Second-1)/int64(time.Second), 1), 10)
}

// startDevice picks a user code no live device authorization uses and records the device
// authorization under it.
func (s *Server) startDevice(ctx context.Context, deviceCode string, rec state.Device, now time.Time) (string, error) {
	for range 5 { // with 20^8 codes a second collision means something else is wrong
		code := newUserCode()
		err := s.state.StartDevice(ctx, deviceCode, code, rec, s.deviceRetention(&rec, now))
		if !errors.Is(err, state.ErrUserCodeTaken) {
			return code, err
		}
	}
	return "", errors.New("no free user code after 5 attempts")
}

// deviceRetention is how long the records of a device code are kept: its lifetime and as long
// again, so a device polling late hears expired_token rather than invalid_grant.
func (s *Server) deviceRetention(rec *state.Device, now time.Time) time.Duration {
	return max(rec.Expires.Sub(now)+time.Duration(s.cfg.DeviceCodeTTL), time.Second)
}

package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// TestDeviceSlowDown: a device that polls at the interval only ever hears
// authorization_pending; one that polls faster hears slow_down, and from then on the interval
// is 5 s longer (RFC 8628 §3.5), so the old interval is too fast too.
func TestDeviceSlowDown(t *testing.T) {
	tests := []struct {
		name         string
		waits        []time.Duration // before each poll
		want         []string
		wantInterval int64 // the interval the server now expects, in seconds
	}{
		{"at the interval", []time.Duration{0, time.Second, time.Second},
			[]string{"authorization_pending", "authorization_pending", "authorization_pending"}, 1},
		{"twice quickly", []time.Duration{0, 0},
			[]string{"authorization_pending", "slow_down"}, 6},
		{"the old interval is now too fast", []time.Duration{0, 0, 1100 * time.Millisecond},
			[]string{"authorization_pending", "slow_down", "slow_down"}, 11},
	}
	f := newFlowServer(t, withDevice)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			da := f.startDevice(t, "console", "console-secret", "")
			for i, wait := range tc.waits {
				time.Sleep(wait)
				if e, _ := f.pollDevice(t, "console", "console-secret", da.DeviceCode); e != tc.want[i] {
					t.Fatalf("poll %d: %q, want %q", i+1, e, tc.want[i])
				}
			}
			raw, err := f.st.Get(context.Background(), "device_polls", state.Key(da.DeviceCode))
			if err != nil {
				t.Fatal(err)
			}
			var poll struct{ Interval int64 }
			_ = json.Unmarshal(raw, &poll)
			if poll.Interval != tc.wantInterval {
				t.Fatalf("interval %d s, want %d s", poll.Interval, tc.wantInterval)
			}
		})
	}
}

// TestDeviceExpired uses a real 2 s lifetime: the device then hears expired_token, and the
// user code no longer works on the page.
func TestDeviceExpired(t *testing.T) {
	f := newFlowServer(t, withDevice, func(c *Config) { c.DeviceCodeTTL = Duration(2 * time.Second) })
	da := f.startDevice(t, "tv", "", "")
	if da.ExpiresIn != 2 {
		t.Fatalf("expires_in %d", da.ExpiresIn)
	}
	if e, _ := f.pollDevice(t, "tv", "", da.DeviceCode); e != "authorization_pending" {
		t.Fatalf("fresh code: %q", e)
	}
	time.Sleep(2100 * time.Millisecond)
	if e, _ := f.pollDevice(t, "tv", "", da.DeviceCode); e != "expired_token" {
		t.Fatalf("expired code: %q, want expired_token", e)
	}
	resp, body := f.verifyDevice(newBrowser(t), da.UserCode, "allow")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, msgBadUserCode) {
		t.Fatalf("expired user code on the page: %d", resp.StatusCode)
	}
}

// TestDeviceExpiresDuringSignIn: a user who entered the code in time but consents after the
// code expired approves nothing.
func TestDeviceExpiresDuringSignIn(t *testing.T) {
	f := newFlowServer(t, withDevice, func(c *Config) { c.DeviceCodeTTL = Duration(time.Second) })
	da := f.startDevice(t, "tv", "", "")
	b := newBrowser(t)
	resp, body := f.enterUserCode(b, da.UserCode)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("entering a live code: %d", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond)
	resp, body = f.followDevice(b, resp, body, "allow")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, msgDeviceExpired) {
		t.Fatalf("consent after expiry: %d %s", resp.StatusCode, body)
	}
	if e, _ := f.pollDevice(t, "tv", "", da.DeviceCode); e != "expired_token" {
		t.Fatalf("poll: %q, want expired_token", e)
	}
}

// TestDeviceTokenErrors covers the token endpoint's answers for bad device codes: the code is
// bound to the client that asked for it.
func TestDeviceTokenErrors(t *testing.T) {
	f := newFlowServer(t, withDevice, func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "tv2", Grants: []string{"device_code"}, Scopes: []string{"read"}})
	})
	da := f.startDevice(t, "tv", "", "read")
	tests := []struct {
		name, client, secret string
		form                 url.Values
		status               int
		want                 string
	}{
		{"another public client", "tv2", "", url.Values{"device_code": {da.DeviceCode}}, 400, "invalid_grant"},
		{"another confidential client", "console", "console-secret", url.Values{"device_code": {da.DeviceCode}}, 400, "invalid_grant"},
		{"unknown device code", "tv", "", url.Values{"device_code": {"nope"}}, 400, "invalid_grant"},
		{"user code instead of device code", "tv", "", url.Values{"device_code": {da.UserCode}}, 400, "invalid_grant"},
		{"no device code", "tv", "", url.Values{}, 400, "invalid_request"},
		{"client without the grant", "spa", "", url.Values{"device_code": {da.DeviceCode}}, 400, "unauthorized_client"},
		{"wrong secret", "console", "nope", url.Values{"device_code": {da.DeviceCode}}, 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", GrantDeviceCode)
			status, e := f.postJSON(t, PathToken, tc.client, tc.secret, tc.form, &tokenResponse{})
			if status != tc.status || e != tc.want {
				t.Fatalf("%d %q, want %d %q", status, e, tc.status, tc.want)
			}
		})
	}
	// None of that touched the code: its own client still waits for the user.
	if e, _ := f.pollDevice(t, "tv", "", da.DeviceCode); e != "authorization_pending" {
		t.Fatalf("the owner's poll: %q", e)
	}
}

// TestDeviceRedemptionRace: N goroutines redeem one approved device code at once over real
// HTTP; exactly one gets tokens, and (as for a replayed authorization code) the replay revokes
// them.
func TestDeviceRedemptionRace(t *testing.T) {
	const n = 16
	f := newFlowServer(t, withDevice)
	da := f.startDevice(t, "console", "console-secret", "read")
	if resp, body := f.verifyDevice(newBrowser(t), da.UserCode, "allow"); !strings.Contains(body, "return to your device") {
		t.Fatalf("approval: %d %s", resp.StatusCode, body)
	}
	var wg sync.WaitGroup
	results := make(chan *tokenResponse, n)
	errs := make(chan string, n)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, tok := f.pollDevice(t, "console", "console-secret", da.DeviceCode)
			if tok != nil {
				results <- tok
			} else {
				errs <- e
			}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	close(errs)
	if len(results) != 1 {
		t.Fatalf("%d redemptions got tokens, want exactly 1", len(results))
	}
	for e := range errs {
		if e != "invalid_grant" {
			t.Fatalf("a losing redemption got %q, want invalid_grant", e)
		}
	}
	var claims accesstoken.Claims
	tok := <-results
	if _, err := jwt.ParseWithClaims(tok.AccessToken, &claims, f.Keys().Keyfunc); err != nil {
		t.Fatal(err)
	}
	if !f.Revoked(claims.ID) {
		t.Fatal("the replayed device code's access token is not revoked")
	}
}

// BenchmarkDevicePoll measures a pending device-code poll through the whole token endpoint
// (form parsing, client authentication, the grant) on the bolt store. Every poll reads the
// device record, the decision and the poll state and writes the poll state: the write, one
// bolt transaction with an fsync, bounds it. After the first poll the answer is slow_down,
// which does exactly the same work as authorization_pending.
func BenchmarkDevicePoll(b *testing.B) {
	f := newFlowServer(b, withDevice)
	da := f.startDevice(b, "console", "console-secret", "read")
	body := url.Values{"grant_type": {GrantDeviceCode}, "device_code": {da.DeviceCode}}.Encode()
	poll := func(b *testing.B) bool {
		r := httptest.NewRequest(http.MethodPost, f.url+PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("console", "console-secret")
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		if got := w.Body.String(); w.Code != http.StatusBadRequest ||
			!strings.Contains(got, `"slow_down"`) && !strings.Contains(got, `"authorization_pending"`) {
			b.Errorf("poll: %d %s", w.Code, got)
			return false
		}
		return true
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if !poll(b) {
				return
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() && poll(b) {
			}
		})
	})
}

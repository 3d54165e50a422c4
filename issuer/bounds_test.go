package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// storedCount is how many records the issuer keeps in bucket b.
func (f *flowServer) storedCount(t *testing.T, b store.Bucket) int {
	t.Helper()
	n := 0
	if err := f.st.Scan(context.Background(), b, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantRetryAfter checks a Retry-After of whole seconds within (0, max].
func wantRetryAfter(t *testing.T, h http.Header, max time.Duration) {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n <= 0 || time.Duration(n)*time.Second > max+time.Second {
		t.Fatalf("Retry-After %q, want whole seconds up to %v", h.Get("Retry-After"), max)
	}
}

// TestDeviceAuthorizationsAreBounded is one client asking for device codes as fast as it can:
// past the bound per address (and, from many addresses, per client) it gets 429 slow_down
// with Retry-After, and nothing more is stored.
func TestDeviceAuthorizationsAreBounded(t *testing.T) {
	f := newFlowServer(t, withDevice, func(c *Config) { c.Limits.DeviceCodesPerClient = 60 })
	perAddress := f.cfg.Limits.DeviceCodesPerAddress
	ask := func(ip string) (*http.Response, oauthError) {
		req, _ := http.NewRequest("POST", f.url+PathDeviceAuthorization, strings.NewReader("client_id=tv&scope=read"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(clientIPHeader, ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e oauthError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp, e
	}
	statuses := burst(200, func(int) int {
		resp, _ := ask("203.0.113.7")
		return resp.StatusCode
	})
	if ok := count(statuses, 200); ok != perAddress || count(statuses, 429) != 200-perAddress {
		t.Fatalf("200 device authorizations at once from one address: %d issued, want exactly %d (statuses %v)", ok, perAddress, statuses)
	}
	resp, e := ask("203.0.113.7")
	if resp.StatusCode != 429 || e.Error != "slow_down" {
		t.Fatalf("over the bound: %d %+v, want 429 slow_down", resp.StatusCode, e)
	}
	wantRetryAfter(t, resp.Header, time.Duration(f.cfg.DeviceCodeTTL))
	issued := perAddress
	for i := 0; issued < 60; i++ { // other addresses, up to the client's bound
		if resp, _ := ask(fmt.Sprintf("198.51.100.%d", i+1)); resp.StatusCode == 200 {
			issued++
		}
	}
	if resp, e := ask("192.0.2.99"); resp.StatusCode != 429 || e.Error != "slow_down" {
		t.Fatalf("over the client's bound from a fresh address: %d %+v, want 429 slow_down", resp.StatusCode, e)
	}
	if n := f.storedCount(t, "device_codes"); n != 60 {
		t.Fatalf("%d device codes stored, want the 60 issued", n)
	}
}

// TestPendingRequestsAreBounded sends 1000 cookie-less authorization requests with an 8 KB
// state and a 1 KB one: the oversized state is refused outright (invalid_request, not echoed),
// the others are kept only up to the bound per address, then refused with 429 and
// Retry-After; the store holds no more than the bound.
func TestPendingRequestsAreBounded(t *testing.T) {
	f := newFlowServer(t)
	perAddress := f.cfg.Limits.PendingPerAddress
	get := func(ip, state string) *http.Response {
		q := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
			"scope": {"read"}, "state": {state}}
		req, _ := http.NewRequest("GET", f.url+PathAuthorize+"?"+q.Encode(), nil)
		req.Header.Set(clientIPHeader, ip)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := get("203.0.113.9", strings.Repeat("s", 8<<10))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 303 || loc.Query().Get("error") != "invalid_request" || loc.Query().Has("state") {
		t.Fatalf("8 KB state: %d to %s; want a redirect with invalid_request and no state", resp.StatusCode, loc)
	}
	statuses := burst(1000, func(int) int { return get("203.0.113.9", strings.Repeat("s", 1<<10)).StatusCode })
	if ok := count(statuses, 303); ok != perAddress || count(statuses, 429) != 1000-perAddress {
		t.Fatalf("1000 requests at once: %d kept, want exactly %d", ok, perAddress)
	}
	resp = get("203.0.113.9", "x")
	if resp.StatusCode != 429 {
		t.Fatalf("over the bound: %d, want 429", resp.StatusCode)
	}
	wantRetryAfter(t, resp.Header, pendingTTL)
	if resp := get("198.51.100.1", "x"); resp.StatusCode != 303 {
		t.Fatalf("another address: %d, want 303 to the sign-in page", resp.StatusCode)
	}
	if n := f.storedCount(t, "pending_authorizations"); n != perAddress+1 {
		t.Fatalf("%d pending requests stored, want %d", n, perAddress+1)
	}
}

// TestPendingAnsweredOnce races the last steps of one sign-in — the password form posted
// twice, each followed on to the authorization endpoint — 40 times: one request is answered
// with one code, never two.
func TestPendingAnsweredOnce(t *testing.T) {
	f := newFlowServer(t)
	for round := range 40 {
		b := newBrowserFrom(t, fmt.Sprintf("10.8.%d.1", round))
		params := url.Values{"client_id": {"first"}, "redirect_uri": {"https://first.test/cb"}, "response_type": {"code"}, "scope": {"read"}}
		resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
		_, page := b.get(f.url + resp.Header.Get("Location"))
		form := cloneWith(hiddenFields(page), "username", "alice", "password", alicePassword)
		codes := make([]string, 2)
		release(func() { codes[0] = f.signInAndFollow(b, form) }, func() { codes[1] = f.signInAndFollow(b, form) })
		if codes[0] != "" && codes[1] != "" {
			t.Fatalf("round %d: one authorization request was answered with two codes", round)
		}
	}
}

// signInAndFollow posts the sign-in form and follows the issuer's redirects; it returns the
// code the client got, if any.
func (f *flowServer) signInAndFollow(b *browser, form url.Values) string {
	resp, _ := b.post(f.url+PathLogin, form)
	for range 5 {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 {
			return ""
		}
		if !strings.HasPrefix(loc, "/") {
			u, _ := url.Parse(loc)
			return u.Query().Get("code")
		}
		resp, _ = b.get(f.url + loc)
	}
	return ""
}

package issuer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// TestDeviceAuthorizationEndpoint covers who may ask for a device code and with which scopes.
func TestDeviceAuthorizationEndpoint(t *testing.T) {
	f := newFlowServer(t, withDevice)
	tests := []struct {
		name, client, secret, scope string
		status                      int
		want                        string // error code, or the granted scopes
	}{
		{"public client, default scopes", "tv", "", "", 200, "profile email read"},
		{"public client, openid asked", "tv", "", "openid read", 200, "openid read"},
		{"confidential client, Basic", "console", "console-secret", "write", 200, "write"},
		{"scope the client lacks", "tv", "", "write", 400, "invalid_scope"},
		{"client without the grant", "spa", "", "", 400, "unauthorized_client"},
		{"unknown client", "nobody", "", "", 401, "invalid_client"},
		{"confidential client without its secret", "console", "", "", 401, "invalid_client"},
		{"wrong secret", "console", "wrong", "", 401, "invalid_client"},
		{"no client at all", "", "", "", 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			if tc.scope != "" {
				form.Set("scope", tc.scope)
			}
			var da deviceAuthorizationResponse
			status, e := f.postJSON(t, PathDeviceAuthorization, tc.client, tc.secret, form, &da)
			if status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, e, tc.status)
			}
			if status != http.StatusOK {
				if e != tc.want {
					t.Fatalf("error %q, want %q", e, tc.want)
				}
				return
			}
			if len(da.DeviceCode) < 43 || !userCodeFormat.MatchString(da.UserCode) || da.ExpiresIn != 600 || da.Interval != 1 {
				t.Fatalf("response %+v", da)
			}
			rec, err := f.state.Device(context.Background(), da.DeviceCode)
			if err != nil || rec == nil {
				t.Fatalf("no record under the device code's hash: %v", err)
			}
			if got := strings.Join(rec.Scopes, " "); got != tc.want {
				t.Fatalf("scopes %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(f.url + PathDeviceAuthorization + "?client_id=tv")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("status %d, want 405", resp.StatusCode)
		}
	})
}

// TestDeviceStorageOutage closes the store under a running issuer: the device endpoints answer
// 503 temporarily_unavailable and hand out no code they could not record.
func TestDeviceStorageOutage(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Clients = append(cfg.Clients, Client{ID: "console", Secret: "console-secret", Grants: []string{"device_code"},
		Scopes: []string{"read"}})
	s, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	csrf := strings.Repeat("c", 22)
	page := httptest.NewRequest(http.MethodPost, testIssuer+PathDevice,
		strings.NewReader(url.Values{"csrf_token": {csrf}, "user_code": {"WDJB-MJHT"}}.Encode()))
	page.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	page.AddCookie(&http.Cookie{Name: s.cookieName(page, csrfCookie), Value: csrf})
	device := tokenRequestOf("", basic("console", "console-secret"))
	device.URL.Path = PathDeviceAuthorization
	tests := []struct {
		name string
		req  *http.Request
	}{
		{"device authorization", device},
		{"poll", tokenRequestOf("grant_type="+url.QueryEscape(GrantDeviceCode)+"&device_code=abc", basic("console", "console-secret"))},
		{"verification page", page},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tc.req)
			if body := w.Body.String(); w.Code != http.StatusServiceUnavailable || strings.Contains(body, "device_code") ||
				strings.Contains(body, "access_token") {
				t.Fatalf("%d %s", w.Code, body)
			}
		})
	}
}

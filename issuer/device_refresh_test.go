package issuer

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestDeviceRefreshToken: a device client with the refresh_token grant that asked for
// offline_access gets a refresh token that x/oauth2 can use; a replay of the device code
// revokes the whole family, as a replayed authorization code does.
func TestDeviceRefreshToken(t *testing.T) {
	f := newFlowServer(t, withDevice, func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "tvr", Name: "Living Room TV", Grants: []string{"device_code", "refresh_token"},
			Scopes: []string{"openid", "offline_access", "read"}})
	})
	tests := []struct {
		name, scope string
		wantRefresh bool
	}{
		{"offline_access asked", "openid offline_access read", true},
		{"offline_access not asked", "openid read", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			da := f.startDevice(t, "tvr", "", tc.scope)
			if _, body := f.verifyDevice(newBrowser(t), da.UserCode, "allow"); !strings.Contains(body, "return to your device") {
				t.Fatal("approval failed")
			}
			e, tok := f.pollDevice(t, "tvr", "", da.DeviceCode)
			if tok == nil {
				t.Fatalf("poll: %q", e)
			}
			if (tok.RefreshToken != "") != tc.wantRefresh || tok.IDToken == "" {
				t.Fatalf("refresh token %v, want %v; id token %v", tok.RefreshToken != "", tc.wantRefresh, tok.IDToken != "")
			}
			if !tc.wantRefresh {
				return
			}
			cfg := &oauth2.Config{ClientID: "tvr", Endpoint: oauth2.Endpoint{TokenURL: f.url + PathToken, AuthStyle: oauth2.AuthStyleInParams}}
			next, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil || next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
				t.Fatalf("refresh with x/oauth2: %v", err)
			}
			if e, _ := f.pollDevice(t, "tvr", "", da.DeviceCode); e != "invalid_grant" {
				t.Fatalf("replay: %q, want invalid_grant", e)
			}
			if _, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: next.RefreshToken}).Token(); err == nil {
				t.Fatal("the family survived a replay of its device code")
			}
		})
	}
}

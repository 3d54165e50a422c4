package issuer

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDeviceAuthorizationKeepsConfiguredOrigins: with registration on, the token endpoint
// answers any origin, but device authorization keeps the configured ones: otherwise any web page
// could start a device flow from a visitor's browser and read its user code, to phish with it.
func TestDeviceAuthorizationKeepsConfiguredOrigins(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen), func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "tv", Grants: []string{"device_code"}, Scopes: []string{"read"}})
	})
	req, _ := http.NewRequest(http.MethodPost, f.url+PathDeviceAuthorization,
		strings.NewReader(url.Values{"client_id": {"tv"}, "scope": {"read"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	acao := resp.Header.Get("Access-Control-Allow-Origin")
	t.Logf("status %d ACAO=%q user_code=%v", resp.StatusCode, acao, body["user_code"])
	if acao == "https://evil.example" && body["device_code"] != nil {
		t.Errorf("a page on https://evil.example can read a device_code/user_code of configured client tv")
	}
}

package issuer

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"testing"
)

// TestDiscoveryFollowsClients: the metadata advertises what the configured clients can use and
// nothing else, so a tool choosing a flow from it never picks one no client may use.
func TestDiscoveryFollowsClients(t *testing.T) {
	service := Client{ID: "svc", Secret: "service-secret", Grants: []string{"client_credentials"}, Scopes: []string{"read"}}
	spa := Client{ID: "spa", Grants: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
		RedirectURIs: []string{"https://app.test/cb"}}
	legacy := Client{ID: "legacy", Grants: []string{"implicit"}, Scopes: []string{"openid", "profile"},
		RedirectURIs: []string{"https://old.test/cb"}}
	tokenOnly := Client{ID: "tok", Grants: []string{"implicit"}, Scopes: []string{"read"}, RedirectURIs: []string{"https://t.test/cb"}}
	tv := Client{ID: "tv", Grants: []string{"device_code", "refresh_token"}, Scopes: []string{"watch", "offline_access"}}
	web := Client{ID: "web", Secret: "web-secret", Grants: []string{"authorization_code", "password"}, Scopes: []string{"email"},
		RedirectURIs: []string{"https://web.test/cb"}}

	type doc struct {
		Grants        []string `json:"grant_types_supported"`
		ResponseTypes []string `json:"response_types_supported"`
		ResponseModes []string `json:"response_modes_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		Introspection []string `json:"introspection_endpoint_auth_methods_supported"`
		Revocation    []string `json:"revocation_endpoint_auth_methods_supported"`
		Scopes        []string `json:"scopes_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		Device        string   `json:"device_authorization_endpoint"`
		ISS           bool     `json:"authorization_response_iss_parameter_supported"`
	}
	none := []string{}
	for _, tc := range []struct {
		name    string
		clients []Client
		want    doc
	}{
		{"service only", []Client{service}, doc{
			Grants: []string{"client_credentials"}, ResponseTypes: none, ResponseModes: none,
			AuthMethods: []string{"client_secret_basic", "client_secret_post"}, Introspection: []string{"client_secret_basic", "client_secret_post"},
			Revocation: []string{"client_secret_basic", "client_secret_post"}, Scopes: []string{"read"}, PKCE: []string{"S256"}}},
		{"browser app", []Client{spa}, doc{
			Grants: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			ResponseModes: []string{"form_post", "fragment", "query"}, AuthMethods: []string{"none"}, Introspection: none,
			Revocation: []string{"none"}, Scopes: []string{"offline_access", "openid"}, PKCE: []string{"S256"}, ISS: true}},
		{"implicit with and without openid", []Client{legacy, tokenOnly}, doc{
			Grants: []string{"implicit"}, ResponseTypes: []string{"id_token", "id_token token", "token"},
			ResponseModes: []string{"form_post", "fragment"}, AuthMethods: []string{"none"}, Introspection: none,
			Revocation: []string{"none"}, Scopes: []string{"openid", "profile", "read"}, PKCE: []string{"S256"}, ISS: true}},
		{"implicit without openid", []Client{tokenOnly}, doc{
			Grants: []string{"implicit"}, ResponseTypes: []string{"token"},
			ResponseModes: []string{"form_post", "fragment"}, AuthMethods: []string{"none"}, Introspection: none,
			Revocation: []string{"none"}, Scopes: []string{"read"}, PKCE: []string{"S256"}, ISS: true}},
		{"device and a confidential web app", []Client{tv, web}, doc{
			Grants:        []string{"authorization_code", "password", "refresh_token", GrantDeviceCode},
			ResponseTypes: []string{"code"}, ResponseModes: []string{"form_post", "fragment", "query"},
			AuthMethods: []string{"client_secret_basic", "client_secret_post", "none"}, Introspection: []string{"client_secret_basic", "client_secret_post"},
			Revocation: []string{"client_secret_basic", "client_secret_post", "none"}, Scopes: []string{"email", "offline_access", "watch"},
			PKCE: []string{"S256"}, Device: testIssuer + PathDeviceAuthorization, ISS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, Config{Issuer: testIssuer, Clients: tc.clients})
			for _, path := range []string{PathOpenIDConfiguration, PathOAuthMetadata} {
				w := httptest.NewRecorder()
				s.ServeHTTP(w, httptest.NewRequest("GET", testIssuer+path, nil))
				var got doc
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
					t.Fatalf("%s: %d %v", path, w.Code, err)
				}
				for name, pair := range map[string][2][]string{
					"grant_types_supported":                         {got.Grants, tc.want.Grants},
					"response_types_supported":                      {got.ResponseTypes, tc.want.ResponseTypes},
					"response_modes_supported":                      {got.ResponseModes, tc.want.ResponseModes},
					"token_endpoint_auth_methods_supported":         {got.AuthMethods, tc.want.AuthMethods},
					"introspection_endpoint_auth_methods_supported": {got.Introspection, tc.want.Introspection},
					"revocation_endpoint_auth_methods_supported":    {got.Revocation, tc.want.Revocation},
					"scopes_supported":                              {got.Scopes, tc.want.Scopes},
					"code_challenge_methods_supported":              {got.PKCE, tc.want.PKCE},
				} {
					if !slices.Equal(pair[0], pair[1]) || (pair[0] == nil) != (pair[1] == nil) {
						t.Errorf("%s: %s = %q, want %q", path, name, pair[0], pair[1])
					}
				}
				if got.Device != tc.want.Device || got.ISS != tc.want.ISS {
					t.Errorf("%s: device_authorization_endpoint %q, iss parameter %v; want %q, %v",
						path, got.Device, got.ISS, tc.want.Device, tc.want.ISS)
				}
			}
		})
	}
}

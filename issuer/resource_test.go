package issuer

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// The audiences of the resource-indicator clients (RFC 8707).
const (
	resAPI    = "https://api.test"
	resFiles  = "https://files.test/v1"
	resLedger = "urn:example:ledger"
)

var resAudiences = []string{resAPI, resFiles, resLedger}

// withResources adds a confidential client that may use every token-endpoint grant and a
// public implicit client, both with three audiences. "Resource console" skips consent for
// browser flows; its name is what followDevice looks for on the device consent page.
func withResources(c *Config) {
	c.Clients = append(c.Clients,
		Client{ID: "multi", Name: "Resource console", Secret: "multi-secret", Consent: "skip",
			RedirectURIs: []string{"https://multi.test/cb"},
			Grants:       []string{"authorization_code", "refresh_token", "client_credentials", "password", "device_code"},
			Scopes:       []string{"openid", "read", "offline_access"}, Audience: resAudiences},
		Client{ID: "rimp", RedirectURIs: []string{"https://multi.test/implicit"}, Grants: []string{"implicit"}, Consent: "skip",
			Scopes: []string{"read"}, Audience: resAudiences},
	)
}

// withResource returns form with the resource parameter set to resources (repeated).
func withResource(form url.Values, resources []string) url.Values {
	form = cloneValues(form)
	if len(resources) > 0 {
		form[paramResource] = slices.Clone(resources)
	}
	return form
}

// audOf verifies an access token of f and returns its aud.
func (f *flowServer) audOf(t *testing.T, at string) []string {
	t.Helper()
	claims, err := f.verifyAccessToken(at)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	return claims.Audience
}

// tokenResult is the answer of one grant: the access token's aud and the body, or the error.
type tokenResult struct {
	aud   []string
	body  map[string]any
	error string
}

func (f *flowServer) tokenResult(t *testing.T, status int, body map[string]any) tokenResult {
	t.Helper()
	if status != http.StatusOK {
		e, _ := body["error"].(string)
		if e == "" {
			t.Fatalf("status %d without an error: %v", status, body)
		}
		if status != http.StatusBadRequest {
			t.Fatalf("status %d for %s, want 400", status, e)
		}
		return tokenResult{body: body, error: e}
	}
	at, _ := body["access_token"].(string)
	return tokenResult{aud: f.audOf(t, at), body: body}
}

// authorizeMulti runs the code flow of client multi with resources and returns the code, or
// the error the authorization endpoint redirected with.
func (f *flowServer) authorizeMulti(t *testing.T, b *browser, scope string, resources []string) (code, errCode string) {
	t.Helper()
	params := withResource(url.Values{"client_id": {"multi"}, "redirect_uri": {"https://multi.test/cb"},
		"response_type": {"code"}, "scope": {scope}, "state": {"st"}}, resources)
	resp, _ := f.authorize(b, params, "allow")
	got := callback(t, resp, "https://multi.test/cb")
	if got.Get("state") != "st" || got.Get("iss") != f.url {
		t.Fatalf("authorization response %v", got)
	}
	return got.Get("code"), got.Get("error")
}

func (f *flowServer) redeemMulti(t *testing.T, code string, resources []string) tokenResult {
	t.Helper()
	status, body := f.tokenCall(t, PathToken, "multi", "multi-secret", withResource(url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {"https://multi.test/cb"}}, resources))
	return f.tokenResult(t, status, body)
}

func (f *flowServer) passwordMulti(t *testing.T, scope string, resources []string) tokenResult {
	t.Helper()
	status, body := f.tokenCall(t, PathToken, "multi", "multi-secret", withResource(url.Values{"grant_type": {"password"},
		"username": {"alice"}, "password": {alicePassword}, "scope": {scope}}, resources))
	return f.tokenResult(t, status, body)
}

func (f *flowServer) refreshMulti(t *testing.T, rt string, resources []string) tokenResult {
	t.Helper()
	status, body := f.tokenCall(t, PathToken, "multi", "multi-secret", withResource(url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {rt}}, resources))
	return f.tokenResult(t, status, body)
}

// TestResourceIndicators runs every grant with no resource, one, two, and refused ones.
func TestResourceIndicators(t *testing.T) {
	f := newFlowServer(t, withResources)
	b := newBrowser(t)
	grants := []struct {
		name string
		// obtain runs the grant with resources where the grant takes them first (the
		// authorization request for the code and implicit flows, the device authorization
		// request for the device flow), and returns its aud or its error.
		obtain func(t *testing.T, resources []string) tokenResult
	}{
		{"authorization_code", func(t *testing.T, resources []string) tokenResult {
			code, e := f.authorizeMulti(t, b, "read", resources)
			if e != "" {
				return tokenResult{error: e}
			}
			return f.redeemMulti(t, code, nil)
		}},
		{"authorization_code, resource at the token endpoint", func(t *testing.T, resources []string) tokenResult {
			code, e := f.authorizeMulti(t, b, "read", nil)
			if e != "" {
				t.Fatalf("authorization: %s", e)
			}
			return f.redeemMulti(t, code, resources)
		}},
		{"implicit", func(t *testing.T, resources []string) tokenResult {
			resp, _ := f.authorize(b, withResource(url.Values{"client_id": {"rimp"}, "redirect_uri": {"https://multi.test/implicit"},
				"response_type": {"token"}, "scope": {"read"}, "state": {"st"}}, resources), "allow")
			got := callback(t, resp, "https://multi.test/implicit#")
			if got.Get("state") != "st" {
				t.Fatalf("implicit response %v", got)
			}
			if e := got.Get("error"); e != "" {
				return tokenResult{error: e}
			}
			return tokenResult{aud: f.audOf(t, got.Get("access_token"))}
		}},
		{"client_credentials", func(t *testing.T, resources []string) tokenResult {
			status, body := f.tokenCall(t, PathToken, "multi", "multi-secret",
				withResource(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, resources))
			return f.tokenResult(t, status, body)
		}},
		{"password", func(t *testing.T, resources []string) tokenResult {
			return f.passwordMulti(t, "read", resources)
		}},
		{"refresh_token", func(t *testing.T, resources []string) tokenResult {
			first := f.passwordMulti(t, "read offline_access", nil)
			if first.error != "" {
				t.Fatalf("password grant: %s", first.error)
			}
			return f.refreshMulti(t, first.body["refresh_token"].(string), resources)
		}},
		{"device_code", func(t *testing.T, resources []string) tokenResult {
			var da deviceAuthorizationResponse
			status, e := f.postJSON(t, PathDeviceAuthorization, "multi", "multi-secret",
				withResource(url.Values{"scope": {"read"}}, resources), &da)
			if status != http.StatusOK {
				if status != http.StatusBadRequest {
					t.Fatalf("device authorization: %d %s", status, e)
				}
				return tokenResult{error: e}
			}
			if resp, body := f.verifyDevice(newBrowser(t), da.UserCode, "allow"); !strings.Contains(body, "Device connected") {
				t.Fatalf("verification: %d %s", resp.StatusCode, body)
			}
			return f.pollMulti(t, da.DeviceCode, nil)
		}},
	}
	cases := []struct {
		name      string
		resources []string
		wantAud   []string // nil: wantError
		wantError string
	}{
		{"no resource", nil, resAudiences, ""},
		{"one resource", []string{resFiles}, []string{resFiles}, ""},
		{"two resources", []string{resLedger, resAPI}, []string{resLedger, resAPI}, ""},
		{"a resource twice", []string{resAPI, resAPI}, []string{resAPI}, ""},
		{"sent empty", []string{""}, resAudiences, ""},
		{"unknown resource", []string{"https://evil.test"}, nil, "invalid_target"},
		{"one known, one unknown", []string{resAPI, "https://api.test/other"}, nil, "invalid_target"},
		{"relative URI", []string{"/api"}, nil, "invalid_target"},
		{"with a fragment", []string{resAPI + "#frag"}, nil, "invalid_target"},
		{"with an empty fragment", []string{resAPI + "#"}, nil, "invalid_target"},
		{"not a URI", []string{"api"}, nil, "invalid_target"},
	}
	for _, g := range grants {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got := g.obtain(t, tc.resources)
					if got.error != tc.wantError {
						t.Fatalf("error %q, want %q (%v)", got.error, tc.wantError, got.body)
					}
					if tc.wantError == "" && !slices.Equal(got.aud, tc.wantAud) {
						t.Fatalf("aud %q, want %q", got.aud, tc.wantAud)
					}
				})
			}
		})
	}
}

func (f *flowServer) pollMulti(t *testing.T, deviceCode string, resources []string) tokenResult {
	t.Helper()
	status, body := f.tokenCall(t, PathToken, "multi", "multi-secret",
		withResource(url.Values{"grant_type": {GrantDeviceCode}, "device_code": {deviceCode}}, resources))
	return f.tokenResult(t, status, body)
}

// TestResourceNarrowing: the code grant, a refresh and a device poll may narrow what was asked
// for before, never widen it; a refused request burns nothing.
func TestResourceNarrowing(t *testing.T) {
	f := newFlowServer(t, withResources)
	b := newBrowser(t)

	t.Run("code grant", func(t *testing.T) {
		code, e := f.authorizeMulti(t, b, "openid read offline_access", []string{resAPI, resFiles})
		if e != "" {
			t.Fatal(e)
		}
		// Widening at the token endpoint is refused and does not burn the code.
		for _, wider := range [][]string{{resLedger}, {resAPI, resLedger}} {
			if got := f.redeemMulti(t, code, wider); got.error != "invalid_target" {
				t.Fatalf("widening to %q: %v %v", wider, got.aud, got.body)
			}
		}
		got := f.redeemMulti(t, code, []string{resFiles})
		if got.error != "" || !slices.Equal(got.aud, []string{resFiles}) {
			t.Fatalf("narrowed redemption: %q %v", got.aud, got.body)
		}
		// The ID token is for the client, whatever the resources.
		var idClaims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(got.body["id_token"].(string), &idClaims); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(idClaims.Audience, jwt.ClaimStrings{"multi"}) {
			t.Fatalf("ID token aud %q", idClaims.Audience)
		}
		// The family keeps the resources of the authorization request.
		rt := got.body["refresh_token"].(string)
		next := f.refreshMulti(t, rt, nil)
		if next.error != "" || !slices.Equal(next.aud, []string{resAPI, resFiles}) {
			t.Fatalf("refresh without resource: %q %v", next.aud, next.body)
		}
		rt = next.body["refresh_token"].(string)
		next = f.refreshMulti(t, rt, []string{resAPI})
		if next.error != "" || !slices.Equal(next.aud, []string{resAPI}) {
			t.Fatalf("narrowing refresh: %q %v", next.aud, next.body)
		}
		rt = next.body["refresh_token"].(string)
		// Widening after a narrowing is refused (RFC 8707 §2.2), and the token stays usable.
		for _, wider := range [][]string{{resLedger}, {resFiles, resLedger}} {
			if got := f.refreshMulti(t, rt, wider); got.error != "invalid_target" {
				t.Fatalf("widening refresh to %q: %q %v", wider, got.aud, got.body)
			}
		}
		next = f.refreshMulti(t, rt, []string{resFiles})
		if next.error != "" || !slices.Equal(next.aud, []string{resFiles}) {
			t.Fatalf("refresh after the refused one: %q %v", next.aud, next.body)
		}
	})

	t.Run("refresh of a password grant's family", func(t *testing.T) {
		first := f.passwordMulti(t, "read offline_access", []string{resFiles, resLedger})
		if first.error != "" {
			t.Fatal(first.error)
		}
		if got := f.refreshMulti(t, first.body["refresh_token"].(string), []string{resAPI}); got.error != "invalid_target" {
			t.Fatalf("widening the password grant's resources: %q %v", got.aud, got.body)
		}
		next := f.refreshMulti(t, first.body["refresh_token"].(string), []string{resLedger})
		if next.error != "" || !slices.Equal(next.aud, []string{resLedger}) {
			t.Fatalf("narrowing: %q %v", next.aud, next.body)
		}
		next = f.refreshMulti(t, next.body["refresh_token"].(string), nil)
		if next.error != "" || !slices.Equal(next.aud, []string{resFiles, resLedger}) {
			t.Fatalf("the family's resources after a narrowing: %q %v", next.aud, next.body)
		}
	})

	t.Run("device poll", func(t *testing.T) {
		var da deviceAuthorizationResponse
		if status, e := f.postJSON(t, PathDeviceAuthorization, "multi", "multi-secret",
			withResource(url.Values{"scope": {"read"}}, []string{resAPI, resLedger}), &da); status != http.StatusOK {
			t.Fatalf("device authorization: %d %s", status, e)
		}
		if _, body := f.verifyDevice(newBrowser(t), da.UserCode, "allow"); !strings.Contains(body, "Device connected") {
			t.Fatal(body)
		}
		if got := f.pollMulti(t, da.DeviceCode, []string{resFiles}); got.error != "invalid_target" {
			t.Fatalf("widening poll: %q %v", got.aud, got.body)
		}
		got := f.pollMulti(t, da.DeviceCode, []string{resLedger})
		if got.error != "" || !slices.Equal(got.aud, []string{resLedger}) {
			t.Fatalf("narrowing poll: %q %v", got.aud, got.body)
		}
	})

	t.Run("introspection and revocation", func(t *testing.T) {
		got := f.passwordMulti(t, "read", []string{resFiles})
		at := got.body["access_token"].(string)
		introspect := func() map[string]any {
			status, body := f.tokenCall(t, PathIntrospect, "multi", "multi-secret", url.Values{"token": {at}})
			if status != http.StatusOK {
				t.Fatalf("introspect: %d %v", status, body)
			}
			return body
		}
		body := introspect()
		if body["active"] != true || !jsonEqual(body["aud"], []string{resFiles}) {
			t.Fatalf("introspection %v", body)
		}
		if status, body := f.tokenCall(t, PathRevoke, "multi", "multi-secret", url.Values{"token": {at}}); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, body)
		}
		if body := introspect(); body["active"] != false {
			t.Fatalf("introspection after revocation %v", body)
		}
	})
}

// jsonEqual compares a decoded JSON value with want's JSON.
func jsonEqual(got any, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}

// TestResourceAuthorizationErrors: the authorization endpoint redirects invalid_target to the
// client once the redirect URI is trusted, before anyone signs in; repeated parameters other
// than resource are still refused, there and at the token endpoint.
func TestResourceAuthorizationErrors(t *testing.T) {
	f := newFlowServer(t, withResources)
	base := url.Values{"client_id": {"multi"}, "redirect_uri": {"https://multi.test/cb"}, "response_type": {"code"},
		"scope": {"read"}, "state": {"st"}}
	for _, tc := range []struct {
		name      string
		resources []string
	}{
		{"unknown", []string{"https://evil.test"}},
		{"unknown among known", []string{resAPI, "https://evil.test"}},
		{"relative", []string{"api/v1"}},
		{"fragment", []string{resAPI + "#x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := newBrowser(t).get(f.url + PathAuthorize + "?" + withResource(base, tc.resources).Encode())
			got := callback(t, resp, "https://multi.test/cb?")
			if got.Get("error") != "invalid_target" || got.Get("state") != "st" || got.Get("iss") != f.url || got.Get("code") != "" {
				t.Fatalf("authorization error %v", got)
			}
		})
	}
	// A form POST to the authorization endpoint may repeat resource too.
	resp, _ := newBrowser(t).post(f.url+PathAuthorize, withResource(base, []string{resAPI, "https://evil.test"}))
	if got := callback(t, resp, "https://multi.test/cb?"); got.Get("error") != "invalid_target" {
		t.Fatalf("POSTed authorization error %v", got)
	}
	// Other parameters stay single.
	repeated := withResource(base, []string{resAPI, resFiles})
	repeated.Add("scope", "openid")
	resp, _ = newBrowser(t).get(f.url + PathAuthorize + "?" + repeated.Encode())
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("repeated scope: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	form := withResource(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, []string{resAPI, resFiles})
	form.Add("scope", "read")
	if status, body := f.tokenCall(t, PathToken, "multi", "multi-secret", form); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("repeated scope at the token endpoint: %d %v", status, body)
	}
	// Other endpoints still refuse a repeated resource.
	form = url.Values{"token": {"x"}, paramResource: {resAPI, resFiles}}
	if status, body := f.tokenCall(t, PathIntrospect, "multi", "multi-secret", form); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("repeated resource at introspection: %d %v", status, body)
	}
}

// TestResourceRecordsBeforeUpgrade: records stored before resources were kept decode without
// them, which means the client's audiences.
func TestResourceRecordsBeforeUpgrade(t *testing.T) {
	c := newClient(Client{ID: "multi", Audience: resAudiences})
	var code state.Code
	var fam state.Family
	var dev state.Device
	var pending state.Pending
	for raw, v := range map[string]any{
		`{"client_id":"multi","redirect_uri":"https://multi.test/cb","scopes":["read"],"user":"alice","auth_time":1}`:                                                &code,
		`{"client_id":"multi","user":"alice","scopes":["read"],"auth_time":1,"created_ns":1,"expires":2,"idle_until_ns":3,"tokens":[]}`:                              &fam,
		`{"client_id":"multi","scopes":["read"],"expires":"2026-01-01T00:00:00Z","interval":5,"user_code":"k"}`:                                                      &dev,
		`{"client_id":"multi","redirect_uri":"https://multi.test/cb","response_type":"code","scopes":["read"],"max_age":-1,"browser":"b","resume":"/x","created":1}`: &pending,
	} {
		if err := json.Unmarshal([]byte(raw), v); err != nil {
			t.Fatal(err)
		}
	}
	for name, granted := range map[string][]string{"code": code.Resources, "family": fam.Resources,
		"device": dev.Resources, "pending": pending.Resources} {
		aud, e := c.grantAudience(nil, granted)
		if e != nil || !slices.Equal(aud, resAudiences) {
			t.Errorf("%s before the upgrade: %q %v", name, aud, e)
		}
	}
	// A client without a configured audience keeps its ID as the aud.
	plain := newClient(Client{ID: "plain"})
	if aud, e := plain.grantAudience(nil, nil); e != nil || !slices.Equal(aud, []string{"plain"}) {
		t.Fatalf("default audience %q %v", aud, e)
	}
	if _, e := plain.grantAudience([]string{resAPI}, nil); e == nil || e.Code != "invalid_target" {
		t.Fatalf("a resource for a client without audiences: %v", e)
	}
}

// TestGrantAudience is the decision itself: malformed resources are refused even when the
// configuration names them as audiences, so the error is the RFC 8707 §2 check and not only
// the audience check.
func TestGrantAudience(t *testing.T) {
	c := newClient(Client{ID: "odd", Audience: []string{resAPI, resFiles, "api", "https://frag.test#f", "https://frag.test#", "urn:x"}})
	for _, tc := range []struct {
		name               string
		requested, granted []string
		want               []string // nil: invalid_target
	}{
		{"none", nil, nil, c.Audience},
		{"none, granted before", nil, []string{resFiles, resAPI}, []string{resFiles, resAPI}},
		{"none, granted one the client lost", nil, []string{"https://gone.test", resAPI}, []string{resAPI}},
		{"none, granted only lost ones", nil, []string{"https://gone.test"}, nil},
		{"one", []string{resFiles}, nil, []string{resFiles}},
		{"urn", []string{"urn:x"}, nil, []string{"urn:x"}},
		{"order kept, duplicates dropped", []string{resFiles, resAPI, resFiles}, nil, []string{resFiles, resAPI}},
		{"narrowing", []string{resAPI}, []string{resAPI, resFiles}, []string{resAPI}},
		{"widening", []string{"urn:x"}, []string{resAPI, resFiles}, nil},
		{"granted, but no longer the client's", []string{"https://gone.test"}, []string{"https://gone.test"}, nil},
		{"unknown", []string{"https://unknown.test"}, nil, nil},
		{"configured, but relative", []string{"api"}, nil, nil},
		{"configured, but with a fragment", []string{"https://frag.test#f"}, nil, nil},
		{"configured, but with an empty fragment", []string{"https://frag.test#"}, nil, nil},
		{"with a space", []string{"https://api.test/a b"}, nil, nil},
		{"case differs", []string{"HTTPS://API.TEST"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, e := c.grantAudience(tc.requested, tc.granted)
			if tc.want == nil {
				if e == nil || e.Code != "invalid_target" {
					t.Fatalf("got %q %v, want invalid_target", got, e)
				}
				return
			}
			if e != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q %v, want %q", got, e, tc.want)
			}
		})
	}
}

package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// withDevice adds the device-flow clients and a 1 s poll interval, so x/oauth2 polls quickly.
// "console" skips consent for browser flows; a device verification shows it anyway.
func withDevice(c *Config) {
	c.DevicePollInterval = Duration(time.Second)
	c.Clients = append(c.Clients,
		Client{ID: "tv", Name: "Living Room TV", Grants: []string{"device_code"},
			Scopes: []string{"openid", "profile", "email", "read"}},
		Client{ID: "console", Secret: "console-secret", Grants: []string{GrantDeviceCode}, Consent: "skip",
			Scopes: []string{"read", "write"}, Audience: []string{"https://api.test"}},
	)
}

var userCodeFormat = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

// oauthError is the JSON error body of the token and device authorization endpoints.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// postJSON posts a form to one of the issuer's JSON endpoints, with Basic credentials when
// secret is set (else client_id in the form), and decodes the answer into ok or an error.
func (f *flowServer) postJSON(t testing.TB, path, clientID, secret string, form url.Values, ok any) (int, string) {
	t.Helper()
	form = cloneValues(form)
	if secret == "" && clientID != "" {
		form.Set("client_id", clientID)
	}
	req, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
	}
	if resp.StatusCode != http.StatusOK {
		var e oauthError
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s: status %d and no JSON error: %v", path, resp.StatusCode, err)
		}
		return resp.StatusCode, e.Error
	}
	if err := json.NewDecoder(resp.Body).Decode(ok); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, ""
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// startDevice asks for a device authorization and fails the test unless it is granted.
func (f *flowServer) startDevice(t testing.TB, clientID, secret, scope string) deviceAuthorizationResponse {
	t.Helper()
	var da deviceAuthorizationResponse
	form := url.Values{}
	if scope != "" {
		form.Set("scope", scope)
	}
	if status, e := f.postJSON(t, PathDeviceAuthorization, clientID, secret, form, &da); status != http.StatusOK {
		t.Fatalf("device authorization: %d %s", status, e)
	}
	return da
}

// pollDevice makes one token request with a device code and returns the error code, or ""
// with the tokens.
func (f *flowServer) pollDevice(t testing.TB, clientID, secret, deviceCode string) (string, *tokenResponse) {
	t.Helper()
	var tok tokenResponse
	_, e := f.postJSON(t, PathToken, clientID, secret,
		url.Values{"grant_type": {GrantDeviceCode}, "device_code": {deviceCode}}, &tok)
	if e != "" {
		return e, nil
	}
	return "", &tok
}

// verifyDevice enters typed on the verification page in browser b, signs in as alice if
// asked, answers the consent page with decision and returns the last page.
func (f *flowServer) verifyDevice(b *browser, typed, decision string) (*http.Response, string) {
	b.t.Helper()
	resp, body := f.enterUserCode(b, typed)
	return f.followDevice(b, resp, body, decision)
}

// enterUserCode posts typed on the verification page, as a person does.
func (f *flowServer) enterUserCode(b *browser, typed string) (*http.Response, string) {
	b.t.Helper()
	_, page := b.get(f.url + PathDevice)
	form := hiddenFields(page)
	form.Set("user_code", typed)
	return b.post(f.url+PathDevice, form)
}

// followDevice follows the issuer's redirects through the login and consent pages.
func (f *flowServer) followDevice(b *browser, resp *http.Response, body, decision string) (*http.Response, string) {
	b.t.Helper()
	for i := 0; i < 10; i++ {
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 {
			return resp, body
		}
		switch {
		case strings.HasPrefix(loc, PathLogin):
			_, page := b.get(f.url + loc)
			form := hiddenFields(page)
			form.Set("username", "alice")
			form.Set("password", alicePassword)
			resp, body = b.post(f.url+PathLogin, form)
		case strings.HasPrefix(loc, PathConsent):
			_, page := b.get(f.url + loc)
			form := hiddenFields(page)
			if !strings.Contains(page, "Living Room TV") && !strings.Contains(page, "console") {
				b.t.Errorf("the consent page does not name the device's client")
			}
			form.Set("decision", decision)
			resp, body = b.post(f.url+PathConsent, form)
		default:
			resp, body = b.get(f.url + loc)
		}
	}
	b.t.Fatal("too many redirects")
	return nil, ""
}

// TestDeviceFlowWithOAuth2 runs RFC 8628 end to end with x/oauth2 as the device (endpoints
// found by go-oidc discovery) and the browser helper as the user's phone.
func TestDeviceFlowWithOAuth2(t *testing.T) {
	f := newFlowServer(t, withDevice)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	var disco struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if err := provider.Claims(&disco); err != nil || !slices.Contains(disco.GrantTypes, GrantDeviceCode) {
		t.Fatalf("discovery grant_types_supported %v (%v)", disco.GrantTypes, err)
	}
	if got := provider.Endpoint().DeviceAuthURL; got != f.url+PathDeviceAuthorization {
		t.Fatalf("discovered device_authorization_endpoint %q", got)
	}
	tests := []struct {
		name, client, secret string
		scopes               []string
		wantAud              string
	}{
		{"public client with openid", "tv", "", []string{"openid", "profile", "read"}, "tv"},
		{"confidential client with Basic", "console", "console-secret", []string{"write"}, "https://api.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := provider.Endpoint()
			endpoint.AuthStyle = oauth2.AuthStyleInParams
			if tc.secret != "" {
				endpoint.AuthStyle = oauth2.AuthStyleInHeader
			}
			cfg := &oauth2.Config{ClientID: tc.client, ClientSecret: tc.secret, Endpoint: endpoint, Scopes: tc.scopes}
			// x/oauth2 sends only client_id here; a confidential client adds its secret
			// (client_secret_post), as RFC 8628 §3.1 requires.
			var opts []oauth2.AuthCodeOption
			if tc.secret != "" {
				opts = append(opts, oauth2.SetAuthURLParam("client_secret", tc.secret))
			}
			da, err := cfg.DeviceAuth(ctx, opts...)
			if err != nil {
				t.Fatalf("DeviceAuth: %v", err)
			}
			if !userCodeFormat.MatchString(da.UserCode) || da.Interval != 1 || da.VerificationURI != f.url+PathDevice ||
				!strings.HasPrefix(da.VerificationURIComplete, f.url+PathDevice+"?link=") ||
				strings.Contains(da.VerificationURIComplete, strings.ReplaceAll(da.UserCode, "-", "")) ||
				strings.Contains(da.VerificationURIComplete, da.UserCode) ||
				time.Until(da.Expiry) < 9*time.Minute || time.Until(da.Expiry) > 10*time.Minute {
				t.Fatalf("device authorization response %+v", da)
			}
			type result struct {
				tok *oauth2.Token
				err error
			}
			done := make(chan result, 1)
			go func() {
				tok, err := cfg.DeviceAccessToken(ctx, da)
				done <- result{tok, err}
			}()
			// The user opens verification_uri_complete: the code is already filled in, once (the
			// link is single use, so the URL in a log is worth nothing).
			b := newBrowser(t)
			_, page := b.get(da.VerificationURIComplete)
			if !strings.Contains(page, `value="`+da.UserCode+`"`) {
				t.Fatalf("the page is not prefilled with %s", da.UserCode)
			}
			if _, again := newBrowser(t).get(da.VerificationURIComplete); strings.Contains(again, da.UserCode) {
				t.Fatal("a used verification_uri_complete link prefills the code again")
			}
			resp, body := f.verifyDevice(b, da.UserCode, "allow")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You may return to your device.") {
				t.Fatalf("last page %d: %s", resp.StatusCode, body)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("DeviceAccessToken did not return")
			}
			if r.err != nil {
				t.Fatalf("DeviceAccessToken: %v", r.err)
			}
			var claims accesstoken.Claims
			if _, err := jwt.ParseWithClaims(r.tok.AccessToken, &claims, f.Keys().Keyfunc, jwt.WithIssuer(f.url),
				jwt.WithAudience(tc.wantAud)); err != nil {
				t.Fatalf("access token: %v", err)
			}
			if claims.Subject != "alice" || claims.ClientID != tc.client || claims.Scope != strings.Join(tc.scopes, " ") || claims.AuthTime == 0 {
				t.Fatalf("access token claims %+v", claims)
			}
			raw, _ := r.tok.Extra("id_token").(string)
			if slices.Contains(tc.scopes, "openid") {
				idt, err := provider.Verifier(&oidc.Config{ClientID: tc.client}).Verify(ctx, raw)
				if err != nil || idt.Subject != "alice" || idt.VerifyAccessToken(r.tok.AccessToken) != nil {
					t.Fatalf("ID token: %v", err)
				}
			} else if raw != "" {
				t.Fatal("an ID token without openid")
			}
			// Tokens once: the device code is spent.
			if e, _ := f.pollDevice(t, tc.client, tc.secret, da.DeviceCode); e != "invalid_grant" {
				t.Fatalf("second redemption: %q, want invalid_grant", e)
			}
		})
	}
}

// TestDeviceDenied: the user presses deny; the device hears access_denied on every poll.
func TestDeviceDenied(t *testing.T) {
	f := newFlowServer(t, withDevice)
	da := f.startDevice(t, "tv", "", "openid read")
	resp, body := f.verifyDevice(newBrowser(t), da.UserCode, "deny")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You denied access") {
		t.Fatalf("last page %d: %s", resp.StatusCode, body)
	}
	for range 2 {
		if e, _ := f.pollDevice(t, "tv", "", da.DeviceCode); e != "access_denied" {
			t.Fatalf("poll after deny: %q", e)
		}
		time.Sleep(time.Second)
	}
	// The code is decided: entering it again shows the same message as an unknown code.
	resp, body = f.verifyDevice(newBrowser(t), da.UserCode, "allow")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not valid or has expired") {
		t.Fatalf("re-entering a denied code: %d", resp.StatusCode)
	}
}

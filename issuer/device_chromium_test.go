package issuer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/browsertest"
)

// TestBrowserDeviceFlow drives real Chromium through the device verification by the pages'
// HTML contract (input[name=user_code], the login fields, the consent buttons) while x/oauth2
// polls the token endpoint as the device.
func TestBrowserDeviceFlow(t *testing.T) {
	ctx := browsertest.New(t)
	f := newFlowServer(t, withDevice)
	cfg := &oauth2.Config{ClientID: "tv", Scopes: []string{"openid", "read"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: f.url + PathDeviceAuthorization, TokenURL: f.url + PathToken, AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		tok *oauth2.Token
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cfg.DeviceAccessToken(context.Background(), da)
		done <- result{tok, err}
	}()

	codeField := chromedp.CSS(`input[name=user_code]`)
	// verification_uri_complete (the QR code on a TV) fills the code in.
	if err := chromedp.Do(ctx, chromedp.Navigate(da.VerificationURIComplete), chromedp.WaitVisible(codeField)); err != nil {
		t.Fatal(err)
	}
	if v, err := chromedp.Run(ctx, chromedp.Value(codeField)); err != nil || v != da.UserCode {
		t.Fatalf("prefilled %q (%v), want %q", v, err, da.UserCode)
	}
	// The person types the code from the screen, lower case and without the dash.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(da.VerificationURI),
		chromedp.WaitVisible(codeField),
		chromedp.SendKeys(codeField, typed),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
	}
	steps = append(steps, browsertest.SignIn("alice", alicePassword)...)
	steps = append(steps, chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)))
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
	if consent := browsertest.Text(t, ctx, "main"); !strings.Contains(consent, "Living Room TV") {
		t.Fatalf("the consent page does not name the device: %q", consent)
	}
	// The device is still waiting.
	select {
	case r := <-done:
		t.Fatalf("the device got an answer before consent: %+v", r)
	default:
	}
	if err := chromedp.Do(ctx, browsertest.Decide("allow")...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err == nil && strings.Contains(body, "You may return to your device.") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"return to your device\" page: %q %v", body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the device's poll: %v", r.err)
		}
		if r.tok.AccessToken == "" || r.tok.Extra("id_token") == nil {
			t.Fatalf("tokens %+v", r.tok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device never got its tokens")
	}
}

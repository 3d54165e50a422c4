package caddymodule

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/browsertest"
)

// TestEndToEndPasskeys: real Chromium with a virtual authenticator (the DevTools WebAuthn
// domain) against the issuer in Caddy at http://localhost:<port>. Alice signs in with her
// password, registers a passkey on the account page, and a fresh authorization signs in with
// the passkey alone; the relying party's ID token is alice's. After a reload with `passkeys
// required`, her password is refused — with the message a wrong password gets — and the
// passkey still works.
func TestEndToEndPasskeys(t *testing.T) {
	ctx := browsertest.New(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	port, otherPort := freePort(t), freePort(t)
	issuerURL := "http://localhost:" + port
	db := filepath.Join(t.TempDir(), "t.db")
	caddyfile := func(mode string) string {
		return globalOptions + fmt.Sprintf(`
http://localhost:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[2]s
		storage bolt %[3]s
		passkeys %[5]s
		user alice %[4]s
		client webapp {
			secret webapp-secret
			redirect_uri http://127.0.0.1/callback
			loopback_any_port
			grants authorization_code
			scopes openid email read
		}
	}
}

http://localhost:%[6]s {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:%[1]s # the issuer's pages on another origin
}
`, port, issuerURL, db, hash, mode, otherPort)
	}
	startCaddy(t, caddyfile("on"))
	discover(t, issuerURL)
	provider, err := oidc.NewProvider(context.Background(), issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httptest.NewServer(nil)
	t.Cleanup(rp.Close)
	cfg := &oauth2.Config{ClientID: "webapp", ClientSecret: "webapp-secret", Endpoint: provider.Endpoint(),
		RedirectURL: rp.URL + "/callback"}
	verifier := oauth2.GenerateVerifier()
	rp.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			c := *cfg
			c.Scopes = strings.Fields(r.URL.Query().Get("scope"))
			target := c.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
			if r.URL.Query().Get("via") == "sibling" { // the issuer's pages, served on another origin
				target = strings.Replace(target, "//localhost:"+port, "//localhost:"+otherPort, 1)
			}
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		q := r.URL.Query()
		if q.Get("state") != "st" || q.Get("iss") != issuerURL {
			fmt.Fprintf(w, `<p id="result">bad callback %s</p>`, html.EscapeString(r.URL.RawQuery))
			return
		}
		tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			fmt.Fprintf(w, `<p id="result">exchange: %s</p>`, html.EscapeString(err.Error()))
			return
		}
		idt, err := provider.Verifier(&oidc.Config{ClientID: "webapp"}).Verify(r.Context(), tok.Extra("id_token").(string))
		if err != nil {
			fmt.Fprintf(w, `<p id="result">id token: %s</p>`, html.EscapeString(err.Error()))
			return
		}
		fmt.Fprintf(w, `<p id="result">sub %s</p>`, html.EscapeString(idt.Subject))
	})

	// A platform authenticator with discoverable credentials and user verification.
	var authenticator webauthn.AuthenticatorID
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true}})
		authenticator = res.AuthenticatorID
		return err
	})); err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	credentials := func() int {
		var n int
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
			n = len(res.Credentials)
			return err
		})); err != nil {
			t.Fatal(err)
		}
		return n
	}
	clearCookies := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	})
	// finish answers the consent page if it comes and returns the relying party's result.
	finish := func() string {
		t.Helper()
		var where string
		for deadline := time.Now().Add(20 * time.Second); where == ""; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("waiting for consent or the result: timed out")
			}
			// Evaluated again and again: the page may be navigating (a form's redirects).
			where, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#result') ? 'result' :
				document.querySelector('button[name=decision][value=allow]') ? 'consent' :
				document.querySelector('[data-passkey-error]:not([hidden])') ?
					'passkey error: ' + document.querySelector('[data-passkey-error]').textContent : ''`))
		}
		if where == "consent" {
			if err := chromedp.Do(ctx, browsertest.Decide("allow")...); err != nil {
				t.Fatal(err)
			}
		} else if where != "result" {
			t.Fatal(where)
		}
		return browsertest.Text(t, ctx, "#result")
	}

	// 1. Password sign-in.
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.URL + "/start?scope=openid")}, browsertest.SignIn("alice", "wonderland")...)
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
	if got := finish(); got != "sub alice" {
		t.Fatalf("password sign-in: relying party says %q", got)
	}

	// 2. Register a passkey on the account page.
	if err := chromedp.Do(ctx, chromedp.Navigate(issuerURL+"/oauth2/account"),
		chromedp.WaitVisible(chromedp.CSS(`[data-passkey=register]`)),
		chromedp.Click(chromedp.CSS(`[data-passkey=register]`)),
		chromedp.WaitVisible(chromedp.CSS(`li[data-passkey-id]`))); err != nil {
		t.Fatalf("registering a passkey: %v", err)
	}
	if n := credentials(); n != 1 {
		t.Fatalf("the authenticator holds %d credentials", n)
	}

	// 3. A fresh authorization (no session), signed in with the passkey alone.
	passkeySignIn := func() string {
		t.Helper()
		if err := chromedp.Do(ctx, clearCookies, chromedp.Navigate(rp.URL+"/start?scope=openid+email"),
			chromedp.WaitVisible(chromedp.CSS(`[data-passkey=signin]`)),
			chromedp.Click(chromedp.CSS(`[data-passkey=signin]`))); err != nil {
			t.Fatalf("passkey sign-in: %v", err)
		}
		return finish()
	}
	if got := passkeySignIn(); got != "sub alice" {
		t.Fatalf("passkey sign-in: relying party says %q", got)
	}

	// 3b. The same pages served on another origin of the same host (another port, as another
	// service there could): the browser lets it use the passkey (the RP ID is its host), and
	// the issuer refuses the assertion for its origin.
	var page string
	if err := chromedp.Do(ctx, clearCookies, chromedp.Navigate(rp.URL+"/start?scope=openid&via=sibling"),
		chromedp.WaitVisible(chromedp.CSS(`[data-passkey=signin]`)),
		chromedp.Click(chromedp.CSS(`[data-passkey=signin]`))); err != nil {
		t.Fatalf("passkey sign-in on a sibling origin: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(page, "could not be verified"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sibling origin's assertion was not refused by the issuer; page: %s", page)
		}
		page, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`location.host + ' ' + document.body.innerText`))
	}
	if !strings.HasPrefix(page, "localhost:"+otherPort+" ") {
		t.Fatalf("refused on %q", page)
	}

	// 4. passkeys required: the password is refused, the passkey still works.
	reloadCaddy(t, caddyfile("required"))
	discover(t, issuerURL)
	steps = append([]chromedp.Action[chromedp.Void]{clearCookies, chromedp.Navigate(rp.URL + "/start?scope=openid")},
		browsertest.SignIn("alice", "wonderland")...)
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
	if msg := browsertest.Text(t, ctx, "#error"); !strings.Contains(msg, "If this account has a passkey, sign in with it") {
		t.Fatalf("password of a passkey user with passkeys required: %q", msg)
	}
	if got := passkeySignIn(); got != "sub alice" {
		t.Fatalf("passkey sign-in with passkeys required: relying party says %q", got)
	}
}

// TestAdminAPIUserPasskeys: the admin API's passkey routes, after the per-user routes: a
// listing ({"passkeys": […]}, empty for a user without any), removing all (204, also when
// there are none), removing one (404 when the user has no such passkey), and 405 for other
// methods. issuer.TestAdminUserPasskeys covers what they do with real passkeys.
func TestAdminAPIUserPasskeys(t *testing.T) {
	s := newAdminSetup(t)
	for _, path := range []string{s.onA("/tollgate/users/alice/passkeys"), s.onA("/tollgate/users/bob%40example.com/passkeys")} {
		if body := s.want(t, 200, "GET", path, ""); body != `{"passkeys":[]}` {
			t.Errorf("GET %s: %s", path, body)
		}
	}
	s.want(t, 204, "DELETE", s.onA("/tollgate/users/alice/passkeys"), "")
	if body := s.want(t, 404, "DELETE", s.onA("/tollgate/users/alice/passkeys/AAAA"), ""); !strings.Contains(body, "no passkey") {
		t.Errorf("DELETE an unknown passkey: %s", body)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"PATCH", s.onA("/tollgate/users/alice/passkeys"), "GET, DELETE"},
		{"GET", s.onA("/tollgate/users/alice/passkeys/AAAA"), "DELETE"},
	} {
		status, h, body := s.do(t, tc.method, tc.path, "")
		if status != 405 || h.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q %s", tc.method, tc.path, status, h.Get("Allow"), body)
		}
	}
	s.want(t, 400, "GET", "/tollgate/users/alice/passkeys", "") // two issuers run: name one
}

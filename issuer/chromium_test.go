package issuer

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/browsertest"
)

// relyingParty is a small web app that signs users in with the issuer, using x/oauth2 with
// PKCE and go-oidc to verify the ID token, as a real OpenID relying party does.
type relyingParty struct {
	*httptest.Server
	mu       sync.Mutex
	verifier map[string]string // state → PKCE verifier
	idToken  string
}

func newRelyingParty(t *testing.T, issuerURL, clientID, secret string) *relyingParty {
	rp := &relyingParty{verifier: map[string]string{}}
	rp.Server = httptest.NewServer(nil)
	t.Cleanup(rp.Close)
	provider, err := oidc.NewProvider(context.Background(), issuerURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(),
		RedirectURL: rp.URL + "/cb", Scopes: []string{"openid", "profile", "email"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		state, v := oauth2.GenerateVerifier()[:20], oauth2.GenerateVerifier()
		rp.mu.Lock()
		rp.verifier[state] = v
		rp.mu.Unlock()
		opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v), oidc.Nonce("nonce-" + state)}
		if p := r.URL.Query().Get("prompt"); p != "" {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", p))
		}
		http.Redirect(w, r, cfg.AuthCodeURL(state, opts...), http.StatusFound)
	})
	mux.HandleFunc("/cb", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if e := q.Get("error"); e != "" {
			fmt.Fprintf(w, `<p id="result">error: %s</p>`, html.EscapeString(e))
			return
		}
		if q.Get("iss") != issuerURL {
			fmt.Fprint(w, `<p id="result">error: wrong iss</p>`)
			return
		}
		rp.mu.Lock()
		v := rp.verifier[q.Get("state")]
		rp.mu.Unlock()
		tok, err := cfg.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			fmt.Fprintf(w, `<p id="result">error: exchange: %s</p>`, html.EscapeString(err.Error()))
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(r.Context(), raw)
		if err != nil || idt.Nonce != "nonce-"+q.Get("state") {
			fmt.Fprintf(w, `<p id="result">error: id token: %v</p>`, err)
			return
		}
		rp.mu.Lock()
		rp.idToken = raw
		rp.mu.Unlock()
		fmt.Fprintf(w, `<p id="result">signed in as %s</p>`, html.EscapeString(idt.Subject))
	})
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<p id="result">signed out %s</p>`, html.EscapeString(r.URL.Query().Get("state")))
	})
	rp.Config.Handler = mux
	return rp
}

// TestBrowserFlows drives real Chromium through the pages by their public HTML contract
// (input[name=username], input[name=password], button[name=decision][value=allow|deny]).
func TestBrowserFlows(t *testing.T) {
	ctx := browsertest.New(t)
	f := newFlowServer(t, func(c *Config) {
		c.Clients = append(c.Clients, Client{ID: "loopback-web", Secret: "lw-secret", Name: "Loopback Web",
			RedirectURIs: []string{"http://127.0.0.1/cb"}, LoopbackAnyPort: true, PostLogoutRedirectURIs: []string{},
			Scopes: []string{"openid", "profile", "email"}})
	})
	readResult := func(t *testing.T) string { return browsertest.Text(t, ctx, "#result") }
	result := func(t *testing.T, url string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			t.Fatal(err)
		}
		return readResult(t)
	}
	signIn, decide := browsertest.SignIn("alice", alicePassword), browsertest.Decide
	for _, tc := range []struct{ name, client, secret string }{
		{"public client with PKCE", "spa", ""},
		{"confidential client", "loopback-web", "lw-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := newRelyingParty(t, f.url, tc.client, tc.secret)
			steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.URL + "/start?prompt=login")}, signIn...)
			if err := chromedp.Do(ctx, append(steps, decide("allow")...)...); err != nil {
				t.Fatal(err)
			}
			if text := readResult(t); text != "signed in as alice" {
				t.Fatalf("relying party says %q", text)
			}
			// Signed in and consented: prompt=none goes straight through.
			if got := result(t, rp.URL+"/start?prompt=none"); got != "signed in as alice" {
				t.Fatalf("prompt=none with a session: %q", got)
			}
			// prompt=consent shows the page again; deny reaches the client as access_denied.
			if err := chromedp.Do(ctx, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(rp.URL + "/start?prompt=consent")}, decide("deny")...)...); err != nil {
				t.Fatal(err)
			}
			if text := readResult(t); text != "error: access_denied" {
				t.Fatalf("deny: %q", text)
			}
		})
	}
	t.Run("logout", func(t *testing.T) {
		spa := newRelyingParty(t, f.url, "spa", "")
		if got := result(t, spa.URL+"/start?prompt=none"); got != "signed in as alice" {
			t.Fatalf("before logout: %q", got)
		}
		// Without an id_token_hint the logout page asks for a click (no logout CSRF).
		submit := chromedp.CSS(`button[name=decision][value=logout]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.url+PathEndSession), chromedp.WaitVisible(submit), chromedp.Click(submit)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
			if err == nil && strings.Contains(body, "signed out") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no signed-out page: %q %v", body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := result(t, spa.URL+"/start?prompt=none"); got != "error: login_required" {
			t.Fatalf("after logout: %q", got)
		}
	})
}

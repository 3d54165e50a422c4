package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium for one test, or skips the test when it is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on PATH (Debian: apt-get install chromium); skipping the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestBrowser drives each form in Chromium with the real headers: the stylesheet must pass the
// CSP (its hash is right), the form must post what the issuer expects, and the browser must
// follow the issuer's 303 to the client's origin (form-action allows it) or, for form_post,
// run the auto-submit script (script-src allows it) and post to the client.
func TestBrowser(t *testing.T) {
	tests := []struct {
		name     string
		page     func(w http.ResponseWriter, client string)
		steps    []chromedp.Action[chromedp.Void]
		issuer   url.Values // what the issuer's POST handler must receive; nil for form_post
		atClient url.Values // what the client must receive
	}{
		{"login", func(w http.ResponseWriter, client string) {
			Login(w, http.StatusOK, LoginData{Action: "/post", Redirect: client + "/cb", CSRF: "tok",
				Hidden: []Hidden{{"request", "r1"}}, ClientName: "Web App", IssuerHost: "auth.example.com"})
		}, []chromedp.Action[chromedp.Void]{
			chromedp.SendKeys(`input[name=username]`, "alice"),
			chromedp.SendKeys(`input[name=password]`, "wonderland"),
			chromedp.Click(`button[type=submit]`),
		}, url.Values{"csrf_token": {"tok"}, "request": {"r1"}, "username": {"alice"}, "password": {"wonderland"}},
			url.Values{"code": {"c1"}}},
		{"consent allow", func(w http.ResponseWriter, client string) {
			Consent(w, ConsentData{Action: "/post", Redirect: client + "/cb", CSRF: "tok", ClientID: "webapp",
				Scopes: []string{"openid", "read"}})
		}, []chromedp.Action[chromedp.Void]{chromedp.Click(`button[name=decision][value=allow]`)},
			url.Values{"csrf_token": {"tok"}, "decision": {"allow"}}, url.Values{"code": {"c1"}}},
		{"consent deny", func(w http.ResponseWriter, client string) {
			Consent(w, ConsentData{Action: "/post", Redirect: client + "/cb", CSRF: "tok", ClientID: "webapp"})
		}, []chromedp.Action[chromedp.Void]{chromedp.Click(`button[name=decision][value=deny]`)},
			url.Values{"csrf_token": {"tok"}, "decision": {"deny"}}, url.Values{"code": {"c1"}}},
		{"device prefilled", func(w http.ResponseWriter, client string) {
			Device(w, http.StatusOK, DeviceData{Action: "/post", CSRF: "tok", UserCode: "WDJB-MJHT"})
		}, []chromedp.Action[chromedp.Void]{chromedp.Click(`button[type=submit]`)},
			url.Values{"csrf_token": {"tok"}, "user_code": {"WDJB-MJHT"}}, nil},
		{"form_post", func(w http.ResponseWriter, client string) {
			FormPost(w, client+"/cb", []Hidden{{"code", "c1"}, {"state", "s&1"}})
		}, nil, nil, url.Values{"code": {"c1"}, "state": {"s&1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := browser(t)
			atClient, atIssuer := make(chan url.Values, 1), make(chan url.Values, 1)
			client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				atClient <- r.Form
				_, _ = w.Write([]byte("client"))
			}))
			defer client.Close()
			// A second origin: 127.0.0.1 for the client, localhost for the issuer.
			issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					_ = r.ParseForm()
					atIssuer <- r.PostForm
					if tt.atClient == nil {
						Message(w, MessageData{Title: "Done"})
						return
					}
					// As the issuer does: back to its own authorization endpoint first, which then
					// redirects to the client; the browser checks both hops against form-action.
					http.Redirect(w, r, "/authorize", http.StatusSeeOther)
					return
				}
				if r.URL.Path == "/authorize" {
					http.Redirect(w, r, client.URL+"/cb?code=c1", http.StatusSeeOther)
					return
				}
				tt.page(w, client.URL)
			}))
			defer issuer.Close()
			u, _ := url.Parse(issuer.URL)
			u.Host = "localhost:" + u.Port()

			if err := chromedp.Do(ctx, chromedp.Navigate(u.String())); err != nil {
				t.Fatal(err)
			}
			if tt.steps != nil {
				maxWidth, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("main")).maxWidth`))
				if err != nil || maxWidth != "400px" {
					t.Errorf("main max-width = %q, %v: the stylesheet did not apply (CSP hash?)", maxWidth, err)
				}
				if err := chromedp.Do(ctx, tt.steps...); err != nil {
					t.Fatal(err)
				}
				if got := wait(t, atIssuer, "issuer"); !equalValues(got, tt.issuer) {
					t.Errorf("issuer received %v, want %v", got, tt.issuer)
				}
			}
			if tt.atClient != nil {
				if got := wait(t, atClient, "client"); !equalValues(got, tt.atClient) {
					t.Errorf("client received %v, want %v", got, tt.atClient)
				}
			}
		})
	}
}

func wait(t *testing.T, c chan url.Values, who string) url.Values {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("the browser never reached the %s", who)
		return nil
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if len(a[k]) != len(v) || len(v) > 0 && a[k][0] != v[0] {
			return false
		}
	}
	return true
}

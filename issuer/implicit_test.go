package issuer

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
)

// TestImplicitAndFormPost covers response_type token / id_token / "id_token token" in the
// fragment, and response_mode=form_post.
func TestImplicitAndFormPost(t *testing.T) {
	f := newFlowServer(t)
	provider, err := oidc.NewProvider(context.Background(), f.url)
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "imp"})
	base := url.Values{"client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"}, "state": {"st"}, "nonce": {"n-42"}}
	tests := []struct {
		name, responseType, scope string
		wantAT, wantIDT           bool
	}{
		{"token", "token", "read", true, false},
		{"id_token", "id_token", "openid profile", false, true},
		{"id_token token", "id_token token", "openid read", true, true},
		{"token id_token (any order)", "token id_token", "openid", true, true},
	}
	b := newBrowser(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := f.authorize(b, cloneWith(base, "response_type", tc.responseType, "scope", tc.scope), "allow")
			loc := resp.Header.Get("Location")
			if strings.Contains(loc, "?") {
				t.Fatalf("implicit response in the query: %q", loc)
			}
			got := callback(t, resp, "https://app.test/implicit#")
			if got.Get("state") != "st" || got.Get("iss") != f.url || got.Get("code") != "" || got.Get("refresh_token") != "" {
				t.Fatalf("response %v", got)
			}
			if (got.Get("access_token") != "") != tc.wantAT || (got.Get("id_token") != "") != tc.wantIDT {
				t.Fatalf("response %v", got)
			}
			if tc.wantAT && (got.Get("token_type") != "Bearer" || got.Get("expires_in") == "") {
				t.Fatalf("token response %v", got)
			}
			if tc.wantIDT {
				idt, err := verifier.Verify(context.Background(), got.Get("id_token"))
				if err != nil {
					t.Fatalf("ID token: %v", err)
				}
				if idt.Nonce != "n-42" {
					t.Fatalf("nonce %q", idt.Nonce)
				}
				if tc.wantAT {
					if err := idt.VerifyAccessToken(got.Get("access_token")); err != nil {
						t.Fatalf("at_hash: %v", err)
					}
				}
			}
		})
	}
	t.Run("nonce required for an id_token", func(t *testing.T) {
		p := cloneWith(base, "response_type", "id_token", "scope", "openid")
		p.Del("nonce")
		resp, _ := b.get(f.url + PathAuthorize + "?" + p.Encode())
		if got := callback(t, resp, "https://app.test/implicit#"); got.Get("error") != "invalid_request" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("tokens never in the query", func(t *testing.T) {
		resp, _ := b.get(f.url + PathAuthorize + "?" + cloneWith(base, "response_type", "token", "scope", "read", "response_mode", "query").Encode())
		if got := callback(t, resp, "https://app.test/implicit"); got.Get("error") != "invalid_request" || got.Get("access_token") != "" {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("form_post", func(t *testing.T) {
		resp, body := f.authorize(b, cloneWith(base, "response_type", "id_token token", "scope", "openid", "response_mode", "form_post"), "allow")
		if resp.StatusCode != 200 || !strings.Contains(body, `action="https://app.test/implicit"`) {
			t.Fatalf("form_post page: %d\n%s", resp.StatusCode, body)
		}
		fields := hiddenFields(body)
		if fields.Get("access_token") == "" || fields.Get("id_token") == "" || fields.Get("state") != "st" || fields.Get("iss") != f.url {
			t.Fatalf("form_post fields %v", fields)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action https://app.test") {
			t.Fatalf("form_post CSP %q", csp)
		}
	})
}

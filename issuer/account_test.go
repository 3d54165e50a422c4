package issuer

import (
	"net/url"
	"strings"
	"testing"
)

// TestWithdrawConsentAndSignOutEverywhere: withdrawing consent on the account page revokes the
// client's refresh tokens and asks for consent again; signing out everywhere ends every
// session and refresh token of the user.
func TestWithdrawConsentAndSignOutEverywhere(t *testing.T) {
	f := newFlowServer(t, func(c *Config) {
		for i := range c.Clients {
			if c.Clients[i].ID == "web" {
				c.Clients[i].Grants = append(c.Clients[i].Grants, "refresh_token")
				c.Clients[i].Scopes = append(c.Clients[i].Scopes, "offline_access")
			}
		}
	})
	laptop, phone := newBrowser(t), newBrowser(t)
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
		"scope": {"openid read offline_access"}}
	refreshOf := func(b *browser) string {
		resp, _ := f.authorize(b, params, "allow")
		status, body := f.exchange(t, url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"https://app.test/cb"},
			"code": {callback(t, resp, "https://app.test/cb").Get("code")}})
		if status != 200 || body["refresh_token"] == nil {
			t.Fatalf("code exchange: %d %v", status, body)
		}
		return body["refresh_token"].(string)
	}
	refreshWorks := func(rt string) bool {
		status, _ := f.tokenCall(t, PathToken, "web", "web-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		return status == 200
	}

	rt := refreshOf(laptop)
	_, page := laptop.get(f.url + PathAccount)
	if !strings.Contains(page, `name="client_id" value="web"`) {
		t.Fatalf("account page does not list the allowed client:\n%s", page)
	}
	form := hiddenFields(page)
	form.Set("decision", "revoke")
	form.Set("client_id", "web")
	if resp, _ := laptop.post(f.url+PathAccount, form); resp.StatusCode != 303 {
		t.Fatalf("withdraw: %d", resp.StatusCode)
	}
	if refreshWorks(rt) {
		t.Fatal("a refresh token survived the withdrawal of consent")
	}
	if resp, _ := laptop.get(f.url + PathAuthorize + "?" + params.Encode()); !strings.HasPrefix(resp.Header.Get("Location"), PathConsent) {
		t.Fatalf("after withdrawal the consent page must come back, got %q", resp.Header.Get("Location"))
	}

	// Two devices signed in; sign out everywhere from the laptop.
	rtLaptop, rtPhone := refreshOf(laptop), refreshOf(phone)
	_, page = laptop.get(f.url + PathAccount)
	form = hiddenFields(page)
	form.Del("client_id")
	form.Set("decision", "logout_everywhere")
	if resp, _ := laptop.post(f.url+PathAccount, form); resp.StatusCode != 200 {
		t.Fatalf("sign out everywhere: %d", resp.StatusCode)
	}
	if refreshWorks(rtLaptop) || refreshWorks(rtPhone) {
		t.Fatal("a refresh token survived sign-out everywhere")
	}
	none := cloneWith(params, "prompt", "none")
	resp, _ := phone.get(f.url + PathAuthorize + "?" + none.Encode())
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "login_required" {
		t.Fatalf("the phone's session survived sign-out everywhere: %v", got)
	}
	// Signing in again afterwards works (the revocation is of the past only).
	if rt := refreshOf(phone); !refreshWorks(rt) {
		t.Fatal("a new sign-in after sign-out everywhere does not work")
	}
}

// TestAccountPageNeedsCSRF: the account page's actions are refused without the CSRF token.
func TestAccountPageNeedsCSRF(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	f.webCode(t, b, "")
	resp, _ := b.post(f.url+PathAccount, url.Values{"decision": {"logout_everywhere"}})
	if resp.StatusCode != 403 {
		t.Fatalf("without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "prompt": {"none"}}.Encode()); !strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Fatal("the refused request signed the user out")
	}
}

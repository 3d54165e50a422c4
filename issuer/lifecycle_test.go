package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/jwttest"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// lifecycleClients adds the clients the token-lifecycle tests use.
func lifecycleClients(c *Config) {
	c.Clients = append(c.Clients,
		Client{ID: "cli", Secret: "cli-secret", Grants: []string{"password", "refresh_token"},
			Scopes: []string{"openid", "profile", "read", "write", "offline_access"}, Audience: []string{"https://api.test"}},
		Client{ID: "other", Secret: "other-secret", Grants: []string{"password", "refresh_token", "client_credentials"},
			Scopes: []string{"read", "offline_access"}},
		Client{ID: "rs", Secret: "rs-secret", Grants: []string{"client_credentials"}, ResourceServer: true},
	)
}

func (f *flowServer) passwordToken(t *testing.T, id, secret string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := f.oauthConfig(id, secret, "", scopes...)
	tok, err := cfg.PasswordCredentialsToken(context.Background(), "alice", alicePassword)
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	return tok
}

// tokenCall posts form to the token-like endpoint path as client id/secret.
func (f *flowServer) tokenCall(t *testing.T, path, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (f *flowServer) refresh(t *testing.T, id, secret, token string, extra ...string) (int, map[string]any) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return f.tokenCall(t, PathToken, id, secret, form)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	first := f.passwordToken(t, "cli", "cli-secret", "openid", "read", "offline_access")
	if first.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	// x/oauth2 refreshes an expired token on its own.
	first.Expiry = time.Now().Add(-time.Hour)
	second, err := f.oauthConfig("cli", "cli-secret", "").TokenSource(context.Background(), first).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("the refresh token did not rotate")
	}
	// Reusing the rotated token revokes the family: the live token and every access token.
	status, body := f.refresh(t, "cli", "cli-secret", first.RefreshToken)
	if status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("reuse: %d %v", status, body)
	}
	if status, body := f.refresh(t, "cli", "cli-secret", second.RefreshToken); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("successor after reuse: %d %v", status, body)
	}
	for _, at := range []string{first.AccessToken, second.AccessToken} {
		if !f.Revoked(f.jtiUnverified(t, at)) {
			t.Fatal("an access token of the revoked family is still valid")
		}
	}
}

func TestRefreshScopesAndBinding(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	tok := f.passwordToken(t, "cli", "cli-secret", "read", "write", "offline_access")
	status, body := f.refresh(t, "cli", "cli-secret", tok.RefreshToken, "scope", "read")
	if status != 200 || body["scope"] != "read" {
		t.Fatalf("narrowing: %d %v", status, body)
	}
	next := body["refresh_token"].(string)
	if status, body := f.refresh(t, "cli", "cli-secret", next, "scope", "read write profile"); status != 400 || body["error"] != "invalid_scope" {
		t.Fatalf("widening: %d %v", status, body)
	}
	// The narrowed refresh keeps the family's scopes: write is still available.
	if status, body := f.refresh(t, "cli", "cli-secret", next, "scope", "write"); status != 200 {
		t.Fatalf("after narrowing: %d %v", status, body)
	}
	other := f.passwordToken(t, "other", "other-secret", "read", "offline_access")
	if status, body := f.refresh(t, "cli", "cli-secret", other.RefreshToken); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("another client's token: %d %v", status, body)
	}
	// The failed attempt by another client did not burn it.
	if status, _ := f.refresh(t, "other", "other-secret", other.RefreshToken); status != 200 {
		t.Fatalf("owner after a foreign attempt: %d", status)
	}
}

// TestRefreshRace sends one refresh token many times at once.
func TestRefreshRace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
	}{{"no grace: exactly one wins", 0}, {"grace: one successor for all", 10 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlowServer(t, lifecycleClients, func(c *Config) { c.RefreshReuseGrace = Duration(tc.grace) })
			tok := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
			const racers = 16
			var mu sync.Mutex
			successors := map[string]int{}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := 0; i < racers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if status, body := f.refresh(t, "cli", "cli-secret", tok.RefreshToken); status == 200 {
						mu.Lock()
						successors[body["refresh_token"].(string)]++
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			if len(successors) != 1 {
				t.Fatalf("%d distinct successors (want exactly one): %v", len(successors), successors)
			}
			var successor string
			for s, n := range successors {
				successor = s
				if tc.grace == 0 && n != 1 {
					t.Fatalf("%d racers succeeded without a grace window", n)
				}
			}
			status, _ := f.refresh(t, "cli", "cli-secret", successor)
			if tc.grace == 0 && status != 400 {
				t.Fatalf("without grace the racing reuse must revoke the family; successor got %d", status)
			}
			if tc.grace > 0 && status != 200 {
				t.Fatalf("with grace the single successor must stay valid; got %d", status)
			}
		})
	}
}

func TestRefreshGraceExpiresAndLifetimes(t *testing.T) {
	t.Run("grace window", func(t *testing.T) {
		f := newFlowServer(t, lifecycleClients, func(c *Config) { c.RefreshReuseGrace = Duration(time.Second) })
		tok := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
		_, a := f.refresh(t, "cli", "cli-secret", tok.RefreshToken)
		_, b := f.refresh(t, "cli", "cli-secret", tok.RefreshToken)
		if a["refresh_token"] == nil || a["refresh_token"] != b["refresh_token"] {
			t.Fatalf("a duplicate within the grace window must get the same successor: %v %v", a, b)
		}
		time.Sleep(2100 * time.Millisecond) // past the window (Unix seconds)
		if status, _ := f.refresh(t, "cli", "cli-secret", tok.RefreshToken); status != 400 {
			t.Fatal("a duplicate after the grace window must be refused")
		}
		if status, _ := f.refresh(t, "cli", "cli-secret", a["refresh_token"].(string)); status != 400 {
			t.Fatal("reuse after the grace window must revoke the family")
		}
	})
	t.Run("absolute and idle lifetimes", func(t *testing.T) {
		f := newFlowServer(t, lifecycleClients, func(c *Config) {
			c.RefreshTokenTTL = Duration(4 * time.Second) // stored in Unix seconds: ends up to 1 s early
			c.RefreshTokenIdleTTL = Duration(1500 * time.Millisecond)
		})
		idle := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
		active := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access").RefreshToken
		for i := 0; i < 4; i++ { // keep one family busy, let the other idle
			time.Sleep(600 * time.Millisecond)
			status, body := f.refresh(t, "cli", "cli-secret", active)
			if status != 200 {
				t.Fatalf("busy family ended early at step %d: %v", i, body)
			}
			active = body["refresh_token"].(string)
		}
		if status, _ := f.refresh(t, "cli", "cli-secret", idle.RefreshToken); status != 400 {
			t.Fatal("an idle family outlived its idle timeout")
		}
		time.Sleep(2 * time.Second)
		if status, _ := f.refresh(t, "cli", "cli-secret", active); status != 400 {
			t.Fatal("a family outlived its absolute lifetime")
		}
	})
}

func TestPasswordGrant(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	grant := func(id, secret, user, pw string) (int, map[string]any) {
		return f.tokenCall(t, PathToken, id, secret, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"read"}})
	}
	if status, body := grant("cli", "cli-secret", "alice", alicePassword); status != 200 || body["refresh_token"] != nil {
		t.Fatalf("good credentials: %d %v", status, body)
	}
	for _, tc := range []struct{ name, id, secret, user, pw, code string }{
		{"wrong password", "cli", "cli-secret", "alice", "nope", "invalid_grant"},
		{"unknown user", "cli", "cli-secret", "mallory", "nope", "invalid_grant"},
		{"client without the grant", "rs", "rs-secret", "alice", alicePassword, "unauthorized_client"},
		{"browser client without the grant", "web", "web-secret", "alice", alicePassword, "unauthorized_client"},
	} {
		if status, body := grant(tc.id, tc.secret, tc.user, tc.pw); status != 400 || body["error"] != tc.code {
			t.Errorf("%s: %d %v", tc.name, status, body)
		}
	}
	for i := 0; i < f.cfg.Limits.SignInFailuresPerUserAddress; i++ {
		grant("cli", "cli-secret", "alice", "guess")
	}
	if status, body := grant("cli", "cli-secret", "alice", alicePassword); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("the token endpoint is a password oracle after %d failures: %d %v", f.cfg.Limits.SignInFailuresPerUserAddress, status, body)
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	tok := f.passwordToken(t, "cli", "cli-secret", "openid", "read", "offline_access")
	introspect := func(id, secret, token string) map[string]any {
		status, body := f.tokenCall(t, PathIntrospect, id, secret, url.Values{"token": {token}})
		if status != 200 {
			t.Fatalf("introspect: %d %v", status, body)
		}
		return body
	}
	tests := []struct {
		name, id, secret, token string
		active                  bool
		tokenType               string
	}{
		{"own access token", "cli", "cli-secret", tok.AccessToken, true, "Bearer"},
		{"own refresh token", "cli", "cli-secret", tok.RefreshToken, true, "refresh_token"},
		{"another client's access token", "other", "other-secret", tok.AccessToken, false, ""},
		{"another client's refresh token", "other", "other-secret", tok.RefreshToken, false, ""},
		{"resource server sees any token", "rs", "rs-secret", tok.AccessToken, true, "Bearer"},
		{"garbage", "cli", "cli-secret", "not-a-token", false, ""},
		{"forged JWT", "cli", "cli-secret", jwttest.Tamper(t, tok.AccessToken), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := introspect(tc.id, tc.secret, tc.token)
			if got["active"] != tc.active || (tc.active && got["token_type"] != tc.tokenType) {
				t.Fatalf("introspection %v", got)
			}
			if tc.active && (got["username"] != "alice" || got["client_id"] != "cli" || !strings.Contains(got["scope"].(string), "read")) {
				t.Fatalf("introspection %v", got)
			}
			if !tc.active && len(got) != 1 {
				t.Fatalf("an inactive answer leaks details: %v", got)
			}
		})
	}
	if status, _ := f.tokenCall(t, PathIntrospect, "spa", "", url.Values{"token": {tok.AccessToken}}); status != 401 {
		t.Fatalf("public client at introspection: %d", status)
	}

	// Revocation: another client's token is refused; an unknown token is fine.
	if status, body := f.tokenCall(t, PathRevoke, "other", "other-secret", url.Values{"token": {tok.AccessToken}}); status != 400 || body["error"] != "unauthorized_client" {
		t.Fatalf("revoking another client's token: %d %v", status, body)
	}
	if status, _ := f.tokenCall(t, PathRevoke, "cli", "cli-secret", url.Values{"token": {"unknown"}}); status != 200 {
		t.Fatalf("revoking an unknown token: %d", status)
	}
	// Revoking the access token: deny-listed at once, inactive, refused at userinfo.
	if status, _ := f.tokenCall(t, PathRevoke, "cli", "cli-secret", url.Values{"token": {tok.AccessToken}}); status != 200 {
		t.Fatal("revoke access token")
	}
	if !f.Revoked(f.jtiUnverified(t, tok.AccessToken)) || introspect("cli", "cli-secret", tok.AccessToken)["active"] != false {
		t.Fatal("revoked access token still active")
	}
	// Revoking the refresh token ends the family.
	if status, _ := f.tokenCall(t, PathRevoke, "cli", "cli-secret", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}); status != 200 {
		t.Fatal("revoke refresh token")
	}
	if status, _ := f.refresh(t, "cli", "cli-secret", tok.RefreshToken); status != 400 {
		t.Fatal("revoked refresh token still works")
	}
	if introspect("cli", "cli-secret", tok.RefreshToken)["active"] != false {
		t.Fatal("revoked refresh token still active")
	}
}

// TestFamilyKeepsBoundedLiveTokens: rotating far faster than access tokens expire supersedes
// (deny-lists) the oldest access tokens instead of growing the family without bound.
func TestFamilyKeepsBoundedLiveTokens(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	tok := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
	ats := []string{tok.AccessToken}
	rt := tok.RefreshToken
	for i := 0; i < state.MaxLiveTokens+3; i++ {
		status, body := f.refresh(t, "cli", "cli-secret", rt)
		if status != 200 {
			t.Fatalf("rotation %d: %v", i, body)
		}
		rt = body["refresh_token"].(string)
		ats = append(ats, body["access_token"].(string))
	}
	revoked := 0
	for _, at := range ats {
		if f.Revoked(f.jtiUnverified(t, at)) {
			revoked++
		}
	}
	if revoked != len(ats)-state.MaxLiveTokens || f.Revoked(f.jtiUnverified(t, ats[len(ats)-1])) {
		t.Fatalf("%d of %d access tokens revoked; want the oldest %d", revoked, len(ats), len(ats)-state.MaxLiveTokens)
	}
}

package issuer

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// TestAdminUserGrants: an operator lists a user's sessions and refresh families, revokes one
// family (its refresh token and access token die, the other family lives), ends one session and
// signs the user out everywhere; each change is one audit line with via=admin, and nothing a
// listing or a line holds is usable as a credential.
func TestAdminUserGrants(t *testing.T) {
	o := newObserved(t, lifecycleClients)
	ctx := context.Background()
	first := o.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
	second := o.passwordToken(t, "other", "other-secret", "read", "offline_access")
	b := newBrowser(t)
	form := o.loginPage(t, b)
	b.post(o.url+PathLogin, cloneWith(form, "username", "alice", "password", alicePassword))
	var sid string
	u, _ := url.Parse(o.url)
	for _, c := range b.client.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, sessionCookie) {
			sid = c.Value
		}
	}
	if sid == "" {
		t.Fatal("no session cookie after signing in")
	}

	sessions, families, err := o.UserSessions(ctx, "alice")
	if err != nil || len(sessions) != 1 || len(families) != 2 {
		t.Fatalf("UserSessions: %v sessions %+v families %+v", err, sessions, families)
	}
	if sessions[0].Handle != state.Key(sid) {
		t.Fatalf("the session's handle is not its store key")
	}
	for _, f := range families {
		for _, secret := range []string{first.RefreshToken, second.RefreshToken, first.AccessToken, sid} {
			if strings.Contains(f.Handle, secret) || f.Handle == secret {
				t.Fatal("a handle holds a credential")
			}
		}
	}
	if other, _, _ := o.UserSessions(ctx, "bob"); len(other) != 0 {
		t.Fatalf("bob has alice's sessions: %+v", other)
	}

	var cliFamily string
	for _, f := range families {
		if f.ClientID == "cli" {
			cliFamily = f.Handle
		}
	}
	if ok, err := o.RevokeUserFamily(ctx, "bob", cliFamily); ok || err != nil {
		t.Fatalf("revoked alice's family as bob: %v %v", ok, err)
	}
	if ok, err := o.RevokeUserFamily(ctx, "alice", cliFamily); !ok || err != nil {
		t.Fatalf("RevokeUserFamily: %v %v", ok, err)
	}
	if status, _ := o.refresh(t, "cli", "cli-secret", first.RefreshToken); status != 400 {
		t.Fatalf("the revoked family's refresh token: %d", status)
	}
	if !o.denied.Revoked(jtiUnverified(t, first.AccessToken)) {
		t.Fatal("the revoked family's access token is not on the deny-list")
	}
	if status, _ := o.refresh(t, "other", "other-secret", second.RefreshToken); status != 200 {
		t.Fatalf("the other family's refresh token: %d", status)
	}
	wantFields(t, o.onlyEvent(t, AuditAdminFamilyRevoked), map[string]any{"via": "admin", "sub": "alice", "client_id": "cli"}, "remote_ip")

	if ok, err := o.EndUserSession(ctx, "alice", state.Key(sid)); !ok || err != nil {
		t.Fatalf("EndUserSession: %v %v", ok, err)
	}
	if s, _ := o.state.Session(ctx, sid); s != nil {
		t.Fatal("the ended session is still live")
	}
	wantFields(t, o.onlyEvent(t, AuditAdminSessionEnded), map[string]any{"via": "admin", "sub": "alice"}, "remote_ip")

	if err := o.AdminSignOutEverywhere(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, families, _ := o.UserSessions(ctx, "alice"); len(families) != 0 {
		t.Fatalf("families left after signing out everywhere: %+v", families)
	}
	wantFields(t, o.onlyEvent(t, AuditAdminSignedOutEverywhere), map[string]any{"via": "admin", "sub": "alice"})
	for _, e := range o.audit.AllUntimed() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{first.RefreshToken, second.RefreshToken, first.AccessToken, sid, "cli-secret"} {
			if strings.Contains(line, secret) {
				t.Fatalf("audit line %q holds a credential", e.Message)
			}
		}
	}
}

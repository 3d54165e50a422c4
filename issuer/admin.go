package issuer

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The operator's view of the issuer's users, for a host's admin interface (the Caddy admin
// API, caddymodule/admin_api.go); its clients are registration_endpoint.go's RegisteredClients,
// CreateClient and DeleteClient. These methods check no credentials: whoever calls them is the
// operator. Each change is one audit line without a request (auditAdmin), with via=admin.

// Audit events of the operator's actions on users (the registration code audits its
// clients' creation and deletion, with via=admin):
//
//	admin_session_ended          sub handle            an operator ended one browser session of the user
//	admin_family_revoked         sub client_id handle  an operator revoked one refresh family (its access tokens denied)
//	admin_signed_out_everywhere  sub                   an operator ended every session and refresh family of the user
//	admin_passkey_removed        sub passkey           an operator removed one passkey of the user (passkey: its credential id)
//	admin_passkeys_removed       sub count             an operator removed every passkey of the user
//
// A handle is a store key (a SHA-256 hash), not a credential; no line holds a secret.
const (
	AuditAdminSessionEnded        = "admin_session_ended"
	AuditAdminFamilyRevoked       = "admin_family_revoked"
	AuditAdminSignedOutEverywhere = "admin_signed_out_everywhere"
	AuditAdminPasskeyRemoved      = "admin_passkey_removed"
	AuditAdminPasskeysRemoved     = "admin_passkeys_removed"
)

// viaAdminField marks an audit line as the operator's.
var viaAdminField = zap.String("via", viaAdmin)

// SessionInfo is a signed-in browser of a user, as the operator sees it. Handle is the
// session's store key, a SHA-256 hash of its id: it names the session for EndUserSession and
// is never usable as a session cookie.
type SessionInfo struct {
	Handle   string    `json:"handle"`
	Created  time.Time `json:"created"`
	AuthTime time.Time `json:"auth_time"` // when the user last entered their password
	Expires  time.Time `json:"expires"`
}

// FamilyInfo is a live refresh-token family of a user (one grant to one client and every
// rotation since), as the operator sees it. Handle is the family's store key, a SHA-256 hash
// of its id: it names the family for RevokeUserFamily and is never usable as a refresh token.
// Expires is when the family ends unless it is used again (its absolute or its idle end).
type FamilyInfo struct {
	Handle   string    `json:"handle"`
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

// UserSessions lists user's live browser sessions and refresh-token families. It scans every
// session and family the issuer keeps (O(all of them), see state.UserGrants): it is for an
// operator, not for a hot path.
func (s *Server) UserSessions(ctx context.Context, user string) ([]SessionInfo, []FamilyInfo, error) {
	sessions, families, err := s.state.UserGrants(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	outS := make([]SessionInfo, 0, len(sessions))
	for _, us := range sessions {
		outS = append(outS, SessionInfo{Handle: us.Key, Created: time.Unix(0, us.Session.Created).UTC(),
			AuthTime: time.Unix(us.Session.AuthTime, 0).UTC(), Expires: time.Unix(us.Session.Expires, 0).UTC()})
	}
	outF := make([]FamilyInfo, 0, len(families))
	for _, uf := range families {
		f := uf.Family
		scopes := f.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		outF = append(outF, FamilyInfo{Handle: uf.Key, ClientID: f.ClientID, Scopes: scopes,
			Created: time.Unix(0, f.Created).UTC(), Expires: f.End().UTC()})
	}
	return outS, outF, nil
}

// EndUserSession ends the browser session of user with handle (from UserSessions), so its
// cookie no longer signs the browser in. It reports whether user had such a live session; a
// handle of another user's session does nothing and reports false.
func (s *Server) EndUserSession(ctx context.Context, user, handle string) (bool, error) {
	ended, err := s.state.EndUserSession(ctx, user, handle)
	if ended && err == nil {
		s.auditAdmin(AuditAdminSessionEnded, viaAdminField, subField(user), zap.String("handle", handle))
	}
	return ended, err
}

// RevokeUserFamily revokes the refresh-token family of user with handle (from UserSessions):
// its refresh token no longer works, and every access token it issued goes on the deny-list,
// which every edge asks on every request. It reports whether user had such a live family; a
// handle of another user's family does nothing and reports false.
func (s *Server) RevokeUserFamily(ctx context.Context, user, handle string) (bool, error) {
	clientID, revoked, err := s.state.RevokeUserFamily(ctx, user, handle)
	if revoked && err == nil {
		s.auditAdmin(AuditAdminFamilyRevoked, viaAdminField, subField(user), optional("client_id", clientID),
			zap.String("handle", handle))
	}
	return revoked, err
}

// AdminSignOutEverywhere is SignOutEverywhere done by the operator: every browser session and
// every refresh-token family of user ends, audited as admin_signed_out_everywhere.
func (s *Server) AdminSignOutEverywhere(ctx context.Context, user string) error {
	if err := s.SignOutEverywhere(ctx, user); err != nil {
		return err
	}
	s.auditAdmin(AuditAdminSignedOutEverywhere, viaAdminField, subField(user))
	return nil
}

// PasskeyInfo is a registered passkey of a user, as the operator sees it. ID is its WebAuthn
// credential id (base64url), which is public (the browser shows it to any page of the RP); it
// names the passkey for RemoveUserPasskey. LastUsed is nil when it never signed in.
type PasskeyInfo struct {
	ID       string     `json:"id"`
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// UserPasskeys lists user's passkeys, oldest first. Signing a user out everywhere leaves
// their passkeys, which sign in again: an operator removes one that should not be there (a
// user who is not signed in cannot) with RemoveUserPasskey or RemoveUserPasskeys.
func (s *Server) UserPasskeys(ctx context.Context, user string) ([]PasskeyInfo, error) {
	_, keys, err := s.state.PasskeysOf(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]PasskeyInfo, 0, len(keys))
	for id, pk := range keys {
		p := PasskeyInfo{ID: id, Created: time.Unix(pk.Created, 0).UTC()}
		if pk.LastUsed != 0 {
			t := time.Unix(pk.LastUsed, 0).UTC()
			p.LastUsed = &t
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PasskeyInfo) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// RemoveUserPasskey removes user's passkey id (from UserPasskeys): it signs nobody in any
// more. It reports whether user had it; a passkey of another user is left alone and reports
// false.
func (s *Server) RemoveUserPasskey(ctx context.Context, user, id string) (bool, error) {
	removed, err := s.state.RemovePasskey(ctx, user, id)
	if removed && err == nil {
		s.auditAdmin(AuditAdminPasskeyRemoved, viaAdminField, subField(user), zap.String("passkey", id))
	}
	return removed, err
}

// RemoveUserPasskeys removes every passkey of user and returns how many there were; with
// `passkeys required`, the user's password works again.
func (s *Server) RemoveUserPasskeys(ctx context.Context, user string) (int, error) {
	n, err := s.state.RemovePasskeysOf(ctx, user)
	if err == nil {
		s.auditAdmin(AuditAdminPasskeysRemoved, viaAdminField, subField(user), zap.Int("count", n))
	}
	return n, err
}

package issuer

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// PathAccount is the account page: the apps a user has allowed, with a way to withdraw each
// consent, and "sign out everywhere".
const PathAccount = "/oauth2/account"

// serveAccount shows (GET) and acts on (POST, CSRF-checked) the signed-in user's consents.
// Withdrawing consent for a client revokes that client's refresh tokens for the user; signing
// out everywhere ends every session and every refresh token of the user.
func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) {
	ui.SetSecurityHeaders(w.Header())
	ctx := r.Context()
	sess, _, err := s.currentSession(ctx, r)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	if sess == nil {
		ui.Message(w, ui.MessageData{Title: "Not signed in", Message: "You are not signed in here.", Status: http.StatusUnauthorized})
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		f, ok := s.pageForm(w, r)
		if !ok {
			return
		}
		switch f["decision"] {
		case ui.DecisionRevoke:
			if err = s.WithdrawConsent(ctx, sess.User, f["client_id"]); err == nil {
				s.audit(r, AuditConsentWithdrawn, s.clientIDField(f["client_id"]), subField(sess.User))
			}
		case ui.DecisionLogoutEverywhere:
			if err = s.SignOutEverywhere(ctx, sess.User); err == nil {
				s.audit(r, AuditSignedOutEverywhere, subField(sess.User), zap.String("via", "account"))
				_ = s.endSession(w, r)
				ui.Message(w, ui.MessageData{Title: "Signed out everywhere",
					Message: "You are signed out in every browser, and no app can renew its access any more. " +
						"Access an app already holds ends within " + time.Duration(s.cfg.AccessTokenTTL).String() + "."})
				return
			}
		case ui.DecisionRemovePasskey: // passkey.go
			if err = s.removePasskey(r, sess.User, f["passkey"]); errors.Is(err, errNoSuchPasskey) {
				s.errorPage(w, r, errInvalidRequest("That passkey is not registered to you."))
				return
			}
		default:
			s.errorPage(w, r, errInvalidRequest("unknown decision"))
			return
		}
		if err != nil {
			s.errorPage(w, r, errServer(err))
			return
		}
		http.Redirect(w, r, s.base+PathAccount, http.StatusSeeOther)
		return
	default:
		s.methodNotAllowed(w, r)
		return
	}
	consents, err := s.state.Consents(ctx, sess.User)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	var apps []ui.AccountClient
	for id, scopes := range consents {
		name := id
		if c, _ := s.lookupClient(ctx, id); c != nil {
			name = c.displayName()
		}
		apps = append(apps, ui.AccountClient{ID: id, Name: name, Scopes: scopes})
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	d := ui.AccountData{Action: s.base + PathAccount, CSRF: s.csrfToken(w, r), Username: s.shownName(ctx, sess.User),
		IssuerHost: s.realm, Clients: apps}
	if d.Passkey = s.passkeyForm(PathPasskeyRegisterBegin, PathPasskeyRegisterFinish); d.Passkey != nil {
		if d.Passkeys, err = s.accountPasskeys(ctx, sess.User); err != nil {
			s.errorPage(w, r, errServer(err))
			return
		}
		// Adding a passkey needs a recent sign-in (passkey.go); the begin refuses it anyway.
		d.PasskeySignInAgain = !freshSignIn(sess, time.Now(), PasskeyFreshSignIn)
	}
	ui.Account(w, d)
}

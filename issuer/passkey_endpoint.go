package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// The passkey ceremonies (passkey.go). A begin endpoint answers the options JSON for
// navigator.credentials.create/get (a POST with the page's CSRF token, counted against the
// address); the page's script (ui/assets/passkey.js) runs the ceremony and posts the result to
// the finish endpoint as a form, which answers like the page it came from: registration goes
// back to the account page, sign-in on with the pending authorization request.
const (
	PathPasskeyRegisterBegin  = "/oauth2/passkey/register/begin"
	PathPasskeyRegisterFinish = "/oauth2/passkey/register/finish"
	PathPasskeyLoginBegin     = "/oauth2/passkey/login/begin"
	PathPasskeyLoginFinish    = "/oauth2/passkey/login/finish"
)

// setupPasskeys makes the relying party and adds the ceremony endpoints when passkeys are on,
// and sweeps the passkeys of removed users a first time (the upkeep sweeps them every minute
// after, maintain).
func (s *Server) setupPasskeys(ctx context.Context) error {
	if s.cfg.Passkeys != PasskeysOn && s.cfg.Passkeys != PasskeysRequired {
		return nil
	}
	rp, err := newPasskeyRP(s.cfg.Issuer)
	if err != nil {
		return err
	}
	s.rp = rp
	s.routes[s.base+PathPasskeyRegisterBegin] = http.HandlerFunc(s.servePasskeyRegisterBegin)
	s.routes[s.base+PathPasskeyRegisterFinish] = http.HandlerFunc(s.servePasskeyRegisterFinish)
	s.routes[s.base+PathPasskeyLoginBegin] = http.HandlerFunc(s.servePasskeyLoginBegin)
	s.routes[s.base+PathPasskeyLoginFinish] = http.HandlerFunc(s.servePasskeyLoginFinish)
	s.sweepPasskeys(ctx, time.Now())
	return nil
}

// errPasskeyFailed is the one answer to a passkey that does not verify, whatever the reason
// (the reason goes to the debug log).
var errPasskeyFailed = &Error{Code: "access_denied", Status: http.StatusUnauthorized,
	Description: "That passkey could not be verified. Try again, or sign in another way."}

// errPasskeyNotAdded is the one answer to a new passkey that does not verify.
var errPasskeyNotAdded = &Error{Code: "access_denied", Status: http.StatusUnauthorized,
	Description: "That passkey could not be added. Try again with your device's screen lock or security key."}

// servePasskeyRegisterBegin answers the creation options for the signed-in user.
func (s *Server) servePasskeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	if !s.passkeyBeginAllowed(w, r) {
		return
	}
	ctx := r.Context()
	sess, _, err := s.currentSession(ctx, r)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	} else if sess == nil {
		s.writeJSONError(w, r, &Error{Code: "login_required", Status: http.StatusUnauthorized, Description: "not signed in"})
		return
	} else if !freshSignIn(sess, time.Now(), PasskeyFreshSignIn) {
		s.writeJSONError(w, r, errPasskeyReauth)
		return
	}
	u, _, err := s.loadPasskeyUser(ctx, sess.User, true)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	if len(u.credentials) >= MaxPasskeysPerUser {
		s.writeJSONError(w, r, errInvalidRequest("You have as many passkeys as you may have. Remove one first."))
		return
	}
	creation, sd, err := s.rp.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.credentials).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation))
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	if !s.putCeremony(w, r, ceremonyRegister, sess.User, sd) {
		return
	}
	writeJSON(w, http.StatusOK, creation)
}

// servePasskeyRegisterFinish checks a new passkey of the signed-in user and records it.
func (s *Server) servePasskeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w)
	ctx := r.Context()
	f, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	sess, _, err := s.currentSession(ctx, r)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	} else if sess == nil {
		s.errorPage(w, r, &Error{Code: "login_required", Status: http.StatusUnauthorized, Description: "You are not signed in here."})
		return
	}
	c, sd, e := s.takeCeremony(w, r, ceremonyRegister)
	if e == nil && !freshSignIn(sess, time.Now(), PasskeyFreshSignIn+passkeyCeremonyTTL) {
		e = errPasskeyReauth // the begin checked it; the ceremony took longer than it may
	}
	if e != nil {
		s.errorPage(w, r, e)
		return
	}
	if c.User != sess.User { // signed in as someone else since the ceremony began
		s.errorPage(w, r, errPasskeyCeremony)
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(f["credential"]))
	if err != nil {
		s.passkeyRefused(w, r, "registration", err)
		return
	}
	u, _, err := s.loadPasskeyUser(ctx, sess.User, false)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	} else if u == nil {
		s.errorPage(w, r, errPasskeyCeremony)
		return
	}
	cred, err := s.rp.CreateCredential(u, sd, parsed)
	if err != nil {
		s.passkeyRefused(w, r, "registration", err)
		return
	}
	raw, err := json.Marshal(cred)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	err = s.state.AddPasskey(ctx, sess.User, credentialID(cred.ID), state.Passkey{Credential: raw, Created: time.Now().Unix()}, MaxPasskeysPerUser)
	switch {
	case errors.Is(err, state.ErrPasskeyExists):
		s.errorPage(w, r, errInvalidRequest("This passkey is registered already."))
		return
	case errors.Is(err, state.ErrPasskeyLimit):
		s.errorPage(w, r, errInvalidRequest("You have as many passkeys as you may have. Remove one first."))
		return
	case errors.Is(err, state.ErrPasskeyGone):
		s.errorPage(w, r, errPasskeyCeremony)
		return
	case err != nil:
		s.errorPage(w, r, errServer(err))
		return
	}
	s.audit(r, AuditPasskeyRegistered, subField(sess.User))
	http.Redirect(w, r, s.base+PathAccount, http.StatusSeeOther)
}

// servePasskeyLoginBegin answers the request options of a discoverable sign-in.
func (s *Server) servePasskeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	if !s.passkeyBeginAllowed(w, r) {
		return
	}
	assertion, sd, err := s.rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	if !s.putCeremony(w, r, ceremonyLogin, "", sd) {
		return
	}
	writeJSON(w, http.StatusOK, assertion)
}

// servePasskeyLoginFinish verifies a passkey sign-in for a pending request and then goes on
// exactly as a password sign-in does (postLogin).
func (s *Server) servePasskeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	setPageHeaders(w)
	ctx := r.Context()
	f, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	id := f["request"]
	p, c, ok := s.loadPending(w, r, id)
	if !ok {
		return
	}
	_, sd, e := s.takeCeremony(w, r, ceremonyLogin)
	if e != nil {
		s.errorPage(w, r, e)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(f["credential"]))
	if err != nil {
		s.passkeyRefused(w, r, "sign-in", err)
		return
	}
	var owner string // the user the credential is registered to
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		pk, err := s.state.Passkey(ctx, credentialID(rawID))
		if err != nil {
			return nil, errors.Join(errPasskeyStore, err)
		} else if pk == nil {
			return nil, errors.New("unknown credential")
		}
		if u, err := s.lookupUser(ctx, pk.User); err != nil {
			return nil, errors.Join(errPasskeyStore, err)
		} else if u == nil {
			// Refused, but not deleted here: this runs before the signature is checked, and
			// this node may only lag another's users file. The sweep (sweepPasskeys) deletes.
			return nil, errPasskeyUserGone
		}
		u, _, err := s.loadPasskeyUser(ctx, pk.User, false)
		if err != nil {
			return nil, errors.Join(errPasskeyStore, err)
		} else if u == nil {
			return nil, errors.New("unknown credential")
		}
		owner = pk.User
		return u, nil // ValidatePasskeyLogin compares userHandle with the user's handle
	}
	_, cred, err := s.rp.ValidatePasskeyLogin(handler, sd, parsed)
	if err != nil {
		if errors.Is(err, errPasskeyStore) {
			s.errorPage(w, r, errServer(err))
			return
		}
		s.passkeyRefused(w, r, "sign-in", err)
		return
	}
	count := parsed.Response.AuthenticatorData.Counter
	err = s.state.UsePasskey(ctx, credentialID(cred.ID), owner, func(stored json.RawMessage) (json.RawMessage, error) {
		var sc webauthn.Credential
		if err := json.Unmarshal(stored, &sc); err != nil {
			return nil, err
		}
		// WebAuthn §6.1.1: a counter that does not increase (where either is nonzero) means
		// two authenticators hold the key.
		if (count != 0 || sc.Authenticator.SignCount != 0) && count <= sc.Authenticator.SignCount {
			return nil, errClonedPasskey
		}
		sc.Authenticator.SignCount = count
		sc.Flags = cred.Flags
		return json.Marshal(sc)
	})
	switch {
	case errors.Is(err, errClonedPasskey):
		s.log.Warn("passkey sign-in refused: its sign counter did not increase, the authenticator may be cloned",
			zap.String("sub", owner), zap.String("remote_ip", s.clientIP(r)))
		s.audit(r, AuditPasskeyCloned, clientField(c), subField(owner))
		s.passkeyRefused(w, r, "sign-in", err)
		return
	case errors.Is(err, state.ErrPasskeyGone):
		s.passkeyRefused(w, r, "sign-in", err)
		return
	case err != nil:
		s.errorPage(w, r, errServer(err))
		return
	}
	if err := s.state.RememberAddress(ctx, owner, s.clientIP(r), knownAddressTTL); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	s.completeSignIn(w, r, id, p, c, owner, time.Now(), zap.String("via", "passkey"))
}

// passkeyRefused answers a ceremony that did not verify, with the reason in the debug log only.
func (s *Server) passkeyRefused(w http.ResponseWriter, r *http.Request, what string, err error) {
	if ce := s.log.Check(debugLevel, "passkey "+what+" refused"); ce != nil {
		ce.Write(zap.String("reason", passkeyReason(err)), zap.String("remote_ip", s.clientIP(r)))
	}
	if what == "registration" {
		s.errorPage(w, r, errPasskeyNotAdded)
		return
	}
	s.errorPage(w, r, errPasskeyFailed)
}

// passkeyReason is the loggable reason of a refused ceremony: go-webauthn's error type and
// details (they name what failed, never a key or a signature).
func passkeyReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" && !strings.Contains(pe.Details, "challenge") { // the challenge stays out of the log
			return pe.Type + ": " + pe.Details + " (" + pe.DevInfo + ")"
		}
		return pe.Type + ": " + pe.Details
	}
	return err.Error()
}

// errPasskeyStore marks a store failure while looking up a credential, so that it is answered
// as one (503/500), not as a passkey that did not verify.
var errPasskeyStore = errors.New("passkey lookup failed")

// errPasskeyUserGone refuses a passkey whose user no longer exists (its passkeys are deleted).
var errPasskeyUserGone = errors.New("the credential's user no longer exists")

// setPageHeaders sets the security headers of a page answer.
func setPageHeaders(w http.ResponseWriter) { ui.SetSecurityHeaders(w.Header()) }

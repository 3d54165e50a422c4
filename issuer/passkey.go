package issuer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// Passkeys (WebAuthn Level 3, through github.com/go-webauthn/webauthn). The relying party is
// the issuer: its ID is the issuer URL's host, its one origin the issuer's scheme://host[:port],
// so a ceremony a browser ran on any other origin (clientDataJSON.origin) or for any other RP ID
// (authenticatorData.rpIdHash) is refused. Every passkey is discoverable (residentKey required)
// and every ceremony requires user verification, so a passkey is a whole sign-in, not a second
// factor. What a ceremony needs between its begin and its finish lives in the store
// (state.Ceremony, taken once) and is bound to the browser by a cookie, so any node may finish
// what another began; credentials and their sign counters live in the store too
// (state.Passkey), and the counter is checked and advanced in one Update (passkey_endpoint.go).

// Values of Config.Passkeys.
const (
	PasskeysOff      = "off"
	PasskeysOn       = "on"
	PasskeysRequired = "required"
)

const (
	// MaxPasskeysPerUser bounds the passkeys one user may register.
	MaxPasskeysPerUser = 10
	// passkeyCeremonyTTL is how long a begun ceremony may be finished (and the browser's
	// timeout for it).
	passkeyCeremonyTTL = 5 * time.Minute
	// passkeyCeremoniesPerAddress bounds the ceremonies one address may begin in a throttle
	// window (15 minutes): each one is a record in the store until it expires.
	passkeyCeremoniesPerAddress = 100
	// limitPasskeyAddress names that bound in metrics and the audit log.
	limitPasskeyAddress = "passkey_address"
	// refusedPasskeyOnly is what signIn returns as refused for a right password of a user
	// who must sign in with a passkey (Config.Passkeys "required").
	refusedPasskeyOnly = "passkey_required"
	// PasskeyFreshSignIn is how recent the signed-in user's sign-in must be to add a passkey:
	// the session's AuthTime (when the user last entered the password, used a passkey, or was
	// signed in by an upstream provider) at most this long ago when the registration begins,
	// and at most this plus passkeyCeremonyTTL when it finishes. A stolen session cookie, or a
	// browser left signed in, can then not add a passkey — which would sign its holder in for
	// good, and with `passkeys required` turn the password off — without the user's password
	// (or passkey). The account page asks an older session to sign in again.
	PasskeyFreshSignIn = 5 * time.Minute
	// passkeySweepEvery is how often each node looks for passkeys of users that no longer
	// exist (sweepPasskeys, from the background upkeep).
	passkeySweepEvery = time.Minute
	// passkeyMissingFor is how long a user must have been missing, on consecutive sweeps of
	// one node, before the sweep deletes their passkeys: one sweep interval (a minute), less
	// 2 s for the timer's jitter — else two sweeps a tick apart would miss it by milliseconds
	// half the time, and the deletion would wait a minute more.
	passkeyMissingFor = passkeySweepEvery - 2*time.Second
)

// Audit events of passkeys (see audit.go for the others).
const (
	AuditPasskeyRegistered = "passkey_registered" // sub: a user registered a passkey
	AuditPasskeyRemoved    = "passkey_removed"    // sub: a user removed one on the account page
	// AuditPasskeyCloned: a sign-in whose sign counter did not increase was refused — the
	// passkey may have been copied to another authenticator.
	AuditPasskeyCloned = "passkey_clone_suspected"
	// AuditPasskeysDeleted (sub, count, reason user_gone, via sign_in or sweep): the passkeys
	// of a user who no longer exists were deleted, so a user of that name made later does not
	// inherit them.
	AuditPasskeysDeleted = "passkeys_deleted"
)

// CheckPasskeys checks the passkeys setting of an issuer: off, on or required, and on or
// required only for an issuer whose host is a domain name (WebAuthn refuses IP addresses as
// relying party IDs).
func CheckPasskeys(mode, issuerURL string) error {
	switch mode {
	case "", PasskeysOff:
		return nil
	case PasskeysOn, PasskeysRequired:
	default:
		return fmt.Errorf("passkeys must be off, on or required, not %q", mode)
	}
	u, err := ParseIssuerURL(issuerURL)
	if err != nil {
		return nil // reported for the issuer itself
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return fmt.Errorf("passkeys need an issuer whose host is a domain name, not the IP address %s: "+
			"WebAuthn refuses IP addresses as relying party IDs (for a local test, use http://localhost:%s)", host, portOr(u.Port(), "<port>"))
	}
	return nil
}

// portOr is p, or def when p is empty.
func portOr(p, def string) string {
	if p == "" {
		return def
	}
	return p
}

// passkeysOn reports whether passkeys are on (on or required).
func (s *Server) passkeysOn() bool { return s.rp != nil }

// newPasskeyRP is the WebAuthn relying party of an issuer at issuerURL (checked).
func newPasskeyRP(issuerURL string) (*webauthn.WebAuthn, error) {
	u, err := ParseIssuerURL(issuerURL)
	if err != nil {
		return nil, err
	}
	host := strings.ToLower(u.Hostname())
	origin := u.Scheme + "://" + strings.ToLower(u.Host)
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          host,
		RPDisplayName: host,
		RPOrigins:     []string{origin},
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyCeremonyTTL, TimeoutUVD: passkeyCeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyCeremonyTTL, TimeoutUVD: passkeyCeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: passkeys: %w", err)
	}
	return rp, nil
}

// passkeyUser is a user as go-webauthn sees them: the random handle, the name (shown by the
// authenticator, never used to decide anything) and the credentials.
type passkeyUser struct {
	name        string
	handle      []byte
	credentials []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u *passkeyUser) WebAuthnName() string                       { return u.name }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.name }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

var _ webauthn.User = (*passkeyUser)(nil)

// loadPasskeyUser reads user's passkey record and credentials; with create, a user without a
// record gets one (a new random handle), else such a user is nil.
func (s *Server) loadPasskeyUser(ctx context.Context, name string, create bool) (*passkeyUser, map[string]*state.Passkey, error) {
	if create {
		if _, err := s.state.PasskeyUser(ctx, name); err != nil {
			return nil, nil, err
		}
	}
	pu, keys, err := s.state.PasskeysOf(ctx, name)
	if pu == nil || err != nil {
		return nil, nil, err
	}
	handle, err := base64.RawURLEncoding.DecodeString(pu.Handle)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: passkey user handle", state.ErrCorrupt)
	}
	u := &passkeyUser{name: name, handle: handle}
	for _, pk := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(pk.Credential, &c); err != nil {
			return nil, nil, fmt.Errorf("%w: passkey credential: %w", state.ErrCorrupt, err)
		}
		u.credentials = append(u.credentials, c)
	}
	return u, keys, nil
}

// passwordOff reports whether user may not sign in with a password: passkeys are required
// (for everyone, or for this user) and the user has registered one.
func (s *Server) passwordOff(ctx context.Context, user string) (bool, error) {
	if !s.passkeysOn() || s.cfg.Passkeys != PasskeysRequired && !s.userRequiresPasskey(user) {
		return false, nil
	}
	return s.state.HasPasskey(ctx, user)
}

// credentialID is the text form (base64url) of a credential id, its store key.
func credentialID(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

// errClonedPasskey refuses a sign-in whose sign counter did not increase.
var errClonedPasskey = errors.New("the passkey's sign counter did not increase: it may have been cloned")

// passkeyForm is a page's passkey control, nil when passkeys are off.
func (s *Server) passkeyForm(begin, finish string) *ui.PasskeyForm {
	if !s.passkeysOn() {
		return nil
	}
	return &ui.PasskeyForm{Begin: s.base + begin, Finish: s.base + finish}
}

// errBadCredentialsPasskey is the sign-in page's one message, while any user must sign in
// with a passkey, for a wrong password, an unknown user and a right password of a user whose
// password is off (passkey_required): were the last told apart, the page would confirm a
// guessed password. The audit log keeps the reasons apart, for the operator.
const errBadCredentialsPasskey = "The username or password is incorrect. If this account has a passkey, sign in with it."

// badCredentialsMessage is the sign-in page's message for a refused password.
func (s *Server) badCredentialsMessage() string {
	if s.passkeysRequiredAnywhere() {
		return errBadCredentialsPasskey
	}
	return errBadCredentials
}

// passkeysRequiredAnywhere reports whether some user's password may be off: passkeys are
// required for everyone, or for at least one user.
func (s *Server) passkeysRequiredAnywhere() bool {
	if !s.passkeysOn() {
		return false
	}
	if s.cfg.Passkeys == PasskeysRequired {
		return true
	}
	for _, u := range s.cfg.Users {
		if u.PasskeysRequired {
			return true
		}
	}
	return false
}

// freshSignIn reports whether sess was signed in at most within ago of now.
func freshSignIn(sess *state.Session, now time.Time, within time.Duration) bool {
	return now.Sub(time.Unix(sess.AuthTime, 0)) <= within
}

// errPasskeyReauth is the register begin's answer (shown by the page's script) for a
// session signed in longer ago than PasskeyFreshSignIn.
var errPasskeyReauth = &Error{Code: "login_required", Status: http.StatusForbidden,
	Description: fmt.Sprintf("To add a passkey, sign in again: you signed in more than %d minutes ago.", int(PasskeyFreshSignIn/time.Minute))}

// accountPasskeys lists user's passkeys for the account page, oldest first.
func (s *Server) accountPasskeys(ctx context.Context, user string) ([]ui.AccountPasskey, error) {
	_, keys, err := s.state.PasskeysOf(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]ui.AccountPasskey, 0, len(keys))
	for id, pk := range keys {
		label := id
		if len(label) > 8 {
			label = label[:8] + "…"
		}
		a := ui.AccountPasskey{ID: id, Label: "Passkey " + label, Created: time.Unix(pk.Created, 0).UTC().Format("2 Jan 2006 15:04 UTC")}
		if pk.LastUsed != 0 {
			a.LastUsed = time.Unix(pk.LastUsed, 0).UTC().Format("2 Jan 2006 15:04 UTC")
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		return keys[out[i].ID].Created < keys[out[j].ID].Created ||
			keys[out[i].ID].Created == keys[out[j].ID].Created && out[i].ID < out[j].ID
	})
	return out, nil
}

// removePasskey removes the signed-in user's passkey id (account page).
func (s *Server) removePasskey(r *http.Request, user, id string) error {
	if !s.passkeysOn() || id == "" {
		return errNoSuchPasskey
	}
	had, err := s.state.RemovePasskey(r.Context(), user, id)
	if err != nil {
		return err
	}
	if !had {
		return errNoSuchPasskey
	}
	s.audit(r, AuditPasskeyRemoved, subField(user))
	return nil
}

var errNoSuchPasskey = errors.New("no such passkey")

// deleteGonePasskeys deletes every passkey of user, who no longer exists (lookupUser nil), and
// audits it: via is "sign_in" (r is the sign-in's request) or "sweep" (r is nil).
func (s *Server) deleteGonePasskeys(ctx context.Context, r *http.Request, user, via string) error {
	n, err := s.state.RemovePasskeysOf(ctx, user)
	if err != nil {
		return err
	}
	fields := []zap.Field{subField(user), zap.Int("count", n), zap.String("reason", "user_gone"), zap.String("via", via)}
	if r != nil {
		s.audit(r, AuditPasskeysDeleted, fields...)
	} else {
		s.auditAdmin(AuditPasskeysDeleted, fields...)
	}
	s.log.Info("deleted the passkeys of a user who no longer exists", zap.String("sub", user), zap.Int("count", n),
		zap.String("via", via))
	return nil
}

// passkeySweeper is what a node's sweeps of passkeys remember between them.
type passkeySweeper struct {
	mu sync.Mutex
	// missing are the users that were missing on the last sweep, with when this node first
	// found them missing on consecutive sweeps.
	missing map[string]time.Time
}

// sweepPasskeys deletes the passkeys of users that no longer exist: it scans the passkey users
// (state.PasskeyUserNames) and asks lookupUser about each. It runs at New and then every
// passkeySweepEvery on every node; it is store-wide and idempotent, so several nodes sweeping
// at once is fine. But nodes may disagree for a while about who exists — a node whose users
// file is older than another's does not know a user the other just added — so a user's
// passkeys are deleted only once the user has been missing on two consecutive sweeps of this
// node, at least passkeyMissingFor (about a minute) apart; a user found again, or whose lookup
// failed, starts over. That leaves a window: a user removed and a different user of the same
// name added within about two minutes inherits the first one's passkeys, unless one of them
// tries to sign in with such a passkey meanwhile (servePasskeyLoginFinish deletes them at
// once). now is the sweep's time (a parameter for the tests).
func (s *Server) sweepPasskeys(ctx context.Context, now time.Time) {
	if s.cfg.Passkeys != PasskeysOn && s.cfg.Passkeys != PasskeysRequired {
		return
	}
	sw := &s.passkeySweep
	sw.mu.Lock()
	defer sw.mu.Unlock()
	names, err := s.state.PasskeyUserNames(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("passkey sweep failed: cannot list the passkey users", zap.Error(err))
		}
		return // not a sweep: the next one compares with the last one that ran
	}
	next := make(map[string]time.Time)
	for _, name := range names {
		if strings.HasPrefix(name, UpstreamSubjectPrefix) {
			// An upstream user's account expires, or predates its namespace, while the
			// person still exists at the provider: their passkeys are refused then, not lost.
			continue
		}
		u, err := s.lookupUser(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("passkey sweep: cannot look a user up", zap.String("sub", name), zap.Error(err))
			}
			continue
		} else if u != nil {
			continue
		}
		first, seen := sw.missing[name]
		switch {
		case !seen:
			next[name] = now
		case now.Sub(first) < passkeyMissingFor:
			next[name] = first
		default:
			if err := s.deleteGonePasskeys(ctx, nil, name, "sweep"); err != nil {
				next[name] = first
				if ctx.Err() == nil {
					s.log.Warn("passkey sweep: cannot delete the passkeys of a removed user", zap.String("sub", name), zap.Error(err))
				}
			}
		}
	}
	sw.missing = next
}

// loginPasskeyForm is the sign-in page's passkey button, nil when passkeys are off.
func (s *Server) loginPasskeyForm() *ui.PasskeyForm {
	return s.passkeyForm(PathPasskeyLoginBegin, PathPasskeyLoginFinish)
}

// CheckUserPasskeys checks that users who must sign in with a passkey (User.PasskeysRequired)
// can register one: passkeys are on.
func CheckUserPasskeys(mode string, us []User) error {
	if mode == PasskeysOn || mode == PasskeysRequired {
		return nil
	}
	for _, u := range us {
		if u.PasskeysRequired {
			return fmt.Errorf("user %s: passkeys required needs `passkeys on` (or required) for the issuer", u.Name)
		}
	}
	return nil
}

// userRequiresPasskey reports whether the configuration makes user sign in with a passkey.
func (s *Server) userRequiresPasskey(user string) bool {
	for _, u := range s.cfg.Users {
		if u.Name == user {
			return u.PasskeysRequired
		}
	}
	return false
}

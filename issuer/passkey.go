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
)

// Audit events of passkeys (see audit.go for the others).
const (
	AuditPasskeyRegistered = "passkey_registered" // sub: a user registered a passkey
	AuditPasskeyRemoved    = "passkey_removed"    // sub: a user removed one on the account page
	// AuditPasskeyCloned: a sign-in whose sign counter did not increase was refused — the
	// passkey may have been copied to another authenticator.
	AuditPasskeyCloned = "passkey_clone_suspected"
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

// passwordRefusedForPasskey records a right password of a user who must use a passkey: a
// failed sign-in (it was counted as one), with its own reason.
func (s *Server) passwordRefusedForPasskey(r *http.Request, c *client) {
	s.countSignInFailure(methodPage, "")
	s.audit(r, AuditSignInFailed, clientField(c), zap.String("reason", refusedPasskeyOnly))
}

// errPasskeyOnly is the sign-in page's message for it: shown only after the password was
// verified, so it tells nothing to someone who does not know the password.
const errPasskeyOnly = "This account signs in with a passkey. Use “Sign in with a passkey” instead of the password."

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

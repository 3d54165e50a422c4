package state

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Buckets of passkeys (WebAuthn).
const (
	bucketPasskeys          store.Bucket = "passkey_credentials" // Key(credential id) → Passkey
	bucketPasskeyUsers      store.Bucket = "passkey_users"       // Key(user) → PasskeyUser
	bucketPasskeyCeremonies store.Bucket = "passkey_ceremonies"  // Key(ceremony id) → Ceremony
)

// Passkey is one registered WebAuthn credential. Credential is the go-webauthn credential
// record (public key, sign counter, flags), kept as its JSON so this package does not depend
// on the WebAuthn library.
type Passkey struct {
	User       string          `json:"user"`
	Credential json.RawMessage `json:"credential"`
	Created    int64           `json:"created"`             // Unix seconds
	LastUsed   int64           `json:"last_used,omitempty"` // Unix seconds; 0: never used to sign in
}

// PasskeyUser is what a user's passkeys share: the user handle (the WebAuthn user.id, random
// and stable, never the user name) and the ids of the user's credentials.
type PasskeyUser struct {
	Handle      string   `json:"handle"`      // base64url
	Credentials []string `json:"credentials"` // credential ids, base64url
}

// Ceremony is a WebAuthn registration or sign-in begun and not yet finished: go-webauthn's
// SessionData (the challenge) as JSON, for whom (registration) and which browser began it.
type Ceremony struct {
	Kind    string          `json:"kind"`           // "register" or "login"
	User    string          `json:"user,omitempty"` // registration: the signed-in user
	Browser string          `json:"browser"`        // Key of the browser's CSRF cookie
	Session json.RawMessage `json:"session"`
}

// Errors of the passkey operations.
var (
	// ErrPasskeyExists: a credential with this id is registered already (to anyone).
	ErrPasskeyExists = errors.New("state: passkey already registered")
	// ErrPasskeyLimit: the user has as many passkeys as they may have.
	ErrPasskeyLimit = errors.New("state: too many passkeys")
	// ErrPasskeyGone: the credential was removed.
	ErrPasskeyGone = errors.New("state: passkey not registered")
)

// PasskeyUser returns the passkey record of user, creating it (with a new random handle) when
// there is none: one Update, so two nodes racing for a new user agree on one handle.
func (s *State) PasskeyUser(ctx context.Context, user string) (*PasskeyUser, error) {
	var out *PasskeyUser
	err := update(ctx, s.st, bucketPasskeyUsers, Key(user), func(cur *PasskeyUser) (*PasskeyUser, time.Duration, error) {
		if cur != nil {
			out = cur
			return nil, 0, store.ErrKeep
		}
		out = &PasskeyUser{Handle: NewSecret(), Credentials: []string{}}
		return out, 0, nil
	})
	return out, err
}

// PasskeysOf returns user's passkeys by credential id (none when the user has none). It does not
// create the user's record.
func (s *State) PasskeysOf(ctx context.Context, user string) (*PasskeyUser, map[string]*Passkey, error) {
	pu, err := get[PasskeyUser](ctx, s.st, bucketPasskeyUsers, Key(user))
	if pu == nil || err != nil {
		return nil, map[string]*Passkey{}, err
	}
	keys := make(map[string]*Passkey, len(pu.Credentials))
	for _, id := range pu.Credentials {
		pk, err := s.Passkey(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		if pk != nil && pk.User == user {
			keys[id] = pk
		}
	}
	return pu, keys, nil
}

// HasPasskey reports whether user has at least one passkey.
func (s *State) HasPasskey(ctx context.Context, user string) (bool, error) {
	pu, err := get[PasskeyUser](ctx, s.st, bucketPasskeyUsers, Key(user))
	return pu != nil && len(pu.Credentials) > 0, err
}

// Passkey returns the credential with id (base64url), or nil.
func (s *State) Passkey(ctx context.Context, id string) (*Passkey, error) {
	return get[Passkey](ctx, s.st, bucketPasskeys, Key(id))
}

// AddPasskey registers credential id for user: the id goes on the user's record (at most max
// of them: ErrPasskeyLimit) in one Update, then the credential is created with Create, so an
// id registered already — to this user or anyone — is refused (ErrPasskeyExists) and the
// first registration stays as it was.
func (s *State) AddPasskey(ctx context.Context, user, id string, pk Passkey, max int) error {
	pk.User = user
	err := update(ctx, s.st, bucketPasskeyUsers, Key(user), func(cur *PasskeyUser) (*PasskeyUser, time.Duration, error) {
		if cur == nil {
			return nil, 0, ErrPasskeyGone // the handle the credential was made for is not on record
		}
		if slices.Contains(cur.Credentials, id) {
			return nil, 0, ErrPasskeyExists
		}
		if len(cur.Credentials) >= max {
			return nil, 0, ErrPasskeyLimit
		}
		next := *cur
		next.Credentials = append(slices.Clip(cur.Credentials), id)
		return &next, 0, nil
	})
	if err != nil {
		return err
	}
	err = create(ctx, s.st, bucketPasskeys, Key(id), pk, 0)
	if err == nil {
		return nil
	}
	// Someone else's credential (or a store failure): take the id off this user again.
	_ = s.dropPasskeyID(ctx, user, id)
	if errors.Is(err, store.ErrExists) {
		return ErrPasskeyExists
	}
	return err
}

// RemovePasskey removes user's credential id; it reports whether the user had it. A
// credential of another user is left alone.
func (s *State) RemovePasskey(ctx context.Context, user, id string) (bool, error) {
	pk, err := s.Passkey(ctx, id)
	if err != nil || pk == nil || pk.User != user {
		return false, err
	}
	if err := s.dropPasskeyID(ctx, user, id); err != nil {
		return false, err
	}
	return true, s.st.Delete(ctx, bucketPasskeys, Key(id))
}

// dropPasskeyID takes id off user's record.
func (s *State) dropPasskeyID(ctx context.Context, user, id string) error {
	return update(ctx, s.st, bucketPasskeyUsers, Key(user), func(cur *PasskeyUser) (*PasskeyUser, time.Duration, error) {
		if cur == nil || !slices.Contains(cur.Credentials, id) {
			return nil, 0, store.ErrKeep
		}
		next := *cur
		next.Credentials = slices.DeleteFunc(slices.Clone(cur.Credentials), func(c string) bool { return c == id })
		return &next, 0, nil
	})
}

// UsePasskey records a sign-in with credential id in one Update of its record: use gets the
// stored credential JSON and returns the new one, or an error to refuse the sign-in (a sign
// counter that did not increase). Of two nodes racing with one counter value, the second sees
// the first's counter, so at most one of them passes. ErrPasskeyGone when it was removed.
func (s *State) UsePasskey(ctx context.Context, id, user string, use func(cred json.RawMessage) (json.RawMessage, error)) error {
	return update(ctx, s.st, bucketPasskeys, Key(id), func(cur *Passkey) (*Passkey, time.Duration, error) {
		if cur == nil || cur.User != user {
			return nil, 0, ErrPasskeyGone
		}
		cred, err := use(cur.Credential)
		if err != nil {
			return nil, 0, err
		}
		next := *cur
		next.Credential, next.LastUsed = cred, time.Now().Unix()
		return &next, 0, nil
	})
}

// PutCeremony stores a ceremony under Key(id) for ttl; id is the random value of the browser's
// ceremony cookie.
func (s *State) PutCeremony(ctx context.Context, id string, c Ceremony, ttl time.Duration) error {
	return create(ctx, s.st, bucketPasskeyCeremonies, Key(id), c, ttl)
}

// TakeCeremony takes the ceremony of id in one atomic step, so it is finished at most once;
// nil when there is none (never begun, finished, or expired).
func (s *State) TakeCeremony(ctx context.Context, id string) (*Ceremony, error) {
	if id == "" {
		return nil, nil
	}
	return take[Ceremony](ctx, s.st, bucketPasskeyCeremonies, Key(id))
}

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
// and stable, never the user name) and the ids of the user's credentials. User names whose
// record it is, so that a sweep (PasskeyUserNames) can ask whether that user still exists;
// records made before it was kept have it empty, and are named by their credentials.
type PasskeyUser struct {
	User        string   `json:"user,omitempty"`
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
		out = &PasskeyUser{User: user, Handle: NewSecret(), Credentials: []string{}}
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

// RemovePasskeysOf removes every passkey of user and the user's record (so a user of that
// name made later gets a new handle), and returns how many credentials went. The record is
// taken first, in one step, so a registration racing with it fails (ErrPasskeyGone) rather
// than adding a credential to a record about to go; a credential of another user is left
// alone. Removing the passkeys of a user who has none is no error.
func (s *State) RemovePasskeysOf(ctx context.Context, user string) (int, error) {
	pu, err := take[PasskeyUser](ctx, s.st, bucketPasskeyUsers, Key(user))
	if pu == nil || err != nil {
		return 0, err
	}
	n := 0
	for _, id := range pu.Credentials {
		pk, err := s.Passkey(ctx, id)
		if err != nil {
			return n, err
		}
		if pk == nil || pk.User != user {
			continue
		}
		if err := s.st.Delete(ctx, bucketPasskeys, Key(id)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// PasskeyUserNames returns the users that have a passkey record, by name: the record's User,
// or for a record from before it was kept, the owner of its first credential (a record with
// neither, which holds no credential, is left out). It scans the whole passkey_users bucket:
// it is for a background sweep, not a hot path.
func (s *State) PasskeyUserNames(ctx context.Context) ([]string, error) {
	var names []string
	var unnamed []string // first credential ids of records without a name
	err := s.st.Scan(ctx, bucketPasskeyUsers, func(key string, raw []byte) error {
		pu, err := decode[PasskeyUser](bucketPasskeyUsers, raw)
		if err != nil {
			return nil // a corrupt record names nobody; the sweep goes on with the others
		}
		switch {
		case pu.User != "":
			if sameKey(Key(pu.User), key) {
				names = append(names, pu.User)
			}
		case len(pu.Credentials) > 0:
			unnamed = append(unnamed, key, pu.Credentials[0])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(unnamed); i += 2 {
		pk, err := s.Passkey(ctx, unnamed[i+1])
		if err != nil {
			return nil, err
		}
		if pk != nil && sameKey(Key(pk.User), unnamed[i]) {
			names = append(names, pk.User)
		}
	}
	return names, nil
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

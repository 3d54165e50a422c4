package state

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Refresh tokens rotate on every use (RFC 9700 §4.14.2). A refresh token is
// <family id><secret>: the id (NewID) names the family, the chain of rotations that started
// with one grant, and the secret is 16 random bytes and a 16-byte HMAC of them and the id
// under the family's own key, so that only the issuer can make a secret of the family. The
// store keeps one record per family, under Key(id), holding Key(secret) of the one live
// token: so a rotation, a reuse detection, a revocation and the record of the access tokens
// the family issued are each one Update of that one record, atomic on every backend and across
// every node. A secret the family never had (its HMAC fails) is simply invalid: knowing a
// family's id is not enough to revoke it.
const (
	bucketFamilies      store.Bucket = "refresh_families" // Key(family id) → Family
	bucketRevokedBefore store.Bucket = "revoked_before"   // Key(user[\x00client]) → Unix ns
)

// MaxLiveTokens bounds the access tokens one family keeps on record: the oldest of more are
// superseded, put on the deny-list, so the record stays small however fast a client rotates.
const MaxLiveTokens = 16

// Family is the record of a refresh-token family.
type Family struct {
	ClientID string   `json:"client_id"`
	User     string   `json:"user"`
	Scopes   []string `json:"scopes"`
	AuthTime int64    `json:"auth_time"`
	// Resources are the RFC 8707 resources the grant that started the family asked for; a
	// refresh may narrow them per request, never widen them. None (and every record written
	// before they were kept) means the client's audiences.
	Resources []string `json:"resources,omitempty"`
	// Created is when the family started, in Unix nanoseconds, compared with RevokeBefore marks.
	Created int64 `json:"created_ns"`
	// Expires is the family's absolute end (refresh_token_ttl), in Unix seconds.
	Expires int64 `json:"expires"`
	// IdleUntil ends the family unless it is used before (refresh_token_idle_ttl), in Unix
	// nanoseconds.
	IdleUntil int64 `json:"idle_until_ns"`
	// Revoked is set for good by a reuse, a revocation or a replayed code.
	Revoked bool `json:"revoked,omitempty"`
	// MAC is the family's key for the HMAC of its secrets.
	MAC []byte `json:"mac,omitempty"`
	// Current is Key(secret) of the live refresh token.
	Current string `json:"current,omitempty"`
	// Prev is the last rotation, for the reuse grace window.
	Prev *Rotation `json:"prev,omitempty"`
	// Tokens are the access tokens the family issued that have not expired, for revocation.
	Tokens []IssuedAT `json:"tokens"`
	// JKT binds the family to a DPoP key (RFC 9449 §5): its RFC 7638 thumbprint. A refresh
	// must then come with a proof of that key. Empty: not bound.
	JKT string `json:"jkt,omitempty"`
}

// Rotation remembers the last rotation of a family: the rotated token's key, when, and its
// successor sealed with a key derived from the rotated token itself, so only a holder of the
// old token can read it (for the reuse grace window) and the store never holds a usable token.
type Rotation struct {
	Key    string `json:"key"`
	At     int64  `json:"at"` // Unix nanoseconds
	Sealed []byte `json:"sealed"`
}

// IssuedAT identifies an access token for the deny-list.
type IssuedAT struct {
	JTI string `json:"jti"`
	Exp int64  `json:"exp"` // Unix seconds
}

// live reports whether the family can still be used at now.
func (f *Family) live(now time.Time) bool {
	return !f.Revoked && f.Current != "" && now.Unix() < f.Expires && now.UnixNano() < f.IdleUntil
}

// End is when the family ends unless it is used again: its absolute end or its idle end,
// whichever comes first.
func (f *Family) End() time.Time {
	end := time.Unix(f.Expires, 0)
	if idle := time.Unix(0, f.IdleUntil); idle.Before(end) {
		end = idle
	}
	return end
}

// ttl is how long the family's record is kept: until the family would end anyway, and at
// least as long as the access tokens it issued may be used, so that a late revocation still
// finds them to deny.
func (f *Family) ttl(now time.Time) time.Duration {
	end := f.End()
	for _, at := range f.Tokens {
		if t := time.Unix(at.Exp, 0).Add(DenyMargin); t.After(end) {
			end = t
		}
	}
	return end.Sub(now)
}

// Errors of the refresh operations.
var (
	// ErrInvalidToken: the token is malformed, unknown, expired or of a family that ended or
	// was revoked.
	ErrInvalidToken = errors.New("state: refresh token invalid, expired or revoked")
	// ErrOtherClient: the token belongs to another client.
	ErrOtherClient = errors.New("state: refresh token of another client")
	// ErrReused: the token was rotated already; its family is now revoked.
	ErrReused = errors.New("state: refresh token reused; family revoked")
	// ErrDPoPKey: the family is bound to a DPoP key and the refresh came without a proof of
	// it. Nothing changed; the token stays usable with the right key.
	ErrDPoPKey = errors.New("state: refresh token bound to another DPoP key")
)

// splitToken parses a refresh token into its family id and its secret.
func splitToken(token string) (id, secret string, ok bool) {
	if len(token) != idLen+secretLen || !isBase64URL(token) {
		return "", "", false
	}
	return token[:idLen], token[idLen:], true
}

// newFamilySecret makes a secret of family id under its key mac: 16 random bytes and the
// first 16 bytes of HMAC-SHA256(mac, id || random), base64url (43 characters).
func newFamilySecret(id string, mac []byte) string {
	var b [32]byte
	_, _ = rand.Read(b[:16])
	copy(b[16:], familyTag(id, mac, b[:16]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// familySecret reports whether secret is one the family with id and key mac made: a secret
// that was once its live token, or is now.
func familySecret(id, secret string, mac []byte) bool {
	var b [32]byte
	if len(mac) == 0 || len(secret) != secretLen {
		return false
	}
	if n, err := strict.Decode(b[:], []byte(secret)); err != nil || n != 32 {
		return false
	}
	return hmac.Equal(b[16:], familyTag(id, mac, b[:16]))
}

func familyTag(id string, mac, random []byte) []byte {
	h := hmac.New(sha256.New, mac)
	h.Write([]byte(id))
	h.Write(random)
	return h.Sum(nil)[:16]
}

// NewFamilyKey returns a new family id and its store key; a Redemption names the family by
// key before the family starts.
func NewFamilyKey() (id, key string) {
	id = NewID()
	return id, Key(id)
}

// StartFamily starts family id (from NewFamilyKey) with f and returns its first refresh
// token. f.Current and f.IdleUntil are set here. A family revoked before it started (its code
// was replayed meanwhile) cannot start: ErrInvalidToken.
func (s *State) StartFamily(ctx context.Context, id string, f Family, now time.Time) (string, error) {
	f.MAC = make([]byte, 32)
	_, _ = rand.Read(f.MAC)
	secret := newFamilySecret(id, f.MAC)
	f.Current = Key(secret)
	f.IdleUntil = now.Add(s.opts.FamilyIdle).UnixNano()
	ttl := f.ttl(now)
	if ttl <= 0 {
		return "", errors.New("state: refresh family already expired")
	}
	switch err := create(ctx, s.st, bucketFamilies, Key(id), f, ttl); {
	case errors.Is(err, store.ErrExists):
		return "", ErrInvalidToken
	case err != nil:
		return "", err
	}
	return id + secret, nil
}

// RotateRequest is one use of a refresh token.
type RotateRequest struct {
	Token    string // as presented
	ClientID string // the authenticated client
	// JTI and Exp are the access token the refresh will issue, recorded in the family in the
	// same step as the rotation.
	JTI string
	Exp time.Time
	Now time.Time
	// Scopes picks the scopes of the new tokens from those the family was granted; an error
	// from it aborts the refresh with that error, and the token stays usable.
	Scopes func(granted []string) ([]string, error)
	// Resources, when set, picks the audience of the new access token from the resources the
	// family was granted (Family.Resources); an error from it aborts the refresh like one
	// from Scopes.
	Resources func(granted []string) ([]string, error)
	// User, when set, checks that the family's user may still get tokens (a user removed from
	// the configuration may not); an error from it aborts the refresh with that error.
	User func(user string) error
	// JKT is the thumbprint of the DPoP proof's key the refresh came with, "" without one. A
	// family bound to a key refreshes only with it (ErrDPoPKey), checked in the same step as
	// the rotation; the binding is kept across rotations.
	JKT string
}

// Rotated is the outcome of a successful refresh.
type Rotated struct {
	Token  string   // the refresh token to hand out
	Family Family   // the family after the rotation
	Scopes []string // what Scopes picked
	// Audience is what Resources picked.
	Audience []string
}

// Rotate uses a refresh token, in one atomic step of its family's record: the live token is
// replaced by a new one and the access token RotateRequest names is recorded. A token of the
// family that is no longer live is reuse (RFC 9700 §4.14.2): within the grace window after
// its rotation it gets the same successor again, otherwise the family is revoked in that same
// step and every access token it issued goes on the deny-list (ErrReused; the Rotated returned
// with it names only the family's client and user). Racing uses of one token, from any node,
// therefore give one rotation; the others are retries or reuse.
func (s *State) Rotate(ctx context.Context, req RotateRequest) (*Rotated, error) {
	id, secret, ok := splitToken(req.Token)
	if !ok {
		return nil, ErrInvalidToken
	}
	key := Key(id)
	// The family's user, client and key never change: read them first, to check the secret
	// and the marks of consent withdrawal and "sign out everywhere" (records of their own).
	f, err := get[Family](ctx, s.st, bucketFamilies, key)
	switch {
	case err != nil:
		return nil, err
	case f == nil || !familySecret(id, secret, f.MAC):
		return nil, ErrInvalidToken
	case f.Revoked:
		// Deny what it issued again: the revocation may not have got that far.
		if err := s.denyAll(ctx, f.Tokens); err != nil {
			return nil, err
		}
		return nil, ErrInvalidToken
	}
	before, err := s.revokedBefore(ctx, f.User, f.ClientID)
	if err != nil {
		return nil, err
	}
	var out Rotated
	var deny []IssuedAT
	var reused bool
	presented := Key(secret)
	err = update(ctx, s.st, bucketFamilies, key, func(f *Family) (*Family, time.Duration, error) {
		out, deny, reused = Rotated{}, nil, false
		switch {
		case f == nil || !f.live(req.Now) || f.Created < before:
			return nil, 0, ErrInvalidToken
		case f.ClientID != req.ClientID:
			return nil, 0, ErrOtherClient
		case f.JKT != "" && !sameKey(f.JKT, req.JKT):
			// Before reuse detection: a thief without the key can neither refresh nor
			// revoke the family by replaying an old token.
			return nil, 0, ErrDPoPKey
		}
		switch {
		case sameKey(presented, f.Current):
			successor := id + newFamilySecret(id, f.MAC)
			f.Prev = &Rotation{Key: presented, At: req.Now.UnixNano(), Sealed: seal(purposeSuccessor, req.Token, successor)}
			f.Current = Key(successor[idLen:])
			out.Token = successor
		case s.withinGrace(f, presented, req.Now):
			// The successor must still be the live token: once it was used in turn, a
			// duplicate of its predecessor is reuse, however soon it comes.
			successor, err := unseal(purposeSuccessor, req.Token, f.Prev.Sealed)
			if err != nil || len(successor) != idLen+secretLen || !sameKey(Key(successor[idLen:]), f.Current) {
				return s.reuse(f, &deny, &reused, req.Now)
			}
			out.Token = successor
		default:
			return s.reuse(f, &deny, &reused, req.Now)
		}
		if req.User != nil {
			if err := req.User(f.User); err != nil {
				return nil, 0, err
			}
		}
		scopes, err := req.Scopes(f.Scopes)
		if err != nil {
			return nil, 0, err
		}
		out.Scopes = scopes
		if req.Resources != nil {
			if out.Audience, err = req.Resources(f.Resources); err != nil {
				return nil, 0, err
			}
		}
		f.Tokens, deny = record(f.Tokens, IssuedAT{JTI: req.JTI, Exp: req.Exp.Unix()}, req.Now)
		f.IdleUntil = req.Now.Add(s.opts.FamilyIdle).UnixNano()
		out.Family = *f
		return f, f.ttl(req.Now), nil
	})
	if err != nil {
		if reused {
			// The revocation failed, or was made but not confirmed (a replica did not
			// acknowledge it): deny what the family issued anyway, so the thief's access tokens
			// stop wherever the denial reaches.
			_ = s.denyAll(ctx, deny)
		}
		return nil, err
	}
	if reused {
		if err := s.denyAll(ctx, deny); err != nil {
			return nil, err
		}
		// Who the revoked family was, for the audit log; no token.
		return &Rotated{Family: Family{ClientID: f.ClientID, User: f.User}}, ErrReused
	}
	// Superseded tokens leave the record only once they are denied. Should a denial fail, the
	// rotation stands (its successor must reach the client), and the tokens stay on record: the
	// next rotation, or the family's revocation, denies them.
	if len(deny) > 0 && s.denyAll(ctx, deny) == nil {
		_ = s.forget(ctx, key, deny)
	}
	return &out, nil
}

// withinGrace reports whether presented is the token rotated last, within the grace window.
func (s *State) withinGrace(f *Family, presented string, now time.Time) bool {
	return s.opts.ReuseGrace > 0 && f.Prev != nil && sameKey(presented, f.Prev.Key) &&
		now.Sub(time.Unix(0, f.Prev.At)) <= s.opts.ReuseGrace
}

// reuse revokes f inside Rotate's update: every access token it issued is to be denied.
func (s *State) reuse(f *Family, deny *[]IssuedAT, reused *bool, now time.Time) (*Family, time.Duration, error) {
	f.Revoked = true
	*deny, *reused = f.Tokens, true
	return f, max(f.ttl(now), time.Second), nil
}

// record adds at to the live tokens of a family and drops those expired by now; of more than
// MaxLiveTokens, the oldest are superseded: returned for the deny-list, and kept on record
// until forget drops them after their denial.
func record(tokens []IssuedAT, at IssuedAT, now time.Time) (kept, superseded []IssuedAT) {
	// Kept while a verifier's leeway may still accept it (DenyMargin), so a revocation denies it.
	t := now.Add(-DenyMargin).Unix()
	kept = make([]IssuedAT, 0, len(tokens)+1)
	for _, old := range tokens {
		if old.Exp > t {
			kept = append(kept, old)
		}
	}
	kept = append(kept, at)
	if n := len(kept) - MaxLiveTokens; n > 0 {
		superseded = slices.Clone(kept[:n])
	}
	return kept, superseded
}

// forget drops denied tokens from a family's record.
func (s *State) forget(ctx context.Context, key string, denied []IssuedAT) error {
	return update(ctx, s.st, bucketFamilies, key, func(f *Family) (*Family, time.Duration, error) {
		if f == nil {
			return nil, 0, store.ErrKeep
		}
		kept := slices.DeleteFunc(slices.Clone(f.Tokens), func(at IssuedAT) bool {
			return slices.ContainsFunc(denied, func(d IssuedAT) bool { return d.JTI == at.JTI })
		})
		if len(kept) == len(f.Tokens) {
			return nil, 0, store.ErrKeep
		}
		f.Tokens = kept
		return f, max(f.ttl(time.Now()), time.Second), nil
	})
}

// RevokeFamily revokes a family by its key (from a Redemption) and puts every access token it
// issued on the deny-list. A family that has not started yet is revoked too: its tombstone
// makes StartFamily fail, so a family revoked by a replayed code never lives.
func (s *State) RevokeFamily(ctx context.Context, key string) error {
	var deny []IssuedAT
	err := update(ctx, s.st, bucketFamilies, key, func(f *Family) (*Family, time.Duration, error) {
		deny = nil
		if f == nil {
			return &Family{Revoked: true}, s.opts.Tombstone, nil
		}
		deny = f.Tokens // also when revoked already: denying again is harmless
		if f.Revoked {
			return nil, 0, store.ErrKeep
		}
		f.Revoked = true
		return f, max(f.ttl(time.Now()), time.Second), nil
	})
	if err != nil {
		_ = s.denyAll(ctx, deny) // as in Rotate: the revocation may stand unconfirmed
		return err
	}
	return s.denyAll(ctx, deny)
}

// FamilyOf returns the family of a refresh token and whether the token is its live one, or
// nil when the token is malformed or its family unknown.
func (s *State) FamilyOf(ctx context.Context, token string) (f *Family, live bool, err error) {
	id, secret, ok := splitToken(token)
	if !ok {
		return nil, false, nil
	}
	if f, err = get[Family](ctx, s.st, bucketFamilies, Key(id)); f == nil || err != nil {
		return nil, false, err
	}
	if !familySecret(id, secret, f.MAC) {
		return nil, false, nil
	}
	now := time.Now()
	live = f.live(now) && sameKey(Key(secret), f.Current)
	if live {
		before, err := s.revokedBefore(ctx, f.User, f.ClientID)
		if err != nil {
			return nil, false, err
		}
		live = f.Created >= before
	}
	return f, live, nil
}

// RevokeToken revokes the family of a refresh token presented by clientID (RFC 7009): any
// token of the family, live or rotated, revokes all of it, and the family's user is returned.
// It returns ErrOtherClient for another client's token and "", nil, doing nothing, for a token
// it does not know (a secret the family never made among them).
func (s *State) RevokeToken(ctx context.Context, token, clientID string) (user string, err error) {
	id, secret, ok := splitToken(token)
	if !ok {
		return "", nil
	}
	key := Key(id)
	f, err := get[Family](ctx, s.st, bucketFamilies, key)
	if f == nil || err != nil {
		return "", err
	}
	if !familySecret(id, secret, f.MAC) {
		return "", nil
	}
	if f.ClientID != clientID {
		return "", ErrOtherClient
	}
	return f.User, s.RevokeFamily(ctx, key)
}

// RevokeBefore revokes every refresh family of user (and with clientID "" every browser
// session too) that started before t: consent withdrawal and "sign out everywhere".
func (s *State) RevokeBefore(ctx context.Context, user, clientID string, t time.Time) error {
	key := user
	if clientID != "" {
		key += "\x00" + clientID
	}
	mark := t.UnixNano()
	return update(ctx, s.st, bucketRevokedBefore, Key(key), func(cur *int64) (*int64, time.Duration, error) {
		if cur != nil && *cur >= mark {
			return nil, 0, store.ErrKeep // a later mark stays (nodes' clocks differ a little)
		}
		return &mark, s.opts.RevokedBefore, nil
	})
}

// revokedBefore returns the time (Unix nanoseconds) before which families of user and client
// are revoked, zero when never; with clientID "" only the user's own mark counts.
func (s *State) revokedBefore(ctx context.Context, user, clientID string) (int64, error) {
	keys := []string{user}
	if clientID != "" {
		keys = append(keys, user+"\x00"+clientID)
	}
	var latest int64
	for _, k := range keys {
		t, err := get[int64](ctx, s.st, bucketRevokedBefore, Key(k))
		if err != nil {
			return 0, err
		}
		if t != nil {
			latest = max(latest, *t)
		}
	}
	return latest, nil
}

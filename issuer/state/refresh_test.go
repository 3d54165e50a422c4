package state

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// failingDenials is a real store whose deny-list writes fail while fail is set: a store
// outage at the worst moment, right after a revocation committed.
type failingDenials struct {
	store.Store
	fail atomic.Bool
}

func (f *failingDenials) Put(ctx context.Context, b store.Bucket, key string, v []byte, ttl time.Duration) error {
	if b == bucketRevokedAccessTokens && f.fail.Load() {
		return store.ErrUnavailable
	}
	return f.Store.Put(ctx, b, key, v, ttl)
}

func newTestState(t *testing.T) (*State, *failingDenials, *DenyList) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs := &failingDenials{Store: st}
	s := New(fs, Options{FamilyIdle: time.Hour, Tombstone: time.Hour, RevokedBefore: time.Hour})
	d := NewDenyList()
	if err := s.Watch(t.Context(), d, nil, nil); err != nil {
		t.Fatal(err)
	}
	return s, fs, d
}

// startTestFamily starts a family whose first access token is jti, and returns its token.
func startTestFamily(t *testing.T, s *State, jti string) (id, token string) {
	t.Helper()
	id, _ = NewFamilyKey()
	now := time.Now()
	token, err := s.StartFamily(t.Context(), id, Family{ClientID: "c", User: "u", Scopes: []string{"read"},
		Created: now.UnixNano(), Expires: now.Add(time.Hour).Unix(),
		Tokens: []IssuedAT{{JTI: jti, Exp: now.Add(10 * time.Minute).Unix()}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	return id, token
}

func rotate(s *State, ctx context.Context, token string) (*Rotated, error) {
	now := time.Now()
	return s.Rotate(ctx, RotateRequest{Token: token, ClientID: "c", JTI: NewID(), Exp: now.Add(10 * time.Minute), Now: now,
		Scopes: func(g []string) ([]string, error) { return g, nil }})
}

// TestMadeUpSecretRevokesNothing: a family's id with a secret it never made is just an invalid
// token, at the token endpoint and at revocation; only a secret the family really had is reuse.
func TestMadeUpSecretRevokesNothing(t *testing.T) {
	s, _, _ := newTestState(t)
	ctx := t.Context()
	id, token := startTestFamily(t, s, NewID())
	forged := id + NewSecret()
	if _, err := rotate(s, ctx, forged); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Rotate with a made-up secret: %v, want ErrInvalidToken", err)
	}
	if _, err := s.RevokeToken(ctx, forged, "c"); err != nil {
		t.Fatal(err)
	}
	rot, err := rotate(s, ctx, token)
	if err != nil {
		t.Fatalf("the family after a forged token: %v", err)
	}
	if _, err := rotate(s, ctx, token); !errors.Is(err, ErrReused) {
		t.Fatalf("the real, rotated token again: %v, want ErrReused", err)
	}
	if _, err := rotate(s, ctx, rot.Token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the successor after the reuse: %v, want ErrInvalidToken", err)
	}
}

// TestRevocationSurvivesFailedDenials: the reuse commits the revocation, then the deny-list
// write fails (or the client hangs up): the next use of any token of the family denies its
// access tokens after all.
func TestRevocationSurvivesFailedDenials(t *testing.T) {
	s, fs, d := newTestState(t)
	jti := NewID()
	_, token := startTestFamily(t, s, jti)
	if _, err := rotate(s, t.Context(), token); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if _, err := rotate(s, t.Context(), token); err == nil {
		t.Fatal("the reuse reported success although its denials failed")
	}
	if recorded(t, s, jti) {
		t.Fatal("test broken: the denial went through")
	}
	if !d.Revoked(jti) {
		t.Fatal("a denial whose record failed was not honoured on the node that decided it")
	}
	fs.fail.Store(false)
	if _, err := rotate(s, t.Context(), token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token of the revoked family: %v", err)
	}
	if !recorded(t, s, jti) {
		t.Fatal("the revoked family's access token was never denied")
	}
	// A request context that has ended does not stop a denial.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	late := NewID()
	if err := s.Deny(ctx, late, time.Now().Add(time.Minute)); err != nil || !d.Revoked(late) {
		t.Fatalf("Deny with an ended request context: %v, denied %v", err, d.Revoked(late))
	}
}

// TestSupersededTokensStayUntilDenied: a rotation that supersedes the oldest access token keeps
// it on record if its denial fails, and a later rotation denies it.
func TestSupersededTokensStayUntilDenied(t *testing.T) {
	s, fs, d := newTestState(t)
	first := NewID()
	_, token := startTestFamily(t, s, first)
	for range MaxLiveTokens - 1 {
		rot, err := rotate(s, t.Context(), token)
		if err != nil {
			t.Fatal(err)
		}
		token = rot.Token
	}
	fs.fail.Store(true)
	rot, err := rotate(s, t.Context(), token) // supersedes first; its denial fails
	fs.fail.Store(false)
	if err != nil {
		t.Fatalf("a rotation whose supersession could not be denied: %v; the rotation must stand", err)
	}
	if recorded(t, s, first) {
		t.Fatal("test broken: the denial went through")
	}
	if err := s.RevokeFamily(t.Context(), Key(rot.Token[:idLen])); err != nil {
		t.Fatal(err)
	}
	if !recorded(t, s, first) || !d.Revoked(first) {
		t.Fatal("a superseded access token whose denial failed escaped the family's revocation")
	}
}

// TestReplayRevokesFamilyEvenIfDenialFails: a replayed code revokes the family its first
// redemption named, also when the access token's denial cannot be written.
func TestReplayRevokesFamilyEvenIfDenialFails(t *testing.T) {
	s, fs, _ := newTestState(t)
	ctx := t.Context()
	id, key := NewFamilyKey()
	red := Redemption{ClientID: "c", JTI: NewID(), ExpiresAt: time.Now().Add(time.Minute).Unix(), Family: key}
	if err := s.Redeem(ctx, AuthorizationCode, "the-code", red, time.Hour); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if err := s.Redeem(ctx, AuthorizationCode, "the-code", red, time.Hour); err == nil || errors.Is(err, ErrRedeemed) {
		t.Fatalf("replay with the deny-list down: %v, want the store's error", err)
	}
	fs.fail.Store(false)
	now := time.Now()
	_, err := s.StartFamily(ctx, id, Family{ClientID: "c", User: "u", Created: now.UnixNano(), Expires: now.Add(time.Hour).Unix()}, now)
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the first redemption's family started after the replay: %v", err)
	}
}

// recorded says whether the deny-list record of jti is in the store: what every node reads at
// its next resync and after a restart.
func recorded(t *testing.T, s *State, jti string) bool {
	t.Helper()
	_, err := s.st.Get(t.Context(), bucketRevokedAccessTokens, jti)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

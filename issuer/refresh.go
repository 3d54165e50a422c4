package issuer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Refresh tokens are opaque 256-bit strings stored only as hashes. Every token belongs to a
// family: the chain of rotations that started with one grant. A family is revoked as a whole
// when a rotated token is used again (RFC 9700 §4.14.2), when the user withdraws consent for
// the client, or when the user signs out everywhere.
const (
	bucketRefreshTokens  store.Bucket = "refresh_tokens"         // hash(token) → refreshRecord
	bucketRotatedRefresh store.Bucket = "rotated_refresh_tokens" // hash(token) → rotation
	bucketFamilies       store.Bucket = "refresh_families"       // family id → family
	bucketRevokedBefore  store.Bucket = "revoked_before"         // user[/client] → Unix time
)

// refreshRecord is one live refresh token.
type refreshRecord struct {
	Family   string `json:"family"`
	ClientID string `json:"client_id"`
}

// family is what a chain of refresh tokens stands for.
type family struct {
	ClientID string     `json:"client_id"`
	User     string     `json:"user"`
	Scopes   []string   `json:"scopes"`
	AuthTime int64      `json:"auth_time"`
	Created  int64      `json:"created_ns"` // Unix nanoseconds, compared with revocations
	Expires  int64      `json:"expires"`
	Revoked  bool       `json:"revoked,omitempty"`
	Tokens   []issuedAT `json:"tokens"` // access tokens the family issued, for revocation
}

// issuedAT identifies an access token for the deny-list.
type issuedAT struct {
	JTI string `json:"jti"`
	Exp int64  `json:"exp"`
}

// rotation remembers a rotated token: when, and its successor sealed with a key derived from
// the rotated token itself, so only a holder of the old token can read it (for the reuse
// grace window) and the store never holds a usable refresh token.
type rotation struct {
	Family   string `json:"family"`
	ClientID string `json:"client_id"`
	At       int64  `json:"at"`
	Sealed   []byte `json:"sealed"`
}

// wantsRefreshToken reports whether a grant issues a refresh token: the client must have the
// refresh_token grant and offline_access must have been granted.
func wantsRefreshToken(c *client, scopes []string) bool {
	return c.grants[GrantRefreshToken] && contains(scopes, "offline_access")
}

// newFamilyID returns a fresh family id, chosen before anything is issued so a redemption
// marker can name it.
func newFamilyID() string { return randomToken() }

// issueRefreshToken starts family familyID with the access token at and returns the first
// refresh token of the family.
func (s *Server) issueRefreshToken(ctx context.Context, c *client, familyID, user string, scopes []string, authTime int64, at issuedAT) (string, error) {
	now := time.Now()
	f := &family{ClientID: c.ID, User: user, Scopes: scopes, AuthTime: authTime, Created: now.UnixNano(),
		Expires: now.Add(s.cfg.RefreshTokenTTL).Unix(), Tokens: []issuedAT{at}}
	if err := s.putFamily(ctx, familyID, f); err != nil {
		return "", err
	}
	token := randomSecret()
	return token, s.putRefreshToken(ctx, token, familyID, f)
}

func (s *Server) putFamily(ctx context.Context, id string, f *family) error {
	ttl := time.Until(time.Unix(f.Expires, 0))
	if ttl <= 0 {
		return errors.New("refresh family already expired")
	}
	raw, _ := json.Marshal(f)
	return s.store.Put(ctx, bucketFamilies, id, raw, ttl)
}

// putRefreshToken stores a token of family f; it lives for the idle timeout, never past the
// family's absolute end.
func (s *Server) putRefreshToken(ctx context.Context, token, familyID string, f *family) error {
	ttl := min(s.cfg.RefreshTokenIdleTTL, time.Until(time.Unix(f.Expires, 0)))
	if ttl <= 0 {
		return errors.New("refresh family already expired")
	}
	raw, _ := json.Marshal(refreshRecord{Family: familyID, ClientID: f.ClientID})
	return s.store.Put(ctx, bucketRefreshTokens, hashKey(token), raw, ttl)
}

// loadFamily returns a live family, or nil when it is unknown, expired or revoked (also
// through consent withdrawal or sign-out everywhere).
func (s *Server) loadFamily(ctx context.Context, id string) (*family, error) {
	f, err := getJSON[family](ctx, s.store, bucketFamilies, id)
	if f == nil || err != nil {
		return nil, err
	}
	if f.Revoked || time.Now().Unix() >= f.Expires {
		return nil, nil
	}
	for _, key := range []string{f.User, f.User + "\x00" + f.ClientID} {
		before, err := s.revokedBefore(ctx, key)
		if err != nil {
			return nil, err
		}
		if f.Created < before {
			return nil, nil
		}
	}
	return f, nil
}

// revokeFamily marks a family revoked and puts every access token it issued on the deny-list.
func (s *Server) revokeFamily(ctx context.Context, id string) error {
	f, err := getJSON[family](ctx, s.store, bucketFamilies, id)
	if f == nil || err != nil {
		return err
	}
	f.Revoked = true
	if err := s.putFamily(ctx, id, f); err != nil && time.Now().Unix() < f.Expires {
		return err
	}
	for _, at := range f.Tokens {
		if err := s.revokeAccessToken(ctx, at.JTI, time.Unix(at.Exp, 0)); err != nil {
			return err
		}
	}
	return nil
}

// revokedBefore returns the time (Unix nanoseconds) before which sessions and refresh
// families of key (a user, or a user and client) are revoked; zero when never.
func (s *Server) revokedBefore(ctx context.Context, key string) (int64, error) {
	t, err := getJSON[int64](ctx, s.store, bucketRevokedBefore, hashKey(key))
	if t == nil || err != nil {
		return 0, err
	}
	return *t, nil
}

// revokeFamiliesOf revokes every refresh family created until now of user and client, or
// with clientID "" every family and every browser session of user.
func (s *Server) revokeFamiliesOf(ctx context.Context, user, clientID string) error {
	key := user
	if clientID != "" {
		key += "\x00" + clientID
	}
	raw, _ := json.Marshal(time.Now().UnixNano())
	return s.store.Put(ctx, bucketRevokedBefore, hashKey(key), raw, max(s.cfg.RefreshTokenTTL, s.cfg.SessionTTL))
}

// familyLocks serialize updates of one family's record within this process.
type familyLocks [64]sync.Mutex

// lockFamily locks the family's stripe and returns its unlock.
func (s *Server) lockFamily(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &s.familyLocks[h.Sum32()%uint32(len(s.familyLocks))]
	m.Lock()
	return m.Unlock
}

// seal encrypts successor with AES-256-GCM under a key derived from the rotated token.
func seal(rotated, successor string) []byte {
	aead := tokenAEAD(rotated)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(successor), nil)
}

// unseal reverses seal; it fails for anyone without the rotated token.
func unseal(rotated string, sealed []byte) (string, error) {
	aead := tokenAEAD(rotated)
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed token too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	return string(plain), err
}

func tokenAEAD(token string) cipher.AEAD {
	key := sha256.Sum256([]byte("tollgate refresh successor\x00" + token))
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	return aead
}

package state

import (
	"context"
	"crypto/rand"
	"errors"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// DPoP (RFC 9449): the proofs already used, and the secret of the stateless server nonces.
const (
	bucketDPoPProofs  store.Bucket = "dpop_proofs"  // Key(jkt\0jti) → "1"
	bucketDPoPSecrets store.Bucket = "dpop_secrets" // "nonce" → 32 random bytes
)

// UseDPoPProof records the one use of a DPoP proof, under its replay key (jkt and jti), until
// it stops being acceptable. It reports fresh for the first use; every later or racing use,
// from any node sharing the store, is not fresh. It implements dpop.ReplayCache.
func (s *State) UseDPoPProof(ctx context.Context, key string, until time.Time) (bool, error) {
	ttl, ok := until.Sub(time.Now()), true
	if ttl <= 0 {
		ttl, ok = time.Second, false
	}
	err := s.st.Create(ctx, bucketDPoPProofs, Key(key), []byte("1"), ttl)
	switch {
	case errors.Is(err, store.ErrExists):
		return false, nil
	case err != nil:
		return false, err
	}
	return ok, nil
}

// DPoPNonceSecret returns the secret of the server nonces, created on first use: of racing
// creations, on any nodes, one wins and every node reads it, so all make and accept the same
// nonces.
func (s *State) DPoPNonceSecret(ctx context.Context) ([]byte, error) {
	for range 3 {
		raw, err := s.st.Get(ctx, bucketDPoPSecrets, "nonce")
		if err == nil && len(raw) >= 32 {
			return raw, nil
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		switch err := s.st.Create(ctx, bucketDPoPSecrets, "nonce", secret, 0); {
		case err == nil:
			return secret, nil
		case !errors.Is(err, store.ErrExists):
			return nil, err
		}
	}
	return nil, errors.New("state: cannot read the DPoP nonce secret")
}

package issuer

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// bucketRevokedAccessTokens is the deny-list of revoked access tokens: jti → expiry, kept
// until the token would have expired anyway.
const bucketRevokedAccessTokens store.Bucket = "revoked_access_tokens"

// denyList is the in-memory copy of the deny-list that the edge consults on every request.
type denyList struct {
	mu  sync.RWMutex
	exp map[string]int64 // jti → Unix expiry
}

// load reads the stored deny-list, replacing the in-memory one.
func (d *denyList) load(ctx context.Context, st store.Store) error {
	m := map[string]int64{}
	err := st.Scan(ctx, bucketRevokedAccessTokens, func(jti string, v []byte) error {
		if exp, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			m[jti] = exp
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.exp = m
	d.mu.Unlock()
	return nil
}

func (d *denyList) add(jti string, exp int64) {
	now := time.Now().Unix()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exp == nil {
		d.exp = map[string]int64{}
	}
	d.exp[jti] = exp
	if len(d.exp)%1024 == 0 { // prune now and then, so the map tracks only live tokens
		for k, e := range d.exp {
			if e <= now {
				delete(d.exp, k)
			}
		}
	}
}

// revokeAccessToken puts a token on the deny-list until it expires. It is recorded in the
// store first, so a restart (or another node) honours it too.
func (s *Server) revokeAccessToken(ctx context.Context, jti string, exp time.Time) error {
	ttl := time.Until(exp) + time.Second
	if ttl <= time.Second || jti == "" {
		return nil // already expired: nothing to deny
	}
	if err := s.store.Put(ctx, bucketRevokedAccessTokens, jti, []byte(strconv.FormatInt(exp.Unix(), 10)), ttl); err != nil {
		return err
	}
	s.denied.add(jti, exp.Unix())
	return nil
}

// Revoked reports whether the access token with this jti has been revoked. It reads memory
// only, so the edge can ask on every request.
func (s *Server) Revoked(jti string) bool {
	s.denied.mu.RLock()
	exp, ok := s.denied.exp[jti]
	s.denied.mu.RUnlock()
	return ok && exp > time.Now().Unix()
}

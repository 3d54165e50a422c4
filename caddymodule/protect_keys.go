package caddymodule

import (
	"fmt"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/policy"
)

// boundKeys is the key source of one issuer of a protector. The policy gate is compiled in
// Provision, before it is known whether the issuer runs in this Caddy; App.Start binds it either
// to the in-process issuer (its keys directly, no HTTP round trip) or to a policy.RemoteKeys that
// fetches the issuer's JWKS. Until then, and until remote keys arrive, Keyfunc wraps
// policy.ErrKeysUnavailable, which the gate answers with 503.
type boundKeys struct {
	issuer  string // as configured
	jwksURI string // configured JWKS URL, for a remote issuer; "" means discovery
	b       atomic.Pointer[keyBinding]
}

// keyBinding is what boundKeys delegates to.
type keyBinding struct {
	keys        policy.KeySource
	versioner   policy.KeyVersioner      // nil when the keys are never withdrawn
	revocations policy.RevocationChecker // nil when the issuer keeps no deny-list here
}

// localIssuer is what the protector needs of an in-process issuer (*issuer.Server): its keys,
// and its deny-list, which every node sharing the issuer's store keeps current.
type localIssuer interface {
	Keys() *keys.Manager
	policy.RevocationChecker
}

// bind points the protector at the in-process issuer s and its deny-list.
func (b *boundKeys) bind(s localIssuer) {
	b.b.Store(&keyBinding{keys: s.Keys(), revocations: s})
}

// bindRemote points the protector at a remote issuer's keys.
func (b *boundKeys) bindRemote(rk *policy.RemoteKeys) {
	b.b.Store(&keyBinding{keys: rk, versioner: rk})
}

// Keyfunc implements policy.KeySource.
func (b *boundKeys) Keyfunc(t *jwt.Token) (any, error) {
	kb := b.b.Load()
	if kb == nil {
		return nil, fmt.Errorf("%w: issuer %s is not bound yet", policy.ErrKeysUnavailable, b.issuer)
	}
	return kb.keys.Keyfunc(t)
}

// KeyVersion implements policy.KeyVersioner.
func (b *boundKeys) KeyVersion() uint64 {
	if kb := b.b.Load(); kb != nil && kb.versioner != nil {
		return kb.versioner.KeyVersion()
	}
	return 0
}

// Revoked implements policy.RevocationChecker.
func (b *boundKeys) Revoked(jti string) bool {
	if kb := b.b.Load(); kb != nil && kb.revocations != nil {
		return kb.revocations.Revoked(jti)
	}
	return false
}

// Interface guards
var (
	_ localIssuer              = (*issuer.Server)(nil) // the issuer's deny-list reaches the edge
	_ policy.KeySource         = (*boundKeys)(nil)
	_ policy.KeyVersioner      = (*boundKeys)(nil)
	_ policy.RevocationChecker = (*boundKeys)(nil)
)

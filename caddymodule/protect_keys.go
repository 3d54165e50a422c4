package caddymodule

import (
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

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
	issuer       string         // as configured
	jwksURI      string         // configured JWKS URL, for a remote issuer; "" means discovery
	insecureHTTP bool           // insecure_http, for a remote issuer
	roots        *x509.CertPool // trust_pool, for a remote issuer; nil: the system roots
	log          *zap.Logger
	b            atomic.Pointer[keyBinding]
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
	Issuer() string
	Keys() *keys.Manager
	policy.RevocationChecker
}

// bind points the protector at the in-process issuer s and its deny-list. The registry finds
// s also when the configured URL differs from s's by a trailing slash; since iss is compared
// exactly, such a protector would refuse every token of s, which is logged as an error.
func (b *boundKeys) bind(s localIssuer) {
	if s.Issuer() != b.issuer && b.log != nil {
		b.log.Error("oauth_protect names the issuer of this Caddy with another spelling; iss is compared exactly, so its tokens are refused",
			zap.String("configured", b.issuer), zap.String("issuer", s.Issuer()))
	}
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

// RequiresJTI implements policy.JTIRequirer: the tokens of the in-process issuer, which keeps
// a deny-list, must carry a jti; a remote issuer's need not.
func (b *boundKeys) RequiresJTI() bool {
	kb := b.b.Load()
	return kb != nil && kb.revocations != nil
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
	_ policy.JTIRequirer       = (*boundKeys)(nil)
)

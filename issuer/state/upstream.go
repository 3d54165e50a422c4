package state

import (
	"context"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// bucketUpstreamLogins holds sign-ins sent to an upstream provider and not yet back:
// Key(state) → UpstreamLogin, where state is the OAuth state parameter sent to the provider.
const bucketUpstreamLogins store.Bucket = "upstream_logins"

// purposeUpstreamVerifier seals the PKCE verifier of an upstream sign-in under its state.
const purposeUpstreamVerifier = "tollgate upstream verifier"

// UpstreamLogin is a sign-in the browser was sent to an upstream provider for: what the
// callback needs to finish it, and what binds it to the request and the browser that began it.
type UpstreamLogin struct {
	// Upstream names the provider (its Caddyfile name); a callback of another provider is refused.
	Upstream string `json:"upstream"`
	// Nonce is the OpenID nonce sent to the provider; its ID token must carry it.
	Nonce string `json:"nonce"`
	// Verifier is the PKCE code verifier (RFC 7636), sealed under the state: the store never
	// holds it in the clear. PutUpstreamLogin seals it and TakeUpstreamLogin opens it.
	Verifier string `json:"-"`
	// SealedVerifier is Verifier as stored.
	SealedVerifier []byte `json:"verifier"`
	// Request is the pending authorization request (or device verification) the sign-in is for.
	Request string `json:"request"`
	// Browser is Key of the random value in the browser's upstream cookie: the callback must
	// come from the browser that began the sign-in.
	Browser string `json:"browser"`
	// Created is when the sign-in began, Unix seconds.
	Created int64 `json:"created"`
	// MaxAge is the max_age sent to the provider (the pending request's), nil when none was:
	// then the ID token must carry an auth_time no older than it (OpenID Connect Core §3.1.2.1).
	MaxAge *int64 `json:"max_age,omitempty"`
	// Reauth says prompt=login was sent to the provider: an auth_time in the ID token must not
	// be from before the sign-in began.
	Reauth bool `json:"reauth,omitempty"`
}

// PutUpstreamLogin stores the sign-in whose OAuth state is st for ttl. st is a fresh secret
// (NewSecret), so the store never holds a state that would work if read out of it.
func (s *State) PutUpstreamLogin(ctx context.Context, st string, l UpstreamLogin, ttl time.Duration) error {
	l.SealedVerifier = seal(purposeUpstreamVerifier, st, l.Verifier)
	l.Verifier = ""
	return create(ctx, s.st, bucketUpstreamLogins, Key(st), l, ttl)
}

// TakeUpstreamLogin returns the sign-in of state st and forgets it in one atomic step, so a
// state is used once however the callback is replayed or raced; nil when it is unknown,
// expired or used.
func (s *State) TakeUpstreamLogin(ctx context.Context, st string) (*UpstreamLogin, error) {
	if st == "" {
		return nil, nil
	}
	l, err := take[UpstreamLogin](ctx, s.st, bucketUpstreamLogins, Key(st))
	if l == nil || err != nil {
		return nil, err
	}
	if l.Verifier, err = unseal(purposeUpstreamVerifier, st, l.SealedVerifier); err != nil {
		return nil, nil // not sealed under this state: no sign-in of it
	}
	return l, nil
}

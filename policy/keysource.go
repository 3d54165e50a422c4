package policy

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// KeySource finds the key that verifies a token, usually by its "kid" header. It has the shape of
// jwt.Keyfunc as a method, so the local issuer and github.com/MicahParks/keyfunc/v3's Keyfunc both
// satisfy it. The Gate calls it only for tokens that already passed the cheap checks (type,
// algorithm, issuer, audience, lifetime): an expired token, or one of the wrong type or for another
// audience, never makes a remote key source look up (or refetch for) its "kid".
//
// A KeySource that has no keys yet (a remote JWKS still being fetched) returns an error wrapping
// ErrKeysUnavailable; the Gate then answers 503 instead of calling the token invalid.
type KeySource interface {
	Keyfunc(t *jwt.Token) (any, error)
}

// KeyVersioner is implemented by key sources whose keys can be withdrawn, such as a remote JWKS.
// KeyVersion changes whenever a key disappears from the set (or a kid is reused for another key);
// the Gate then re-verifies cached tokens before trusting them again, so a withdrawn key stops
// working at once instead of at the expiry of the tokens it signed.
type KeyVersioner interface {
	KeyVersion() uint64
}

// RevocationChecker reports access tokens revoked before their expiry, by "jti". It is consulted on
// every request, cache hit or not, so it must be fast, in-memory and non-blocking.
type RevocationChecker interface {
	Revoked(jti string) bool
}

// ErrKeysUnavailable is wrapped by KeySource errors when the issuer's keys are not known yet.
var ErrKeysUnavailable = errors.New("the issuer's keys are not available yet")

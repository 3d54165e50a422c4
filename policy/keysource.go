package policy

import "github.com/golang-jwt/jwt/v5"

// KeySource finds the key that verifies a token, usually by its "kid" header. It has the shape of
// jwt.Keyfunc as a method, so the local issuer and github.com/MicahParks/keyfunc/v3's Keyfunc both
// satisfy it. The Gate calls it only for tokens that already passed the cheap checks (type,
// algorithm, issuer, audience, lifetime): an expired token, or one of the wrong type or for another
// audience, never makes a remote key source look up (or refetch for) its "kid".
type KeySource interface {
	Keyfunc(t *jwt.Token) (any, error)
}

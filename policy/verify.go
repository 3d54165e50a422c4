package policy

import (
	"errors"
	"net/http"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// Causes of token denials that golang-jwt does not name, kept in Denial.Err.
var (
	errNotAccessToken = errors.New(`JOSE header "typ" is not at+jwt`)
	errCritical       = errors.New(`JOSE header "crit" names extensions this edge does not understand`)
)

// verifier checks a JWT access token. Its parser and validator are built once; both are safe for
// concurrent use.
type verifier struct {
	parser    *jwt.Parser
	validator *jwt.Validator
	keys      KeySource
	keyfunc   jwt.Keyfunc // v.checkThenKey, bound once so that verify does not allocate a closure
}

// newVerifier builds the parser and validator for a validated Config.
func newVerifier(c Config, keys KeySource) *verifier {
	v := &verifier{
		// Claims are validated by checkThenKey, before the key lookup and the signature.
		parser: jwt.NewParser(
			jwt.WithValidMethods(c.Algorithms),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
		validator: jwt.NewValidator(
			jwt.WithIssuer(c.Issuer),
			jwt.WithAudience(c.Audience...),
			jwt.WithLeeway(c.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
		keys: keys,
	}
	v.keyfunc = v.checkThenKey
	return v
}

// verify parses and verifies raw. The order is: decoding, the "alg" allow-list (golang-jwt, before
// it calls the key function), then checkThenKey's cheap checks, then the key lookup and the
// signature. Claims are trusted only once the whole chain succeeded.
func (v *verifier) verify(raw string) (*accesstoken.Claims, *Denial) {
	claims := new(accesstoken.Claims)
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc); err != nil {
		return nil, invalidToken(err)
	}
	return claims, nil
}

// checkThenKey runs the header and claim checks before asking the KeySource: they cost nothing
// next to a signature check, and a token that fails them should not make a remote key source
// refetch its JWKS for an unknown "kid". The checks only ever reject, so running them on claims
// whose signature is not yet verified is safe.
func (v *verifier) checkThenKey(t *jwt.Token) (any, error) {
	// RFC 9068 §4: reject JWTs that are not access tokens, such as ID tokens (typ "JWT" or none).
	typ, _ := t.Header["typ"].(string)
	if !accesstoken.IsAccessTokenType(typ) {
		return nil, errNotAccessToken
	}
	// RFC 7515 §4.1.11: a recipient that does not understand a critical extension must reject.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	if err := v.validator.Validate(t.Claims); err != nil {
		return nil, err
	}
	return v.keys.Keyfunc(t)
}

// invalidToken maps a verification error to a 401 whose description tells the client only what
// it can act on (refresh an expired token, wait out clock skew); the detail stays in Err.
func invalidToken(err error) *Denial {
	desc := "invalid token"
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		desc = "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		desc = "token not yet valid"
	}
	return &Denial{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, Err: err}
}

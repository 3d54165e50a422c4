package policy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// Causes of token denials that golang-jwt does not name, kept in Denial.Err.
var (
	errNotAccessToken = errors.New(`JOSE header "typ" is not at+jwt`)
	errCritical       = errors.New(`JOSE header "crit" names extensions this edge does not understand`)
	errRevoked        = errors.New("token revoked")
	errIDToken        = errors.New("the token is an ID token, not an access token")
	// errNoKey wraps what a KeySource returned, other than ErrKeysUnavailable, for a token
	// that passed every other check: it has no key for the token.
	errNoKey = errors.New("no key verifies the token")
)

// newParser builds the JWT parser shared by every issuer: the "alg" allow-list, strict base64,
// and no claim validation (each issuer's validator runs in checkThenKey, before the key lookup).
func newParser(algs []string) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(),
	)
}

// verify finds whose token raw is and has that issuer vouch for it. A JWT is attributed by its
// unverified "iss" (read cheaply, and trusted only to pick the verifier: the verifier checks it
// again); a token that is not a JWT can only be the introspecting issuer's.
func (g *Gate) verify(raw string) (*Token, *Denial) {
	iss, isJWT := peekIssuer(raw)
	var is *issuer
	switch {
	case isJWT:
		if is = g.issuers[iss]; is == nil {
			return nil, invalidToken(fmt.Errorf("%w: %q is not a trusted issuer", jwt.ErrTokenInvalidIssuer, clip(iss)))
		}
	case g.opaque != nil:
		is = g.opaque
	default:
		return nil, invalidToken(fmt.Errorf("%w: not a JWT", jwt.ErrTokenMalformed))
	}
	if is.introspect != nil {
		return g.introspect(is, raw)
	}
	claims := new(tokenClaims)
	if _, err := g.parser.ParseWithClaims(raw, claims, is.keyfunc); err != nil {
		if errors.Is(err, ErrKeysUnavailable) {
			return nil, unavailable(err)
		}
		return nil, invalidToken(err)
	}
	return newToken(is, claims, time.Time{}), nil
}

// checkThenKey runs the header and claim checks before asking the KeySource: they cost nothing
// next to a signature check, and a token that fails them should not make a remote key source
// refetch its JWKS for an unknown "kid". The checks only ever reject, so running them on claims
// whose signature is not yet verified is safe.
func (is *issuer) checkThenKey(t *jwt.Token) (any, error) {
	// RFC 9068 §4: reject JWTs that are not access tokens, such as ID tokens (typ "JWT" or none),
	// unless the issuer is known to type its access tokens so (then ID tokens are told apart by
	// their claims, below).
	typ, typed := t.Header["typ"].(string)
	explicit := typed && accesstoken.IsAccessTokenType(typ)
	_, hasTyp := t.Header["typ"]
	if !explicit && !(is.acceptJWT && (!hasTyp || typed && isJWTType(typ))) {
		return nil, errNotAccessToken
	}
	// RFC 7515 §4.1.11: a recipient that does not understand a critical extension must reject.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	claims := t.Claims.(*tokenClaims)
	if claims.Issuer != is.name { // RFC 9068 §4: exactly
		return nil, jwt.ErrTokenInvalidIssuer
	}
	if err := is.validate(claims); err != nil {
		return nil, err
	}
	if !explicit {
		if err := is.notIDToken(claims); err != nil {
			return nil, err
		}
	}
	if claims.ID == "" && is.requiresJTI() {
		return nil, errNoJTI
	}
	key, err := is.keys.Keyfunc(t)
	if err != nil && !errors.Is(err, ErrKeysUnavailable) {
		return nil, fmt.Errorf("%w: %w", errNoKey, err)
	}
	return key, err
}

// errNoAudience marks a validation error of claims without "aud", which golang-jwt reports as
// a missing required claim, like a missing "exp".
var errNoAudience = errors.New(`the token has no "aud"`)

// validate checks the lifetime and audience of claims.
func (is *issuer) validate(claims *tokenClaims) error {
	err := is.validator.Validate(claims)
	if err != nil && len(claims.Audience) == 0 {
		return fmt.Errorf("%w: %w", errNoAudience, err)
	}
	return err
}

// isJWTType reports a JOSE "typ" of a plain JWT (RFC 7519 §5.1), case-insensitively.
func isJWTType(typ string) bool {
	return strings.EqualFold(typ, "JWT") || strings.EqualFold(typ, "application/jwt")
}

// notIDToken refuses a "typ: JWT" token that is an OpenID Connect ID token rather than an access
// token (see TrustedIssuer.AcceptJWTType).
func (is *issuer) notIDToken(c *tokenClaims) error {
	typClaim, hasTypClaim := c.all["typ"].(string) // Keycloak: "Bearer" or "ID"
	switch _, nonce := c.all["nonce"]; {
	case hasTypClaim && !strings.EqualFold(typClaim, "Bearer"):
		return fmt.Errorf("%w: its typ claim is %q", errIDToken, clip(typClaim))
	case nonce && !hasTypClaim:
		return fmt.Errorf("%w: it has a nonce", errIDToken)
	}
	for _, name := range []string{"at_hash", "c_hash"} {
		if _, ok := c.all[name]; ok {
			return fmt.Errorf("%w: it has %s", errIDToken, name)
		}
	}
	// An access token says whom it was issued to or what it grants: client_id (RFC 9068), azp,
	// scope or scp (Entra), roles (Entra app tokens). An ID token with one audience usually has
	// none of these, and its audience is then its client, maybe this very API's id.
	marked := false
	for _, name := range []string{"client_id", "azp", "scope", "scp", "roles"} {
		if v, ok := c.all[name]; ok && v != nil {
			marked = true
		}
	}
	if !marked {
		return fmt.Errorf("%w: it names no client and grants no scope (client_id, azp, scope, scp or roles)", errIDToken)
	}
	azp, _ := c.all["azp"].(string)
	for _, a := range c.Audience {
		if slices.Contains(is.audience, a) && a != azp && a != c.ClientID {
			return nil // accepted for an audience that is not its own client
		}
	}
	return fmt.Errorf("%w: its audience is its own client (azp or client_id)", errIDToken)
}

// peekIssuer reads the "iss" of a JWT-shaped token without verifying anything. isJWT is false
// when raw is not three dot-separated segments whose middle one is a base64url JSON object.
func peekIssuer(raw string) (iss string, isJWT bool) {
	head, rest, ok := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || head == "" || strings.Contains(sig, ".") {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return "", false
	}
	var p struct {
		Iss any `json:"iss"`
	}
	if json.Unmarshal(b, &p) != nil {
		return "", false
	}
	s, _ := p.Iss.(string)
	return s, true
}

// clip shortens an untrusted value for a log line.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// invalidToken maps a verification error to a 401 whose description tells the client only what
// it can act on (refresh an expired token, wait out clock skew); the detail stays in Err, and
// the check that failed in the Denial's Reason, for the operator.
//
// golang-jwt joins every failed claim check into one error, so a token can be both expired and
// for another audience: the first cause below wins, and the description agrees with it.
func invalidToken(err error) *Denial {
	desc, reason := "invalid token", ReasonMalformed
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		desc, reason = "token expired", ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		desc, reason = "token not yet valid", ReasonNotYetValid
	case errors.Is(err, errRevoked):
		desc, reason = "token revoked", ReasonRevoked
	case errors.Is(err, errInactive), errors.Is(err, errBadIntrospection):
		reason = ReasonIntrospection
	case errors.Is(err, errNotAccessToken), errors.Is(err, errIDToken):
		reason = ReasonTyp
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		reason = ReasonIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, errNoAudience):
		reason = ReasonAudience
	case errors.Is(err, errNoKey):
		reason = ReasonUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		reason = ReasonSignature
	}
	// Anything else is malformed: jwt.ErrTokenMalformed, an unknown "alg" or "crit" header
	// (jwt.ErrTokenUnverifiable, errCritical), a claim that is not a NumericDate, a missing
	// "exp" (jwt.ErrTokenRequiredClaimMissing) or "jti" (errNoJTI).
	return &Denial{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, Err: err, reason: reason}
}

// unavailable is the 503 of a request whose token cannot be judged yet: the issuer's keys or its
// introspection endpoint are out of reach.
func unavailable(err error) *Denial {
	return &Denial{Status: http.StatusServiceUnavailable, Description: "token verification temporarily unavailable",
		Err: err, reason: ReasonUnavailable}
}

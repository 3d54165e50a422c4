package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// TrustedIssuer is one authorization server whose tokens a Gate accepts.
type TrustedIssuer struct {
	// Issuer is the issuer identifier, the "iss" of its tokens, compared exactly (RFC 9068 §4,
	// RFC 8414 §3.3): "https://idp.example/" does not name "https://idp.example". Two trusted
	// issuers that differ only by a trailing slash are refused as a configuration mistake.
	Issuer string
	// Keys verifies the issuer's JWT access tokens. Required unless Introspection is set.
	Keys KeySource
	// Audience replaces Config.Audience for this issuer's tokens.
	Audience []string
	// Revocations, when set, is asked about the "jti" of each of this issuer's tokens on every
	// request, cache hit or not. A token of this issuer without "jti" is then refused, since it
	// could never be found on the deny-list — unless Revocations implements JTIRequirer and
	// says that it keeps no deny-list for now.
	Revocations RevocationChecker
	// AcceptJWTType also accepts JWT access tokens whose JOSE "typ" is "JWT" (or
	// "application/jwt", or absent), as Keycloak, Entra ID, Auth0 and Cognito issue them, not
	// only RFC 9068's "at+jwt". Such a token is still refused when it looks like an ID token
	// (OpenID Connect Core §2): it has a "nonce" (tolerated only beside Keycloak's "typ" claim
	// "Bearer": Keycloak before version 24 copies the nonce into access tokens), an "at_hash"
	// or "c_hash", a "typ" claim other than "Bearer", or it is accepted only for an audience
	// that is its own "azp" or "client_id", that is, addressed to the client rather than to an
	// API. Default: false, only at+jwt.
	AcceptJWTType bool
	// Introspection, when set, validates every token of this issuer with its RFC 7662
	// introspection endpoint instead of Keys: JWTs whose "iss" names it, and opaque tokens. At
	// most one issuer of a Gate may use introspection, since an opaque token does not say
	// whose it is and must not be shown to anyone else.
	Introspection *Introspection
}

// issuer is a compiled TrustedIssuer.
type issuer struct {
	name        string // as configured
	keys        KeySource
	versioner   KeyVersioner // keys, when it implements KeyVersioner
	revocations RevocationChecker
	audience    []string
	validator   *jwt.Validator
	keyfunc     jwt.Keyfunc // checkThenKey bound once, so verifying allocates no closure
	introspect  *introspector
	acceptJWT   bool // TrustedIssuer.AcceptJWTType
}

// JTIRequirer is implemented by a RevocationChecker that can say whether it keeps a deny-list
// right now, such as a key source bound to an issuer after the Gate is built: only an issuer
// with a deny-list needs its tokens to carry a "jti" (RFC 9068 §2.2 makes it required anyway).
// A TrustedIssuer.Revocations that does not implement it always requires "jti".
type JTIRequirer interface {
	RequiresJTI() bool
}

// errNoJTI is the cause of a denial for a token that cannot be checked against its issuer's
// deny-list.
var errNoJTI = errors.New(`the token has no "jti", so its issuer's deny-list cannot be checked`)

// requiresJTI reports whether the issuer's tokens must carry a "jti".
func (is *issuer) requiresJTI() bool {
	if is.revocations == nil {
		return false
	}
	if r, ok := is.revocations.(JTIRequirer); ok {
		return r.RequiresJTI()
	}
	return true
}

// compileIssuers checks every trusted issuer and indexes them by their exact identifier.
func compileIssuers(c Config, keys KeySource) (map[string]*issuer, *issuer, error) {
	list := slices.Clone(c.Issuers)
	if c.Issuer != "" {
		if keys == nil {
			return nil, nil, errors.New("policy: a key source is required")
		}
		list = append([]TrustedIssuer{{Issuer: c.Issuer, Keys: keys}}, list...)
	}
	byKey := make(map[string]*issuer, len(list))
	var opaque *issuer
	for i, ti := range list {
		where := fmt.Sprintf("policy: issuer %d (%s)", i+1, ti.Issuer)
		if ti.Issuer == "" {
			return nil, nil, fmt.Errorf("%s: empty issuer identifier", where)
		}
		if _, dup := byKey[ti.Issuer]; dup {
			return nil, nil, fmt.Errorf("%s: configured twice", where)
		}
		for name := range byKey {
			if strings.TrimSuffix(name, "/") == strings.TrimSuffix(ti.Issuer, "/") {
				return nil, nil, fmt.Errorf("%s: configured twice (as %s too); iss is compared exactly, so keep the one the issuer puts in its tokens", where, name)
			}
		}
		aud := slices.Clone(ti.Audience)
		if len(aud) == 0 {
			aud = c.Audience
		}
		if len(aud) == 0 {
			return nil, nil, fmt.Errorf("%s: audience is required: without it a token for any API of the issuer would pass", where)
		}
		if slices.Contains(aud, "") {
			return nil, nil, fmt.Errorf("%s: empty audience", where)
		}
		is := &issuer{name: ti.Issuer, keys: ti.Keys, revocations: ti.Revocations, audience: aud, acceptJWT: ti.AcceptJWTType}
		switch {
		case ti.Introspection != nil:
			if opaque != nil {
				return nil, nil, fmt.Errorf("%s: only one issuer may use introspection (%s does already)", where, opaque.name)
			}
			intro, err := newIntrospector(*ti.Introspection)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			is.introspect, opaque = intro, is
		case ti.Keys == nil:
			return nil, nil, fmt.Errorf("%s: a key source is required", where)
		}
		is.versioner, _ = ti.Keys.(KeyVersioner)
		opts := []jwt.ParserOption{jwt.WithAudience(aud...), jwt.WithLeeway(c.Leeway), jwt.WithIssuedAt()}
		if is.introspect == nil {
			// RFC 9068 §2.2: exp is required in a JWT access token; RFC 7662 makes it optional.
			opts = append(opts, jwt.WithExpirationRequired())
		}
		is.validator = jwt.NewValidator(opts...)
		is.keyfunc = is.checkThenKey
		byKey[ti.Issuer] = is
	}
	return byKey, opaque, nil
}

// revoked asks the issuer's deny-list and then the Gate's about jti.
func (is *issuer) revoked(jti string, global RevocationChecker) bool {
	if jti == "" {
		return false
	}
	return (is.revocations != nil && is.revocations.Revoked(jti)) || (global != nil && global.Revoked(jti))
}

// fresh reports whether a cached token may still be trusted as it is: not expired, and its
// issuer's keys not changed in a way that withdrew one.
func (t *Token) fresh(now int64) bool {
	if t.expires <= now {
		return false
	}
	if v := t.issuer.versioner; v != nil && v.KeyVersion() != t.keyVersion {
		return false
	}
	return true
}

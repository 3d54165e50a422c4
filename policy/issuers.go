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
	// Issuer is the issuer identifier, the "iss" of its tokens. A trailing slash on either side
	// is ignored: "https://idp.example" and "https://idp.example/" name the same issuer.
	Issuer string
	// Keys verifies the issuer's JWT access tokens. Required unless Introspection is set.
	Keys KeySource
	// Audience replaces Config.Audience for this issuer's tokens.
	Audience []string
	// Revocations, when set, is asked about the "jti" of each of this issuer's tokens on every
	// request, cache hit or not.
	Revocations RevocationChecker
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
}

// issuerKey is the lookup form of an issuer identifier: without a trailing slash.
func issuerKey(iss string) string { return strings.TrimSuffix(iss, "/") }

// compileIssuers checks every trusted issuer and indexes them by issuerKey.
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
		if issuerKey(ti.Issuer) == "" {
			return nil, nil, fmt.Errorf("%s: empty issuer identifier", where)
		}
		if _, dup := byKey[issuerKey(ti.Issuer)]; dup {
			return nil, nil, fmt.Errorf("%s: configured twice", where)
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
		is := &issuer{name: ti.Issuer, keys: ti.Keys, revocations: ti.Revocations, audience: aud}
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
		byKey[issuerKey(ti.Issuer)] = is
	}
	return byKey, opaque, nil
}

// hasAudience reports whether the token's "aud" names one of the issuer's audiences.
func (is *issuer) hasAudience(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(is.audience, a) {
			return true
		}
	}
	return false
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

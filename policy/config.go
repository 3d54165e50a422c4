package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultLeeway is the clock skew allowed on "exp", "nbf" and "iat" when Config.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// defaultAlgorithms is the "alg" allow-list used when Config.Algorithms is empty, and the set it
// may choose from: every asymmetric JWS algorithm of RFC 7518 and RFC 8037.
var defaultAlgorithms = []string{
	"ES256", "ES384", "ES512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"EdDSA",
}

// Rule adds scopes to the requests it matches. Rules are tried in order; the first whose method
// and path both match applies, and later rules are not consulted.
type Rule struct {
	// Methods are the HTTP methods the rule covers, compared case-insensitively. Empty, or a
	// list containing "*", means any method. GET also covers HEAD, which upstreams answer like GET.
	Methods []string
	// Path is a glob matched case-insensitively against the cleaned request path (see
	// Gate.RequiredScopes). A trailing "*" is a prefix match ("/v1/*" matches "/v1/a/b" but not
	// "/v1"); otherwise path.Match applies, where "*" stays inside one segment, and a trailing
	// slash on the request path is ignored. The glob must start with "/" or "*".
	Path string
	// Scopes are required, all of them, in addition to Config.Scopes.
	Scopes []string
}

// Config says which tokens a Gate accepts and what each request needs.
type Config struct {
	// Issuer is the exact "iss" every token must carry. Required.
	Issuer string
	// Audience lists the identifiers of the protected resource; the token's "aud" must contain at
	// least one of them (RFC 9068 §4). Required: a token minted for another API must not pass.
	Audience []string
	// Scopes are required by every request, in addition to the matching rule's.
	Scopes []string
	// Rules are tried in order; the first match (method and path) adds its scopes.
	Rules []Rule
	// Realm is the WWW-Authenticate realm. Default: Issuer.
	Realm string
	// Algorithms is the "alg" allow-list, a subset of the default: ES256 ES384 ES512 RS256 RS384
	// RS512 PS256 PS384 PS512 EdDSA. "none" and the HMAC algorithms are refused: an edge that
	// verifies with public keys must never accept a token "signed" with one of them.
	Algorithms []string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat". Default: DefaultLeeway.
	Leeway time.Duration
	// AllowQueryToken accepts the token in the access_token query parameter (RFC 6750 §2.3),
	// which leaks into logs and Referer headers. Default: false. The request body is never read.
	AllowQueryToken bool
}

// withDefaults validates c and returns a copy with defaults filled in and lists normalised.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" {
		return c, errors.New("policy: issuer is required")
	}
	if len(c.Audience) == 0 {
		return c, errors.New("policy: audience is required: without it a token for any API of the issuer would pass")
	}
	if slices.Contains(c.Audience, "") {
		return c, errors.New("policy: empty audience")
	}
	// The Gate keeps these; copies leave it unaffected by later changes to cfg.
	c.Audience = slices.Clone(c.Audience)
	c.Scopes = slices.Clone(c.Scopes)
	if c.Realm == "" {
		c.Realm = c.Issuer
	}
	if strings.ContainsFunc(c.Realm, isCTL) {
		return c, fmt.Errorf("policy: realm %q contains control characters", c.Realm)
	}
	if c.Leeway < 0 {
		return c, fmt.Errorf("policy: negative leeway %s", c.Leeway)
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	algs, err := allowedAlgorithms(c.Algorithms)
	if err != nil {
		return c, err
	}
	c.Algorithms = algs
	if err := checkScopes(c.Scopes); err != nil {
		return c, fmt.Errorf("policy: scopes: %w", err)
	}
	return c, nil
}

// allowedAlgorithms checks an "alg" allow-list against defaultAlgorithms and removes duplicates.
func allowedAlgorithms(in []string) ([]string, error) {
	if len(in) == 0 {
		return slices.Clone(defaultAlgorithms), nil
	}
	out := make([]string, 0, len(in))
	for _, a := range in {
		switch {
		case strings.EqualFold(a, "none"), strings.HasPrefix(strings.ToUpper(a), "HS"):
			return nil, fmt.Errorf("policy: algorithm %q is not allowed: the edge accepts only asymmetric signatures", a)
		case !slices.Contains(defaultAlgorithms, a):
			return nil, fmt.Errorf("policy: unsupported algorithm %q (want one of %s)", a, strings.Join(defaultAlgorithms, " "))
		case !slices.Contains(out, a):
			out = append(out, a)
		}
	}
	return out, nil
}

// checkScopes reports the first value that is not an RFC 6749 §3.3 scope-token
// (1*( %x21 / %x23-5B / %x5D-7E )). That syntax also keeps scopes safe inside a challenge.
func checkScopes(scopes []string) error {
	for _, s := range scopes {
		if s == "" {
			return errors.New("empty scope")
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= 0x20 || c == '"' || c == '\\' || c >= 0x7f {
				return fmt.Errorf("invalid scope %q", s)
			}
		}
	}
	return nil
}

// isCTL reports an RFC 9110 control character other than HTAB.
func isCTL(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

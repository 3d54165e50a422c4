package policy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultLeeway is the clock skew allowed on "exp", "nbf" and "iat" when Config.Leeway is zero.
const DefaultLeeway = 5 * time.Second

// MaxLeeway is the largest Config.Leeway: Tollgate's issuer keeps a revoked token on its
// deny-list this long past the token's expiry (issuer/state.DenyMargin), so a longer leeway
// would let a revoked token pass again.
const MaxLeeway = 5 * time.Minute

// DefaultCacheSize is the number of verified tokens a Gate remembers when Config.CacheSize is zero.
// An entry takes about 1–2 KiB (the token's claims, decoded once), so the default bounds the
// cache to roughly 10–20 MiB.
const DefaultCacheSize = 10_000

// defaultAlgorithms is the "alg" allow-list used when Config.Algorithms is empty, and the set it
// may choose from: every asymmetric JWS algorithm of RFC 7518 and RFC 8037.
var defaultAlgorithms = []string{
	"ES256", "ES384", "ES512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"EdDSA",
}

// Rule adds scopes and claim conditions to the requests it matches. Rules are tried in order; the
// first whose method and path both match applies, and later rules are not consulted.
type Rule struct {
	// Methods are the HTTP methods the rule covers, compared case-insensitively. Empty, or a
	// list containing "*", means any method. GET also covers HEAD, which upstreams answer like GET.
	Methods []string
	// Path is a glob matched case-insensitively against the request path as the upstream
	// receives and decodes it, segment by segment (see Gate.RequiredScopes). A trailing "*" is a
	// prefix match ("/v1/*" matches "/v1/a/b" but not "/v1"); otherwise path.Match applies,
	// where "*" stays inside one segment, and a trailing slash on the request path is ignored.
	// The glob must start with "/" or "*"; percent-encodings in it are decoded like the
	// request's ("%7E" is "~"), except "%2F", which matches an encoded slash inside a segment
	// (with Config.AllowEncodedSlashes).
	Path string
	// Scopes are required, all of them, in addition to Config.Scopes.
	Scopes []string
	// Claims are CEL conditions (see Config.Claims) that must all hold, in addition to
	// Config.Claims.
	Claims []string
}

// Config says which tokens a Gate accepts and what each request needs.
type Config struct {
	// Issuer is the "iss" of the tokens that New's keys argument verifies: the short form for a
	// Gate with one issuer. Issuers adds more; at least one of the two is required.
	Issuer string
	// Issuers are further trusted issuers, each with its own keys (or introspection endpoint).
	// A token is verified only by the issuer its "iss" names; keys are never tried blindly.
	Issuers []TrustedIssuer
	// Audience lists the identifiers of the protected resource; the token's "aud" must contain at
	// least one of them (RFC 9068 §4). Required, unless every issuer has its own: a token minted
	// for another API must not pass.
	Audience []string
	// Scopes are required by every request, in addition to the matching rule's.
	Scopes []string
	// Claims are conditions every request's token must satisfy, as CEL expressions of type bool
	// over `claims` (every top-level claim of the token, a map) and `request` (a map with
	// method, path, host and header; header maps a header name, case-insensitively, to its list
	// of values). Examples: `claims.groups.exists(g, g == "admin")`,
	// `claims.tenant == request.header["X-Tenant"][0]`. They are compiled once by New; an
	// expression that fails to evaluate (a missing claim, say) counts as false.
	Claims []string
	// Rules are tried in order; the first match (method and path) adds its scopes and claims.
	Rules []Rule
	// Realm is the WWW-Authenticate realm. Default: the first issuer.
	Realm string
	// Algorithms is the "alg" allow-list, a subset of the default: ES256 ES384 ES512 RS256 RS384
	// RS512 PS256 PS384 PS512 EdDSA. "none" and the HMAC algorithms are refused: an edge that
	// verifies with public keys must never accept a token "signed" with one of them.
	Algorithms []string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat", at most MaxLeeway. Default:
	// DefaultLeeway.
	Leeway time.Duration
	// AllowEncodedSlashes accepts request paths with an encoded slash (%2F) inside a segment,
	// for APIs that put one in an identifier ("/projects/group%2Fapp"). Rules then judge the
	// path both with %2F inside its segment and with %2F as a separator, and the request needs
	// what either reading needs. Default: false, such a request is refused with 400
	// invalid_request, since the upstream may read it either way. Backslashes, dot segments,
	// encoded control characters and double encodings are refused regardless.
	AllowEncodedSlashes bool
	// AllowQueryToken accepts the token in the access_token query parameter (RFC 6750 §2.3),
	// which leaks into logs and Referer headers. Default: false. The request body is never read.
	AllowQueryToken bool
	// Revocations, when set, is asked about the "jti" of every token, from any issuer, on every
	// request (cache hit or not). TrustedIssuer.Revocations adds a per-issuer deny-list.
	Revocations RevocationChecker
	// CacheSize bounds the verified-token cache in entries. Zero means DefaultCacheSize; a
	// negative value turns the cache off (every request costs a signature check).
	CacheSize int
	// Resource is this API's resource identifier in its RFC 9728 metadata. When it is an http(s)
	// URL, the metadata document's URL is derived from it (RFC 9728 §3.1: the well-known path is
	// inserted between host and path). Default: the first audience, with the document's URL built
	// from each request's scheme and host.
	Resource string
	// ResourceMetadataURL is the absolute URL of the RFC 9728 metadata document, announced in
	// every challenge's resource_metadata attribute; it overrides the URL derived from Resource.
	ResourceMetadataURL string
}

// withDefaults validates c and returns a copy with defaults filled in and lists normalised.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" && len(c.Issuers) == 0 {
		return c, errors.New("policy: issuer is required")
	}
	if slices.Contains(c.Audience, "") {
		return c, errors.New("policy: empty audience")
	}
	// The Gate keeps these; copies leave it unaffected by later changes to cfg.
	c.Audience = slices.Clone(c.Audience)
	c.Scopes = slices.Clone(c.Scopes)
	if c.Realm == "" {
		c.Realm = c.Issuer
		if c.Realm == "" {
			c.Realm = c.Issuers[0].Issuer
		}
	}
	if strings.ContainsFunc(c.Realm, isCTL) {
		return c, fmt.Errorf("policy: realm %q contains control characters", c.Realm)
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		return c, fmt.Errorf("policy: leeway %s is not between 0 and %s", c.Leeway, MaxLeeway)
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	algs, err := allowedAlgorithms(c.Algorithms)
	if err != nil {
		return c, err
	}
	c.Algorithms = algs
	if err := checkScopes(c.Scopes); err != nil {
		return c, fmt.Errorf("policy: scopes: %w", err)
	}
	if c.ResourceMetadataURL != "" {
		if u, err := url.Parse(c.ResourceMetadataURL); err != nil || !u.IsAbs() || u.Host == "" {
			return c, fmt.Errorf("policy: resource metadata URL %q is not an absolute URL", c.ResourceMetadataURL)
		}
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

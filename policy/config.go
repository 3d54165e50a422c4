package policy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/dpop"
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
	// Resource is this API's resource identifier in its RFC 9728 metadata, the "resource" of the
	// document. When it is an http(s) URL, the challenge's resource_metadata is that URL plus
	// /.well-known/oauth-protected-resource, and the document is also answered at the RFC 9728
	// §3 path-inserted URL (/.well-known/oauth-protected-resource plus the resource's path) when
	// a request for it reaches the Gate. Default: found per request (see the comment in
	// resource_metadata.go): the longest audience that is an http(s) URL on the request's host
	// and a path prefix of the request, else the request's origin plus the prefix a router
	// stripped before the Gate (OriginalURL), which at the root is the origin alone.
	Resource string
	// ResourceMetadataURL is the absolute URL of the RFC 9728 metadata document, announced in
	// every challenge's resource_metadata attribute; it overrides the URL derived from Resource,
	// and the Gate answers the document at its path.
	ResourceMetadataURL string
	// OriginalURL returns the URL of r as its client sent it, when a router rewrote r.URL before
	// the Gate: Caddy's handle_path and uri strip_prefix strip a prefix. Nil, or a nil result,
	// means r.URL. Only the RFC 9728 URLs use it: what was stripped is the Gate's mount prefix,
	// and the challenge must name a URL the client can fetch. Rules judge r.URL, which is what
	// the upstream receives.
	OriginalURL func(r *http.Request) *url.URL
	// DPoPReplay makes each DPoP proof single use (RFC 9449 §11.1). Nil: a cache in this
	// process's memory; Gate.SetDPoPReplay swaps in one shared by a cluster.
	DPoPReplay dpop.ReplayCache
}

// withDefaults validates c and returns a copy with defaults filled in and lists normalised.
func (c Config) withDefaults() (Config, error) {
	if c.Issuer == "" && len(c.Issuers) == 0 {
		return c, errors.New("policy: issuer is required")
	}
	for _, aud := range c.Audience {
		if err := CheckAudience(aud); err != nil {
			return c, fmt.Errorf("policy: %w", err)
		}
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
	if err := CheckRealm(c.Realm); err != nil {
		return c, fmt.Errorf("policy: %w", err)
	}
	if err := CheckLeeway(c.Leeway); err != nil {
		return c, fmt.Errorf("policy: %w", err)
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
		if err := CheckAlgorithm(a); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// The Check* functions below are the rules New applies to single values of a Config, for a
// configuration parser to apply as it reads each value, so that it can say where a mistake is.

// CheckAlgorithm checks one entry of Config.Algorithms: an asymmetric JWS algorithm of the
// default allow-list; "none" and HMAC are never accepted.
func CheckAlgorithm(a string) error {
	switch {
	case strings.EqualFold(a, "none"), strings.HasPrefix(strings.ToUpper(a), "HS"):
		return fmt.Errorf("algorithm %q is not allowed: the edge accepts only asymmetric signatures", a)
	case !slices.Contains(defaultAlgorithms, a):
		return fmt.Errorf("unsupported algorithm %q (want one of %s)", a, strings.Join(defaultAlgorithms, " "))
	}
	return nil
}

// CheckAudience checks one entry of an audience list: not empty.
func CheckAudience(aud string) error {
	if aud == "" {
		return errors.New("empty audience")
	}
	return nil
}

// CheckScope checks one required scope: an RFC 6749 §3.3 scope-token
// (1*( %x21 / %x23-5B / %x5D-7E )). That syntax also keeps scopes safe inside a challenge.
func CheckScope(s string) error {
	if s == "" {
		return errors.New("empty scope")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return fmt.Errorf("invalid scope %q", s)
		}
	}
	return nil
}

// checkScopes reports the first value that CheckScope refuses.
func checkScopes(scopes []string) error {
	for _, s := range scopes {
		if err := CheckScope(s); err != nil {
			return err
		}
	}
	return nil
}

// CheckRealm checks Config.Realm: no control characters (it goes into a response header).
func CheckRealm(realm string) error {
	if strings.ContainsFunc(realm, isCTL) {
		return fmt.Errorf("realm %q contains control characters", realm)
	}
	return nil
}

// CheckLeeway checks Config.Leeway: between 0 and MaxLeeway.
func CheckLeeway(d time.Duration) error {
	if d < 0 || d > MaxLeeway {
		return fmt.Errorf("leeway %s is not between 0 and %s", d, MaxLeeway)
	}
	return nil
}

// CheckRule checks one rule's methods, path glob and scopes as New compiles them. Its claim
// conditions are not looked at: CheckCondition checks each.
func CheckRule(r Rule) error {
	r.Claims = nil
	if _, err := compileRules(nil, nil, []Rule{r}); err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			return inner // the path or a scope; compileRules names the rule, which the caller knows
		}
		return err
	}
	return nil
}

// CheckIssuerNames checks the identifiers of a Gate's issuers, in order, as New does: none is
// empty, and none is configured twice, also not once with and once without a trailing slash.
// Only a mistake of the last one is new when the ones before it passed, so a parser that
// appends one issuer at a time can report it at that issuer's line.
func CheckIssuerNames(names []string) error {
	list := make([]TrustedIssuer, len(names))
	for i, n := range names {
		list[i] = TrustedIssuer{Issuer: n, Keys: noKeys{}}
	}
	_, _, err := compileIssuers(Config{Issuers: list, Audience: []string{"-"}}, nil)
	return err
}

// noKeys stands in for an issuer's keys where only its identifier is checked.
type noKeys struct{}

func (noKeys) Keyfunc(*jwt.Token) (any, error) { return nil, errors.New("policy: no keys") }

// isCTL reports an RFC 9110 control character other than HTAB.
func isCTL(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

package policy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Gate decides whether requests may pass to a protected API. Build it with New; its configuration
// is immutable, and it is safe for concurrent use.
type Gate struct {
	challenge   string // `Bearer realm="…"`
	allowQuery  bool
	parser      *jwt.Parser
	issuers     map[string]*issuer // by issuerKey
	opaque      *issuer            // the issuer that introspects opaque tokens, if any
	revocations RevocationChecker
	base        requirement // Config.Scopes and Config.Claims, when no rule matches
	rules       []rule
	cache       *tokenCache // nil when turned off
	metadata    *resourceMetadata
}

// New validates cfg, fills in its defaults and compiles its rules and claim conditions. The error
// names the offending setting. keys verifies the tokens of cfg.Issuer; it may be nil when
// cfg.Issuer is empty and cfg.Issuers brings every issuer with its own keys.
func New(cfg Config, keys KeySource) (*Gate, error) {
	if keys == nil && cfg.Issuer != "" {
		return nil, errors.New("policy: a key source is required")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	issuers, opaque, err := compileIssuers(c, keys)
	if err != nil {
		return nil, err
	}
	baseConds, err := compileConditions("claims", c.Claims)
	if err != nil {
		return nil, err
	}
	rules, err := compileRules(c.Scopes, baseConds, c.Rules)
	if err != nil {
		return nil, err
	}
	base := newRequirement(c.Scopes)
	base.conds = baseConds
	names := make([]string, 0, len(issuers))
	if c.Issuer != "" {
		names = append(names, c.Issuer)
	}
	for _, ti := range c.Issuers {
		names = append(names, ti.Issuer)
	}
	md, err := newResourceMetadata(c, names, rules, base)
	if err != nil {
		return nil, err
	}
	return &Gate{
		challenge:   bareChallenge(c.Realm),
		allowQuery:  c.AllowQueryToken,
		parser:      newParser(c.Algorithms),
		issuers:     issuers,
		opaque:      opaque,
		revocations: c.Revocations,
		base:        base,
		rules:       rules,
		cache:       newTokenCache(c.CacheSize),
		metadata:    md,
	}, nil
}

// Authorize decides on r. A nil Denial means the request may pass, and the Token is its verified
// access token. When the token is valid but lacks a scope or fails a claim condition, the Token is
// returned alongside the 403 Denial so that the caller can log who was refused.
//
// A token seen before costs a cache lookup: its signature, issuer, audience and lifetime were
// checked when it was cached, and the cache keeps nothing else. Expiry, the issuer's key set and
// revocation are checked again on every request, and so are the route's scopes and conditions,
// so what one route allowed never leaks to another.
func (g *Gate) Authorize(r *http.Request) (*Token, *Denial) {
	raw, d := g.bearerToken(r)
	if d != nil {
		return nil, d
	}
	tok, d := g.token(raw)
	if d != nil {
		return nil, d
	}
	need := g.requirement(r.Method, r.URL.Path)
	if missing := missingScope(need.scopes, tok.Claims.Scope); missing != "" {
		return tok, &Denial{
			Status: http.StatusForbidden,
			Code:   CodeInsufficientScope,
			Scope:  need.scopeAttr,
			Err:    fmt.Errorf("token lacks scope %q", missing),
			reason: ReasonInsufficientScope,
		}
	}
	for _, c := range need.conds {
		ok, err := c.holds(tok, r)
		if !ok {
			if err == nil {
				err = fmt.Errorf("claim condition %q is false", c.expr)
			}
			return tok, &Denial{
				Status:      http.StatusForbidden,
				Code:        CodeInsufficientScope,
				Description: "the token does not satisfy this resource's claim conditions",
				Err:         err,
				reason:      ReasonClaims,
			}
		}
	}
	return tok, nil
}

// token returns the verified token raw, from the cache when possible.
func (g *Gate) token(raw string) (*Token, *Denial) {
	now := time.Now().UnixNano()
	var k cacheKey
	if g.cache != nil {
		k = g.cache.key(raw)
		if tok := g.cache.get(k); tok != nil && tok.fresh(now) {
			return g.notRevoked(tok)
		}
	}
	tok, d := g.verify(raw)
	if d != nil {
		return nil, d
	}
	if g.cache != nil && tok.expires > now {
		g.cache.put(k, tok, now)
	}
	return g.notRevoked(tok)
}

// notRevoked denies a token on a deny-list.
func (g *Gate) notRevoked(tok *Token) (*Token, *Denial) {
	if tok.issuer.revoked(tok.Claims.ID, g.revocations) {
		return nil, invalidToken(errRevoked)
	}
	return tok, nil
}

// CacheStats returns the counters of the verified-token cache; zero when it is turned off.
func (g *Gate) CacheStats() CacheStats {
	if g.cache == nil {
		return CacheStats{}
	}
	return g.cache.stats()
}

// RequiredScopes returns every scope a request with this method and URL path needs: Config.Scopes
// plus those of the first matching rule. Rules judge the path rooted, cleaned (path.Clean, so
// "/v1/../admin/x" is judged as "/admin/x"), with its trailing slash kept, and case-insensitively:
// an upstream may resolve dot segments or ignore case, and matching more only asks for more.
func (g *Gate) RequiredScopes(method, urlPath string) []string {
	return slices.Clone(g.requirement(method, urlPath).scopes)
}

// requirement finds the first matching rule; without one, the base scopes apply.
func (g *Gate) requirement(method, urlPath string) *requirement {
	if len(g.rules) == 0 {
		return &g.base
	}
	p := cleanPath(urlPath)
	for i := range g.rules {
		if r := &g.rules[i]; matchMethod(r.methods, method) && r.glob.matchPath(p) {
			return &r.need
		}
	}
	return &g.base
}

// missingScope returns the first of need that the space-separated granted list lacks, or "".
func missingScope(need []string, granted string) string {
	for _, s := range need {
		if !grants(granted, s) {
			return s
		}
	}
	return ""
}

// grants reports whether the space-separated list granted contains s, without allocating.
func grants(granted, s string) bool {
	for g := range strings.FieldsSeq(granted) {
		if g == s {
			return true
		}
	}
	return false
}

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
	allowSlash  bool // Config.AllowEncodedSlashes
	parser      *jwt.Parser
	issuers     map[string]*issuer // by exact identifier
	opaque      *issuer            // the issuer that introspects opaque tokens, if any
	revocations RevocationChecker
	base        requirement // Config.Scopes and Config.Claims, when no rule matches
	rules       []rule
	cache       *tokenCache // nil when turned off
	metadata    *resourceMetadata
	dpop        *dpopState
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
		allowSlash:  c.AllowEncodedSlashes,
		parser:      newParser(c.Algorithms),
		issuers:     issuers,
		opaque:      opaque,
		revocations: c.Revocations,
		base:        base,
		rules:       rules,
		cache:       newTokenCache(c.CacheSize),
		metadata:    md,
		dpop:        newDPoPState(c.DPoPReplay),
	}, nil
}

// Authorize decides on r. A nil Denial means the request may pass, and the Token is its verified
// access token. A request whose path a rule could read differently from the upstream (an encoded
// slash, a backslash, a dot segment; see Gate.RequiredScopes) is refused first, with 400
// invalid_request, whatever its token. When the token is valid but lacks a scope or fails a claim condition, the Token is
// returned alongside the 403 Denial so that the caller can log who was refused.
//
// A token seen before costs a cache lookup: its signature, issuer, audience and lifetime were
// checked when it was cached, and the cache keeps nothing else. Expiry, the issuer's key set and
// revocation are checked again on every request, and so are the route's scopes and conditions,
// so what one route allowed never leaks to another.
func (g *Gate) Authorize(r *http.Request) (*Token, *Denial) {
	escaped := r.URL.EscapedPath()
	forms, err := readPath(escaped, g.allowSlash)
	if err != nil {
		return nil, ambiguousPath(escaped, err)
	}
	raw, scheme, d := g.credentials(r)
	if d != nil {
		return nil, g.withScope(d, r.Method, &forms)
	}
	tok, d := g.token(raw)
	if d == nil && (tok.bound || scheme) {
		d = g.checkDPoP(r, raw, tok, scheme)
	}
	if d != nil {
		if scheme && d.challenge == challengeBearer {
			d.challenge = challengeDPoP
		}
		return nil, g.withScope(d, r.Method, &forms)
	}
	need := g.requirement(r.Method, &forms)
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

// withScope adds to a 401 the scopes the request needs, which the challenge announces (RFC 6750
// §3; the MCP authorization spec asks for them): a client without a token, or with an invalid
// one, learns which scopes to ask for. A route that needs none adds nothing.
func (g *Gate) withScope(d *Denial, method string, forms *pathForms) *Denial {
	if d.Status == http.StatusUnauthorized {
		d.Scope = g.requirement(method, forms).scopeAttr
	}
	return d
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

// RequiredScopes returns every scope a request with this method and escaped URL path (as
// r.URL.EscapedPath() gives it, which is what reverse_proxy sends upstream) needs: Config.Scopes
// plus those of the first matching rule, or the error that Authorize would refuse the path with.
//
// Rules judge the path segment by segment, split at its raw "/" only, each segment
// percent-decoded once as the upstream decodes it ("/%76%31/x" is "/v1/x"), case-insensitively;
// a trailing slash is kept. Paths that a rule could read differently from the upstream are
// refused: an encoded slash (unless Config.AllowEncodedSlashes), a backslash raw or encoded, a
// dot segment raw or encoded ("/v1/../admin", "/v1/%2e%2e/admin"), an encoded control character,
// a double encoding ("%252f"). A path with ";" parameters or empty segments is judged in each of
// its readings ("/admin;x/y" also as "/admin/y", "//v1/x" as "/v1/x" and as it is), and needs
// what every reading needs.
func (g *Gate) RequiredScopes(method, escapedPath string) ([]string, error) {
	forms, err := readPath(escapedPath, g.allowSlash)
	if err != nil {
		return nil, err
	}
	return slices.Clone(g.requirement(method, &forms).scopes), nil
}

// requirement finds the first matching rule of every reading of the path; without one, the base
// scopes apply. When readings differ, the request needs the union of what they need.
func (g *Gate) requirement(method string, forms *pathForms) *requirement {
	if len(g.rules) == 0 {
		return &g.base
	}
	need := g.firstMatch(method, forms.forms[0])
	if forms.n == 1 {
		return need
	}
	var union *requirement
	for _, p := range forms.forms[1:forms.n] {
		other := g.firstMatch(method, p)
		if other == need || (union != nil && union.includes(other)) {
			continue
		}
		if union == nil {
			union = need.merge(other)
		} else {
			union = union.merge(other)
		}
	}
	if union == nil {
		return need
	}
	return union
}

// firstMatch returns the requirement of the first rule matching method and p, or the base one.
func (g *Gate) firstMatch(method, p string) *requirement {
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

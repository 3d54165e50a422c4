package policy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// Gate decides whether requests may pass to a protected API. Build it with New; it is immutable
// and safe for concurrent use.
type Gate struct {
	challenge  string // `Bearer realm="…"`
	allowQuery bool
	verifier   *verifier
	base       requirement // Config.Scopes, when no rule matches
	rules      []rule
}

// New validates cfg, fills in its defaults and compiles its rules. The error names the offending
// setting. keys finds the verification key of each token.
func New(cfg Config, keys KeySource) (*Gate, error) {
	if keys == nil {
		return nil, errors.New("policy: a key source is required")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rules, err := compileRules(c.Scopes, c.Rules)
	if err != nil {
		return nil, err
	}
	return &Gate{
		challenge:  bareChallenge(c.Realm),
		allowQuery: c.AllowQueryToken,
		verifier:   newVerifier(c, keys),
		base:       newRequirement(c.Scopes),
		rules:      rules,
	}, nil
}

// Authorize decides on r. A nil Denial means the request may pass, and the claims are those of its
// verified access token. When the token is valid but lacks a scope, the claims are returned
// alongside the 403 Denial so that the caller can log who was refused.
func (g *Gate) Authorize(r *http.Request) (*accesstoken.Claims, *Denial) {
	raw, d := g.bearerToken(r)
	if d != nil {
		return nil, d
	}
	claims, d := g.verifier.verify(raw)
	if d != nil {
		return nil, d
	}
	need := g.requirement(r.Method, r.URL.Path)
	if missing := missingScope(need.scopes, claims.Scope); missing != "" {
		return claims, &Denial{
			Status: http.StatusForbidden,
			Code:   CodeInsufficientScope,
			Scope:  need.scopeAttr,
			Err:    fmt.Errorf("token lacks scope %q", missing),
		}
	}
	return claims, nil
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

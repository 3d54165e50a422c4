package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// requirement is what a request needs: every scope in scopes, announced as scopeAttr, and every
// claim condition in conds to hold.
type requirement struct {
	scopes    []string
	scopeAttr string // scopes, space-separated, for the challenge's scope attribute
	conds     []*condition
}

// rule is a compiled Rule.
type rule struct {
	methods []string // upper case; nil means any method
	glob    glob
	need    requirement // Config.Scopes plus the rule's own
}

// compileRules checks every rule once and merges its scopes and conditions with the base ones.
func compileRules(base []string, baseConds []*condition, rules []Rule) ([]rule, error) {
	out := make([]rule, 0, len(rules))
	for i, r := range rules {
		where := fmt.Sprintf("policy: rule %d (%s %s)", i+1, strings.Join(r.Methods, ","), r.Path)
		g, err := compileGlob(r.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := checkScopes(r.Scopes); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		var methods []string
		for _, m := range r.Methods {
			if m == "*" {
				methods = nil
				break
			}
			if m == "" || strings.ContainsFunc(m, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
				return nil, fmt.Errorf("%s: invalid method %q", where, m)
			}
			methods = append(methods, strings.ToUpper(m))
		}
		conds, err := compileConditions(where[len("policy: "):], r.Claims)
		if err != nil {
			return nil, err
		}
		need := newRequirement(base, r.Scopes)
		need.conds = append(append([]*condition(nil), baseConds...), conds...)
		out = append(out, rule{methods: methods, glob: g, need: need})
	}
	return out, nil
}

// merge returns a new requirement that needs everything r and o need.
func (r *requirement) merge(o *requirement) *requirement {
	m := newRequirement(r.scopes, o.scopes)
	m.conds = slices.Clone(r.conds)
	for _, c := range o.conds {
		if !slices.Contains(m.conds, c) {
			m.conds = append(m.conds, c)
		}
	}
	return &m
}

// includes reports whether r needs everything o needs.
func (r *requirement) includes(o *requirement) bool {
	for _, s := range o.scopes {
		if !slices.Contains(r.scopes, s) {
			return false
		}
	}
	for _, c := range o.conds {
		if !slices.Contains(r.conds, c) {
			return false
		}
	}
	return true
}

// newRequirement merges scope lists, keeping the first occurrence of each scope.
func newRequirement(lists ...[]string) requirement {
	var scopes []string
	for _, l := range lists {
		for _, s := range l {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	return requirement{scopes: scopes, scopeAttr: strings.Join(scopes, " ")}
}

// matchMethod reports whether method is one of ms, comparing case-insensitively so that an
// upstream which treats "post" as POST is covered; a GET rule also covers HEAD.
func matchMethod(ms []string, method string) bool {
	if ms == nil {
		return true
	}
	if method == "" {
		method = "GET"
	}
	for _, m := range ms {
		if strings.EqualFold(m, method) || (m == "GET" && strings.EqualFold(method, "HEAD")) {
			return true
		}
	}
	return false
}

// decodePattern percent-decodes a Rule.Path the way request paths are read for matching (see
// readPath): %2F stays "%2f", and a decoded glob meta character is escaped, so "%2A" is a literal
// "*".
func decodePattern(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", fmt.Errorf("malformed percent-encoding at %q", p[i:])
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		i += 2
		switch {
		case d == '/':
			b.WriteString("%2f")
		case strings.IndexByte(`*?[]\`, d) >= 0:
			b.WriteByte('\\')
			b.WriteByte(d)
		default:
			b.WriteByte(d)
		}
	}
	return b.String(), nil
}

// glob is a compiled Rule.Path, lower case.
type glob struct {
	pattern string
	literal bool   // no meta characters: compare as a string (or as a prefix)
	prefix  bool   // ends in an unescaped "*": match the start of the path
	head    string // pattern without the final "*", when prefix
	// For a prefix glob with meta characters: a matching path has between minSlash and
	// maxSlash '/' before the segment where the final "*" starts (classes may match a '/').
	minSlash, maxSlash int
}

// compileGlob validates a Rule.Path and prepares its matcher.
func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, errors.New("empty path")
	}
	if p[0] != '/' && p[0] != '*' {
		return glob{}, errors.New("path must start with / or *")
	}
	p, err := decodePattern(p)
	if err != nil {
		return glob{}, err
	}
	p = lowerPath(p)
	if _, err := path.Match(p, ""); err != nil {
		return glob{}, err
	}
	g := glob{pattern: p}
	g.prefix = strings.HasSuffix(p, "*") && !escapedAt(p, len(p)-1)
	if g.prefix {
		g.head = p[:len(p)-1]
		g.literal = !hasMeta(g.head)
	} else {
		g.literal = !hasMeta(p)
	}
	slashes, classes := countGlob(p)
	g.minSlash, g.maxSlash = slashes, slashes+classes
	return g, nil
}

// match reports whether p, one reading of a request path (see readPath), matches.
func (g glob) match(p string) bool {
	switch {
	case g.prefix && g.literal:
		return strings.HasPrefix(p, g.head)
	case g.literal:
		return p == g.pattern
	case g.prefix:
		// '*' and '?' never match '/', so the final "*" can only cover the rest of one
		// segment: cut p at the end of each candidate segment and match the whole pattern.
		for n := g.minSlash; n <= g.maxSlash; n++ {
			cut, more := segmentEnd(p, n)
			if ok, _ := path.Match(g.pattern, p[:cut]); ok {
				return true
			}
			if !more {
				break
			}
		}
		return false
	default:
		ok, _ := path.Match(g.pattern, p)
		return ok
	}
}

// matchPath is match, except that a glob not ending in "/" also takes the path without its
// trailing slash: "/v1/items" covers "/v1/items/", which many upstreams route alike.
func (g glob) matchPath(p string) bool {
	if g.match(p) {
		return true
	}
	if !g.prefix && len(p) > 1 && p[len(p)-1] == '/' && !strings.HasSuffix(g.pattern, "/") {
		return g.match(p[:len(p)-1])
	}
	return false
}

// segmentEnd returns the index of the (n+1)-th '/' of p, or len(p) and false if p has fewer.
func segmentEnd(p string, n int) (int, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			if n == 0 {
				return i, true
			}
			n--
		}
	}
	return len(p), false
}

// hasMeta reports whether s contains a path.Match meta character.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// escapedAt reports whether the byte at i is escaped by an odd run of backslashes.
func escapedAt(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// countGlob counts the '/' that a valid pattern matches literally and its character classes.
func countGlob(p string) (slashes, classes int) {
	in := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			if !in && i+1 < len(p) && p[i+1] == '/' {
				slashes++
			}
			i++
		case in:
			in = c != ']'
		case c == '[':
			in = true
			classes++
			if i+1 < len(p) && p[i+1] == '^' {
				i++
			}
		case c == '/':
			slashes++
		}
	}
	return slashes, classes
}

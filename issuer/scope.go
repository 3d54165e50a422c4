package issuer

import (
	"slices"
	"strings"
)

// scopeGrant says what one grant may hand out, for grantScopes.
type scopeGrant struct {
	// granted, when not nil, is what was granted before (a refresh family's scopes): the
	// request may narrow it, never widen it (RFC 6749 §6).
	granted []string
	// notByDefault are left out when the request omits scope (openid and offline_access must
	// be asked for).
	notByDefault []string
	// refused are never handed out by this grant (client credentials has no user).
	refused []string
}

// grantScopes resolves the scope parameter of a request (RFC 6749 §3.3), the one place every
// grant decides its scopes: of the scopes the client has now, and of those granted before when
// g.granted is set, the request may ask for any; omitted, it gets all of them except
// g.notByDefault. A scope outside them, or in g.refused, is invalid_scope.
func (c *client) grantScopes(requested string, g scopeGrant) ([]string, *Error) {
	allowed := func(sc string) bool {
		return c.scopes[sc] && !slices.Contains(g.refused, sc) && (g.granted == nil || slices.Contains(g.granted, sc))
	}
	if requested == "" {
		from := c.Scopes
		if g.granted != nil {
			from = g.granted
		}
		out := make([]string, 0, len(from))
		for _, sc := range from {
			if allowed(sc) && !slices.Contains(g.notByDefault, sc) {
				out = append(out, sc)
			}
		}
		return out, nil
	}
	parts := strings.Split(requested, " ")
	out := make([]string, 0, len(parts))
	for _, sc := range parts {
		if sc == "" || slices.Contains(out, sc) {
			continue
		}
		switch {
		case !validScopeToken(sc):
			return nil, errInvalidScope("the scope parameter is malformed")
		case g.granted != nil && !slices.Contains(g.granted, sc):
			return nil, errInvalidScope("scope " + quoteParam(sc) + " was not granted to this refresh token")
		case !allowed(sc):
			return nil, errInvalidScope("scope " + quoteParam(sc) + " is not allowed for this client")
		}
		out = append(out, sc)
	}
	return out, nil
}

// contains reports whether list holds s.
func contains(list []string, s string) bool { return slices.Contains(list, s) }

package issuer

import "strings"

// grantedScopes resolves the scope parameter of a request against the client's scopes
// (RFC 6749 §3.3). An omitted scope means every scope of the client except those in
// notByDefault; asking for a scope the client does not have, or one in refused, is
// invalid_scope.
func (c *client) grantedScopes(requested string, notByDefault, refused []string) ([]string, *Error) {
	if requested == "" {
		out := make([]string, 0, len(c.Scopes))
		for _, sc := range c.Scopes {
			if !contains(notByDefault, sc) && !contains(refused, sc) {
				out = append(out, sc)
			}
		}
		return out, nil
	}
	parts := strings.Split(requested, " ")
	out := make([]string, 0, len(parts))
	for _, sc := range parts {
		if sc == "" || contains(out, sc) {
			continue
		}
		if !validScopeToken(sc) {
			return nil, errInvalidScope("the scope parameter is malformed")
		}
		if !c.scopes[sc] || contains(refused, sc) {
			return nil, errInvalidScope("scope " + quoteParam(sc) + " is not allowed for this client")
		}
		out = append(out, sc)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

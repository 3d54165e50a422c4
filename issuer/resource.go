package issuer

import (
	"net/url"
	"slices"
	"strings"
)

// paramResource is the resource indicator of RFC 8707: the one parameter that may be repeated.
const paramResource = "resource"

// audience is the client's audiences: the "aud" of its access tokens when no resource is asked
// for (its configured Audience, else its ID).
func (c *client) audience() []string {
	if len(c.Audience) == 0 {
		return []string{c.ID}
	}
	return c.Audience
}

// grantAudience resolves the resource parameters of a request (RFC 8707 §2), the one place
// every grant and the authorization request decide the "aud" of an access token. Each resource
// must be an absolute URI without a fragment and one of the client's audiences of today; when
// granted is not empty (what the authorization request, the device authorization or the
// refresh family asked for before), it must be among those too: a request may narrow them,
// never widen them (§2.2). The token is then for exactly the resources asked for. Without a
// resource it is for all of granted that the client still has, or, with granted empty, for the
// client's audiences. Anything else is invalid_target.
func (c *client) grantAudience(requested, granted []string) ([]string, *Error) {
	allowed := c.audience()
	if len(requested) == 0 {
		if len(granted) == 0 {
			return slices.Clone(allowed), nil
		}
		out := make([]string, 0, len(granted))
		for _, res := range granted {
			if slices.Contains(allowed, res) && !slices.Contains(out, res) {
				out = append(out, res)
			}
		}
		if len(out) == 0 {
			return nil, errInvalidTarget("the resources granted are no longer allowed for this client")
		}
		return out, nil
	}
	out := make([]string, 0, len(requested))
	for _, res := range requested {
		if slices.Contains(out, res) {
			continue
		}
		switch {
		case !validResource(res):
			return nil, errInvalidTarget("resource " + quoteParam(res) + " is not an absolute URI without a fragment")
		case len(granted) > 0 && !slices.Contains(granted, res):
			return nil, errInvalidTarget("resource " + quoteParam(res) + " was not granted")
		case !slices.Contains(allowed, res):
			return nil, errInvalidTarget("resource " + quoteParam(res) + " is not an audience of this client")
		}
		out = append(out, res)
	}
	return out, nil
}

// recordedResources is what a grant records of its resources (with a code, a device code or a
// refresh family): the audience it resolved when resources were asked for, nil otherwise, so
// that a record without resources keeps meaning "the client's audiences" as configured when
// it is used.
func recordedResources(requested, aud []string) []string {
	if len(requested) == 0 {
		return nil
	}
	return aud
}

// validResource reports whether s is an absolute URI without a fragment (RFC 8707 §2).
func validResource(s string) bool {
	if strings.ContainsAny(s, "# \t\r\n") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.IsAbs()
}

// resourcesOf returns the non-empty values of the resource parameter (one sent empty is
// omitted, as every other parameter is).
func resourcesOf(values []string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

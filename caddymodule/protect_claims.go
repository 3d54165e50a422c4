package caddymodule

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/tollgate-auth/tollgate/policy"
)

// userPrefix is the placeholder namespace of the authenticated user (as caddyauth uses it).
const userPrefix = "http.auth.user."

// userPlaceholders resolves {http.auth.user.id} to the token's sub (or, for an introspected token
// without one, its username) and {http.auth.user.<claim>} to any top-level claim, formatted like
// forward_claim. It is consulted only when a placeholder is used, so a request pays nothing for
// the claims nobody asks for.
func userPlaceholders(tok *policy.Token) caddy.ReplacerFunc {
	return func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, userPrefix)
		if !ok {
			return nil, false
		}
		if name == "id" {
			if tok.Claims.Subject != "" {
				return tok.Claims.Subject, true
			}
			if u, ok := tok.ClaimText("username"); ok {
				return u, true
			}
			return "", true
		}
		return tok.ClaimText(name)
	}
}

// forwarder sets the forward_claim headers on requests that pass.
type forwarder struct {
	claims []ForwardClaim // headers in canonical form
}

// newForwarder checks the forward_claim settings.
func newForwarder(fcs []ForwardClaim) (forwarder, error) {
	f := forwarder{claims: make([]ForwardClaim, len(fcs))}
	for i, fc := range fcs {
		if fc.Claim == "" || strings.ContainsFunc(fc.Claim, func(r rune) bool { return r <= ' ' }) {
			return f, fmt.Errorf("forward_claim %q: invalid claim name", fc.Claim)
		}
		if !httpguts.ValidHeaderFieldName(fc.Header) {
			return f, fmt.Errorf("forward_claim %s: invalid header name %q", fc.Claim, fc.Header)
		}
		f.claims[i] = ForwardClaim{Claim: fc.Claim, Header: textproto.CanonicalMIMEHeaderKey(fc.Header)}
	}
	return f, nil
}

// strip deletes every client-sent copy of a forwarded header, including spellings with "_" for
// "-" that CGI-style upstreams (FastCGI, WSGI, Rack) read as the same variable.
func (f forwarder) strip(h http.Header) {
	if len(f.claims) == 0 {
		return
	}
	for _, fc := range f.claims {
		delete(h, fc.Header)
	}
	for name := range h {
		if strings.IndexByte(name, '_') < 0 {
			continue
		}
		alias := textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(name, "_", "-"))
		for _, fc := range f.claims {
			if alias == fc.Header {
				delete(h, name)
			}
		}
	}
}

// apply strips client-sent copies, then sets each header whose claim the token has.
func (f forwarder) apply(h http.Header, tok *policy.Token) {
	f.strip(h)
	for _, fc := range f.claims {
		if v, ok := tok.ClaimText(fc.Claim); ok && v != "" {
			h[fc.Header] = []string{v}
		}
	}
}

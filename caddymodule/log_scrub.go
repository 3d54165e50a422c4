package caddymodule

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Caddy's access log records the response headers as they are when the request is done, read
// from the same header map the handler wrote. The issuer's redirects to a client carry the
// authorization code, or with the implicit flow the tokens, in Location; so once the response
// is on its way to the client (flushed through every handler above this one), the handler
// redacts those values in the map, and the access log sees "REDACTED" where the client got the
// code. docs/design.md, "Logs", has the whole picture.

// secretParams are the parameters of a redirect that are never logged.
var secretParams = []string{"code", "access_token", "id_token", "refresh_token", "user_code"}

// upstreamStartParams are also never logged in the redirect of an upstream sign-in's start to
// the provider (one whose redirect_uri is an upstream callback): its state takes the sign-in
// at the callback, and its nonce goes into the provider's ID token. The callback's own request
// URI (code and state) is in Caddy's access log as it came, which no handler can change: the
// README's "Sign in with another OpenID provider" has the log filter that redacts it.
var upstreamStartParams = []string{"state", "nonce"}

// upstreamCallbackPath matches the path of an upstream provider's callback at the issuer.
var upstreamCallbackPath = regexp.MustCompile(`/oauth2/upstream/[a-z0-9_-]{1,64}/callback$`)

// scrubLoggedHeaders redacts the codes and tokens of a response's Location header once the
// response has left, so that Caddy's access log does not hold them. It does nothing when a
// handler above buffers the response (it would send the redacted header) or cannot flush it.
func scrubLoggedHeaders(w http.ResponseWriter) {
	loc := w.Header().Get("Location")
	if loc == "" {
		return
	}
	redacted, changed := redactURL(loc)
	if !changed {
		return
	}
	// Flush first: a handler above that holds the header back until the body (encode does)
	// then sends it on. Only a handler that buffers the whole response still holds it after.
	if err := http.NewResponseController(w).Flush(); err != nil || buffered(w) {
		return
	}
	w.Header().Set("Location", redacted)
}

// buffered reports whether a handler between the server and w still holds the response back
// after a Flush, as templates or intercept do: a later change of a header would reach the
// client. (A recorder that has not seen the header yet reports itself buffered too, which is
// why the Flush comes first.)
func buffered(w http.ResponseWriter) bool {
	for w != nil {
		if rr, ok := w.(caddyhttp.ResponseRecorder); ok && rr.Buffered() {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// redactURL replaces the values of secretParams in the query and the fragment of a URL with
// REDACTED; it reports whether there were any.
func redactURL(raw string) (string, bool) {
	base, frag, hasFrag := strings.Cut(raw, "#")
	base, q, hasQuery := strings.Cut(base, "?")
	changed := false
	secrets := secretParams
	if hasQuery && upstreamStart(q) {
		secrets = append(slices.Clip(secretParams), upstreamStartParams...)
	}
	if hasQuery {
		var c bool
		q, c = redactParams(q, secrets)
		changed = changed || c
		base += "?" + q
	}
	if hasFrag {
		var c bool
		frag, c = redactParams(frag, secrets)
		changed = changed || c
		base += "#" + frag
	}
	return base, changed
}

// upstreamStart reports whether the query q is that of a redirect to an upstream provider: its
// redirect_uri is an upstream callback of the issuer.
func upstreamStart(q string) bool {
	v, err := url.ParseQuery(q)
	if err != nil && len(v) == 0 {
		return false
	}
	ru, err := url.Parse(v.Get("redirect_uri"))
	return err == nil && upstreamCallbackPath.MatchString(ru.Path)
}

// redactParams redacts the values of secretParams (secrets) in a form-encoded parameter list,
// keeping its order.
func redactParams(s string, secretParams []string) (string, bool) {
	parts := strings.Split(s, "&")
	changed := false
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		for _, secret := range secretParams {
			if name == secret {
				parts[i], changed = k+"=REDACTED", true
			}
		}
	}
	return strings.Join(parts, "&"), changed
}

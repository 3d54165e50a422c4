package issuer

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// authRequest is a validated authorization request, kept in the store while the user signs in
// and consents (its record type is the state layer's).
type authRequest = state.AuthRequest

// Bounds of what an authorization request may make the issuer store (RFC 6749 leaves them to
// the server): longer values are refused with invalid_request.
const (
	maxStateLen     = 2048
	maxNonceLen     = 512
	maxLoginHintLen = 256
)

// supportedResponseTypes maps a response_type (in any token order) to its canonical form.
var supportedResponseTypes = map[string]string{
	"code": "code", "token": "token", "id_token": "id_token",
	"id_token token": "id_token token", "token id_token": "id_token token",
}

// authorizeError is a failure at the authorization endpoint. With redirect false it is shown
// on an HTML error page (the client or redirect URI could not be trusted); otherwise it goes
// back to the client's registered redirect URI.
type authorizeError struct {
	*Error
	redirect bool
}

// parseAuthRequest reads and checks an authorization request sent to the authorization
// endpoint itself (not pushed).
func (s *Server) parseAuthRequest(r *http.Request, q url.Values) (*authRequest, *client, *authorizeError) {
	return s.checkAuthRequest(r, q, false)
}

// checkAuthRequest reads and checks an authorization request; pushed says it came through the
// PAR endpoint (RFC 9126), which checks it with these same rules when it is pushed and again
// when its request_uri is used. Until the client and the redirect URI are verified, errors are
// never redirected (RFC 6749 §4.1.2.1); after that, every error goes to the redirect URI with
// state and iss.
func (s *Server) checkAuthRequest(r *http.Request, q url.Values, pushed bool) (*authRequest, *client, *authorizeError) {
	for k, v := range q {
		if len(v) > 1 && k != paramResource { // RFC 8707 §2: resource may be repeated
			return nil, nil, &authorizeError{Error: errInvalidRequest("parameter " + quoteParam(k) + " is repeated")}
		}
	}
	page := func(e *Error) *authorizeError { return &authorizeError{Error: e} }
	c, err := s.lookupClientFor(r, q.Get("client_id"))
	if err != nil {
		return nil, nil, page(errServer(err))
	}
	if c == nil {
		return nil, nil, page(errInvalidRequest("unknown client_id"))
	}
	req := &authRequest{ClientID: c.ID, State: q.Get("state"), Nonce: q.Get("nonce"), MaxAge: -1,
		LoginHint: q.Get("login_hint")}
	tooLong := len(req.State) > maxStateLen
	if tooLong {
		req.State = "" // not echoed: the client sees invalid_request without it
	}
	redirect, ok := c.matchRedirectURI(q.Get("redirect_uri"), contains(strings.Fields(q.Get("scope")), "openid"))
	if !ok {
		return nil, nil, page(errInvalidRequest("the redirect_uri is not registered for this client"))
	}
	req.RedirectURI = redirect
	req.RedirectGiven = q.Get("redirect_uri") != ""
	rt, known := supportedResponseTypes[strings.Join(strings.Fields(q.Get("response_type")), " ")]
	req.ResponseType = rt
	req.ResponseMode = "query"
	if known && rt != "code" {
		req.ResponseMode = "fragment" // never put tokens in a query string
	}
	// From here on the redirect URI is trusted; errors go back to it.
	back := func(e *Error) *authorizeError { return &authorizeError{Error: e, redirect: true} }
	switch {
	case !pushed && s.needsPAR(c):
		return req, c, back(errInvalidRequest("this client must push its authorization requests (RFC 9126): use the pushed_authorization_request_endpoint and send request_uri"))
	case c.Profile == ProfileFAPI2 && !req.RedirectGiven:
		return req, c, back(errInvalidRequest("redirect_uri is required (FAPI 2.0)"))
	case tooLong:
		return req, c, back(errInvalidRequest("state is longer than " + strconv.Itoa(maxStateLen) + " bytes"))
	case len(req.Nonce) > maxNonceLen:
		return req, c, back(errInvalidRequest("nonce is longer than " + strconv.Itoa(maxNonceLen) + " bytes"))
	case len(req.LoginHint) > maxLoginHintLen:
		return req, c, back(errInvalidRequest("login_hint is longer than " + strconv.Itoa(maxLoginHintLen) + " bytes"))
	}
	switch mode := q.Get("response_mode"); mode {
	case "":
	case "query":
		if known && rt != "code" {
			return req, c, back(errInvalidRequest("response_mode query cannot carry tokens"))
		}
	case "form_post":
		// The auto-submitting form needs a web origin; a native app's private-use scheme
		// gets its response in the query or fragment.
		if u, _ := url.Parse(redirect); u.Scheme != "https" && u.Scheme != "http" {
			return req, c, back(errInvalidRequest("response_mode form_post needs an http(s) redirect_uri"))
		}
		req.ResponseMode = mode
	case "fragment":
		req.ResponseMode = mode
	default:
		return req, c, back(errInvalidRequest("unsupported response_mode"))
	}
	if q.Get("request") != "" || q.Get("request_uri") != "" {
		return req, c, back(&Error{Code: "request_not_supported", Description: "request objects are not supported"})
	}
	switch {
	case q.Get("response_type") == "":
		return req, c, back(errInvalidRequest("response_type is required"))
	case !known:
		return req, c, back(newError("unsupported_response_type", "response_type "+quoteParam(q.Get("response_type"))+" is not supported"))
	case rt == "code" && !c.grants[GrantAuthorizationCode]:
		return req, c, back(errUnauthorizedClient("the client may not use the authorization code flow"))
	case rt != "code" && !c.grants[GrantImplicit]:
		return req, c, back(errUnauthorizedClient("the client may not use the implicit flow"))
	}
	scopes, e := c.grantScopes(q.Get("scope"), scopeGrant{notByDefault: []string{"openid", "offline_access"}})
	if e != nil {
		return req, c, back(e)
	}
	req.Scopes = scopes
	resources := resourcesOf(q[paramResource])
	aud, e := c.grantAudience(resources, nil)
	if e != nil {
		return req, c, back(e)
	}
	req.Resources = recordedResources(resources, aud)
	if req.IssuesIDToken() && !contains(scopes, "openid") {
		return req, c, back(errInvalidScope("an id_token needs the openid scope"))
	}
	if rt != "code" && contains(scopes, "offline_access") {
		return req, c, back(errInvalidScope("offline_access needs the authorization code flow"))
	}
	if strings.HasPrefix(rt, "id_token") && req.Nonce == "" {
		return req, c, back(errInvalidRequest("nonce is required when an id_token is returned from the authorization endpoint"))
	}
	if e := parsePKCE(req, c, q); e != nil {
		return req, c, back(e)
	}
	if e := parseDPoPJKT(req, q); e != nil {
		return req, c, back(e)
	}
	if e := parsePrompt(req, q); e != nil {
		return req, c, back(e)
	}
	return req, c, nil
}

// parsePKCE applies RFC 7636 and RFC 9700 §2.1.1: S256 only; required for public clients (and
// fapi2 ones, client.needsPKCE); accepted (then enforced) for other confidential ones.
func parsePKCE(a *authRequest, c *client, q url.Values) *Error {
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if a.ResponseType != "code" {
		if challenge != "" {
			return errInvalidRequest("code_challenge is only for the authorization code flow")
		}
		return nil
	}
	if challenge == "" {
		if c.public() {
			return errInvalidRequest("code_challenge (PKCE, S256) is required for public clients")
		}
		if c.needsPKCE() {
			return errInvalidRequest("code_challenge (PKCE, S256) is required for this client")
		}
		if method != "" {
			return errInvalidRequest("code_challenge_method without code_challenge")
		}
		return nil
	}
	if method != "S256" {
		return errInvalidRequest("code_challenge_method must be S256")
	}
	if len(challenge) != 43 || !isPKCEChars(challenge) {
		return errInvalidRequest("code_challenge must be a base64url SHA-256 digest (43 characters)")
	}
	a.Challenge = challenge
	return nil
}

// parsePrompt reads prompt (OpenID Connect Core §3.1.2.1) and max_age.
func parsePrompt(a *authRequest, q url.Values) *Error {
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "none", "login", "consent", "select_account":
			if !contains(a.Prompt, p) {
				a.Prompt = append(a.Prompt, p)
			}
		default:
			return errInvalidRequest("unsupported prompt value")
		}
	}
	if a.HasPrompt("none") && len(a.Prompt) > 1 {
		return errInvalidRequest("prompt=none cannot be combined with other values")
	}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errInvalidRequest("max_age must be a non-negative integer")
		}
		a.MaxAge = n
	}
	return nil
}

// matchRedirectURI finds the registered redirect URI a request names: an exact string match,
// except that for native apps (public clients, or those with loopback_any_port) the port of a
// loopback IP redirect URI may differ (RFC 8252 §7.3). An omitted redirect_uri is allowed only
// when exactly one is registered and the request is not OpenID (which requires it).
func (c *client) matchRedirectURI(given string, openid bool) (string, bool) {
	if given == "" {
		if len(c.RedirectURIs) == 1 && !openid {
			return c.RedirectURIs[0], true
		}
		return "", false
	}
	for _, reg := range c.RedirectURIs {
		if given == reg {
			return given, true
		}
	}
	if !c.public() && !c.LoopbackAnyPort {
		return "", false
	}
	g, err := url.Parse(given)
	if err != nil || g.Scheme != "http" || g.User != nil || g.Fragment != "" {
		return "", false
	}
	host := g.Hostname()
	if host != "127.0.0.1" && host != "::1" {
		return "", false
	}
	for _, reg := range c.RedirectURIs {
		r, err := url.Parse(reg)
		if err != nil || r.Scheme != "http" || r.Hostname() != host {
			continue
		}
		if r.EscapedPath() == g.EscapedPath() && r.RawQuery == g.RawQuery {
			return given, true
		}
	}
	return "", false
}

// isPKCEChars checks the RFC 7636 §4.1 character set: ALPHA / DIGIT / "-" / "." / "_" / "~".
func isPKCEChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

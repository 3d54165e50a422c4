package issuer

import (
	"net/http"
	"net/url"
	"strings"
)

// authenticateClient identifies and authenticates the client of a token-endpoint request
// (RFC 6749 §2.3.1) by client_secret_basic or client_secret_post, never both. A public client
// identifies itself with client_id alone and must not send a secret. Every failure is the same
// invalid_client (401), with a Basic challenge when Basic was tried. Failed secrets are
// counted per client and address ip (the request's clientIP); past the limit, that address is
// refused for that client before its secret is looked at.
func (s *Server) authenticateClient(r *http.Request, f form, ip string) (*client, *Error) {
	basic := false
	var id, secret string
	var hasSecret bool
	if auth := r.Header.Get("Authorization"); len(auth) >= 6 && strings.EqualFold(auth[:6], "basic ") {
		if _, ok := f["client_secret"]; ok {
			return nil, errInvalidRequest("use one client authentication method, not both Basic and client_secret")
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, errInvalidClient(true)
		}
		// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return nil, errInvalidClient(true)
		}
		if fid, ok := f["client_id"]; ok && fid != id {
			return nil, errInvalidRequest("client_id does not match the Basic credentials")
		}
		basic, hasSecret = true, secret != ""
	} else {
		id = f["client_id"]
		secret, hasSecret = f["client_secret"]
		if id == "" {
			return nil, errInvalidClient(false)
		}
	}
	c, err := s.lookupClient(r.Context(), id)
	if err != nil {
		return nil, errServer(err)
	}
	if c != nil && c.public() {
		// A public client names itself; it may not send a secret (many libraries send an
		// empty Basic password, which is no secret).
		if hasSecret {
			return nil, errInvalidClient(basic)
		}
		return c, nil
	}
	ctx := r.Context()
	allowed, err := s.clientAuthAllowed(ctx, c, ip)
	if err != nil {
		return nil, errServer(err)
	}
	check := c
	if check == nil {
		check = dummy // same work as a known client
	}
	if ok := check.checkSecret(secret); !ok || c == nil || !hasSecret || !allowed {
		if allowed {
			s.clientAuthFailed(ctx, c, ip)
		} else {
			s.throttled(r, c, limitClientAuth)
		}
		return nil, errInvalidClient(basic)
	}
	return c, nil
}

// dummy is checked against when the client is unknown, so an unknown id costs the same as a
// wrong secret.
var dummy = newClient(Client{ID: "\x00", Secret: "\x00dummy"})

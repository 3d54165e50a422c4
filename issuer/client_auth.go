package issuer

import (
	"net/http"
	"net/url"
	"strings"
)

// authenticateClient identifies and authenticates the client of a token-endpoint request
// (RFC 6749 §2.3.1) by client_secret_basic or client_secret_post, never both. A public client
// identifies itself with client_id alone and must not send a secret. Every failure is the same
// invalid_client (401), with a Basic challenge when Basic was tried.
func (s *Server) authenticateClient(r *http.Request, f form) (*client, *Error) {
	if auth := r.Header.Get("Authorization"); len(auth) >= 6 && strings.EqualFold(auth[:6], "basic ") {
		return s.authenticateBasic(r, f)
	}
	id := f["client_id"]
	if id == "" {
		return nil, errInvalidClient(false)
	}
	c := s.clients[id]
	secret, hasSecret := f["client_secret"]
	switch {
	case c == nil:
		dummy.checkSecret(secret) // same work as a known client
		return nil, errInvalidClient(false)
	case c.public():
		if hasSecret {
			return nil, errInvalidClient(false)
		}
		return c, nil
	case !hasSecret || !c.checkSecret(secret):
		return nil, errInvalidClient(false)
	}
	return c, nil
}

func (s *Server) authenticateBasic(r *http.Request, f form) (*client, *Error) {
	if _, ok := f["client_secret"]; ok {
		return nil, errInvalidRequest("use one client authentication method, not both Basic and client_secret")
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, errInvalidClient(true)
	}
	// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil {
		return nil, errInvalidClient(true)
	}
	if fid, ok := f["client_id"]; ok && fid != id {
		return nil, errInvalidRequest("client_id does not match the Basic credentials")
	}
	c := s.clients[id]
	if c == nil {
		dummy.checkSecret(secret)
		return nil, errInvalidClient(true)
	}
	if c.public() && secret == "" {
		return c, nil // a public client naming itself in Basic with an empty password, as many libraries do
	}
	if !c.checkSecret(secret) {
		return nil, errInvalidClient(true)
	}
	return c, nil
}

// dummy is checked against when the client is unknown, so an unknown id costs the same as a
// wrong secret.
var dummy = newClient(Client{ID: "\x00", Secret: "\x00dummy"})

package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// authenticateClient identifies and authenticates the client of a token-endpoint request
// (RFC 6749 §2.3.1) by client_secret_basic or client_secret_post, never both, or by a client
// assertion (private_key_jwt, authenticateAssertion). A public client
// identifies itself with client_id alone and must not send a secret. Every failure is the same
// invalid_client (401), with a Basic challenge when Basic was tried. Failed secrets are
// counted per client and address ip (the request's clientIP); past the limit, that address is
// refused for that client before its secret is looked at.
func (s *Server) authenticateClient(r *http.Request, f form, ip string) (*client, *Error) {
	if _, ok := f["client_assertion"]; ok {
		return s.authenticateAssertion(r, f, ip)
	}
	if _, ok := f["client_assertion_type"]; ok {
		return nil, errInvalidRequest("client_assertion_type without client_assertion")
	}
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
	c, err := s.lookupClientFor(r, id)
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
	if c.authMethod != "" && (c.authMethod == authMethodBasic) != basic {
		// A registered client authenticates the way it registered (RFC 7591 §2): a secret
		// registered for Basic is not also accepted in the body, nor the other way round.
		return nil, errInvalidClient(basic)
	}
	return c, nil
}

// dummy is checked against when the client is unknown, so an unknown id costs the same as a
// wrong secret.
var dummy = newClient(Client{ID: "\x00", Secret: "\x00dummy"})

// clientAssertionType is the client_assertion_type of a JWT client assertion (RFC 7523 §2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Bounds of a client assertion's times.
const (
	// assertionLeeway is the clock skew allowed for exp, nbf and iat.
	assertionLeeway = 30 * time.Second
	// maxAssertionLifetime is how far ahead an assertion's exp may be: assertions are made
	// for one request, and each jti is remembered until its exp.
	maxAssertionLifetime = 5 * time.Minute
	// maxAssertionLen bounds the assertion read.
	maxAssertionLen = 8192
)

// authenticateAssertion authenticates a client by a JWT assertion signed with one of its keys
// (private_key_jwt: RFC 7523 §2.2 and §3, OpenID Connect Core §9). The client is client_id,
// else the assertion's iss (read unverified only to find the client). The assertion must be
// signed with an asymmetric algorithm of assertionAlgs by one of the client's assertionKeys,
// have iss and sub equal to the client id, an aud naming the issuer or its token endpoint, an
// exp at most maxAssertionLifetime ahead, nbf and iat (when present) not in the future, and a
// jti used only once (remembered in the store until exp, so on every node). Sending a secret
// as well is invalid_request; every other failure is invalid_client, counted like a wrong
// secret.
func (s *Server) authenticateAssertion(r *http.Request, f form, ip string) (*client, *Error) {
	if _, ok := f["client_secret"]; ok || r.Header.Get("Authorization") != "" {
		return nil, errInvalidRequest("use one client authentication method, not a client_assertion and a secret")
	}
	if f["client_assertion_type"] != clientAssertionType {
		return nil, errInvalidRequest("client_assertion_type must be " + clientAssertionType)
	}
	raw := f["client_assertion"]
	id := f["client_id"]
	if id == "" && len(raw) <= maxAssertionLen {
		var claims jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err == nil {
			id = claims.Issuer
		}
	}
	if id == "" {
		return nil, errInvalidClient(false)
	}
	ctx := r.Context()
	c, err := s.lookupClientFor(r, id)
	if err != nil {
		return nil, errServer(err)
	}
	allowed, err := s.clientAuthAllowed(ctx, c, ip)
	if err != nil {
		return nil, errServer(err)
	}
	if !allowed {
		s.throttled(r, c, limitClientAuth)
		return nil, errInvalidClient(false)
	}
	fail := func() (*client, *Error) {
		s.clientAuthFailed(ctx, c, ip)
		return nil, errInvalidClient(false)
	}
	if c == nil || !c.hasKeys() || len(raw) > maxAssertionLen {
		return fail() // unknown, public, or authenticating with a secret
	}
	claims, ok := s.verifyAssertion(ctx, c, raw)
	if !ok {
		return fail()
	}
	switch err := s.state.UseAssertion(ctx, c.ID, claims.ID, claims.ExpiresAt.Add(assertionLeeway)); {
	case errors.Is(err, state.ErrAssertionReplayed):
		return fail()
	case err != nil:
		return nil, errServer(err)
	}
	return c, nil
}

// verifyAssertion checks a client assertion's signature and claims for client c, with the
// keys it has (client.keysFor: a jwks_uri is fetched again for a kid it lacks).
func (s *Server) verifyAssertion(ctx context.Context, c *client, raw string) (*jwt.RegisteredClaims, bool) {
	var claims jwt.RegisteredClaims
	_, err := jwt.NewParser(jwt.WithValidMethods(assertionAlgs), jwt.WithLeeway(assertionLeeway),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(c.ID), jwt.WithSubject(c.ID),
	).ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return verificationKeys(c.keysFor(ctx, kid), kid, t.Method.Alg())
	})
	if err != nil || claims.ID == "" || claims.ExpiresAt == nil ||
		claims.ExpiresAt.After(time.Now().Add(maxAssertionLifetime+assertionLeeway)) {
		return nil, false
	}
	// RFC 7523 §3: the audience identifies the authorization server; the issuer identifier or
	// the token endpoint's URL (OpenID Connect Core §9).
	if !slices.ContainsFunc(claims.Audience, func(a string) bool {
		return a == s.issuer || a == s.issuer+"/" || a == s.endpoint(PathToken)
	}) {
		return nil, false
	}
	return &claims, true
}

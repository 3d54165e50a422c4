package issuer

import (
	"errors"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// PathRevoke is the token revocation endpoint (RFC 7009).
const PathRevoke = "/oauth2/revoke"

// serveRevoke revokes a refresh token (its whole family and the access tokens it issued) or
// an access token (its jti goes on the deny-list until it expires, which the edge honours at
// once). Confidential clients authenticate; public ones name themselves with client_id (RFC
// 7009 §2.1). A token the server does not know gets 200, as RFC 7009 §2.2 says; a token of
// another client is refused.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	c, tr, e := s.tokenAPIRequest(w, r, true)
	if e == nil {
		e = s.revoke(r, c, tr.token)
	}
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revoke finds the token by its shape, whatever token_type_hint says (RFC 7009 §2.1: a wrong
// hint must not stop the search): access tokens are JWTs, refresh tokens have no dot.
func (s *Server) revoke(r *http.Request, c *client, token string) *Error {
	if strings.Count(token, ".") == 2 {
		return s.revokeJWT(r, c, token)
	}
	switch user, err := s.state.RevokeToken(r.Context(), token, c.ID); {
	case errors.Is(err, state.ErrOtherClient):
		return errUnauthorizedClient("the token was issued to another client")
	case err != nil:
		return errServer(err)
	case user != "":
		s.audit(r, AuditTokenRevoked, clientField(c), subField(user), zap.String("kind", "refresh_token"))
	}
	return nil
}

// revokeJWT puts one of this issuer's access tokens on the deny-list. The signature must be
// ours (so nobody can fill the deny-list with made-up ids); expiry does not matter.
func (s *Server) revokeJWT(r *http.Request, c *client, token string) *Error {
	var claims accesstoken.Claims
	_, err := jwt.ParseWithClaims(token, &claims, s.keys.Keyfunc, jwt.WithValidMethods([]string{s.cfg.SigningAlg}),
		jwt.WithIssuer(s.issuer), jwt.WithoutClaimsValidation())
	if err != nil || claims.ExpiresAt == nil {
		return nil // not ours: nothing to revoke
	}
	if claims.ClientID != c.ID {
		return errUnauthorizedClient("the token was issued to another client")
	}
	if err := s.state.Deny(r.Context(), claims.ID, claims.ExpiresAt.Time); err != nil {
		return errServer(err)
	}
	s.audit(r, AuditTokenRevoked, clientField(c), subField(claims.Subject), zap.String("kind", "access_token"), zap.String("jti", claims.ID))
	return nil
}

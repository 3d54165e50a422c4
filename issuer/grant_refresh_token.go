package issuer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// refreshToken is the Refresh Token grant (RFC 6749 §6) with rotation on every use
// (state.Rotate): one atomic step of the family's record rotates the token, records the new
// access token, or — for a token already rotated — revokes the family and every access token
// it issued (RFC 9700 §4.14.2), unless it is a duplicate within refresh_reuse_grace, which
// gets the same successor again. Families never fork, and no access token a family issued
// escapes its revocation, however the requests race and on whichever nodes.
type refreshToken struct{ s *Server }

// errUserGone aborts the refresh of a family whose user was removed from the configuration.
var errUserGone = errors.New("the user no longer exists")

func (g refreshToken) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s, c := g.s, req.client
	presented := req.form["refresh_token"]
	if presented == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	id := s.newTokenID(time.Now())
	var scopeErr, targetErr *Error
	rot, err := s.state.Rotate(ctx, state.RotateRequest{Token: presented, ClientID: c.ID, JTI: id.jti, Exp: id.exp, Now: id.iat,
		Scopes: func(granted []string) ([]string, error) {
			// The client's scopes of today count too: a scope removed from its configuration
			// is not refreshed.
			scopes, e := c.grantScopes(req.form["scope"], scopeGrant{granted: granted})
			if scopeErr = e; e != nil {
				return nil, e
			}
			return scopes, nil
		},
		// RFC 8707 §2.2: a refresh may narrow the family's resources for its access token,
		// never widen them; the family keeps its own.
		Resources: func(granted []string) ([]string, error) {
			aud, e := c.grantAudience(req.resources, granted)
			if targetErr = e; e != nil {
				return nil, e
			}
			return aud, nil
		},
		User: func(user string) error {
			u, err := s.lookupUser(ctx, user)
			if err != nil {
				return err
			}
			if u == nil {
				return errUserGone
			}
			return nil
		},
		JKT: req.jkt})
	switch {
	case scopeErr != nil:
		return nil, scopeErr
	case targetErr != nil:
		return nil, targetErr
	case errors.Is(err, errUserGone):
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	case errors.Is(err, state.ErrDPoPKey):
		// RFC 9449 §5: a bound refresh token is used only with a proof of its key.
		return nil, errInvalidDPoPProof("the refresh token is bound to another DPoP key")
	case errors.Is(err, state.ErrOtherClient):
		return nil, errInvalidGrant("the refresh token was issued to another client")
	case errors.Is(err, state.ErrReused):
		s.log.Warn("refresh token reused; revoked its family", zap.String("client_id", c.ID), zap.String("sub", rot.Family.User))
		s.refreshReused(req.r, c, rot.Family.User)
		return nil, errInvalidGrant("the refresh token was already used; the session is revoked")
	case errors.Is(err, state.ErrInvalidToken):
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	case err != nil:
		return nil, errServer(err)
	}
	f := rot.Family
	m, err := s.mint(ctx, mintInput{grantOf: grantOf{client: c, user: f.User, scopes: rot.Scopes, authTime: f.AuthTime, audience: rot.Audience, jkt: req.jkt, person: true},
		id: id, accessToken: true, idToken: slices.Contains(rot.Scopes, "openid")})
	if err != nil {
		return nil, errServer(err)
	}
	return &tokenResponse{AccessToken: m.accessToken, TokenType: tokenType(req.jkt), ExpiresIn: m.expiresIn,
		RefreshToken: rot.Token, IDToken: m.idToken, Scope: strings.Join(rot.Scopes, " "), sub: f.User, jti: id.jti}, nil
}

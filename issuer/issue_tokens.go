package issuer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// grantOf is what a grant hands out tokens for: a user's authorization of a client (or, for
// client credentials, the client's own).
type grantOf struct {
	client   *client
	user     string // the subject
	scopes   []string
	authTime int64  // Unix seconds; 0 when unknown
	nonce    string // for the ID token of the code flow
	// audience is the access token's "aud" (grantAudience); empty means the client's audiences.
	audience []string
	// resources are what a refresh family started by the grant records (recordedResources).
	resources []string
	// act is the actor of a token exchange (RFC 8693 §4.1), the access token's "act"; nil
	// otherwise.
	act *accesstoken.Actor
	// jkt binds the access token (cnf.jkt) and a refresh family the grant starts to a DPoP
	// key (RFC 9449); "" for bearer tokens: the token request's proof (tokenRequest.jkt).
	jkt string
	// person says that user is a person who signed in (not a client acting for itself), so
	// the access token carries the user's claims that the scopes release (RFC 9068 §2.2.3.1).
	// Set explicitly by the grants that sign a person in, never inferred from the name: a
	// local user named like a client must not lend its claims to that client's tokens.
	person bool
}

// wantsRefreshToken reports whether a grant issues a refresh token: the client must have the
// refresh_token grant and offline_access must have been granted.
func wantsRefreshToken(c *client, scopes []string) bool {
	return c.grants[GrantRefreshToken] && slices.Contains(scopes, "offline_access")
}

// issueTokens answers a grant at the token endpoint: the access token id names, a refresh
// token when wantsRefreshToken (starting family familyID, chosen before by a redemption, or a
// new one), and an ID token for openid.
func (s *Server) issueTokens(ctx context.Context, g grantOf, id tokenID, familyID string) (*tokenResponse, *Error) {
	resp := &tokenResponse{TokenType: tokenType(g.jkt), Scope: strings.Join(g.scopes, " "), sub: g.user, jti: id.jti}
	if wantsRefreshToken(g.client, g.scopes) {
		if familyID == "" {
			familyID, _ = state.NewFamilyKey()
		}
		f := state.Family{ClientID: g.client.ID, User: g.user, Scopes: g.scopes, Resources: g.resources, AuthTime: g.authTime,
			Created: id.iat.UnixNano(), Expires: id.iat.Add(time.Duration(s.cfg.RefreshTokenTTL)).Unix(),
			Tokens: []state.IssuedAT{{JTI: id.jti, Exp: id.exp.Unix()}}, JKT: g.jkt}
		rt, err := s.state.StartFamily(ctx, familyID, f, id.iat)
		if errors.Is(err, state.ErrInvalidToken) {
			return nil, errInvalidGrant("the code was already used") // revoked by a racing replay
		} else if err != nil {
			return nil, errServer(err)
		}
		resp.RefreshToken = rt
	}
	m, err := s.mint(ctx, mintInput{grantOf: g, id: id, accessToken: true, idToken: slices.Contains(g.scopes, "openid")})
	if err != nil {
		return nil, errServer(err)
	}
	resp.AccessToken, resp.ExpiresIn, resp.IDToken = m.accessToken, m.expiresIn, m.idToken
	return resp, nil
}

// redeemOnce issues the tokens of a single-use credential exactly once (state.Redeem): the
// access token and refresh family are chosen first and recorded in the redemption, so a second
// redemption, racing or later, revokes exactly what the first gets, whichever finishes first.
func (s *Server) redeemOnce(ctx context.Context, req *tokenRequest, kind state.Credential, secret string, ttl time.Duration, g grantOf) (*tokenResponse, *Error) {
	id := s.newTokenID(time.Now())
	red := state.Redemption{ClientID: g.client.ID, JTI: id.jti, ExpiresAt: id.exp.Unix()}
	var familyID string
	if wantsRefreshToken(g.client, g.scopes) {
		familyID, red.Family = state.NewFamilyKey()
	}
	switch err := s.state.Redeem(ctx, kind, secret, red, ttl); {
	case errors.Is(err, state.ErrRedeemed):
		s.log.Warn("single-use code redeemed twice; revoked the tokens it issued",
			zap.String("kind", kind.String()), zap.String("client_id", g.client.ID))
		s.codeReused(req.r, kind, g.client, g.user)
		return nil, errInvalidGrant("the code was already used")
	case err != nil:
		return nil, errServer(err)
	}
	g.jkt = req.jkt
	return s.issueTokens(ctx, g, id, familyID)
}

// replayed answers a credential that is no longer there: if c redeemed it, what it issued is
// revoked now (a late replay); either way the answer is invalid_grant with msg.
func (s *Server) replayed(ctx context.Context, req *tokenRequest, kind state.Credential, secret, msg string) *Error {
	red, err := s.state.RevokeRedeemed(ctx, kind, secret, req.client.ID)
	if err != nil {
		return errServer(err)
	}
	if red != nil {
		s.log.Warn("single-use code redeemed twice; revoked the tokens it issued",
			zap.String("kind", kind.String()), zap.String("client_id", req.client.ID))
		s.codeReused(req.r, kind, req.client, "")
	}
	return errInvalidGrant(msg)
}

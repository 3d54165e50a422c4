package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// grantOf is what a grant hands out tokens for: a user's authorization of a client.
type grantOf struct {
	client   *client
	user     string
	scopes   []string
	authTime int64  // Unix seconds; 0 when unknown
	nonce    string // for the ID token of the code flow
}

// redemption is what one single-use credential (authorization code, device code) issued, so
// a replay can revoke it (RFC 6749 §4.1.2).
type redemption struct {
	JTI       string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
	Family    string `json:"family,omitempty"`
}

// issueTokens mints the tokens of a grant: the access token (with id jti, when chosen
// before), a refresh token when wantsRefreshToken (starting family familyID, or a new one),
// and an ID token for openid.
func (s *Server) issueTokens(ctx context.Context, g grantOf, jti, familyID string) (*tokenResponse, *Error) {
	if jti == "" {
		jti = randomToken()
	}
	exp := s.accessTokenExpiry()
	at, err := s.mintAccessToken(g.client, g.user, g.scopes, unixTime(g.authTime), jti)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &tokenResponse{AccessToken: at.raw, TokenType: "Bearer", ExpiresIn: at.expiresIn, Scope: strings.Join(g.scopes, " ")}
	if wantsRefreshToken(g.client, g.scopes) {
		if familyID == "" {
			familyID = newFamilyID()
		}
		if resp.RefreshToken, err = s.issueRefreshToken(ctx, g.client, familyID, g.user, g.scopes, g.authTime,
			issuedAT{JTI: jti, Exp: exp.Unix()}); err != nil {
			return nil, errServer(err)
		}
	}
	if contains(g.scopes, "openid") {
		if resp.IDToken, err = s.mintIDToken(idTokenInput{client: g.client, user: g.user, authTime: g.authTime,
			nonce: g.nonce, scopes: g.scopes, accessToken: at.raw}); err != nil {
			return nil, errServer(err)
		}
	}
	return resp, nil
}

// redeemOnce issues the tokens of a single-use credential exactly once: the first redemption
// atomically creates the redemption record under key in bucket b (kept for ttl); a second,
// racing or later, finds it, is refused with invalid_grant, and revokes what the first got.
func (s *Server) redeemOnce(ctx context.Context, b store.Bucket, key string, ttl time.Duration, g grantOf) (*tokenResponse, *Error) {
	red := redemption{JTI: randomToken(), ExpiresAt: s.accessTokenExpiry().Unix()}
	if wantsRefreshToken(g.client, g.scopes) {
		red.Family = newFamilyID()
	}
	raw, _ := json.Marshal(red)
	switch err := s.store.Create(ctx, b, key, raw, ttl); {
	case errors.Is(err, store.ErrExists):
		if e := s.revokeRedeemed(ctx, b, key); e != nil {
			return nil, e
		}
		return nil, errInvalidGrant("the code was already used")
	case err != nil:
		return nil, errServer(err)
	}
	return s.issueTokens(ctx, g, red.JTI, red.Family)
}

// revokeRedeemed revokes what a redeemed credential issued, if it was redeemed: its access
// token and its refresh family.
func (s *Server) revokeRedeemed(ctx context.Context, b store.Bucket, key string) *Error {
	red, err := getJSON[redemption](ctx, s.store, b, key)
	if err != nil {
		return errServer(err)
	} else if red == nil {
		return nil
	}
	s.log.Warn("single-use code redeemed twice; revoking the tokens it issued", zap.String("kind", string(b)))
	if err := s.revokeAccessToken(ctx, red.JTI, unixTime(red.ExpiresAt)); err != nil {
		return errServer(err)
	}
	if red.Family != "" {
		if err := s.revokeFamily(ctx, red.Family); err != nil {
			return errServer(err)
		}
	}
	return nil
}

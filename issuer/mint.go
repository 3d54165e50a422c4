package issuer

import (
	"context"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

// tokenID is an access token chosen before it is minted: its jti, and its issue and expiry
// times from one clock reading, so what is recorded first (a redemption, a family, the
// deny-list) names exactly the token that is minted afterwards.
type tokenID struct {
	jti      string
	iat, exp time.Time
}

// newTokenID picks the id of an access token issued at now.
func (s *Server) newTokenID(now time.Time) tokenID {
	return tokenID{jti: state.NewID(), iat: now, exp: now.Add(time.Duration(s.cfg.AccessTokenTTL)).Truncate(time.Second)}
}

// mintInput is what one mint signs.
type mintInput struct {
	grantOf
	id          tokenID
	accessToken bool // sign the access token id names
	idToken     bool // sign an ID token (with at_hash when the access token is signed too)
}

// minted is what mint signed.
type minted struct {
	accessToken string
	expiresIn   int64
	idToken     string
}

// mint signs the tokens of a grant: the one path every flow (token endpoint, implicit) takes
// to an access token (RFC 9068) and an ID token (OpenID Connect Core §2).
func (s *Server) mint(ctx context.Context, in mintInput) (minted, error) {
	var out minted
	// The person's claims, read once for both tokens: a store read for an upstream's user.
	var userClaims map[string]string
	if in.person || in.idToken {
		u, err := s.lookupUser(ctx, in.user)
		if err != nil {
			return out, err
		}
		if u != nil {
			userClaims = u.Claims
		}
	}
	if in.accessToken {
		aud := in.audience
		if len(aud) == 0 {
			aud = in.client.audience()
		}
		claims := &accesstoken.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer:    s.issuer,
				Subject:   in.user,
				Audience:  aud,
				ExpiresAt: jwt.NewNumericDate(in.id.exp),
				IssuedAt:  jwt.NewNumericDate(in.id.iat),
				ID:        in.id.jti,
			},
			ClientID: in.client.ID,
			Scope:    strings.Join(in.scopes, " "),
			AuthTime: in.authTime,
			Act:      in.act,
		}
		if in.jkt != "" {
			claims.Cnf = &accesstoken.Confirmation{JKT: in.jkt} // RFC 9449 §6.1
		}
		var signed jwt.Claims = claims
		if in.person {
			// RFC 9068 §2.2.3.1: the person's claims the scopes release, as in the ID token.
			if extra := accessTokenClaims(userClaims, in.scopes); len(extra) > 0 {
				signed = withClaims{claims, extra}
			}
		}
		raw, err := s.keys.Sign(s.cfg.SigningAlg, accesstoken.HeaderType, signed)
		if err != nil {
			return out, err
		}
		out.accessToken = raw
		out.expiresIn = int64(time.Duration(s.cfg.AccessTokenTTL) / time.Second)
	}
	if in.idToken {
		raw, err := s.mintIDToken(idTokenInput{client: in.client, user: in.user, userClaims: userClaims, authTime: in.authTime,
			nonce: in.nonce, scopes: in.scopes, accessToken: out.accessToken, iat: in.id.iat, exp: in.id.exp})
		if err != nil {
			return out, err
		}
		out.idToken = raw
	}
	return out, nil
}

// redemptionTTL is how long a redeemed code is remembered for replay detection: as long as
// anything it issued may live.
func (s *Server) redemptionTTL() time.Duration {
	return time.Duration(max(s.cfg.AccessTokenTTL, s.cfg.RefreshTokenTTL, s.cfg.CodeTTL))
}

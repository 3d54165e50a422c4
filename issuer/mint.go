package issuer

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// accessToken is a freshly signed access token.
type accessToken struct {
	raw       string
	jti       string
	expiresIn int64
}

// mintAccessToken signs an RFC 9068 access token for subject, issued to c with scopes. jti is
// the token's id, chosen by the caller when it must be recorded first; "" picks a random one.
func (s *Server) mintAccessToken(c *client, subject string, scopes []string, authTime time.Time, jti string) (*accessToken, error) {
	now := time.Now()
	if jti == "" {
		jti = randomToken()
	}
	aud := c.Audience
	if len(aud) == 0 {
		aud = []string{c.ID}
	}
	claims := &accesstoken.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   subject,
			Audience:  aud,
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTokenTTL).Truncate(time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		ClientID: c.ID,
		Scope:    strings.Join(scopes, " "),
	}
	if !authTime.IsZero() {
		claims.AuthTime = authTime.Unix()
	}
	raw, err := s.keys.Sign(s.cfg.SigningAlg, accesstoken.HeaderType, claims)
	if err != nil {
		return nil, err
	}
	return &accessToken{raw: raw, jti: jti, expiresIn: int64(s.cfg.AccessTokenTTL / time.Second)}, nil
}

// accessTokenExpiry is when an access token minted now expires.
func (s *Server) accessTokenExpiry() time.Time {
	return time.Now().Add(s.cfg.AccessTokenTTL).Truncate(time.Second)
}

// redemptionTTL is how long a redeemed code is remembered for replay detection: as long as
// anything it issued may live.
func (s *Server) redemptionTTL() time.Duration {
	return max(s.cfg.AccessTokenTTL, s.cfg.RefreshTokenTTL, s.cfg.CodeTTL)
}

// unixTime converts a stored Unix time; zero stays the zero time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// randomToken returns 128 random bits, base64url-encoded: for jti values, codes and tokens.
func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

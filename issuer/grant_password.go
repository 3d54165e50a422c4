package issuer

import (
	"context"
	"strings"
	"time"
)

// password is the Resource Owner Password Credentials grant (RFC 6749 §4.3), only for clients
// configured with `grants password`. It shares the user directory and the brute-force
// throttling of the login page (per user and per client IP), so the token endpoint is no
// password oracle: wrong credentials, unknown users and throttled attempts all get the same
// invalid_grant.
type password struct{ s *Server }

func (g password) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s, c := g.s, req.client
	name, pw := req.form["username"], req.form["password"]
	if name == "" || pw == "" {
		return nil, errInvalidRequest("username and password are required")
	}
	scopes, e := c.grantedScopes(req.form["scope"], []string{"openid", "offline_access"}, nil)
	if e != nil {
		return nil, e
	}
	throttled, err := s.loginThrottled(ctx, name, req.ip)
	if err != nil {
		return nil, errServer(err)
	}
	if throttled {
		return nil, errInvalidGrant("the username or password is incorrect, or too many attempts were made")
	}
	user, ok := s.users.Authenticate(name, pw)
	if !ok {
		s.loginFailed(ctx, name, req.ip)
		return nil, errInvalidGrant("the username or password is incorrect, or too many attempts were made")
	}
	authTime := time.Now().Unix()
	jti := randomToken()
	exp := s.accessTokenExpiry()
	at, err := s.mintAccessToken(c, user.Name, scopes, unixTime(authTime), jti)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &tokenResponse{AccessToken: at.raw, TokenType: "Bearer", ExpiresIn: at.expiresIn, Scope: strings.Join(scopes, " ")}
	if contains(scopes, "openid") {
		if resp.IDToken, err = s.mintIDToken(idTokenInput{client: c, user: user.Name, authTime: authTime,
			scopes: scopes, accessToken: at.raw}); err != nil {
			return nil, errServer(err)
		}
	}
	if wantsRefreshToken(c, scopes) {
		if resp.RefreshToken, err = s.issueRefreshToken(ctx, c, newFamilyID(), user.Name, scopes, authTime,
			issuedAT{JTI: jti, Exp: exp.Unix()}); err != nil {
			return nil, errServer(err)
		}
	}
	return resp, nil
}

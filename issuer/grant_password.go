package issuer

import (
	"context"
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
	return s.issueTokens(ctx, grantOf{client: c, user: user.Name, scopes: scopes, authTime: time.Now().Unix()}, "", "")
}

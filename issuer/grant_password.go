package issuer

import (
	"context"
	"time"
)

// password is the Resource Owner Password Credentials grant (RFC 6749 §4.3), only for clients
// configured with `grants password`. It shares the user directory and the brute-force
// throttles of the sign-in page (signIn), so the token endpoint is no password oracle: wrong
// credentials, unknown users and refused attempts all get the same invalid_grant.
type password struct{ s *Server }

func (g password) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s, c := g.s, req.client
	name, pw := req.form["username"], req.form["password"]
	if name == "" || pw == "" {
		return nil, errInvalidRequest("username and password are required")
	}
	scopes, e := c.grantScopes(req.form["scope"], scopeGrant{notByDefault: []string{"openid", "offline_access"}})
	if e != nil {
		return nil, e
	}
	aud, e := c.grantAudience(req.resources, nil)
	if e != nil {
		return nil, e
	}
	user, refused, err := s.signIn(ctx, name, pw, req.ip)
	if err != nil {
		return nil, errServer(err)
	}
	if user == nil {
		s.signInFailed(req.r, c, methodPasswordGrant, refused)
		return nil, errInvalidGrant("the username or password is incorrect, or too many attempts were made")
	}
	s.audit(req.r, AuditPasswordGrant, clientField(c), subField(user.Name))
	now := time.Now()
	return s.issueTokens(ctx, grantOf{client: c, user: user.Name, scopes: scopes, authTime: now.Unix(),
		audience: aud, resources: recordedResources(req.resources, aud), jkt: req.jkt, person: true}, s.newTokenID(now), "")
}

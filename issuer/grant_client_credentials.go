package issuer

import (
	"context"
	"strings"
	"time"
)

// clientCredentials is the Client Credentials grant (RFC 6749 §4.4): a confidential client
// gets an access token for itself. No refresh token is issued (§4.4.3) and no user is involved,
// so the OpenID and offline scopes are refused. The token's "sub" is the client ID
// (RFC 9068 §2.2).
type clientCredentials struct{ s *Server }

var userOnlyScopes = []string{"openid", "offline_access", "profile", "email"}

func (g clientCredentials) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	if req.client.public() {
		return nil, errUnauthorizedClient("client_credentials needs a confidential client")
	}
	scopes, e := req.client.grantScopes(req.form["scope"], scopeGrant{refused: userOnlyScopes})
	if e != nil {
		return nil, e
	}
	aud, e := req.client.grantAudience(req.resources, nil)
	if e != nil {
		return nil, e
	}
	id := g.s.newTokenID(time.Now())
	m, err := g.s.mint(ctx, mintInput{grantOf: grantOf{client: req.client, user: req.client.ID, scopes: scopes, audience: aud, jkt: req.jkt},
		id: id, accessToken: true})
	if err != nil {
		return nil, errServer(err)
	}
	return &tokenResponse{AccessToken: m.accessToken, TokenType: tokenType(req.jkt), ExpiresIn: m.expiresIn,
		Scope: strings.Join(scopes, " "), sub: req.client.ID, jti: id.jti}, nil
}

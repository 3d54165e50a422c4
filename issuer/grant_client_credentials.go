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

func (g clientCredentials) handle(_ context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	if req.client.public() {
		return nil, errUnauthorizedClient("client_credentials needs a confidential client")
	}
	scopes, e := req.client.grantedScopes(req.form["scope"], nil, userOnlyScopes)
	if e != nil {
		return nil, e
	}
	at, err := g.s.mintAccessToken(req.client, req.client.ID, scopes, time.Time{}, "")
	if err != nil {
		return nil, errServer(err)
	}
	return &tokenResponse{AccessToken: at.raw, TokenType: "Bearer", ExpiresIn: at.expiresIn,
		Scope: strings.Join(scopes, " ")}, nil
}

package issuer

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// issueAuthorization creates what the response type asks for once the user has signed in and
// consented: a code, or (implicit) an access token and/or ID token.
func (s *Server) issueAuthorization(r *http.Request, req *authRequest, c *client, sess *state.Session) (url.Values, *Error) {
	ctx, params := r.Context(), url.Values{}
	if req.IssuesCode() {
		code := state.NewSecret()
		rec := state.Code{ClientID: c.ID, RedirectURI: req.RedirectURI, RedirectGiven: req.RedirectGiven, Challenge: req.Challenge,
			Nonce: req.Nonce, Scopes: req.Scopes, Resources: req.Resources, User: sess.User, AuthTime: sess.AuthTime,
			DPoPJKT: req.DPoPJKT}
		if err := s.state.PutCode(ctx, code, rec, time.Duration(s.cfg.CodeTTL)); err != nil {
			return nil, errServer(err)
		}
		params.Set("code", code)
		return params, nil
	}
	var aud []string
	if req.IssuesToken() {
		var e *Error
		if aud, e = c.grantAudience(nil, req.Resources); e != nil {
			return nil, e
		}
	}
	id := s.newTokenID(time.Now())
	m, err := s.mint(r.Context(), mintInput{grantOf: grantOf{client: c, user: sess.User, scopes: req.Scopes, authTime: sess.AuthTime, nonce: req.Nonce, audience: aud, person: true},
		id: id, accessToken: req.IssuesToken(), idToken: req.IssuesIDToken()})
	if err != nil {
		return nil, errServer(err)
	}
	if m.accessToken == "" {
		id.jti = "" // an ID token alone has no jti
	}
	s.tokenIssued(r, GrantImplicit, c, sess.User, strings.Join(req.Scopes, " "), id.jti, false)
	if m.accessToken != "" {
		params.Set("access_token", m.accessToken)
		params.Set("token_type", "Bearer")
		params.Set("expires_in", strconv.FormatInt(m.expiresIn, 10))
		params.Set("scope", strings.Join(req.Scopes, " "))
	}
	if m.idToken != "" {
		params.Set("id_token", m.idToken)
	}
	return params, nil
}

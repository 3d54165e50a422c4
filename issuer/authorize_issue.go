package issuer

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// bucketCodes holds authorization codes by hash until they are redeemed or expire.
const bucketCodes = "authorization_codes"

// codeRecord is what an authorization code stands for (RFC 6749 §4.1.2: bound to the client,
// the redirect URI, and here also the PKCE challenge, nonce, scopes, user and auth_time).
type codeRecord struct {
	ClientID    string `json:"client_id"`
	RedirectURI string `json:"redirect_uri"`
	// RedirectGiven says the authorization request named the redirect URI, so the token
	// request must repeat it (RFC 6749 §4.1.3).
	RedirectGiven bool     `json:"redirect_given,omitempty"`
	Challenge     string   `json:"code_challenge,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	Scopes        []string `json:"scopes"`
	User          string   `json:"user"`
	AuthTime      int64    `json:"auth_time"`
}

// issueAuthorization creates what the response type asks for once the user has signed in and
// consented: a code, or (implicit) an access token and/or ID token.
func (s *Server) issueAuthorization(ctx context.Context, req *authRequest, c *client, sess *session) (url.Values, *Error) {
	params := url.Values{}
	if req.issuesCode() {
		code := randomSecret()
		raw, _ := json.Marshal(codeRecord{ClientID: c.ID, RedirectURI: req.RedirectURI, RedirectGiven: req.RedirectGiven, Challenge: req.Challenge,
			Nonce: req.Nonce, Scopes: req.Scopes, User: sess.User, AuthTime: sess.AuthTime})
		if err := s.store.Put(ctx, bucketCodes, hashKey(code), raw, s.cfg.CodeTTL); err != nil {
			return nil, errServer(err)
		}
		params.Set("code", code)
		return params, nil
	}
	var accessToken string
	if req.issuesToken() {
		at, err := s.mintAccessToken(c, sess.User, req.Scopes, unixTime(sess.AuthTime), "")
		if err != nil {
			return nil, errServer(err)
		}
		accessToken = at.raw
		params.Set("access_token", at.raw)
		params.Set("token_type", "Bearer")
		params.Set("expires_in", strconv.FormatInt(at.expiresIn, 10))
		params.Set("scope", strings.Join(req.Scopes, " "))
	}
	if req.issuesIDToken() {
		idt, err := s.mintIDToken(idTokenInput{client: c, user: sess.User, authTime: sess.AuthTime,
			nonce: req.Nonce, scopes: req.Scopes, accessToken: accessToken})
		if err != nil {
			return nil, errServer(err)
		}
		params.Set("id_token", idt)
	}
	return params, nil
}

package issuer

import (
	"context"
	"net/http"
)

// tokenRequest is a parsed, client-authenticated token-endpoint request, handed to a grant.
type tokenRequest struct {
	form      form
	client    *client
	grantType string
	ip        string // the client's address, for throttling
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// grant handles one grant type at the token endpoint. The endpoint has already parsed the
// form, authenticated the client and checked that the client may use the grant.
type grant interface {
	handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error)
}

// serveToken is the token endpoint (RFC 6749 §3.2).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, e := s.token(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, *Error) {
	f, e := parsePostForm(w, r)
	if e != nil {
		return nil, e
	}
	gt := f["grant_type"]
	if gt == "" {
		return nil, errInvalidRequest("grant_type is required")
	}
	ip := s.clientIP(r)
	c, e := s.authenticateClient(r, f, ip)
	if e != nil {
		return nil, e
	}
	g := s.grants[gt]
	if g == nil {
		return nil, errUnsupportedGrantType("grant_type " + quoteParam(gt) + " is not supported")
	}
	if !c.grants[gt] {
		return nil, errUnauthorizedClient("the client is not allowed to use this grant_type")
	}
	return g.handle(r.Context(), &tokenRequest{form: f, client: c, grantType: gt, ip: ip})
}

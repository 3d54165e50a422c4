package issuer

import (
	"context"
	"net/http"
	"net/url"
)

// tokenRequest is a parsed, client-authenticated token-endpoint request, handed to a grant.
// The endpoint fills it as it goes, so what is known of a failed request is there for the
// metrics.
type tokenRequest struct {
	r         *http.Request // for the audit log
	form      form
	resources []string // the resource parameters (RFC 8707), which may be repeated
	client    *client
	grantType string
	ip        string // the client's address, for throttling
	handled   bool   // the grant ran
	jkt       string // the thumbprint of the DPoP proof's key (RFC 9449), "" without one
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType is what a token exchange issued (RFC 8693 §2.2.1).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	// sub and jti are the subject and the access token's id, for the audit log.
	sub, jti string
}

// grant handles one grant type at the token endpoint. The endpoint has already parsed the
// form, authenticated the client and checked that the client may use the grant.
type grant interface {
	handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error)
}

// serveToken is the token endpoint (RFC 6749 §3.2).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	req := tokenRequest{r: r}
	resp, e := s.token(w, r, &req)
	if e != nil {
		s.tokenFailed(&req, e)
		s.writeJSONError(w, r, e)
		return
	}
	if req.grantType == GrantDeviceCode {
		s.countDevicePoll(outcomeOK)
	}
	s.tokenIssued(r, grantLabel(req.grantType), req.client, resp.sub, resp.Scope, resp.jti, resp.RefreshToken != "")
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, req *tokenRequest) (*tokenResponse, *Error) {
	f, resources, e := parseResourceForm(w, r)
	if e != nil {
		return nil, e
	}
	gt := f["grant_type"]
	req.form, req.resources, req.grantType = f, resources, gt
	if gt == "" {
		return nil, errInvalidRequest("grant_type is required")
	}
	req.ip = s.clientIP(r)
	c, e := s.authenticateClient(r, f, req.ip)
	if e != nil {
		return nil, e
	}
	req.client = c
	g := s.grants[gt]
	if g == nil {
		return nil, errUnsupportedGrantType("grant_type " + quoteParam(gt) + " is not supported")
	}
	if !c.grants[gt] {
		return nil, errUnauthorizedClient("the client is not allowed to use this grant_type")
	}
	// RFC 9449 §5: a DPoP proof binds what the grant issues to the proof's key.
	jkt, e := s.tokenDPoP(w, r, c)
	if e != nil {
		return nil, e
	}
	req.jkt = jkt
	req.handled = true
	return g.handle(r.Context(), req)
}

// tokenFailed counts an error response of the token endpoint: by grant, code and the client,
// the authenticated one or else the one the request named, if the configuration knows it.
func (s *Server) tokenFailed(req *tokenRequest, e *Error) {
	if s.metrics == nil {
		return
	}
	client := unknownLabel
	if req.client != nil {
		client = req.client.ID
	} else if id, ok := claimedClientID(req.r, req.form); ok {
		client = s.clientLabel(id)
	}
	s.countTokenError(grantLabel(req.grantType), e.Code, client)
	if req.handled && req.grantType == GrantDeviceCode {
		s.countDevicePoll(e.Code)
	}
}

// claimedClientID is the client id a request names, authenticated or not.
func claimedClientID(r *http.Request, f form) (string, bool) {
	if user, _, ok := r.BasicAuth(); ok {
		id, err := url.QueryUnescape(user)
		return id, err == nil
	}
	id, ok := f["client_id"]
	return id, ok
}

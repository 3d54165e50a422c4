package issuer

import (
	"context"
	"net/http"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// PathIntrospect is the token introspection endpoint (RFC 7662).
const PathIntrospect = "/oauth2/introspect"

// introspection is an RFC 7662 §2.2 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	// Cnf is the token's confirmation (RFC 7800 §3.1, RFC 9449 §6.2): cnf.jkt of a DPoP-bound token.
	Cnf *accesstoken.Confirmation `json:"cnf,omitempty"`
}

// serveIntrospect tells an authenticated client whether a token is active (RFC 7662). A
// client sees only its own tokens unless it is configured as a resource server; anything
// unknown, expired, revoked or not the caller's is just {"active": false}.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	c, tr, e := s.tokenAPIRequest(w, r, false)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	resp, err := s.introspect(r.Context(), c, tr.token)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// tokenAPIArgs are the parameters of an introspection or revocation request. token_type_hint
// is not kept: tokens are told apart by their shape, so a wrong hint cannot hide one.
type tokenAPIArgs struct{ token string }

// tokenAPIRequest reads an introspection or revocation request: the form, the authenticated
// client, and the token it asks about. Introspection needs a confidential client (RFC 7662
// §2.1: the endpoint requires authorization); revocation takes a public client too, which
// identifies itself with its client_id (RFC 7009 §2.1), so a browser or native app can end its
// own session.
func (s *Server) tokenAPIRequest(w http.ResponseWriter, r *http.Request, publicOK bool) (*client, tokenAPIArgs, *Error) {
	f, e := parsePostForm(w, r)
	if e != nil {
		return nil, tokenAPIArgs{}, e
	}
	c, e := s.authenticateClient(r, f, s.clientIP(r))
	if e != nil {
		return nil, tokenAPIArgs{}, e
	}
	if c.public() && !publicOK {
		return nil, tokenAPIArgs{}, errInvalidClient(false)
	}
	if f["token"] == "" {
		return nil, tokenAPIArgs{}, errInvalidRequest("token is required")
	}
	return c, tokenAPIArgs{token: f["token"]}, nil
}

func (s *Server) introspect(ctx context.Context, caller *client, token string) (*introspection, error) {
	inactive := &introspection{Active: false}
	if strings.Count(token, ".") == 2 {
		claims, err := s.verifyAccessToken(token)
		if err != nil {
			return inactive, nil
		}
		if claims.ClientID != caller.ID && !caller.ResourceServer {
			return inactive, nil
		}
		out := &introspection{Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: tokenType(claims.BoundKey()), Cnf: claims.Cnf,
			Sub: claims.Subject, Aud: claims.Audience, Iss: claims.Issuer, JTI: claims.ID}
		if claims.ExpiresAt != nil {
			out.Exp = claims.ExpiresAt.Unix()
		}
		if claims.IssuedAt != nil {
			out.Iat = claims.IssuedAt.Unix()
		}
		if claims.Subject != claims.ClientID {
			out.Username = claims.Subject
		}
		return out, nil
	}
	fam, live, err := s.state.FamilyOf(ctx, token)
	if !live || err != nil {
		return inactive, err
	}
	if fam.ClientID != caller.ID && !caller.ResourceServer {
		return inactive, nil
	}
	out := &introspection{Active: true, Scope: strings.Join(fam.Scopes, " "), ClientID: fam.ClientID,
		Username: fam.User, Sub: fam.User, TokenType: "refresh_token", Iss: s.issuer,
		Exp: fam.End().Unix()}
	if fam.JKT != "" {
		out.Cnf = &accesstoken.Confirmation{JKT: fam.JKT}
	}
	return out, nil
}

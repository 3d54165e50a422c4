package issuer

import (
	"context"
	"net/http"
	"strings"
	"time"
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
}

// serveIntrospect tells an authenticated client whether a token is active (RFC 7662). A
// client sees only its own tokens unless it is configured as a resource server; anything
// unknown, expired, revoked or not the caller's is just {"active": false}.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	f, e := parsePostForm(w, r)
	if e == nil {
		var c *client
		if c, e = s.authenticateAPIClient(r, f); e == nil {
			if f["token"] == "" {
				e = errInvalidRequest("token is required")
			} else {
				resp, err := s.introspect(r.Context(), c, f["token"], f["token_type_hint"])
				if err != nil {
					e = errServer(err)
				} else {
					writeJSON(w, http.StatusOK, resp)
					return
				}
			}
		}
	}
	s.writeJSONError(w, r, e)
}

// authenticateAPIClient authenticates a confidential client for introspection and
// revocation; public clients cannot authenticate, so they get invalid_client.
func (s *Server) authenticateAPIClient(r *http.Request, f form) (*client, *Error) {
	c, e := s.authenticateClient(r, f)
	if e != nil {
		return nil, e
	}
	if c.public() {
		return nil, errInvalidClient(false)
	}
	return c, nil
}

func (s *Server) introspect(ctx context.Context, caller *client, token, hint string) (*introspection, error) {
	inactive := &introspection{Active: false}
	if hint != "refresh_token" && strings.Count(token, ".") == 2 {
		claims, err := s.verifyAccessToken(token)
		if err != nil {
			return inactive, nil
		}
		if claims.ClientID != caller.ID && !caller.ResourceServer {
			return inactive, nil
		}
		out := &introspection{Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: "Bearer",
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
	rec, err := getJSON[refreshRecord](ctx, s.store, bucketRefreshTokens, hashKey(token))
	if rec == nil || err != nil {
		return inactive, err
	}
	if rec.ClientID != caller.ID && !caller.ResourceServer {
		return inactive, nil
	}
	fam, err := s.loadFamily(ctx, rec.Family)
	if err != nil || fam == nil {
		return inactive, err
	}
	return &introspection{Active: true, Scope: strings.Join(fam.Scopes, " "), ClientID: fam.ClientID,
		Username: fam.User, Sub: fam.User, TokenType: "refresh_token", Iss: s.issuer,
		Exp: min(fam.Expires, time.Now().Add(s.cfg.RefreshTokenIdleTTL).Unix())}, nil
}

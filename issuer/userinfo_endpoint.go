package issuer

import (
	"errors"
	"net/http"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// PathUserinfo is the OpenID Connect UserInfo endpoint.
const PathUserinfo = "/oauth2/userinfo"

// serveUserinfo returns the claims of the token's user that its scopes release (OpenID Connect
// Core §5.3). The access token comes as a bearer token in the Authorization header (GET or
// POST); errors follow RFC 6750 §3.
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.bearerError(w, http.StatusMethodNotAllowed, "invalid_request", "use GET or POST")
		return
	}
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.realm+`"`)
		writeJSON(w, http.StatusUnauthorized, struct{}{})
		return
	}
	claims, err := s.verifyAccessToken(strings.TrimSpace(auth[7:]))
	if err != nil {
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return
	}
	if !claims.HasScope("openid") {
		s.bearerError(w, http.StatusForbidden, "insufficient_scope", "the token lacks the openid scope")
		return
	}
	u, err := s.lookupUser(r.Context(), claims.Subject)
	if err != nil {
		s.bearerError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the user directory cannot be read now")
		return
	}
	if u == nil {
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "the user no longer exists")
		return
	}
	out := releasedClaims(u.Claims, claims.Scopes())
	out["sub"] = u.Name
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) bearerError(w http.ResponseWriter, status int, code, desc string) {
	v := `Bearer realm="` + s.realm + `", error="` + code + `", error_description="` + desc + `"`
	if code == "insufficient_scope" {
		v += `, scope="openid"`
	}
	w.Header().Set("WWW-Authenticate", v)
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// verifyAccessToken checks one of this issuer's access tokens: signature with our keys,
// typ at+jwt, iss, exp, and the deny-list.
func (s *Server) verifyAccessToken(raw string) (*accesstoken.Claims, error) {
	var claims accesstoken.Claims
	t, err := jwt.ParseWithClaims(raw, &claims, s.keys.Keyfunc, jwt.WithValidMethods([]string{s.cfg.SigningAlg}),
		jwt.WithIssuer(s.issuer), jwt.WithExpirationRequired(), jwt.WithLeeway(5e9))
	if err != nil {
		return nil, err
	}
	if typ, _ := t.Header["typ"].(string); !accesstoken.IsAccessTokenType(typ) {
		return nil, errors.New("not an access token")
	}
	if s.Revoked(claims.ID) {
		return nil, errors.New("revoked")
	}
	return &claims, nil
}

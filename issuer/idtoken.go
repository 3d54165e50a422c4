package issuer

import (
	"crypto"
	"encoding/base64"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idTokenInput is what an ID token says (OpenID Connect Core §2).
type idTokenInput struct {
	client      *client
	user        string
	userClaims  map[string]string // the user's claims (lookupUser), of which the scopes release some
	authTime    int64
	nonce       string
	scopes      []string
	accessToken string    // when issued alongside: its at_hash goes in
	iat, exp    time.Time // from the one clock reading of the grant's tokenID
}

// mintIDToken signs an ID token with IDTokenSigningAlg: iss sub aud exp iat auth_time nonce azp,
// at_hash where due, and the user's claims released by the granted scopes. Only mint calls it.
func (s *Server) mintIDToken(in idTokenInput) (string, error) {
	claims := jwt.MapClaims{}
	for k, v := range releasedClaims(in.userClaims, in.scopes) {
		claims[k] = v
	}
	claims["iss"] = s.issuer
	claims["sub"] = in.user
	claims["aud"] = []string{in.client.ID}
	claims["azp"] = in.client.ID
	claims["iat"] = in.iat.Unix()
	claims["exp"] = in.exp.Unix()
	if in.authTime != 0 {
		claims["auth_time"] = in.authTime
	}
	if in.nonce != "" {
		claims["nonce"] = in.nonce
	}
	alg := s.cfg.IDTokenSigningAlg
	if in.accessToken != "" {
		claims["at_hash"] = halfHash(alg, in.accessToken)
	}
	return s.keys.Sign(alg, "JWT", claims)
}

// halfHash is the at_hash / c_hash value: the left half of the hash of the ASCII value, with
// the hash of the ID token's alg, base64url-encoded (OpenID Connect Core §3.1.3.6).
func halfHash(alg, value string) string {
	h := crypto.SHA256
	switch alg {
	case "ES384", "RS384", "PS384":
		h = crypto.SHA384
	case "ES512", "RS512", "PS512", "EdDSA":
		h = crypto.SHA512
	}
	d := h.New()
	d.Write([]byte(value))
	sum := d.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

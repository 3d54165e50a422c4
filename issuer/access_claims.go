package issuer

import (
	"encoding/json"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// accessTokenClaims are the claims of a person that scopes release, for the access token as
// for the ID token (releasedClaims), without any that could pass for one of the access
// token's own claims (iss, sub, scope, client_id, cnf, …), in any letter case.
func accessTokenClaims(claims map[string]string, scopes []string) map[string]any {
	if len(claims) == 0 {
		return nil
	}
	out := releasedClaims(claims, scopes)
	for k := range out {
		for _, p := range protocolClaims {
			if strings.EqualFold(k, p) {
				delete(out, k)
				break
			}
		}
	}
	return out
}

// withClaims is an access token's claim set with the user's claims beside the typed ones.
type withClaims struct {
	*accesstoken.Claims
	extra map[string]any
}

// MarshalJSON writes the typed claims, then the extra ones (accessTokenClaims has left out
// every name the typed claims could use, so no name appears twice).
func (c withClaims) MarshalJSON() ([]byte, error) {
	typed, err := json.Marshal(c.Claims)
	if err != nil || len(c.extra) == 0 {
		return typed, err
	}
	extra, err := json.Marshal(c.extra)
	if err != nil {
		return nil, err
	}
	// {typed…} + {extra…} → {typed…,extra…}
	out := make([]byte, 0, len(typed)+len(extra))
	out = append(out, typed[:len(typed)-1]...)
	out = append(out, ',')
	return append(out, extra[1:]...), nil
}

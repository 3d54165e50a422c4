package issuer

import "strings"

// Standard claims by scope (OpenID Connect Core §5.4).
var (
	emailClaims   = []string{"email", "email_verified"}
	phoneClaims   = []string{"phone_number", "phone_number_verified"}
	addressClaims = []string{"address"}
	booleanClaims = []string{"email_verified", "phone_number_verified"}
)

// releasedClaims picks the user's configured claims that the granted scopes release: email
// and phone claims with their scopes, address with address, every other configured claim
// (name, preferred_username, custom ones) with profile.
func releasedClaims(claims map[string]string, scopes []string) map[string]any {
	out := map[string]any{}
	for k, v := range claims {
		var scope string
		switch {
		case contains(emailClaims, k):
			scope = "email"
		case contains(phoneClaims, k):
			scope = "phone"
		case contains(addressClaims, k):
			scope = "address"
		case k == "sub" || k == "iss" || k == "aud":
			continue // never let a configured claim shadow a protocol claim
		default:
			scope = "profile"
		}
		if !contains(scopes, scope) {
			continue
		}
		if contains(booleanClaims, k) {
			out[k] = strings.EqualFold(v, "true")
		} else {
			out[k] = v
		}
	}
	if contains(scopes, "email") {
		if _, ok := out["email"]; ok {
			if _, set := out["email_verified"]; !set {
				out["email_verified"] = false
			}
		}
	}
	return out
}

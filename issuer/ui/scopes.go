package ui

// scopeDescriptions are what the consent page says for the scopes of OpenID Connect Core §5.4
// and §11.
var scopeDescriptions = map[string]string{
	"openid":         "Confirm who you are (your user ID)",
	"profile":        "See your name and basic profile",
	"email":          "See your email address",
	"address":        "See your postal address",
	"phone":          "See your phone number",
	"offline_access": "Stay connected when you are not using it",
}

// ScopeDescription returns the consent page's words for a standard OpenID Connect scope, or ""
// for any other scope, which the page lists by its raw name only.
func ScopeDescription(scope string) string { return scopeDescriptions[scope] }

package ui

import (
	_ "embed"
	"strings"
)

// passkeyJS runs the passkey ceremonies of the sign-in and account pages: it asks the begin
// endpoint for the options, calls navigator.credentials.create or get, and posts the result
// with the page's form. It is inline, allowed by its hash (as formpost.js is).
//
//go:embed assets/passkey.js
var passkeyJS string

var passkeyScriptHash = cspHash(passkeyJS)

// PasskeyForm is a passkey control on a page: Begin answers the ceremony's options (a POST
// of the CSRF token), and the ceremony's result is posted as a form to Finish.
type PasskeyForm struct {
	Begin  string // URL of the begin endpoint
	Finish string // URL the result is posted to
}

// AccountPasskey is one passkey on the account page.
type AccountPasskey struct {
	ID       string // the credential id (base64url), posted to remove it
	Label    string // e.g. "Passkey 3f9a…"
	Created  string // when it was added, e.g. "2 Jan 2026"
	LastUsed string // when it last signed in; "" when never
}

// DecisionRemovePasskey is the account page's decision that removes the passkey named in
// the form's passkey field.
const DecisionRemovePasskey = "remove_passkey"

// withPasskeyScript adds what the passkey script needs to a page's policy when the page has a
// passkey control: the script by its hash, and fetch to the page's own origin.
func withPasskeyScript(csp string, pk *PasskeyForm) string {
	if pk == nil {
		return csp
	}
	return strings.Replace(csp, "; frame-ancestors",
		"; script-src "+passkeyScriptHash+"; connect-src 'self'; frame-ancestors", 1)
}

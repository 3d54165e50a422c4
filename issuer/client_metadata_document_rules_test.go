package issuer

import (
	"context"
	"net/url"
	"testing"
)

// TestDocumentRulesAsRegistration: a metadata document is held to the rules of a registration:
// redirect URIs with a dot-less custom scheme or user info, and a client_name with zero-width
// (Cf) characters, are refused (checkRegisteredRedirectURI, checkText).
func TestDocumentRulesAsRegistration(t *testing.T) {
	d := newDocuments(t, MetadataDocuments{AllowPrivateAddresses: true, MaxSize: 5120})
	u, _ := url.Parse("https://docs.example/app.json")
	for _, tc := range []struct{ name, redirect, clientName string }{
		{"dotless custom scheme", "myapp:/cb", "App"},
		{"user info", "https://trusted.example@evil.example/cb", "App"},
		{"zero-width space in name", "https://evil.example/cb", "Goo\u200bgle"},
	} {
		m := &documentMetadata{ClientID: u.String(), ClientName: tc.clientName, RedirectURIs: []string{tc.redirect}}
		c, err := d.describe(context.Background(), u, m)
		regRedirect := checkRegisteredRedirectURI(tc.redirect)
		regName := checkText("client_name", tc.clientName, maxClientName)
		if c != nil && (regRedirect != nil || regName != nil) {
			t.Errorf("%s: document accepted (err=%v) though registration refuses it (redirect: %v, name: %v)", tc.name, err, regRedirect, regName)
		}
	}
}

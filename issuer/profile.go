package issuer

import (
	"fmt"
	"net/url"
	"time"
)

// ProfileFAPI2 is the FAPI 2.0 Security Profile (final,
// https://openid.net/specs/fapi-security-profile-2_0-final.html), as a client preset.
const ProfileFAPI2 = "fapi2"

// Bounds FAPI 2.0 §5.3.2.1 puts on lifetimes: authorization codes live at most 60 s, and a
// pushed request's expires_in is under 600 s.
const (
	fapi2MaxCodeTTL = 60 * time.Second
	fapi2MaxPARTTL  = 600 * time.Second
)

// CheckProfile checks a client's profile name: none, or fapi2.
func CheckProfile(name string) error {
	switch name {
	case "", ProfileFAPI2:
		return nil
	}
	return fmt.Errorf("unknown profile %q (known: %s)", name, ProfileFAPI2)
}

// applyProfile returns c with what its profile implies turned on. For fapi2: every
// authorization request is pushed (RequirePAR) and every token is sender-constrained
// (RequireDPoP; DPoP is the sender constraint Tollgate offers, mTLS is not). PKCE S256 is
// required of every fapi2 client too (client.needsPKCE). Both the check (Client.Validate) and
// the running issuer (newClient) see the client through it.
func applyProfile(c Client) Client {
	if c.Profile == ProfileFAPI2 {
		c.RequirePAR = true
		c.RequireDPoP = true
	}
	return c
}

// checkProfile refuses a client whose settings contradict its profile (FAPI 2.0 §5.3.2,
// §5.3.3): a fapi2 client is confidential and authenticates with private_key_jwt only (keys,
// no secret), uses only the authorization code flow (no implicit, no password grant; so only
// response_type code), and redirects to https URIs only.
func (cl Client) checkProfile() error {
	if err := CheckProfile(cl.Profile); err != nil {
		return err
	}
	if cl.Profile != ProfileFAPI2 {
		return nil
	}
	if cl.Secret != "" {
		return fmt.Errorf("profile fapi2: the client authenticates with private_key_jwt only; remove the secret and give it jwks_file or jwks_uri")
	}
	if !cl.HasKeys() {
		return fmt.Errorf("profile fapi2: the client needs jwks_file or jwks_uri (private_key_jwt; public clients are not allowed)")
	}
	for _, g := range cl.Grants {
		switch n := NormalizeGrant(g); n {
		case GrantImplicit, GrantPassword:
			return fmt.Errorf("profile fapi2: the %s grant is not allowed", n)
		}
	}
	for _, u := range cl.RedirectURIs {
		if p, err := url.Parse(u); err == nil && p.Scheme != "https" {
			return fmt.Errorf("profile fapi2: redirect_uri %q must be https", u)
		}
	}
	return nil
}

// checkProfileLifetimes refuses issuer settings that break a client's profile: FAPI 2.0 wants
// codes that live at most 60 s and request_uris that live under 600 s. They are refused, not
// capped, so that what the configuration says is what happens.
func checkProfileLifetimes(c Config) error {
	for _, cl := range c.Clients {
		if cl.Profile != ProfileFAPI2 {
			continue
		}
		if time.Duration(c.CodeTTL) > fapi2MaxCodeTTL {
			return fmt.Errorf("client %q: profile fapi2 needs code_ttl of at most 60s, not %s", cl.ID, time.Duration(c.CodeTTL))
		}
		if time.Duration(c.PARTTL) >= fapi2MaxPARTTL {
			return fmt.Errorf("client %q: profile fapi2 needs par_ttl under 600s, not %s", cl.ID, time.Duration(c.PARTTL))
		}
	}
	return nil
}

// needsPKCE reports whether an authorization code request of the client must carry a PKCE
// challenge (S256): a public client's (RFC 9700 §2.1.1), and a fapi2 client's (FAPI 2.0
// §5.3.2.2), confidential as it is.
func (c *client) needsPKCE() bool { return c.public() || c.Profile == ProfileFAPI2 }

// needsPAR reports whether the client's authorization requests must be pushed (RFC 9126 §5):
// it requires it (require_par, or its profile), or the issuer does for every client.
func (s *Server) needsPAR(c *client) bool { return c.RequirePAR || s.cfg.RequirePAR }

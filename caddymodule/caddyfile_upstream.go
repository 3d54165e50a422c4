package caddymodule

import (
	"slices"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tollgate-auth/tollgate/issuer"
)

// parseUpstream reads an upstream OpenID provider people may sign in with:
//
//	upstream <name> {                      # a-z 0-9 - _; the button's data-upstream
//	    issuer <url>                       # required: discovery and the ID tokens' iss
//	    client_id <id>                     # required; may be {env.…}
//	    client_secret <secret>             # {env.…}; omit for a public client (PKCE only)
//	    scopes <scope>...                  # default: openid email profile
//	    name <button text>                 # default: the name
//	    claim <upstream-claim> <claim>     # repeated; default: email, email_verified, name,
//	                                       # given_name, family_name, preferred_username
//	    allow_domain <domain>...           # only verified emails of these domains sign in
//	    root_ca_file <path>                # PEM roots for a provider behind a private CA
//
//	    # a plain OAuth 2.0 provider without OpenID Connect (GitHub), instead of discovery:
//	    userinfo_url <url>                 # who the person is: a JSON object
//	    authorization_url <url>            # required with userinfo_url
//	    token_url <url>                    # required with userinfo_url
//	    subject_claim <member>             # the userinfo member that identifies the person; default sub
//	}
//
// The redirect URI to register at the provider is <issuer>/oauth2/upstream/<name>/callback.
// Each value is checked on its line; the whole provider (client_id given, the name not used
// twice) at the upstream line.
func parseUpstream(d *caddyfile.Dispenser, before []issuer.Upstream) (issuer.Upstream, error) {
	var u issuer.Upstream
	head := d.Token()
	if !d.AllArgs(&u.Name) {
		return u, d.Err("upstream: want `upstream <name> { … }`")
	}
	if err := issuer.CheckUpstreamName(u.Name); err != nil {
		return u, d.WrapErr(err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		toks := d.RemainingArgsAsTokens()
		args := make([]string, len(toks))
		for i, t := range toks {
			args[i] = t.Text
		}
		one := func(into *string) error {
			if len(args) != 1 || args[0] == "" {
				return d.Errf("upstream %s: %s takes one value", u.Name, sub)
			}
			*into = args[0]
			return nil
		}
		var err error
		switch sub {
		case "issuer":
			if err = one(&u.Issuer); err == nil {
				if _, perr := issuer.ParseIssuerURL(u.Issuer); perr != nil {
					err = d.Errf("upstream %s: %v", u.Name, perr)
				}
			}
		case "client_id":
			err = one(&u.ClientID)
		case "client_secret":
			err = one(&u.ClientSecret)
		case "name":
			err = one(&u.DisplayName)
		case "scopes":
			if len(args) == 0 {
				return u, d.Errf("upstream %s: scopes needs a value", u.Name)
			}
			for _, t := range toks {
				if cerr := issuer.CheckScope(t.Text); cerr != nil {
					return u, errAt(t, "upstream %s: scopes: %v", u.Name, cerr)
				}
			}
			u.Scopes = append(u.Scopes, args...)
		case "claim":
			if len(args) != 2 {
				return u, d.Errf("upstream %s: want `claim <upstream-claim> <tollgate-claim>`", u.Name)
			}
			if cerr := issuer.CheckUpstreamClaim(args[0], args[1]); cerr != nil {
				return u, d.Errf("upstream %s: %v", u.Name, cerr)
			}
			if _, dup := u.Claims[args[0]]; dup {
				return u, d.Errf("upstream %s: claim %s is mapped twice", u.Name, args[0])
			}
			for from, to := range u.Claims {
				if to == args[1] {
					return u, d.Errf("upstream %s: claims %s and %s are both mapped to %s", u.Name, from, args[0], to)
				}
			}
			if u.Claims == nil {
				u.Claims = map[string]string{}
			}
			u.Claims[args[0]] = args[1]
		case "allow_domain", "allow_domains":
			if len(args) == 0 {
				return u, d.Errf("upstream %s: allow_domain needs a value", u.Name)
			}
			for _, t := range toks {
				if cerr := issuer.CheckEmailDomain(t.Text); cerr != nil {
					return u, errAt(t, "upstream %s: allow_domain: %v", u.Name, cerr)
				}
			}
			u.AllowDomains = append(u.AllowDomains, args...)
		case "root_ca_file":
			err = one(&u.RootCAFile)
		case "userinfo_url", "authorization_url", "token_url":
			into := map[string]*string{"userinfo_url": &u.UserinfoURL, "authorization_url": &u.AuthorizationURL, "token_url": &u.TokenURL}[sub]
			if err = one(into); err == nil {
				if cerr := issuer.CheckUpstreamURL(*into); cerr != nil {
					err = d.Errf("upstream %s: %s: %v", u.Name, sub, cerr)
				}
			}
		case "subject_claim":
			err = one(&u.SubjectClaim)
		default:
			return u, d.Errf("upstream %s: unknown sub-directive %q", u.Name, sub)
		}
		if err != nil {
			return u, err
		}
	}
	if u.Issuer == "" && u.UserinfoURL == "" {
		return u, errAt(head, "upstream %s: the issuer sub-directive is required (or userinfo_url, for a plain OAuth provider)", u.Name)
	}
	if err := issuer.CheckUpstreams(append(slices.Clip(before), u)); err != nil {
		return u, errAt(head, "%v", err)
	}
	return u, nil
}

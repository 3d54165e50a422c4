package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func parseProtectCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var p ProtectHandler
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return &p, err
}

// UnmarshalCaddyfile sets up the protector from Caddyfile tokens:
//
//	oauth_protect {
//	    issuer <url>                         # required: whose tokens are accepted
//	    audience <aud>...                    # required: this API's identifiers
//	    scope <scope>...                     # needed by every request
//	    rule <METHOD[,METHOD]|*> <path-glob> <scope>...   # first match adds its scopes
//	    forward_claim <claim> <header>       # copy a claim to an upstream header
//	    realm <realm>                        # WWW-Authenticate realm
//	    algorithms <alg>...                  # JWS alg allow-list
//	    leeway <duration>                    # clock skew for exp/nbf, default 5s
//	}
func (p *ProtectHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "issuer":
			if !d.AllArgs(&p.Issuer) {
				return d.ArgErr()
			}
		case "realm":
			if !d.AllArgs(&p.Realm) {
				return d.ArgErr()
			}
		case "leeway":
			if err := parseDuration(d, &p.Leeway); err != nil {
				return err
			}
		case "audience", "scope", "scopes", "algorithms":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			switch sub {
			case "audience":
				p.Audience = append(p.Audience, args...)
			case "algorithms":
				p.Algorithms = append(p.Algorithms, args...)
			default:
				p.Scopes = append(p.Scopes, args...)
			}
		case "rule":
			args := d.RemainingArgs()
			if len(args) < 3 {
				return d.Err("rule: want `rule <METHOD[,METHOD]|*> <path-glob> <scope>...`")
			}
			r := RuleConfig{Path: args[1], Scopes: args[2:]}
			if args[0] != "*" {
				for _, m := range strings.Split(args[0], ",") {
					if m == "" {
						return d.Errf("rule: empty method in %q", args[0])
					}
					r.Methods = append(r.Methods, strings.ToUpper(m))
				}
			}
			p.Rules = append(p.Rules, r)
		case "forward_claim":
			var fc ForwardClaim
			if !d.AllArgs(&fc.Claim, &fc.Header) {
				return d.Err("forward_claim: want `forward_claim <claim> <header>`")
			}
			if forwardableClaims[fc.Claim] == nil {
				return d.Errf("forward_claim: claim %q not supported (supported: sub client_id scope iss jti aud)", fc.Claim)
			}
			p.ForwardClaims = append(p.ForwardClaims, fc)
		default:
			return d.Errf("oauth_protect: unknown sub-directive %q", sub)
		}
	}
	if p.Issuer == "" {
		return d.Err("oauth_protect: the issuer sub-directive is required")
	}
	if len(p.Audience) == 0 {
		return d.Err("oauth_protect: the audience sub-directive is required")
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*ProtectHandler)(nil)

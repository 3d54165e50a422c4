package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tollgate-auth/tollgate/issuer"
)

// parsePasskeys reads `passkeys [off|on|required]` (bare: on) into cfg and remembers its line
// in at, so that checkPasskeysAt reports a mistake there.
func parsePasskeys(d *caddyfile.Dispenser, cfg *issuer.Config, at *caddyfile.Token) error {
	*at = d.Token()
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		cfg.Passkeys = issuer.PasskeysOn
	case 1:
		cfg.Passkeys = args[0]
	default:
		return d.ArgErr()
	}
	if err := issuer.CheckPasskeys(cfg.Passkeys, ""); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// parseUserPasskeys reads a user's `passkeys required`.
func parseUserPasskeys(d *caddyfile.Dispenser, u *issuer.User) error {
	var v string
	if !d.AllArgs(&v) || v != issuer.PasskeysRequired {
		return d.Errf("user %s: want `passkeys required`", u.Name)
	}
	u.PasskeysRequired = true
	return nil
}

// checkPasskeysAt checks the passkeys settings once the whole block is read: the issuer's host
// must be a domain name (reported at the passkeys line), and a user's `passkeys required`
// needs passkeys on (reported at the oauth_issuer line, which lacks the setting).
func checkPasskeysAt(cfg issuer.Config, at, directive caddyfile.Token) error {
	if cfg.Passkeys != "" {
		if err := issuer.CheckPasskeys(cfg.Passkeys, cfg.Issuer); err != nil {
			return errAt(at, "%v", err)
		}
	}
	if err := issuer.CheckUserPasskeys(cfg.Passkeys, cfg.Users); err != nil {
		return errAt(directive, "oauth_issuer: %v", err)
	}
	return nil
}

package caddymodule

import (
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tollgate-auth/tollgate/issuer"
)

// Both directives go right after basic_auth, so they run before respond, reverse_proxy,
// file_server and php_fastcgi without an order line. Each registration inserts directly after
// basic_auth, so registering oauth_protect first yields basic_auth, oauth_issuer, oauth_protect:
// the issuer answers its own paths before a protector on the same site asks for a token.
func init() {
	httpcaddyfile.RegisterHandlerDirective("oauth_protect", parseProtectCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("oauth_protect", httpcaddyfile.After, "basic_auth")
	httpcaddyfile.RegisterHandlerDirective("oauth_issuer", parseIssuerCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("oauth_issuer", httpcaddyfile.After, "basic_auth")
}

func parseIssuerCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var ih IssuerHandler
	err := ih.UnmarshalCaddyfile(h.Dispenser)
	return &ih, err
}

// UnmarshalCaddyfile sets up the issuer from Caddyfile tokens:
//
//	oauth_issuer {
//	    issuer <url>                      # required: the "iss" of every token
//	    storage bolt [<path>]             # default: a bolt file in Caddy's data directory
//	    storage redis <url>               # several instances share it: redis[s]://[user:pass@]host[:port][/db];
//	                                      # it may hold a password, so prefer {env.REDIS_URL}. With
//	                                      # ?master_name=NAME&addr=<sentinel2>&… the host is a Sentinel
//	    storage redis_cluster <url>       # a Redis Cluster: redis[s]://[user:pass@]node1[:port]?addr=node2:port&…
//	    storage redis|redis_cluster <url> {
//	        min_replicas <n>              # replicas that must acknowledge a durable write (refresh
//	                                      # families, redeemed codes, revocations, keys, clients)
//	                                      # before the answer, else 503; default 1 if the master
//	                                      # has a replica at start, else 0; 0: never wait
//	        replica_timeout <duration>    # how long a write waits for them, default 1s
//	    }
//	    access_token_ttl <duration>       # default 10m
//	    refresh_token_ttl <duration>      # default 720h: absolute lifetime of a refresh family
//	    refresh_token_idle_ttl <duration> # default 336h: a family unused this long ends
//	    refresh_reuse_grace <duration>    # default off: a duplicate refresh within it is answered
//	    signing_alg ES256|ES384|RS256|PS256|EdDSA   # access tokens
//	    key_rotation <duration>           # default 720h: a new signing key replaces the old
//	    id_token_signing_alg RS256|…      # ID tokens, default RS256
//	    code_ttl <duration>               # authorization codes, default 60s
//	    par_ttl <duration>                # pushed requests' request_uri (RFC 9126), default 60s
//	    require_pushed_authorization_requests  # every client must push (PAR)
//	    session_ttl <duration>            # browser sign-in session, default 24h
//	    device_code_ttl <duration>        # device and user codes (RFC 8628), default 10m
//	    device_poll_interval <duration>   # device polling interval, whole seconds, default 5s
//	    cors_origins <origin>...          # browser origins besides those of redirect URIs
//	    limits {                          # brute-force and pending-state bounds (issuer.Limits)
//	        <limit> <n>                   # e.g. sign_in_failures_per_user_address 10
//	    }
//	    passkeys [off|on|required]        # WebAuthn sign-in, default off; bare: on. required: a user
//	                                      # with a passkey can no longer use the password. The
//	                                      # issuer's host must be a domain name (no IP address)
//	    users_file <path>                 # JSON users, reloaded on change
//	    user <name> <bcrypt-or-argon2id-hash> {
//	        claim <name> <value>
//	        passkeys required             # once this user has a passkey, the password stops working
//	    }
//	    client <id> {
//	        name <display name>
//	        secret <secret>               # omit for a public client
//	        redirect_uri <uri>...
//	        grants <grant>...
//	        scopes <scope>...
//	        audience <aud>...
//	        consent required|skip
//	        post_logout_redirect_uri <uri>...
//	        resource_server               # may introspect tokens of every client
//	        loopback_any_port             # a confidential client's loopback redirect URIs take any port
//	        require_par                   # authorization requests must be pushed (RFC 9126)
//	        profile fapi2                 # FAPI 2.0 Security Profile preset (issuer/profile.go)
//	    }
//	    registration open|token <initial-access-token>|off {   # RFC 7591/7592; default off
//	        scopes <scope>...             # what registered clients may ask for
//	        audience <resource>...        # the "aud" of their tokens (the MCP servers they are for)
//	        lifetime <duration>           # default 720h
//	        per_address <n>               # registrations per address per hour, default 20
//	        total <n>                     # registrations from all addresses per hour, default 2000
//	    }
//	    upstream <name> {                 # sign in with another OpenID provider; see parseUpstream
//	        issuer <url>                  # register <issuer>/oauth2/upstream/<name>/callback there
//	        client_id <id>
//	        client_secret <secret>        # {env.…}; omit for a public client
//	        scopes <scope>...             # default openid email profile
//	        name <button text>
//	        claim <upstream-claim> <claim>
//	        allow_domain <domain>...      # only verified emails of these domains
//	        root_ca_file <path>
//	        userinfo_url <url>            # a plain OAuth provider (GitHub), with authorization_url,
//	        authorization_url <url>       # token_url and subject_claim instead of discovery
//	        token_url <url>
//	        subject_claim <member>
//	    }
//	    client_id_metadata_documents {    # an https URL may be a client_id; see parseMetadataDocuments
//	        scopes <scope>...
//	        audience <resource>...
//	    }
//	}
//
// Every mistake is reported at the line of the value it is about: the rules that issuer.New
// applies to a single value (issuer.CheckSigningAlg, CheckDuration, CheckGrant,
// CheckRedirectURI, …) run here as each line is read, duplicate users and clients at their
// second user or client line, and settings of one client that do not go together at its client
// line. New applies the same rules again, for JSON configurations.
func (h *IssuerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	directive := d.Token()
	if d.NextArg() {
		return d.ArgErr()
	}
	var passkeysAt caddyfile.Token // the passkeys line, checked once the issuer is known
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if !d.AllArgs(&h.Issuer) {
				return d.ArgErr()
			}
			if _, err := issuer.ParseIssuerURL(h.Issuer); err != nil {
				return d.Errf("%v", err)
			}
		case "storage":
			st, err := parseStorage(d)
			if err != nil {
				return err
			}
			h.Storage = st
		case "access_token_ttl":
			if err := parseIssuerDuration(d, &h.AccessTokenTTL); err != nil {
				return err
			}
		case "refresh_token_ttl":
			if err := parseIssuerDuration(d, &h.RefreshTokenTTL); err != nil {
				return err
			}
		case "refresh_token_idle_ttl":
			if err := parseIssuerDuration(d, &h.RefreshTokenIdleTTL); err != nil {
				return err
			}
		case "refresh_reuse_grace":
			if err := parseIssuerDuration(d, &h.RefreshReuseGrace); err != nil {
				return err
			}
		case "signing_alg":
			if err := parseSigningAlg(d, &h.SigningAlg); err != nil {
				return err
			}
		case "key_rotation":
			if err := parseIssuerDuration(d, &h.KeyRotation); err != nil {
				return err
			}
		case "id_token_signing_alg":
			if err := parseSigningAlg(d, &h.IDTokenSigningAlg); err != nil {
				return err
			}
		case "code_ttl":
			if err := parseIssuerDuration(d, &h.CodeTTL); err != nil {
				return err
			}
		case "par_ttl":
			if err := parseIssuerDuration(d, &h.PARTTL); err != nil {
				return err
			}
		case "require_pushed_authorization_requests":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequirePAR = true
		case "session_ttl":
			if err := parseIssuerDuration(d, &h.SessionTTL); err != nil {
				return err
			}
		case "device_code_ttl":
			if err := parseIssuerDuration(d, &h.DeviceCodeTTL); err != nil {
				return err
			}
		case "device_poll_interval":
			if err := parseIssuerDuration(d, &h.DevicePollInterval); err != nil {
				return err
			}
		case "passkeys":
			if err := parsePasskeys(d, &h.Config, &passkeysAt); err != nil { // caddyfile_passkey.go
				return err
			}
		case "dpop_nonce":
			// RFC 9449 §8: dpop_nonce required|off (default off).
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			switch v {
			case "required":
				h.DPoPNonce = true
			case "off":
				h.DPoPNonce = false
			default:
				return d.Errf("dpop_nonce: want required or off, got %q", v)
			}
		case "cors_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.CORSOrigins = append(h.CORSOrigins, args...)
		case "limits":
			if err := parseLimits(d, &h.Limits); err != nil {
				return err
			}
		case "users_file":
			if !d.AllArgs(&h.UsersFile) {
				return d.ArgErr()
			}
		case "user":
			u, err := parseUser(d, h.Users)
			if err != nil {
				return err
			}
			h.Users = append(h.Users, u)
		case "client":
			c, err := parseClient(d, h.Clients)
			if err != nil {
				return err
			}
			h.Clients = append(h.Clients, c)
		case "registration":
			reg, err := parseRegistration(d)
			if err != nil {
				return err
			}
			h.Registration = reg
		case "client_id_metadata_documents":
			m, err := parseMetadataDocuments(d)
			if err != nil {
				return err
			}
			h.MetadataDocuments = m
		case "upstream":
			u, err := parseUpstream(d, h.Upstreams) // caddyfile_upstream.go
			if err != nil {
				return err
			}
			h.Upstreams = append(h.Upstreams, u)
		case "token_exchange":
			te, err := parseTokenExchange(d, h.Issuer)
			if err != nil {
				return err
			}
			h.TokenExchange = te
		default:
			return d.Errf("oauth_issuer: unknown sub-directive %q", d.Val())
		}
	}
	if h.Issuer == "" {
		return errAt(directive, "oauth_issuer: the issuer sub-directive is required")
	}
	return checkPasskeysAt(h.Config, passkeysAt, directive)
}

func parseStorage(d *caddyfile.Dispenser) (*StorageConfig, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	switch args[0] {
	case "bolt":
		if len(args) > 2 {
			return nil, d.ArgErr()
		}
		st := &StorageConfig{Backend: "bolt"}
		if len(args) == 2 {
			st.Path = args[1]
		}
		if d.NextBlock(d.Nesting()) {
			return nil, d.Errf("storage bolt: takes no block (min_replicas and replica_timeout are for the redis backends)")
		}
		return st, nil
	case "redis", "redis_cluster":
		if len(args) != 2 {
			return nil, d.Errf("storage %[1]s: want `storage %[1]s <url>`, such as redis://127.0.0.1:6379/0 or {env.REDIS_URL}, optionally with a block { min_replicas <n>; replica_timeout <duration> }", args[0])
		}
		return parseRedisStorage(d, &StorageConfig{Backend: args[0], URL: args[1]})
	}
	return nil, d.Errf("storage: unknown backend %q (supported: bolt, redis, redis_cluster)", args[0])
}

// parseRedisStorage reads the optional block of `storage redis <url>` or
// `storage redis_cluster <url>`: min_replicas <n> (0: never wait for replicas) and
// replica_timeout <duration>.
func parseRedisStorage(d *caddyfile.Dispenser, st *StorageConfig) (*StorageConfig, error) {
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if seen[sub] {
			return nil, d.Errf("storage %s: %s given twice", st.Backend, sub)
		}
		seen[sub] = true
		switch sub {
		case "min_replicas":
			var arg string
			if !d.AllArgs(&arg) {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return nil, d.Errf("storage %s: min_replicas: %q is not a number of replicas (0 or more; 0: never wait)", st.Backend, arg)
			}
			st.MinReplicas = &n
		case "replica_timeout":
			if err := parseDuration(d, &st.ReplicaTimeout); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("storage %s: unknown sub-directive %q (known: min_replicas, replica_timeout)", st.Backend, sub)
		}
	}
	return st, nil
}

// parseDuration reads the one argument of a duration sub-directive into a caddy.Duration or
// an issuer.Duration.
func parseDuration[D ~int64](d *caddyfile.Dispenser, into *D) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: %q is not a positive duration", name, s)
	}
	*into = D(dur)
	return nil
}

// parseIssuerDuration reads the argument of the issuer's duration sub-directive and checks it
// as issuer.New does (device_code_ttl and device_poll_interval are whole seconds).
func parseIssuerDuration(d *caddyfile.Dispenser, into *issuer.Duration) error {
	name := d.Val()
	if err := parseDuration(d, into); err != nil {
		return err
	}
	if err := issuer.CheckDuration(name, *into); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// parseSigningAlg reads `signing_alg <alg>` or `id_token_signing_alg <alg>`: an algorithm the
// issuer can sign with.
func parseSigningAlg(d *caddyfile.Dispenser, into *string) error {
	name := d.Val()
	if !d.AllArgs(into) {
		return d.ArgErr()
	}
	if err := issuer.CheckSigningAlg(name, *into); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// errAt is d.Errf for a token read earlier, such as the line that opened a block: the error
// names that token's file and line (and import chain), not those of the current token.
func errAt(tok caddyfile.Token, format string, args ...any) error {
	at := caddyfile.NewDispenser([]caddyfile.Token{tok})
	at.Next()
	return at.Errf(format, args...)
}

// parseLimits reads a limits block: `<name> <n>` lines, one per issuer.Limits field.
func parseLimits(d *caddyfile.Dispenser, l *issuer.Limits) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	fields := map[string]*int{
		"sign_in_failures_per_user_address": &l.SignInFailuresPerUserAddress,
		"sign_in_failures_per_address":      &l.SignInFailuresPerAddress,
		"sign_in_failures_per_user":         &l.SignInFailuresPerUser,
		"client_auth_failures_per_address":  &l.ClientAuthFailuresPerAddress,
		"user_code_failures_per_address":    &l.UserCodeFailuresPerAddress,
		"pending_per_address":               &l.PendingPerAddress,
		"pending_per_client":                &l.PendingPerClient,
		"device_codes_per_address":          &l.DeviceCodesPerAddress,
		"device_codes_per_client":           &l.DeviceCodesPerClient,
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		into, ok := fields[name]
		if !ok {
			return d.Errf("limits: unknown limit %q", name)
		}
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("limits: want `%s <n>`", name)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return d.Errf("limits: %s: %q is not a positive number", name, v)
		}
		*into = n
	}
	return nil
}

// parseUser reads `user <name> <hash> [{ claim <name> <value> … }]`. Its name and hash are
// checked at once, at the user line: issuer.CheckUsers after the users before it.
func parseUser(d *caddyfile.Dispenser, before []issuer.User) (issuer.User, error) {
	var u issuer.User
	if !d.Args(&u.Name, &u.PasswordHash) || d.NextArg() {
		return u, d.Err("user: want `user <name> <password-hash>`")
	}
	if err := issuer.CheckUsers(append(slices.Clip(before), u)); err != nil {
		return u, d.WrapErr(err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() == "passkeys" { // caddyfile_passkey.go
			if err := parseUserPasskeys(d, &u); err != nil {
				return u, err
			}
			continue
		}
		if d.Val() != "claim" {
			return u, d.Errf("user %s: unknown sub-directive %q", u.Name, d.Val())
		}
		var k, v string
		if !d.AllArgs(&k, &v) {
			return u, d.Err("claim: want `claim <name> <value>`")
		}
		if u.Claims == nil {
			u.Claims = map[string]string{}
		}
		u.Claims[k] = v
	}
	return u, nil
}

// parseClient reads `client <id> { … }`. Each value is checked on its line (issuer.CheckGrant,
// CheckRedirectURI, CheckScope, CheckConsent); then the whole client, after the clients before
// it (issuer.CheckClients: settings that do not go together, an ID defined twice), at the
// client line.
func parseClient(d *caddyfile.Dispenser, before []issuer.Client) (issuer.Client, error) {
	var c issuer.Client
	head := d.Token()
	if !d.AllArgs(&c.ID) {
		return c, d.Err("client: want `client <id> { … }`")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		toks := d.RemainingArgsAsTokens()
		args := make([]string, len(toks))
		for i, t := range toks {
			args[i] = t.Text
		}
		// each checks every value of the line, reporting a mistake at the value's own token.
		each := func(check func(string) error) error {
			for _, t := range toks {
				if err := check(t.Text); err != nil {
					return errAt(t, "client %s: %s: %v", c.ID, sub, err)
				}
			}
			return nil
		}
		one := func(into *string) error {
			if len(args) != 1 {
				return d.Errf("client %s: %s takes one value", c.ID, sub)
			}
			*into = args[0]
			return nil
		}
		var err error
		switch sub {
		case "name":
			err = one(&c.Name)
		case "secret":
			if err = one(&c.Secret); err == nil && c.Secret == "" {
				// A client is public only when it has no secret line at all.
				return c, d.Errf("client %s: secret is empty; remove the secret line for a public client", c.ID)
			}
			if err == nil && c.HasKeys() {
				return c, d.Errf("client %s: a client with keys authenticates with private_key_jwt and has no secret", c.ID)
			}
		case "consent":
			if err = one(&c.Consent); err == nil {
				if err = issuer.CheckConsent(c.Consent); err != nil {
					err = d.Errf("client %s: %v", c.ID, err)
				}
			}
		case "redirect_uri", "redirect_uris":
			err = each(issuer.CheckRedirectURI)
			c.RedirectURIs = append(c.RedirectURIs, args...)
		case "grants":
			err = each(issuer.CheckGrant)
			c.Grants = append(c.Grants, args...)
		case "scopes":
			err = each(issuer.CheckScope)
			c.Scopes = append(c.Scopes, args...)
		case "audience":
			c.Audience = append(c.Audience, args...)
		case "post_logout_redirect_uri", "post_logout_redirect_uris":
			err = each(issuer.CheckRedirectURI)
			c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, args...)
		case "resource_server":
			if len(args) != 0 {
				return c, d.Errf("client %s: resource_server takes no value", c.ID)
			}
			c.ResourceServer = true
			continue
		case "loopback_any_port":
			if len(args) != 0 {
				return c, d.Errf("client %s: loopback_any_port takes no value", c.ID)
			}
			c.LoopbackAnyPort = true
			continue
		case "require_dpop", "require_par":
			if len(args) != 0 {
				return c, d.Errf("client %s: %s takes no value", c.ID, sub)
			}
			if sub == "require_dpop" {
				c.RequireDPoP = true
			} else {
				c.RequirePAR = true
			}
			continue
		case "jwks_file", "jwks_uri":
			// private_key_jwt (RFC 7523): one key set, and no secret beside it.
			into := &c.JWKSFile
			if sub == "jwks_uri" {
				into = &c.JWKSURI
			}
			switch {
			case c.JWKSFile != "" || c.JWKSURI != "":
				return c, d.Errf("client %s: jwks_file and jwks_uri: give the client one key set, not both", c.ID)
			case c.Secret != "":
				return c, d.Errf("client %s: a client with keys authenticates with private_key_jwt and has no secret", c.ID)
			}
			if err = one(into); err == nil && sub == "jwks_uri" {
				if err = issuer.CheckJWKSURI(c.JWKSURI); err != nil {
					err = d.Errf("client %s: %v", c.ID, err)
				}
			}
		case "profile":
			if err = one(&c.Profile); err == nil {
				if err = issuer.CheckProfile(c.Profile); err != nil {
					err = d.Errf("client %s: %v", c.ID, err)
				}
			}
		default:
			return c, d.Errf("client %s: unknown sub-directive %q", c.ID, sub)
		}
		if err != nil {
			return c, err
		}
		if len(args) == 0 {
			return c, d.Errf("client %s: %s needs a value", c.ID, sub)
		}
	}
	if err := issuer.CheckClients(append(slices.Clip(before), c)); err != nil {
		return c, errAt(head, "%v", err)
	}
	return c, nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*IssuerHandler)(nil)

// parseRegistration reads `registration open|token <initial-access-token>|off [{ … }]`:
//
//	registration open {
//	    scopes <scope>...        # what a registered client may ask for
//	    audience <resource>...   # the "aud" (RFC 8707 resources) of registered clients' tokens
//	    lifetime <duration>      # a registered client is deleted this long after; default 720h
//	    per_address <n>          # registrations per address per hour; default 20
//	    total <n>                # registrations from all addresses per hour; default 2000
//	    max_clients <n>          # registrations per lifetime (at most twice as many live); default 10000
//	}
//
// off (the default) returns nil.
func parseRegistration(d *caddyfile.Dispenser) (*issuer.Registration, error) {
	r := &issuer.Registration{}
	if !d.NextArg() {
		return nil, d.Err("registration: want `registration open|token <initial-access-token>|off`")
	}
	switch r.Mode = d.Val(); r.Mode {
	case "off":
		if d.NextArg() || d.NextBlock(d.Nesting()) {
			return nil, d.Err("registration off takes nothing more")
		}
		return nil, nil
	case issuer.RegistrationToken:
		if !d.NextArg() {
			return nil, d.Err("registration token: want `registration token <initial-access-token>`, such as {env.REGISTRATION_TOKEN}")
		}
		r.InitialAccessToken = d.Val()
	default:
		if err := issuer.CheckRegistrationMode(r.Mode); err != nil {
			return nil, d.WrapErr(err)
		}
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := parseDynamicClientSetting(d, "registration", &r.Scopes, &r.Audience, map[string]*int{
			"per_address": &r.PerAddress, "total": &r.Total, "max_clients": &r.MaxClients},
			map[string]*issuer.Duration{"lifetime": &r.Lifetime}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parseMetadataDocuments reads the client_id_metadata_documents block:
//
//	client_id_metadata_documents {
//	    scopes <scope>...          # what such a client may ask for
//	    audience <resource>...     # the "aud" (RFC 8707 resources) of their tokens
//	    allow_domain <host>...     # only these hosts and their subdomains; default any
//	    allow_private_addresses    # also fetch from loopback and private addresses (tests)
//	    root_ca <pem-file>         # CAs trusted for fetching, besides the system's
//	    max_size <bytes>           # default 5120
//	    timeout <duration>         # default 5s
//	    cache_min <duration>       # default 1m
//	    cache_max <duration>       # default 24h
//	}
func parseMetadataDocuments(d *caddyfile.Dispenser) (*issuer.MetadataDocuments, error) {
	m := &issuer.MetadataDocuments{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "allow_domain", "allow_domains":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			m.AllowDomains = append(m.AllowDomains, args...)
		case "allow_private_addresses":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			m.AllowPrivateAddresses = true
		case "root_ca":
			if !d.AllArgs(&m.RootCAFile) {
				return nil, d.ArgErr()
			}
		default:
			if err := parseDynamicClientSetting(d, "client_id_metadata_documents", &m.Scopes, &m.Audience,
				map[string]*int{"max_size": &m.MaxSize},
				map[string]*issuer.Duration{"timeout": &m.Timeout, "cache_min": &m.CacheMin, "cache_max": &m.CacheMax}); err != nil {
				return nil, err
			}
		}
	}
	if err := m.Check(); err != nil {
		return nil, d.WrapErr(err)
	}
	return m, nil
}

// parseTokenExchange reads the issuers token exchange (RFC 8693) trusts besides this one
// (self, when the issuer line came first):
//
//	token_exchange {
//	    trust <issuer-url> [jwks_uri <url>]   # default: the jwks_uri of its discovery document
//	    trust <issuer-url> {
//	        jwks_uri <url>
//	        audience <aud>...                  # its tokens must name one; default: this issuer
//	    }
//	}
//
// Each trust is checked at its line.
func parseTokenExchange(d *caddyfile.Dispenser, self string) (*issuer.TokenExchange, error) {
	te := &issuer.TokenExchange{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "trust" {
			return nil, d.Errf("token_exchange: unknown sub-directive %q", d.Val())
		}
		var ti issuer.TrustedIssuer
		at := d.Token()
		args := d.RemainingArgs()
		switch {
		case len(args) == 1:
		case len(args) == 3 && args[1] == "jwks_uri":
			ti.JWKSURI = args[2]
		default:
			return nil, d.Err("token_exchange: want `trust <issuer-url> [jwks_uri <url>]`")
		}
		ti.Issuer = args[0]
		for inner := d.Nesting(); d.NextBlock(inner); {
			switch d.Val() {
			case "jwks_uri":
				if !d.AllArgs(&ti.JWKSURI) {
					return nil, d.ArgErr()
				}
			case "audience":
				aud := d.RemainingArgs()
				if len(aud) == 0 {
					return nil, d.ArgErr()
				}
				ti.Audience = append(ti.Audience, aud...)
			default:
				return nil, d.Errf("token_exchange: trust %s: unknown sub-directive %q", ti.Issuer, d.Val())
			}
		}
		te.Trust = append(te.Trust, ti)
		if err := te.Check(self); err != nil {
			return nil, errAt(at, "%v", err)
		}
	}
	return te, nil
}

// parseDynamicClientSetting reads one line of a registration or client_id_metadata_documents
// block: scopes, audience, or one of the named numbers and durations.
func parseDynamicClientSetting(d *caddyfile.Dispenser, block string, scopes, audience *[]string,
	numbers map[string]*int, durations map[string]*issuer.Duration) error {
	name := d.Val()
	switch name {
	case "scopes", "audience":
		toks := d.RemainingArgsAsTokens()
		if len(toks) == 0 {
			return d.ArgErr()
		}
		check, into := issuer.CheckScope, scopes
		if name == "audience" {
			check, into = issuer.CheckResourceURI, audience
		}
		for _, t := range toks {
			if err := check(t.Text); err != nil {
				return errAt(t, "%s: %v", block, err)
			}
			*into = append(*into, t.Text)
		}
		return nil
	}
	if into, ok := numbers[name]; ok {
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return d.Errf("%s: %s: %q is not a positive number", block, name, v)
		}
		*into = n
		return nil
	}
	if into, ok := durations[name]; ok {
		return parseIssuerDuration(d, into)
	}
	return d.Errf("%s: unknown sub-directive %q", block, name)
}

package caddymodule

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"github.com/tollgate-auth/tollgate/policy"
)

func parseProtectCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var p ProtectHandler
	err := p.UnmarshalCaddyfile(h.Dispenser)
	return &p, err
}

// UnmarshalCaddyfile sets up the protector from Caddyfile tokens:
//
//	oauth_protect {
//	    issuer <url>                  # required (once or more): whose tokens are accepted
//	    issuer <url> {                # an issuer with settings of its own
//	        jwks_uri <url>            #   its JWK Set; default: OpenID/RFC 8414 discovery
//	        audience <aud>...         #   replaces the handler's audience for its tokens
//	        introspection <url>       #   RFC 7662: validate its (opaque) tokens there instead
//	        client_id <id>            #   credentials for the introspection endpoint
//	        client_secret <secret>    #   (placeholders such as {env.SECRET} work)
//	        cache_ttl <duration>      #   trust an introspection result this long at most (5m)
//	        accept_jwt_typ            #   also accept access tokens typed JWT or untyped (Keycloak,
//	                                  #   Entra ID, Auth0, Cognito); ID tokens are still refused
//	        trust_pool <module> ...   #   CAs for its HTTPS (a tls.ca_pool.source module, e.g.
//	                                  #   trust_pool file /etc/ssl/idp-ca.pem); default: system roots
//	        insecure_http             #   allow plain http:// beyond loopback (logged as a warning)
//	    }
//	    jwks_uri <url>                # JWK Set of the single issuer given on one line
//	    audience <aud>...             # required (here or per issuer): this API's identifiers
//	    scope <scope>...              # needed by every request
//	    claim <cel-expression>        # must hold for every request (quote it with backticks)
//	    rule <METHOD[,METHOD]|*> <path-glob> [<scope>...] [{
//	        claim <cel-expression>    # must hold when the rule matches
//	    }]                            # the first matching rule adds its scopes and claims
//	    forward_claim <claim> <header>  # copy any top-level claim to an upstream header
//	    realm <realm>                 # WWW-Authenticate realm; default: the first issuer
//	    algorithms <alg>...           # JWS alg allow-list; default: every asymmetric alg
//	    leeway <duration>             # clock skew for exp/nbf/iat, default 5s
//	    allow_query_token             # accept ?access_token= (RFC 6750 §2.3); off by default
//	    allow_encoded_slashes         # accept %2F inside a path segment (judged both ways); off by default
//	    allow_preflight               # CORS preflights (OPTIONS) pass without a token
//	    resource <url>                # RFC 9728 resource identifier; default: an audience that is a URL
//	                                  # on this site, else the origin plus the prefix the block is routed
//	                                  # under (handle, route, handle_path)
//	    cache_size <n>|off            # verified-token cache entries, default 10000
//	    jwks_refresh <duration>       # refetch remote JWKS this often, default 1h
//	}
//
// One issuer given on one line stays in the short form (issuer, jwks_uri); several issuers,
// or one with a block, go to the issuers list. An issuer is reached over https; plain http://
// only on loopback (127.0.0.0/8, [::1], localhost) or with insecure_http in its block. Its
// tokens' iss must equal the configured URL exactly, trailing slash included.
//
// Rules judge the path that the upstream receives, segment by segment, each segment decoded
// once. A path that a rule could read differently from the upstream is refused with 400
// invalid_request and never reaches it: an encoded slash %2F (unless allow_encoded_slashes), a
// backslash raw or %5C, a dot segment ("." or "..", raw or encoded: %2e, .%2E, …, also "..;x"),
// an encoded control character (%00-%1F, %7F), a double encoding (%25 with two hex digits, such
// as %252f). A segment with ";" parameters is judged with and without them, "//" both merged and
// as it is; the request needs what every reading needs. A token is verified only by the issuer its iss
// names. Claim conditions are CEL over `claims` (every top-level claim) and `request` (method,
// path, host, header), e.g. claim `claims.groups.exists(g, g == "admin")`; they are compiled
// here, so a bad expression is reported with its line and position.
//
// Every mistake is reported at the line of the value it is about: the rules that provisioning
// applies to a single value (policy.CheckAlgorithm, CheckScope, CheckLeeway, CheckRule, the
// transport check of each issuer URL, …) run here as each line is read, an issuer configured
// twice at its second issuer line, and settings of one issuer block that do not go together at
// its issuer line. Provisioning applies the same rules again, for JSON configurations.
func (p *ProtectHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	directive := d.Token()
	if d.NextArg() {
		return d.ArgErr()
	}
	var issuers []IssuerConfig
	var names []string
	var where []issuerTokens // the lines of each issuer's URLs
	var jwksURI caddyfile.Token
	blockIssuer := false
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "issuer":
			ic, at, block, err := parseIssuerBlock(d)
			if err != nil {
				return err
			}
			names = append(names, ic.Issuer)
			if err := policy.CheckIssuerNames(names); err != nil {
				return errAt(at.issuer, "oauth_protect: %v", err)
			}
			blockIssuer = blockIssuer || block
			issuers = append(issuers, ic)
			where = append(where, at)
		case "jwks_uri":
			if !d.AllArgs(&p.JWKSURI) {
				return d.ArgErr()
			}
			jwksURI = d.Token()
		case "realm":
			if !d.AllArgs(&p.Realm) {
				return d.ArgErr()
			}
			if err := policy.CheckRealm(p.Realm); err != nil {
				return d.WrapErr(err)
			}
		case "resource":
			if !d.AllArgs(&p.Resource) {
				return d.ArgErr()
			}
		case "leeway":
			if err := parseDuration(d, &p.Leeway); err != nil {
				return err
			}
			if err := policy.CheckLeeway(time.Duration(p.Leeway)); err != nil {
				return d.WrapErr(err)
			}
		case "jwks_refresh":
			if err := parseDuration(d, &p.JWKSRefresh); err != nil {
				return err
			}
		case "allow_query_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.AllowQueryToken = true
		case "allow_preflight":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.AllowPreflight = true
		case "allow_encoded_slashes":
			if d.NextArg() {
				return d.ArgErr()
			}
			p.AllowEncodedSlashes = true
		case "cache_size":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			switch {
			case v == "off":
				p.CacheSize = -1
			case err != nil || n <= 0:
				return d.Errf("cache_size: want a positive number of entries or off, got %q", v)
			default:
				p.CacheSize = n
			}
		case "audience", "scope", "scopes", "algorithms":
			toks := d.RemainingArgsAsTokens()
			if len(toks) == 0 {
				return d.ArgErr()
			}
			check := policy.CheckScope
			switch sub {
			case "audience":
				check = policy.CheckAudience
			case "algorithms":
				check = policy.CheckAlgorithm
			}
			if err := checkEach(toks, sub, check); err != nil {
				return err
			}
			args := tokenTexts(toks)
			switch sub {
			case "audience":
				p.Audience = append(p.Audience, args...)
			case "algorithms":
				p.Algorithms = append(p.Algorithms, args...)
			default:
				p.Scopes = append(p.Scopes, args...)
			}
		case "claim":
			expr, err := parseClaim(d)
			if err != nil {
				return err
			}
			p.Claims = append(p.Claims, expr)
		case "rule":
			r, err := parseRule(d)
			if err != nil {
				return err
			}
			p.Rules = append(p.Rules, r)
		case "forward_claim":
			var fc ForwardClaim
			if !d.AllArgs(&fc.Claim, &fc.Header) {
				return d.Err("forward_claim: want `forward_claim <claim> <header>`")
			}
			if _, err := newForwarder([]ForwardClaim{fc}); err != nil {
				return d.Err(err.Error())
			}
			p.ForwardClaims = append(p.ForwardClaims, fc)
		default:
			return d.Errf("oauth_protect: unknown sub-directive %q", sub)
		}
	}
	switch {
	case len(issuers) == 0:
		return errAt(directive, "oauth_protect: the issuer sub-directive is required")
	case len(issuers) == 1 && !blockIssuer:
		p.Issuer = issuers[0].Issuer
		if p.JWKSURI != "" {
			issuers[0].JWKSURI, where[0].jwksURI = p.JWKSURI, jwksURI
		}
	case p.JWKSURI != "":
		return errAt(jwksURI, "oauth_protect: with several issuers (or an issuer block), put jwks_uri inside the issuer's block")
	default:
		p.Issuers = issuers
	}
	if len(p.Audience) == 0 {
		for _, ic := range p.Issuers {
			if len(ic.Audience) == 0 {
				return errAt(directive, "oauth_protect: the audience sub-directive is required")
			}
		}
		if len(p.Issuers) == 0 {
			return errAt(directive, "oauth_protect: the audience sub-directive is required")
		}
	}
	// The URLs the edge fetches from, checked as provisioning checks them (plain http only on
	// loopback or with insecure_http), at the line of the URL that is fetched.
	for i, ic := range issuers {
		if err := (&ProtectHandler{}).checkTransport(ic); err != nil {
			at := where[i].issuer
			switch {
			case ic.Introspection != nil:
				at = where[i].introspection
			case ic.JWKSURI != "":
				at = where[i].jwksURI
			}
			return errAt(at, "%v", err)
		}
	}
	return nil
}

// issuerTokens are the tokens of an issuer's URLs, to report a mistake about one at its line.
type issuerTokens struct {
	issuer, jwksURI, introspection caddyfile.Token
}

// checkEach checks each argument of the sub-directive sub, reporting a mistake at that
// argument's token.
func checkEach(toks []caddyfile.Token, sub string, check func(string) error) error {
	for _, t := range toks {
		if err := check(t.Text); err != nil {
			return errAt(t, "%s: %v", sub, err)
		}
	}
	return nil
}

// tokenTexts returns the text of each token.
func tokenTexts(toks []caddyfile.Token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.Text
	}
	return out
}

// parseIssuerBlock reads `issuer <url> [{ … }]`; block reports whether a block was given, at
// the tokens of its URLs. Settings that do not go together are reported at the issuer line.
func parseIssuerBlock(d *caddyfile.Dispenser) (ic IssuerConfig, at issuerTokens, block bool, err error) {
	if !d.AllArgs(&ic.Issuer) {
		return ic, at, false, d.ArgErr()
	}
	at.issuer = d.Token()
	var in IntrospectionConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		block = true
		sub := d.Val()
		switch sub {
		case "jwks_uri", "introspection", "client_id", "client_secret":
			var v string
			if !d.AllArgs(&v) {
				return ic, at, block, d.ArgErr()
			}
			switch sub {
			case "jwks_uri":
				ic.JWKSURI, at.jwksURI = v, d.Token()
			case "introspection":
				in.URL, at.introspection = v, d.Token()
			case "client_id":
				in.ClientID = v
			default:
				in.ClientSecret = v
			}
		case "audience":
			toks := d.RemainingArgsAsTokens()
			if len(toks) == 0 {
				return ic, at, block, d.ArgErr()
			}
			if err := checkEach(toks, "audience", policy.CheckAudience); err != nil {
				return ic, at, block, err
			}
			ic.Audience = append(ic.Audience, tokenTexts(toks)...)
		case "cache_ttl":
			if err := parseDuration(d, &in.CacheTTL); err != nil {
				return ic, at, block, err
			}
		case "accept_jwt_typ", "insecure_http":
			if d.NextArg() {
				return ic, at, block, d.ArgErr()
			}
			if sub == "accept_jwt_typ" {
				ic.AcceptJWTType = true
			} else {
				ic.InsecureHTTP = true
			}
		case "trust_pool":
			if ic.TrustPoolRaw != nil {
				return ic, at, block, d.Errf("issuer %s: trust_pool given twice", ic.Issuer)
			}
			if !d.NextArg() {
				return ic, at, block, d.Errf("issuer %s: want `trust_pool <module> …`, e.g. trust_pool file /path/ca.pem", ic.Issuer)
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "tls.ca_pool.source."+name)
			if err != nil {
				return ic, at, block, err
			}
			ca, ok := unm.(caddytls.CA)
			if !ok {
				return ic, at, block, d.Errf("issuer %s: module tls.ca_pool.source.%s is not a certificate pool source", ic.Issuer, name)
			}
			ic.TrustPoolRaw = caddyconfig.JSONModuleObject(ca, "provider", name, nil)
		default:
			return ic, at, block, d.Errf("issuer %s: unknown sub-directive %q", ic.Issuer, sub)
		}
	}
	switch {
	case in.URL != "" && ic.JWKSURI != "":
		return ic, at, block, errAt(at.issuer, "issuer %s: use either jwks_uri or introspection", ic.Issuer)
	case in.URL != "" && in.ClientID == "":
		return ic, at, block, errAt(at.issuer, "issuer %s: introspection needs client_id (and client_secret)", ic.Issuer)
	case in.URL == "" && (in.ClientID != "" || in.ClientSecret != "" || in.CacheTTL != 0):
		return ic, at, block, errAt(at.issuer, "issuer %s: client_id, client_secret and cache_ttl go with introspection", ic.Issuer)
	case in.URL != "":
		ic.Introspection = &in
	}
	return ic, at, block, nil
}

// parseRule reads `rule <METHODS> <glob> [<scope>...] [{ claim <expr> }]`, and checks it as
// provisioning does (policy.CheckRule) at the rule line.
func parseRule(d *caddyfile.Dispenser) (RuleConfig, error) {
	head := d.Token()
	const want = "rule: want `rule <METHOD[,METHOD]|*> <path-glob> <scope>...`"
	args := d.RemainingArgs()
	if len(args) < 2 {
		return RuleConfig{}, errAt(head, want)
	}
	r := RuleConfig{Path: args[1], Scopes: args[2:]}
	if args[0] != "*" {
		for _, m := range strings.Split(args[0], ",") {
			if m == "" {
				return r, errAt(head, "rule: empty method in %q", args[0])
			}
			r.Methods = append(r.Methods, strings.ToUpper(m))
		}
	}
	if err := policy.CheckRule(policy.Rule{Methods: r.Methods, Path: r.Path, Scopes: r.Scopes}); err != nil {
		return r, errAt(head, "rule %s %s: %v", args[0], r.Path, err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "claim" {
			return r, d.Errf("rule: unknown sub-directive %q (want claim)", d.Val())
		}
		expr, err := parseClaim(d)
		if err != nil {
			return r, err
		}
		r.Claims = append(r.Claims, expr)
	}
	if len(r.Scopes) == 0 && len(r.Claims) == 0 {
		return r, errAt(head, want)
	}
	return r, nil
}

// parseClaim reads `claim <expr>` and compiles the expression, so that a mistake is reported
// with the Caddyfile line as well as its position in the expression.
func parseClaim(d *caddyfile.Dispenser) (string, error) {
	var expr string
	if !d.AllArgs(&expr) {
		return "", d.Err("claim: want one CEL expression; quote it with backticks, e.g. claim `claims.admin == true`")
	}
	if err := policy.CheckCondition(expr); err != nil {
		return "", d.Errf("claim: %v", err)
	}
	return expr, nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*ProtectHandler)(nil)

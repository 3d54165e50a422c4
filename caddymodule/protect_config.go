package caddymodule

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tollgate-auth/tollgate/policy"
)

// IssuerConfig is one trusted issuer of an oauth_protect handler.
type IssuerConfig struct {
	// Issuer is the issuer URL, the "iss" of its tokens. Required.
	Issuer string `json:"issuer"`
	// JWKSURI is the issuer's JWK Set URL. Default: found by discovery. Ignored for an issuer
	// this Caddy serves, and for one that uses introspection.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Audience replaces the handler's audience for this issuer's tokens.
	Audience []string `json:"audience,omitempty"`
	// Introspection validates this issuer's tokens (opaque ones, typically) at its RFC 7662
	// endpoint instead of with its keys. At most one issuer per handler may use it.
	Introspection *IntrospectionConfig `json:"introspection,omitempty"`
}

// IntrospectionConfig is an RFC 7662 introspection endpoint and the credentials to call it.
type IntrospectionConfig struct {
	// URL is the introspection endpoint. Required.
	URL string `json:"url"`
	// ClientID authenticates this gateway at the endpoint (HTTP Basic). Required.
	ClientID string `json:"client_id"`
	// ClientSecret goes with ClientID; placeholders such as {env.SECRET} are replaced.
	ClientSecret string `json:"client_secret,omitempty"`
	// CacheTTL caps how long an active result is trusted, never beyond the token's exp.
	// Default 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
}

// RuleConfig is one `rule <METHOD[,METHOD]|*> <path-glob> [<scope>...] [{ claim <expr> }]` line.
type RuleConfig struct {
	// Methods the rule covers; empty means any.
	Methods []string `json:"methods,omitempty"`
	// Path is a glob; a trailing * is a prefix match.
	Path string `json:"path"`
	// Scopes are all required when the rule matches.
	Scopes []string `json:"scopes,omitempty"`
	// Claims are CEL conditions that must all hold when the rule matches.
	Claims []string `json:"claims,omitempty"`
}

// ForwardClaim copies one claim into one upstream request header.
type ForwardClaim struct {
	// Claim is any top-level claim of the token. Strings go as they are, numbers and booleans
	// formatted, arrays space-joined, objects as JSON.
	Claim string `json:"claim"`
	// Header is the request header set for the upstream.
	Header string `json:"header"`
}

// issuerConfigs returns every configured issuer, the short form first.
func (p *ProtectHandler) issuerConfigs() []IssuerConfig {
	all := p.Issuers
	if p.Issuer != "" {
		all = append([]IssuerConfig{{Issuer: p.Issuer, JWKSURI: p.JWKSURI}}, all...)
	}
	return all
}

// compile checks the configuration and builds the policy gate, once.
func (p *ProtectHandler) compile() error {
	fwd, err := newForwarder(p.ForwardClaims)
	if err != nil {
		return fmt.Errorf("oauth_protect: %w", err)
	}
	p.forward = fwd
	if p.JWKSURI != "" && p.Issuer == "" {
		return fmt.Errorf("oauth_protect: jwks_uri %s: name its issuer (issuer <url>)", p.JWKSURI)
	}
	repl := caddy.NewReplacer()
	var trusted []policy.TrustedIssuer
	p.keys, p.bindings = nil, nil
	for _, ic := range p.issuerConfigs() {
		ti := policy.TrustedIssuer{Issuer: ic.Issuer, Audience: ic.Audience}
		if in := ic.Introspection; in != nil {
			ti.Introspection = &policy.Introspection{
				Endpoint:     in.URL,
				ClientID:     repl.ReplaceKnown(in.ClientID, ""),
				ClientSecret: repl.ReplaceKnown(in.ClientSecret, ""),
				MaxCacheTTL:  time.Duration(in.CacheTTL),
			}
		} else {
			b := &boundKeys{issuer: ic.Issuer, jwksURI: ic.JWKSURI}
			ti.Keys, ti.Revocations = b, b
			p.bindings = append(p.bindings, b)
			if p.keys == nil {
				p.keys = b
			}
		}
		trusted = append(trusted, ti)
	}
	rules := make([]policy.Rule, len(p.Rules))
	for i, r := range p.Rules {
		rules[i] = policy.Rule{Methods: r.Methods, Path: r.Path, Scopes: r.Scopes, Claims: r.Claims}
	}
	gate, err := policy.New(policy.Config{
		Issuers:         trusted,
		Audience:        p.Audience,
		Scopes:          p.Scopes,
		Claims:          p.Claims,
		Rules:           rules,
		Realm:           p.Realm,
		Algorithms:      p.Algorithms,
		Leeway:          time.Duration(p.Leeway),
		AllowQueryToken: p.AllowQueryToken,
		CacheSize:       p.CacheSize,
		Resource:        p.Resource,
	}, nil)
	if err != nil {
		return fmt.Errorf("oauth_protect: %w", err)
	}
	p.gate = gate
	return nil
}

package caddymodule

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"go.uber.org/zap"

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
	// AcceptJWTType also accepts this issuer's access tokens typed "JWT" (or untyped), as
	// Keycloak, Entra ID, Auth0 and Cognito issue them, not only RFC 9068's at+jwt. ID tokens
	// are still refused: a nonce (except beside Keycloak's typ claim "Bearer"), at_hash,
	// c_hash, a typ claim other than Bearer, or an audience that is the token's own azp or
	// client_id (configure the API's audience, not a client's). Default: off.
	AcceptJWTType bool `json:"accept_jwt_typ,omitempty"`
	// TrustPoolRaw is the certificate authorities trusted for this issuer's HTTPS (discovery,
	// JWKS, introspection), a tls.ca_pool.source module such as file or inline, for an issuer
	// whose certificate a private CA signed. It replaces the system roots for this issuer.
	// Default: the system roots.
	TrustPoolRaw json.RawMessage `json:"trust_pool,omitempty" caddy:"namespace=tls.ca_pool.source inline_key=provider"`
	// InsecureHTTP allows plain http:// to this issuer (discovery, JWKS, introspection) on a
	// host that is not loopback, where keys and tokens travel in clear; a warning is logged.
	// Default: off, and such an issuer fails provisioning. http:// on 127.0.0.0/8, [::1] or
	// localhost needs no opt-in.
	InsecureHTTP bool `json:"insecure_http,omitempty"`

	roots *x509.CertPool // from TrustPoolRaw, in Provision
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
	var trusted []policy.TrustedIssuer
	p.keys, p.bindings = nil, nil
	for _, ic := range p.issuerConfigs() {
		if err := p.checkTransport(ic); err != nil {
			return err
		}
		ti := policy.TrustedIssuer{Issuer: ic.Issuer, Audience: ic.Audience, AcceptJWTType: ic.AcceptJWTType}
		if in := ic.Introspection; in != nil {
			// The introspection credentials fail closed, like the issuer's client secrets.
			id, err := resolveSecret(in.ClientID)
			if err != nil {
				return fmt.Errorf("oauth_protect: issuer %s: client_id: %w", ic.Issuer, err)
			}
			secret, err := resolveSecret(in.ClientSecret)
			if err != nil {
				return fmt.Errorf("oauth_protect: issuer %s: client_secret: %w", ic.Issuer, err)
			}
			ti.Introspection = &policy.Introspection{
				Endpoint:          in.URL,
				ClientID:          id,
				ClientSecret:      secret,
				MaxCacheTTL:       time.Duration(in.CacheTTL),
				AllowInsecureHTTP: ic.InsecureHTTP,
				Client: policy.NewIssuerHTTPClient(policy.ClientOptions{Timeout: 5 * time.Second,
					RootCAs: ic.roots, AllowInsecureHTTP: ic.InsecureHTTP}),
			}
		} else {
			b := &boundKeys{issuer: ic.Issuer, jwksURI: ic.JWKSURI, insecureHTTP: ic.InsecureHTTP, roots: ic.roots, log: p.logger()}
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
		Issuers:             trusted,
		Audience:            p.Audience,
		Scopes:              p.Scopes,
		Claims:              p.Claims,
		Rules:               rules,
		Realm:               p.Realm,
		Algorithms:          p.Algorithms,
		Leeway:              time.Duration(p.Leeway),
		AllowQueryToken:     p.AllowQueryToken,
		AllowEncodedSlashes: p.AllowEncodedSlashes,
		CacheSize:           p.CacheSize,
		Resource:            p.Resource,
		OriginalURL:         originalURL,
	}, nil)
	if err != nil {
		return fmt.Errorf("oauth_protect: %w", err)
	}
	p.gate = gate
	return nil
}

// originalURL is the URL of r as its client sent it, before handle_path, uri strip_prefix or a
// rewrite changed r.URL: what was stripped is where the gate is mounted, and its RFC 9728 URLs
// must name what the client can fetch (policy.Config.OriginalURL).
func originalURL(r *http.Request) *url.URL {
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok {
		return or.URL
	}
	return nil
}

// checkTransport refuses plain http:// to an issuer beyond loopback unless its block says
// insecure_http, and warns when it does. It checks what the edge fetches from: the JWKS URL
// when given, else the issuer (discovery), and the introspection endpoint.
func (p *ProtectHandler) checkTransport(ic IssuerConfig) error {
	urls := []string{ic.Issuer}
	switch {
	case ic.Introspection != nil:
		urls = []string{ic.Introspection.URL}
	case ic.JWKSURI != "":
		urls = []string{ic.JWKSURI}
	}
	for _, u := range urls {
		err := policy.CheckIssuerURL(u, false)
		switch {
		case errors.Is(err, policy.ErrInsecureHTTP) && ic.InsecureHTTP:
			p.logger().Warn("insecure_http: this issuer's keys or tokens travel in clear over plain http",
				zap.String("issuer", ic.Issuer), zap.String("url", shownURL(u)))
		case errors.Is(err, policy.ErrInsecureHTTP):
			return fmt.Errorf("oauth_protect: issuer %s: %w; use https, or give the issuer a block with insecure_http", ic.Issuer, err)
		case err != nil:
			return fmt.Errorf("oauth_protect: issuer %s: %w", ic.Issuer, err)
		}
	}
	return nil
}

// loadTrustPools provisions each issuer's trust_pool module and keeps its certificate pool.
func (p *ProtectHandler) loadTrustPools(ctx caddy.Context) error {
	for i := range p.Issuers {
		ic := &p.Issuers[i]
		if ic.TrustPoolRaw == nil {
			continue
		}
		mod, err := ctx.LoadModule(ic, "TrustPoolRaw")
		if err != nil {
			return fmt.Errorf("oauth_protect: issuer %s: trust_pool: %w", ic.Issuer, err)
		}
		ca, ok := mod.(caddytls.CA)
		if !ok {
			return fmt.Errorf("oauth_protect: issuer %s: trust_pool: %T is not a certificate pool source", ic.Issuer, mod)
		}
		if ic.roots = ca.CertPool(); ic.roots == nil {
			return fmt.Errorf("oauth_protect: issuer %s: trust_pool has no certificates", ic.Issuer)
		}
	}
	return nil
}

// logger is the handler's logger, or a no-op one before Provision (in tests).
func (p *ProtectHandler) logger() *zap.Logger {
	if p.log == nil {
		return zap.NewNop()
	}
	return p.log
}

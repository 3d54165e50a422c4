package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/policy"
)

func init() {
	caddy.RegisterModule(ProtectHandler{})
}

// ProtectHandler is the oauth_protect HTTP handler: it lets a request pass to the next handler
// (typically reverse_proxy) only with a valid bearer access token carrying the scopes the route
// needs, and answers RFC 6750 errors otherwise. On success it sets {http.auth.user.id} (the
// token's sub), {http.auth.user.client_id} and {http.auth.user.scope}.
type ProtectHandler struct {
	// Issuer is the issuer URL whose tokens are accepted. Required. The issuer must be served
	// by this Caddy (oauth_issuer); its keys are then used directly, with no HTTP round trip.
	Issuer string `json:"issuer"`
	// Audience lists this API's identifiers; a token's aud must contain one. Required.
	Audience []string `json:"audience,omitempty"`
	// Scopes are needed by every request this handler sees.
	Scopes []string `json:"scopes,omitempty"`
	// Rules add scopes by method and path; the first matching rule applies.
	Rules []RuleConfig `json:"rules,omitempty"`
	// ForwardClaims copy token claims into upstream request headers; any client-sent copy of
	// such a header is deleted first.
	ForwardClaims []ForwardClaim `json:"forward_claims,omitempty"`
	// Realm is the WWW-Authenticate realm. Default: the issuer URL.
	Realm string `json:"realm,omitempty"`
	// Algorithms is the JWS "alg" allow-list. Default: every asymmetric algorithm; none and
	// HMAC are never allowed.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway is the allowed clock skew for exp/nbf. Default 5s.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	gate *policy.Gate
	keys *boundKeys
	log  *zap.Logger
}

// RuleConfig is one `rule <METHOD[,METHOD]|*> <path-glob> <scopes…>` line.
type RuleConfig struct {
	// Methods the rule covers; empty means any.
	Methods []string `json:"methods,omitempty"`
	// Path is a glob; a trailing * is a prefix match.
	Path string `json:"path"`
	// Scopes are all required when the rule matches.
	Scopes []string `json:"scopes"`
}

// ForwardClaim copies one claim into one upstream request header.
type ForwardClaim struct {
	// Claim is one of sub, client_id, scope, iss, jti, aud.
	Claim string `json:"claim"`
	// Header is the request header set for the upstream.
	Header string `json:"header"`
}

// forwardableClaims reads the claims ForwardClaim may name.
var forwardableClaims = map[string]func(*accesstoken.Claims) string{
	"sub":       func(c *accesstoken.Claims) string { return c.Subject },
	"client_id": func(c *accesstoken.Claims) string { return c.ClientID },
	"scope":     func(c *accesstoken.Claims) string { return c.Scope },
	"iss":       func(c *accesstoken.Claims) string { return c.Issuer },
	"jti":       func(c *accesstoken.Claims) string { return c.ID },
	"aud":       func(c *accesstoken.Claims) string { return strings.Join(c.Audience, " ") },
}

// CaddyModule returns the Caddy module information.
func (ProtectHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oauth_protect",
		New: func() caddy.Module { return new(ProtectHandler) },
	}
}

// Provision compiles the policy once and registers with the tollgate app, which binds the
// issuer's keys when the configuration starts.
func (p *ProtectHandler) Provision(ctx caddy.Context) error {
	p.log = ctx.Logger()
	if err := p.compile(); err != nil {
		return err
	}
	app, err := ctx.App("tollgate")
	if err != nil {
		return err
	}
	app.(*App).registerProtector(p)
	return nil
}

// compile checks the configuration and builds the policy gate, once.
func (p *ProtectHandler) compile() error {
	for _, fc := range p.ForwardClaims {
		if forwardableClaims[fc.Claim] == nil {
			return fmt.Errorf("oauth_protect: forward_claim %q: claim not supported (supported: sub client_id scope iss jti aud)", fc.Claim)
		}
		if fc.Header == "" {
			return fmt.Errorf("oauth_protect: forward_claim %q: header is required", fc.Claim)
		}
	}
	rules := make([]policy.Rule, len(p.Rules))
	for i, r := range p.Rules {
		rules[i] = policy.Rule{Methods: r.Methods, Path: r.Path, Scopes: r.Scopes}
	}
	p.keys = new(boundKeys)
	gate, err := policy.New(policy.Config{
		Issuer:     strings.TrimSuffix(p.Issuer, "/"),
		Audience:   p.Audience,
		Scopes:     p.Scopes,
		Rules:      rules,
		Realm:      p.Realm,
		Algorithms: p.Algorithms,
		Leeway:     time.Duration(p.Leeway),
	}, p.keys)
	if err != nil {
		return fmt.Errorf("oauth_protect: %w", err)
	}
	p.gate = gate
	return nil
}

// ServeHTTP lets the request pass only with a valid token and the required scopes.
func (p *ProtectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	claims, denial := p.gate.Authorize(r)
	if denial != nil {
		p.gate.SetChallenge(w, denial)
		if c := p.log.Check(zapcore.DebugLevel, "request denied"); c != nil {
			c.Write(zap.Int("status", denial.Status), zap.String("reason", denial.Code), zap.Error(denial.Err))
		}
		return caddyhttp.Error(denial.Status, denial)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", claims.Subject)
	repl.Set("http.auth.user.client_id", claims.ClientID)
	repl.Set("http.auth.user.scope", claims.Scope)
	for _, fc := range p.ForwardClaims {
		r.Header.Del(fc.Header)
		if v := forwardableClaims[fc.Claim](claims); v != "" {
			r.Header.Set(fc.Header, v)
		}
	}
	return next.ServeHTTP(w, r)
}

// boundKeys is the protector's key source: the keys of the in-process issuer, bound when the
// configuration starts (App.Start), after every handler is provisioned.
type boundKeys struct{ server atomic.Pointer[issuer.Server] }

var errIssuerNotBound = errors.New("issuer keys are not available yet")

func (b *boundKeys) bind(s *issuer.Server) { b.server.Store(s) }

// Keyfunc implements policy.KeySource.
func (b *boundKeys) Keyfunc(t *jwt.Token) (any, error) {
	s := b.server.Load()
	if s == nil {
		return nil, errIssuerNotBound
	}
	return s.Keys().Keyfunc(t)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ProtectHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ProtectHandler)(nil)
	_ policy.KeySource            = (*boundKeys)(nil)
)

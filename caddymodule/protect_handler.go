package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-auth/tollgate/policy"
)

func init() {
	caddy.RegisterModule(ProtectHandler{})
}

// ProtectHandler is the oauth_protect HTTP handler: it lets a request pass to the next handler
// (typically reverse_proxy) only with a valid bearer access token carrying the scopes and claims
// the route needs, and answers RFC 6750 errors otherwise. It serves the API's RFC 9728 metadata
// without a token: at /.well-known/oauth-protected-resource under its resource (the site root,
// or the prefix of handle_path, or the path of resource or of an audience on the site's host),
// which its challenges name, and at the RFC 9728 path-inserted URL when a request for it
// reaches the handler (see policy/resource_metadata.go). On success it sets
// {http.auth.user.id} (the token's sub) and {http.auth.user.<claim>} for every top-level claim
// (client_id, scope, …), and the forward_claim headers.
type ProtectHandler struct {
	// Issuer is an issuer URL whose tokens are accepted: the short form for one issuer. When
	// the issuer is served by this Caddy (oauth_issuer), its keys are used directly, with no
	// HTTP round trip; otherwise its JWKS is fetched (from JWKSURI, or found by discovery).
	Issuer string `json:"issuer,omitempty"`
	// JWKSURI is the JWK Set URL of Issuer; default: found by OpenID Connect discovery, or RFC
	// 8414 metadata. Ignored for an issuer this Caddy serves.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Issuers are more trusted issuers (multi-tenant): a token is verified by the issuer its
	// "iss" names. At least one of Issuer and Issuers is required.
	Issuers []IssuerConfig `json:"issuers,omitempty"`
	// Audience lists this API's identifiers; a token's aud must contain one. Required, unless
	// every issuer has its own.
	Audience []string `json:"audience,omitempty"`
	// Scopes are needed by every request this handler sees.
	Scopes []string `json:"scopes,omitempty"`
	// Claims are CEL conditions every request's token must satisfy (see policy.Config.Claims).
	Claims []string `json:"claims,omitempty"`
	// Rules add scopes and claim conditions by method and path; the first matching rule applies.
	Rules []RuleConfig `json:"rules,omitempty"`
	// ForwardClaims copy token claims into upstream request headers; any client-sent copy of
	// such a header is deleted first, also when the token lacks the claim.
	ForwardClaims []ForwardClaim `json:"forward_claims,omitempty"`
	// Realm is the WWW-Authenticate realm. Default: the first issuer URL.
	Realm string `json:"realm,omitempty"`
	// Algorithms is the JWS "alg" allow-list. Default: every asymmetric algorithm; none and
	// HMAC are never allowed.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway is the allowed clock skew for exp/nbf/iat. Default 5s.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// AllowQueryToken accepts the token in the access_token query parameter (RFC 6750 §2.3);
	// the parameter is removed before the request goes upstream. Default: off.
	AllowQueryToken bool `json:"allow_query_token,omitempty"`
	// AllowEncodedSlashes accepts request paths with an encoded slash (%2F) inside a segment,
	// for upstreams that take one in an identifier ("/projects/group%2Fapp"); rules then judge
	// the path both with %2F inside its segment and with %2F as a separator, and the request
	// needs what either reading needs. Default: off; such a request gets 400 invalid_request
	// and never reaches the upstream. Whatever this says, a request whose path has a backslash
	// (raw or %5C), a dot segment (".", "..", raw or encoded as %2e), an encoded control
	// character (%00-%1F, %7F) or a double encoding (%25 and two hex digits, as in %252f) gets
	// 400: rules judge the path that the upstream receives, and these can be read two ways.
	AllowEncodedSlashes bool `json:"allow_encoded_slashes,omitempty"`
	// AllowPreflight lets CORS preflight requests (OPTIONS with Origin and
	// Access-Control-Request-Method) pass without a token, for an upstream that answers CORS.
	// Default: off (a preflight gets 401 like any request without a token).
	AllowPreflight bool `json:"allow_preflight,omitempty"`
	// Resource is the API's RFC 9728 resource identifier, the "resource" of its metadata; when
	// it is an http(s) URL, challenges name <resource>/.well-known/oauth-protected-resource, and
	// the document is also served at the path-inserted
	// /.well-known/oauth-protected-resource/<path> whenever a request for it reaches the
	// handler. Default: the longest audience that is an http(s) URL on the request's host and a
	// path prefix of the request; else the request's origin plus the prefix handle_path
	// stripped (the origin alone at the site root). Under handle or route, which strip nothing,
	// the handler cannot know its prefix: give resource, or an audience on the site, there.
	Resource string `json:"resource,omitempty"`
	// CacheSize bounds the verified-token cache (entries). Default 10000; negative turns it off.
	CacheSize int `json:"cache_size,omitempty"`
	// JWKSRefresh is how often a remote issuer's JWKS is fetched again. Default 1h. A token
	// with an unknown kid (that passed every other check) also triggers a fetch, at most one per
	// second per issuer; it waits for that fetch, so a key the issuer just published is accepted
	// within about a second even under a flood of made-up kids.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	gate     *policy.Gate
	keys     *boundKeys   // the first issuer verified by keys, if any
	bindings []*boundKeys // every issuer verified by keys
	forward  forwarder
	log      *zap.Logger
	metrics  *protectMetrics
	ctx      context.Context
	cancel   context.CancelFunc
}

// CaddyModule returns the Caddy module information.
func (ProtectHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oauth_protect",
		New: func() caddy.Module { return new(ProtectHandler) },
	}
}

// Provision compiles the policy once and registers with the tollgate app, which binds each
// issuer's keys when the configuration starts.
func (p *ProtectHandler) Provision(ctx caddy.Context) error {
	p.log = ctx.Logger()
	p.ctx, p.cancel = context.WithCancel(ctx)
	if err := p.loadTrustPools(ctx); err != nil {
		return err
	}
	if err := p.compile(); err != nil {
		return err
	}
	if p.AllowQueryToken {
		// Caddy's access log records a request's URI as it arrived, before any handler runs;
		// the gate cannot take the token out of it (docs/design.md, "Logs").
		p.log.Warn("allow_query_token: access tokens sent in the query string appear in Caddy's access and error logs; " +
			"filter them in both (log { format filter { request>uri query { replace access_token REDACTED } } })")
	}
	app, err := ctx.App("tollgate")
	if err != nil {
		return err
	}
	a := app.(*App)
	p.metrics = a.metrics
	a.registerProtector(p)
	liveProtectors.Store(p, struct{}{})
	return nil
}

// ServeHTTP serves the RFC 9728 metadata, lets preflights pass when configured, and otherwise
// lets the request pass only with a valid token and what its route needs.
func (p *ProtectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if p.gate.IsResourceMetadata(r) {
		p.gate.ServeResourceMetadata(w, r)
		return nil
	}
	if p.AllowPreflight && policy.IsPreflight(r) {
		p.forward.strip(r.Header)
		return next.ServeHTTP(w, r)
	}
	tok, denial := p.gate.Authorize(r)
	if denial != nil {
		p.metrics.deny(denial.Reason())
		p.gate.SetChallenge(w, r, denial)
		level := zapcore.DebugLevel
		if denial.Status == http.StatusServiceUnavailable {
			level = zapcore.WarnLevel
		}
		if c := p.log.Check(level, "request denied"); c != nil {
			c.Write(zap.Int("status", denial.Status), zap.String("reason", denial.Reason()), zap.Error(denial.Err))
		}
		return caddyhttp.Error(denial.Status, denial)
	}
	p.metrics.allow()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(userPlaceholders(tok))
	p.forward.apply(r.Header, tok)
	if p.AllowQueryToken && policy.MayHaveQueryToken(r.URL.RawQuery) {
		if q := r.URL.Query(); q.Has("access_token") {
			q.Del("access_token")
			r.URL.RawQuery = q.Encode()
		}
	}
	return next.ServeHTTP(w, r)
}

// Cleanup stops the background fetches of remote keys; it is safe when Provision failed.
func (p *ProtectHandler) Cleanup() error {
	if p.cancel != nil {
		p.cancel()
	}
	liveProtectors.Delete(p)
	return nil
}

// startRemote fetches the keys of b's issuer over HTTP, in the background, until Cleanup.
func (p *ProtectHandler) startRemote(b *boundKeys) error {
	rk, err := policy.NewRemoteKeys(policy.RemoteOptions{
		Issuer:            b.issuer,
		JWKSURL:           b.jwksURI,
		Client:            policy.NewIssuerHTTPClient(policy.ClientOptions{RootCAs: b.roots, AllowInsecureHTTP: b.insecureHTTP}),
		AllowInsecureHTTP: b.insecureHTTP,
		RefreshInterval:   time.Duration(p.JWKSRefresh),
		OnFetch:           p.onFetch(b.issuer),
	})
	if err != nil {
		return fmt.Errorf("oauth_protect: issuer %s: %w", b.issuer, err)
	}
	p.log.Info("issuer is not served by this Caddy; fetching its keys over HTTP",
		zap.String("issuer", b.issuer), zap.String("jwks_uri", shownURL(b.jwksURI)))
	b.bindRemote(rk)
	rk.Start(p.ctx)
	return nil
}

// shownURL is a URL as the log may show it: a password in it (https://user:pass@host/…)
// is replaced by "xxxxx".
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// onFetch logs and counts the fetches of one remote issuer's keys.
func (p *ProtectHandler) onFetch(iss string) func(policy.FetchEvent) {
	var ready atomic.Bool
	return func(ev policy.FetchEvent) {
		p.metrics.fetched(iss, ev.Err == nil)
		fields := []zap.Field{zap.String("issuer", iss), zap.String("url", shownURL(ev.URL)), zap.String("trigger", ev.Trigger)}
		switch {
		case ev.Err != nil && !ready.Load():
			p.log.Error("cannot fetch the issuer's keys; its tokens get 503 until they arrive (retrying with backoff)",
				append(fields, zap.Error(ev.Err))...)
		case ev.Err != nil:
			p.log.Warn("cannot refresh the issuer's keys; the previous keys stay in use", append(fields, zap.Error(ev.Err))...)
		case ev.Removed:
			p.log.Warn("a key was withdrawn from the issuer's JWKS; cached tokens are verified again",
				append(fields, zap.Int("keys", ev.Keys))...)
		case !ready.Load():
			p.log.Info("fetched the issuer's keys", append(fields, zap.Int("keys", ev.Keys))...)
		default:
			p.log.Debug("refreshed the issuer's keys", append(fields, zap.Int("keys", ev.Keys))...)
		}
		if ev.Err == nil {
			ready.Store(true)
		}
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ProtectHandler)(nil)
	_ caddy.CleanerUpper          = (*ProtectHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ProtectHandler)(nil)
)

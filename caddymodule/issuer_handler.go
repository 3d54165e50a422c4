package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tollgate-auth/tollgate/issuer"
)

func init() {
	caddy.RegisterModule(IssuerHandler{})
}

// IssuerHandler is the oauth_issuer HTTP handler: an OAuth 2.0 / OpenID Connect authorization
// server. It answers only its own paths (metadata, JWKS, token endpoint, pages) and passes
// every other request to the next handler, so one site can serve the issuer and an app.
type IssuerHandler struct {
	// Config is the issuer's configuration, embedded as it is: its fields (issuer,
	// access_token_ttl, clients, …) are the handler's JSON fields, and issuer.Config documents
	// each with its default. Client secrets may use placeholders such as {env.SECRET}.
	issuer.Config
	// Storage selects where keys, codes and tokens live. Default: a bolt file in Caddy's data
	// directory.
	Storage *StorageConfig `json:"storage,omitempty"`

	resolved issuer.Config  // Config with its secrets' placeholders replaced, checked at Provision
	ctx      caddy.Context  // the configuration's context, for start
	ready    chan struct{}  // closed once start has opened the store and made the server
	server   *issuer.Server // set by start, before ready is closed
	storeKey string
}

// CaddyModule returns the Caddy module information.
func (IssuerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oauth_issuer",
		New: func() caddy.Module { return new(IssuerHandler) },
	}
}

// Provision checks the configuration and registers the issuer with the tollgate app, without
// side effects: no store is opened and no file or key is created, so `caddy validate` works on
// the config a running Caddy holds (whose bolt file is locked) and on configs never run. The
// tollgate app's Start opens the store and starts the issuer (start).
func (h *IssuerHandler) Provision(ctx caddy.Context) error {
	cfg := h.Config
	cfg.Clients = make([]issuer.Client, len(h.Clients))
	for i, c := range h.Clients {
		secret, err := resolveSecret(c.Secret)
		if err != nil {
			return fmt.Errorf("oauth_issuer %s: client %q: secret: %w", h.Issuer, c.ID, err)
		}
		c.Secret = secret
		cfg.Clients[i] = c
	}
	cfg.Upstreams = make([]issuer.Upstream, len(h.Upstreams))
	for i, u := range h.Upstreams {
		var err error
		if u.ClientID, err = resolveSecret(u.ClientID); err != nil {
			return fmt.Errorf("oauth_issuer %s: upstream %q: client_id: %w", h.Issuer, u.Name, err)
		}
		if u.ClientSecret, err = resolveSecret(u.ClientSecret); err != nil {
			return fmt.Errorf("oauth_issuer %s: upstream %q: client_secret: %w", h.Issuer, u.Name, err)
		}
		cfg.Upstreams[i] = u
	}
	if h.Registration != nil {
		reg := *h.Registration
		iat, err := resolveSecret(reg.InitialAccessToken)
		if err != nil {
			return fmt.Errorf("oauth_issuer %s: registration token: %w", h.Issuer, err)
		}
		reg.InitialAccessToken = iat
		cfg.Registration = &reg
	}
	if err := issuer.CheckConfig(cfg); err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	if err := checkStorage(h.Storage); err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	h.resolved, h.ctx, h.ready = cfg, ctx, make(chan struct{})
	app, err := ctx.App("tollgate")
	if err != nil {
		return err
	}
	return app.(*App).registerIssuer(h)
}

// issuerURL is the issuer identifier as tokens carry it (no trailing slash).
func (h *IssuerHandler) issuerURL() string { return strings.TrimSuffix(h.Issuer, "/") }

// start opens the store and starts the issuer: the signing keys are loaded or created, the
// deny-list is read and the upkeep begins. The tollgate app calls it when the configuration
// starts; requests that arrive before (Caddy starts its apps in no set order) wait for it.
func (h *IssuerHandler) start() error {
	digest := sha256.Sum256([]byte(h.Issuer))
	st, key, err := openStore(h.Storage, hex.EncodeToString(digest[:8]))
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	h.storeKey = key
	h.server, err = issuer.New(h.ctx, h.resolved, issuer.Deps{Store: st, Logger: h.ctx.Logger(), ClientIP: clientIP,
		Metrics: h.ctx.GetMetricsRegistry(), Audit: h.ctx.Logger().Named("audit")})
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	close(h.ready)
	return nil
}

// startWait bounds how long a request waits for the issuer to start.
const startWait = 10 * time.Second

// ServeHTTP serves the issuer's own paths and passes every other request on. Codes and tokens
// in a redirect are redacted from what Caddy's access log sees once the response has left.
func (h *IssuerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	select {
	case <-h.ready:
	default:
		if !h.waitStarted(r) {
			w.Header().Set("Retry-After", "1")
			return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("oauth_issuer: the issuer is still starting"))
		}
	}
	if route := h.server.Route(r.URL.Path); route != nil {
		route.ServeHTTP(w, r)
		scrubLoggedHeaders(w)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// waitStarted waits for start, at most startWait or until the request is cancelled.
func (h *IssuerHandler) waitStarted(r *http.Request) bool {
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-h.ready:
		return true
	case <-r.Context().Done():
	case <-t.C:
	}
	return false
}

// Cleanup stops the issuer's upkeep and releases the store; it is safe when Provision or start
// failed or never ran.
func (h *IssuerHandler) Cleanup() error {
	if h.server != nil {
		_ = h.server.Close()
	}
	if h.storeKey == "" {
		return nil
	}
	_, err := stores.Delete(h.storeKey)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*IssuerHandler)(nil)
	_ caddy.CleanerUpper          = (*IssuerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*IssuerHandler)(nil)
)

// resolveSecret replaces the placeholders of a configured secret, such as {env.SECRET}. A
// secret fails closed: if a placeholder is set to nothing (an unset environment variable, say),
// or the whole secret comes out empty, it is an error naming the placeholder, never an empty
// secret — for a client, that would make it public. A secret that was never configured stays
// empty. Unknown placeholders (braces that are part of a literal secret) stay as they are.
func resolveSecret(configured string) (string, error) {
	if configured == "" {
		return "", nil
	}
	v, err := caddy.NewReplacer().ReplaceOrErr(configured, true, false)
	if err != nil {
		return "", fmt.Errorf("%w (set it, or remove the line)", err)
	}
	if v == "" {
		return "", errors.New("resolves to nothing (set it, or remove the line)")
	}
	return v, nil
}

// clientIP is the client address Caddy resolved (honouring trusted_proxies), for throttling.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

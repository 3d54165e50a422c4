package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

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

	server   *issuer.Server
	storeKey string
}

// CaddyModule returns the Caddy module information.
func (IssuerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.oauth_issuer",
		New: func() caddy.Module { return new(IssuerHandler) },
	}
}

// Provision opens the store, starts the issuer (issuer.New checks the configuration) and
// registers it with the tollgate app.
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
	digest := sha256.Sum256([]byte(h.Issuer))
	st, key, err := openStore(h.Storage, hex.EncodeToString(digest[:8]))
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	h.storeKey = key
	h.server, err = issuer.New(ctx, cfg, issuer.Deps{Store: st, Logger: ctx.Logger(), ClientIP: clientIP})
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	app, err := ctx.App("tollgate")
	if err != nil {
		return err
	}
	return app.(*App).registerIssuer(h.server)
}

// ServeHTTP serves the issuer's own paths and passes every other request on. Codes and tokens
// in a redirect are redacted from what Caddy's access log sees once the response has left.
func (h *IssuerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if route := h.server.Route(r.URL.Path); route != nil {
		route.ServeHTTP(w, r)
		scrubLoggedHeaders(w)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// Cleanup stops the issuer's upkeep and releases the store; it is safe when Provision failed.
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

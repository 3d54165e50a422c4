package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
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
	// Issuer is the issuer URL, the "iss" of every token. Required.
	Issuer string `json:"issuer"`
	// Storage selects where keys, codes and tokens live. Default: a bolt file in Caddy's data
	// directory.
	Storage *StorageConfig `json:"storage,omitempty"`
	// AccessTokenTTL is the access-token lifetime. Default 10m.
	AccessTokenTTL caddy.Duration `json:"access_token_ttl,omitempty"`
	// RefreshTokenTTL is the absolute refresh-token lifetime. Default 720h.
	RefreshTokenTTL caddy.Duration `json:"refresh_token_ttl,omitempty"`
	// RefreshTokenIdleTTL ends a refresh-token family unused for this long. Default 336h.
	RefreshTokenIdleTTL caddy.Duration `json:"refresh_token_idle_ttl,omitempty"`
	// RefreshReuseGrace lets a duplicate refresh within this window get the same answer
	// instead of revoking the session. Default 0 (off).
	RefreshReuseGrace caddy.Duration `json:"refresh_reuse_grace,omitempty"`
	// KeyRotation is how long a signing key signs before a new one replaces it. Default
	// 720h; replaced keys stay in the JWKS until the tokens they signed have expired.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`
	// SigningAlg signs access tokens: ES256 (default), ES384, RS256, PS256 or EdDSA.
	SigningAlg string `json:"signing_alg,omitempty"`
	// IDTokenSigningAlg signs ID tokens. Default RS256.
	IDTokenSigningAlg string `json:"id_token_signing_alg,omitempty"`
	// CodeTTL is the authorization-code lifetime. Default 60s.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// SessionTTL is the browser sign-in (SSO) session lifetime. Default 24h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// DeviceCodeTTL is the lifetime of device and user codes (RFC 8628). Default 10m.
	DeviceCodeTTL caddy.Duration `json:"device_code_ttl,omitempty"`
	// DevicePollInterval is the minimum time, in whole seconds, between a device's token
	// requests (RFC 8628 interval). Default 5s.
	DevicePollInterval caddy.Duration `json:"device_poll_interval,omitempty"`
	// CORSOrigins may call the token, userinfo, JWKS and metadata endpoints from a browser, in
	// addition to the origins of registered redirect URIs.
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// UsersFile is a JSON file of users ({"users":[{"name","password_hash","claims"}]}),
	// reloaded when it changes.
	UsersFile string `json:"users_file,omitempty"`
	// Users who can sign in.
	Users []issuer.User `json:"users,omitempty"`
	// Clients registered with the issuer. Secrets may use placeholders such as {env.SECRET}.
	Clients []issuer.Client `json:"clients,omitempty"`

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

// Provision opens the store, loads the keys and registers the issuer with the tollgate app.
func (h *IssuerHandler) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	clients := make([]issuer.Client, len(h.Clients))
	for i, c := range h.Clients {
		c.Secret = repl.ReplaceKnown(c.Secret, "")
		clients[i] = c
	}
	cfg := issuer.Config{
		Issuer:              h.Issuer,
		AccessTokenTTL:      time.Duration(h.AccessTokenTTL),
		RefreshTokenTTL:     time.Duration(h.RefreshTokenTTL),
		RefreshTokenIdleTTL: time.Duration(h.RefreshTokenIdleTTL),
		RefreshReuseGrace:   time.Duration(h.RefreshReuseGrace),
		SigningAlg:          h.SigningAlg,
		IDTokenSigningAlg:   h.IDTokenSigningAlg,
		CodeTTL:             time.Duration(h.CodeTTL),
		SessionTTL:          time.Duration(h.SessionTTL),
		DeviceCodeTTL:       time.Duration(h.DeviceCodeTTL),
		DevicePollInterval:  time.Duration(h.DevicePollInterval),
		CORSOrigins:         h.CORSOrigins,
		UsersFile:           h.UsersFile,
		Users:               h.Users,
		Clients:             clients,
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("oauth_issuer: %w", err)
	}
	digest := sha256.Sum256([]byte(h.Issuer))
	st, key, err := openStore(h.Storage, hex.EncodeToString(digest[:8]))
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	h.storeKey = key
	h.server, err = issuer.New(ctx, cfg, issuer.Deps{Store: st, Logger: ctx.Logger(), ClientIP: clientIP,
		SharedStore: h.Storage != nil && h.Storage.Backend != "" && h.Storage.Backend != "bolt"})
	if err != nil {
		return fmt.Errorf("oauth_issuer %s: %w", h.Issuer, err)
	}
	app, err := ctx.App("tollgate")
	if err != nil {
		return err
	}
	return app.(*App).registerIssuer(h.server)
}

// ServeHTTP serves the issuer's own paths and passes every other request on.
func (h *IssuerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if route := h.server.Route(r.URL.Path); route != nil {
		route.ServeHTTP(w, r)
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

// clientIP is the client address Caddy resolved (honouring trusted_proxies), for throttling.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

package caddymodule

import (
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tollgate-auth/tollgate/issuer"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the "tollgate" app: the in-process registry of the issuers a configuration serves and
// of its protectors. Handlers load it with ctx.App, so it exists once per configuration and needs
// no entry in the user's config; a reload builds a new registry with the new configuration.
type App struct {
	mu         *sync.RWMutex
	issuers    map[string]*IssuerHandler // by issuer URL
	protectors []*ProtectHandler
	metrics    *protectMetrics
	ctx        caddy.Context
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tollgate",
		New: func() caddy.Module { return &App{mu: new(sync.RWMutex), issuers: map[string]*IssuerHandler{}} },
	}
}

// Provision registers the protectors' metrics in the configuration's metrics registry.
func (a *App) Provision(ctx caddy.Context) error {
	m, err := newProtectMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("tollgate: metrics: %w", err)
	}
	a.metrics, a.ctx = m, ctx
	return nil
}

// registerIssuer makes h findable by protectors of this configuration, and starts it with
// the configuration (Start).
func (a *App) registerIssuer(h *IssuerHandler) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.issuers[h.issuerURL()]; dup {
		return fmt.Errorf("issuer %s is configured twice", h.issuerURL())
	}
	a.issuers[h.issuerURL()] = h
	return nil
}

// lookupIssuer returns the in-process issuer for url, or nil. It is meant for Start, once the
// issuers have started.
func (a *App) lookupIssuer(url string) *issuer.Server {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if h := a.issuers[strings.TrimSuffix(url, "/")]; h != nil {
		return h.server
	}
	return nil
}

func (a *App) registerProtector(p *ProtectHandler) {
	a.mu.Lock()
	a.protectors = append(a.protectors, p)
	a.mu.Unlock()
}

// Start runs when the configuration starts, never when it is only validated: it opens each
// issuer's store and starts the issuer, then binds each protector's issuers to their keys. An
// issuer this Caddy serves is bound to its keys in process; any other is fetched over HTTP in
// the background, so an issuer that is down does not stop Caddy (its tokens get 503 until the
// keys arrive). If an issuer cannot start, the configuration does not start, and Caddy cleans
// up what was opened.
func (a *App) Start() error {
	a.mu.RLock()
	protectors := a.protectors
	issuers := make([]*IssuerHandler, 0, len(a.issuers))
	for _, h := range a.issuers {
		issuers = append(issuers, h)
	}
	a.mu.RUnlock()
	for _, h := range issuers {
		if err := h.start(); err != nil {
			return err
		}
	}
	if v, err := a.ctx.AppIfConfigured("http"); err == nil {
		if httpApp, ok := v.(*caddyhttp.App); ok {
			mounts := protectorMounts(httpApp)
			for _, p := range protectors {
				if p.gate != nil {
					p.gate.SetMounts(mounts[p])
				}
			}
		}
	}
	for _, p := range protectors {
		for _, b := range p.bindings {
			if s := a.lookupIssuer(b.issuer); s != nil {
				b.bind(s)
				if p.gate != nil {
					// DPoP proofs are single use across every node sharing the issuer's store.
					p.gate.SetDPoPReplay(s.DPoPReplay())
				}
				continue
			}
			if err := p.startRemote(b); err != nil {
				return err
			}
		}
	}
	appStarted(a) // the admin API (admin_api.go) finds the issuers from now on
	return nil
}

// Stop takes the app's issuers off the admin API; handlers release their resources in Cleanup.
func (a *App) Stop() error {
	appStopped(a)
	return nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

package caddymodule

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/tollgate-auth/tollgate/issuer"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the "tollgate" app: the in-process registry of the issuers a configuration serves.
// Handlers load it with ctx.App, so it exists once per configuration and needs no entry in
// the user's config; a reload builds a new registry with the new configuration.
type App struct {
	mu         *sync.RWMutex
	issuers    map[string]*issuer.Server // by issuer URL
	protectors []*ProtectHandler
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tollgate",
		New: func() caddy.Module { return &App{mu: new(sync.RWMutex), issuers: map[string]*issuer.Server{}} },
	}
}

// registerIssuer makes s findable by protectors of this configuration.
func (a *App) registerIssuer(s *issuer.Server) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.issuers[s.Issuer()]; dup {
		return fmt.Errorf("issuer %s is configured twice", s.Issuer())
	}
	a.issuers[s.Issuer()] = s
	return nil
}

// lookupIssuer returns the in-process issuer for url, or nil.
func (a *App) lookupIssuer(url string) *issuer.Server {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.issuers[strings.TrimSuffix(url, "/")]
}

func (a *App) registerProtector(p *ProtectHandler) {
	a.mu.Lock()
	a.protectors = append(a.protectors, p)
	a.mu.Unlock()
}

// Start runs after every module is provisioned: it binds each protector to its issuer, so a
// protector naming an issuer this Caddy does not serve stops the configuration with a clear
// error instead of refusing every request.
func (a *App) Start() error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, p := range a.protectors {
		s := a.issuers[strings.TrimSuffix(p.Issuer, "/")]
		if s == nil {
			known := make([]string, 0, len(a.issuers))
			for k := range a.issuers {
				known = append(known, k)
			}
			sort.Strings(known)
			return fmt.Errorf("oauth_protect: issuer %s is not served by this Caddy (served here: %v); "+
				"protecting APIs of a remote issuer is not supported yet", p.Issuer, known)
		}
		p.keys.bind(s)
	}
	return nil
}

// Stop does nothing; handlers release their resources in Cleanup.
func (a *App) Stop() error { return nil }

// Interface guards
var _ caddy.App = (*App)(nil)

package issuer

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Endpoint paths, relative to the issuer URL's path.
const (
	PathOpenIDConfiguration = "/.well-known/openid-configuration"
	PathOAuthMetadata       = "/.well-known/oauth-authorization-server"
	PathToken               = "/oauth2/token"
	PathJWKS                = "/oauth2/jwks"
)

// Deps are the issuer's runtime dependencies.
type Deps struct {
	// Store keeps keys, codes and tokens. Required.
	Store store.Store
	// Logger receives operational logs; never tokens, secrets, codes or passwords. Default: none.
	Logger *zap.Logger
}

// Server is a running authorization server. It is safe for concurrent use.
type Server struct {
	cfg     Config
	issuer  string // the issuer URL, exactly as configured (without a trailing slash)
	base    string // the issuer URL's path, without a trailing slash
	realm   string
	store   store.Store
	keys    *keys.Manager
	clients map[string]*client
	grants  map[string]grant
	routes  map[string]http.Handler
	// metadataJSON is the RFC 8414 / OpenID discovery document, built once.
	metadataJSON []byte
	log          *zap.Logger
}

// New checks cfg, loads (or creates) the signing keys in deps.Store and returns a Server.
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("issuer: a store is required")
	}
	u, _ := ParseIssuerURL(cfg.Issuer)
	s := &Server{
		cfg:    cfg,
		issuer: strings.TrimSuffix(cfg.Issuer, "/"),
		base:   strings.TrimSuffix(u.EscapedPath(), "/"),
		realm:  u.Host,
		store:  deps.Store,
		log:    deps.Logger,
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if u.Scheme == "http" {
		s.log.Warn("issuer uses plain http on a loopback address; use https in production", zap.String("issuer", s.issuer))
	}
	var err error
	if s.keys, err = keys.Open(ctx, deps.Store, []string{cfg.SigningAlg}); err != nil {
		return nil, err
	}
	s.clients = make(map[string]*client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		s.clients[c.ID] = newClient(c)
	}
	s.grants = map[string]grant{
		GrantClientCredentials: clientCredentials{s},
	}
	s.metadataJSON = s.metadataDocument()
	s.routes = map[string]http.Handler{
		s.base + PathOpenIDConfiguration: http.HandlerFunc(s.serveMetadata),
		s.base + PathOAuthMetadata:       http.HandlerFunc(s.serveMetadata),
		// RFC 8414 §3.1: for an issuer with a path, the well-known segment comes first.
		PathOAuthMetadata + s.base: http.HandlerFunc(s.serveMetadata),
		s.base + PathToken:         http.HandlerFunc(s.serveToken),
		s.base + PathJWKS:          http.HandlerFunc(s.serveJWKS),
	}
	return s, nil
}

// Issuer returns the issuer identifier, the "iss" of every token.
func (s *Server) Issuer() string { return s.issuer }

// Keys returns the key manager; its Keyfunc verifies tokens this issuer signed.
func (s *Server) Keys() *keys.Manager { return s.keys }

// Route returns the handler for one of the issuer's own paths, or nil when path is not the
// issuer's, so the host passes the request on.
func (s *Server) Route(path string) http.Handler { return s.routes[path] }

// ServeHTTP serves the issuer's paths and answers 404 for every other path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.Route(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// endpoint returns the absolute URL of an endpoint path.
func (s *Server) endpoint(path string) string { return s.issuer + path }

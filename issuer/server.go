package issuer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/users"
)

// Endpoint paths, relative to the issuer URL's path.
const (
	PathOpenIDConfiguration = "/.well-known/openid-configuration"
	PathOAuthMetadata       = "/.well-known/oauth-authorization-server"
	PathToken               = "/oauth2/token"
	PathJWKS                = "/oauth2/jwks"
	PathAuthorize           = "/oauth2/authorize"
)

// Deps are the issuer's runtime dependencies.
type Deps struct {
	// Store keeps keys, codes and tokens. Required. Several Servers may share one store (a
	// cluster on one Redis, or the old and new configuration during a reload): they then
	// share every guarantee, and a revocation on one reaches the others within milliseconds.
	Store store.Store
	// Logger receives operational logs; never tokens, secrets, codes or passwords. Default: none.
	Logger *zap.Logger
	// ClientIP returns the client's address for throttling. Default: the host of RemoteAddr.
	// A host behind trusted proxies passes its resolved client IP here.
	ClientIP func(*http.Request) string
	// Metrics receives the tollgate_issuer_* collectors (metrics.go); the store is then
	// measured too. Collectors already registered there (a reload, another issuer) are
	// shared. Default: no metrics.
	Metrics prometheus.Registerer
	// Audit receives one INFO line per security event (audit.go); never a token, code, secret,
	// password or user code. Default: none.
	Audit *zap.Logger
}

// Server is a running authorization server. It is safe for concurrent use.
type Server struct {
	cfg    Config
	issuer string // the issuer URL, exactly as configured (without a trailing slash)
	base   string // the issuer URL's path, without a trailing slash
	// cookieSuffix keeps the cookies of issuers under different paths of one host apart.
	cookieSuffix string
	realm        string
	state        *state.State
	denied       *state.DenyList
	keys         *keys.Manager
	clients      map[string]*client
	grants       map[string]grant
	routes       map[string]http.Handler
	users        *users.Directory
	stop         context.CancelFunc // ends the background upkeep
	done         chan struct{}      // closed when the upkeep has ended
	corsOrigins  map[string]bool
	ipOf         func(*http.Request) string
	// metadataJSON is the RFC 8414 / OpenID discovery document, built once.
	metadataJSON []byte
	log          *zap.Logger
	auditLog     *zap.Logger
	metrics      *metrics // nil: no metrics
	// documents resolves https client ids (client ID metadata documents); nil when off.
	documents *documentClients
	// trusted are the other issuers whose tokens token exchange accepts, by identifier.
	trusted map[string]*trustedIssuer
	// upstreams are the upstream providers by name, and upstreamOrder them in configuration
	// order, for the sign-in page (upstream.go).
	upstreams     map[string]*upstream
	upstreamOrder []*upstream
	// dpop is the DPoP nonce maker (dpop_binding.go).
	dpop dpopState
	// rp is the WebAuthn relying party (passkey.go); nil when passkeys are off.
	rp *webauthn.WebAuthn
	// passkeySweep is what this node's sweeps of removed users' passkeys remember (passkey.go).
	passkeySweep passkeySweeper
}

// CheckConfig checks cfg as New would, without a store and without side effects: no file or key
// is created and nothing is started; a users file is only read. A host validating a
// configuration that may never run (caddy validate) calls it instead of New.
func CheckConfig(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.Check(); err != nil {
		return err
	}
	if _, err := users.New(staticUsers(cfg), cfg.UsersFile, nil); err != nil {
		return fmt.Errorf("issuer: users: %w", err)
	}
	if _, err := loadClientKeyFiles(cfg.Clients); err != nil {
		return err
	}
	return nil
}

// staticUsers are cfg's users as the users package takes them.
func staticUsers(cfg Config) []users.Static {
	static := make([]users.Static, len(cfg.Users))
	for i, u := range cfg.Users {
		static[i] = users.Static{Name: u.Name, PasswordHash: u.PasswordHash, Claims: u.Claims}
	}
	return static
}

// New checks cfg, loads (or creates) the signing keys in deps.Store and returns a Server.
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("issuer: a store is required")
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("issuer: metrics: %w", err)
	}
	st := deps.Store
	if m != nil {
		st = m.meter(st)
	}
	u, _ := ParseIssuerURL(cfg.Issuer) // Validate checked it
	s := &Server{
		cfg:          cfg,
		issuer:       strings.TrimSuffix(cfg.Issuer, "/"),
		base:         strings.TrimSuffix(u.EscapedPath(), "/"),
		cookieSuffix: cookieSuffixFor(strings.TrimSuffix(u.EscapedPath(), "/")),
		realm:        u.Host,
		denied:       state.NewDenyList(),
		log:          deps.Logger,
		auditLog:     deps.Audit,
		metrics:      m,
		ipOf:         deps.ClientIP,
	}
	s.state = state.New(st, state.Options{
		FamilyIdle:    time.Duration(cfg.RefreshTokenIdleTTL),
		ReuseGrace:    time.Duration(cfg.RefreshReuseGrace),
		Tombstone:     s.redemptionTTL(),
		RevokedBefore: time.Duration(max(cfg.RefreshTokenTTL, cfg.SessionTTL)),
	})
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.auditLog == nil {
		s.auditLog = zap.NewNop()
	}
	if u.Scheme == "http" {
		s.log.Warn("issuer uses plain http on a loopback address; use https in production", zap.String("issuer", s.issuer))
	}
	algs := []string{cfg.SigningAlg}
	if cfg.IDTokenSigningAlg != cfg.SigningAlg {
		algs = append(algs, cfg.IDTokenSigningAlg)
	}
	if s.keys, err = keys.Open(ctx, st, algs); err != nil {
		return nil, err
	}
	s.keys.SetLead(keyLead)
	if err := s.keys.Rotate(ctx, s.rotation()); err != nil {
		return nil, err
	}
	if s.users, err = users.New(staticUsers(cfg), cfg.UsersFile, s.log); err != nil {
		return nil, fmt.Errorf("issuer: users: %w", err)
	}
	if cfg.MetadataDocuments != nil {
		if s.documents, err = newDocumentClients(*cfg.MetadataDocuments, s.log); err != nil {
			return nil, err
		}
		s.documents.budget = func(ctx context.Context, addr string) (bool, error) {
			n, err := s.state.Count(ctx, "document_fetches:"+addr, 1, state.Window{Length: time.Minute, Now: time.Now()})
			return n <= DocumentFetchesPerAddress, err
		}
	}
	keyFiles, err := loadClientKeyFiles(cfg.Clients)
	if err != nil {
		return nil, err
	}
	s.corsOrigins = s.allowedOrigins()
	upkeep, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan struct{})
	if err := s.watchDenyList(ctx, upkeep); err != nil {
		stop()
		return nil, fmt.Errorf("issuer: loading the deny-list: %w", err)
	}
	go s.maintain(upkeep)
	s.trusted = newTrustedIssuers(upkeep, cfg, s.log)
	s.clients = make(map[string]*client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		s.clients[c.ID] = newClient(c)
		s.clients[c.ID].issued = m.issuedCounters(s.clients[c.ID])
		// private_key_jwt (RFC 7523): keys from the file read above, or fetched from the
		// jwks_uri in the background (client_keys.go).
		s.clients[c.ID].assertionKeys = keyFiles[c.ID]
		if c.JWKSURI != "" {
			s.clients[c.ID].remoteKeys = newRemoteKeySet(c.ID, c.JWKSURI, s.log)
			go s.clients[c.ID].remoteKeys.run(upkeep)
		}
		if c.Secret != "" && len(c.Secret) < minSecretLen {
			// Secrets are checked without a write per request, so the client-authentication
			// throttle bounds a guesser only by the limit plus the requests it has in flight.
			s.log.Warn("client secret is short; use at least 32 random characters",
				zap.String("client_id", c.ID), zap.Int("length", len(c.Secret)))
		}
	}
	s.grants = map[string]grant{
		GrantClientCredentials: clientCredentials{s},
		GrantAuthorizationCode: authorizationCode{s},
		GrantRefreshToken:      refreshToken{s},
		GrantPassword:          password{s},
		GrantDeviceCode:        deviceCode{s},
		GrantTokenExchange:     tokenExchange{s},
	}
	s.metadataJSON = s.metadataDocument()
	s.routes = map[string]http.Handler{
		s.base + PathOpenIDConfiguration: s.withOpenCORS(s.serveMetadata),
		s.base + PathOAuthMetadata:       s.withOpenCORS(s.serveMetadata),
		// RFC 8414 §3.1: for an issuer with a path, the well-known segment comes first.
		PathOAuthMetadata + s.base: s.withOpenCORS(s.serveMetadata),
		// The MCP authorization specification also tries OpenID discovery the same way.
		PathOpenIDConfiguration + s.base: s.withOpenCORS(s.serveMetadata),
		s.base + PathToken:               s.withOpenCORS(s.serveToken),
		s.base + PathPAR:                 s.withCORS(s.servePAR), // RFC 9126
		s.base + PathJWKS:                s.withOpenCORS(s.serveJWKS),
		s.base + PathUserinfo:            s.withCORS(s.serveUserinfo),
		s.base + PathIntrospect:          http.HandlerFunc(s.serveIntrospect),
		s.base + PathRevoke:              s.withOpenCORS(s.serveRevoke),
		s.base + PathAuthorize:           http.HandlerFunc(s.serveAuthorize),
		s.base + PathLogin:               http.HandlerFunc(s.serveLogin),
		s.base + PathConsent:             http.HandlerFunc(s.serveConsent),
		s.base + PathEndSession:          http.HandlerFunc(s.serveEndSession),
		s.base + PathAccount:             http.HandlerFunc(s.serveAccount),
		// RFC 8628: the device authorization endpoint and its verification page.
		s.base + PathDeviceAuthorization: s.withCORS(s.serveDeviceAuthorization),
		s.base + PathDevice:              http.HandlerFunc(s.serveDevice),
	}
	if err := s.upstreamRoutes(upkeep); err != nil { // upstream.go
		stop()
		return nil, err
	}
	if cfg.Registration != nil {
		// RFC 7591; each client's configuration endpoint (RFC 7592) is in Route.
		s.routes[s.base+PathRegister] = withRegistrationCORS(s.serveRegister)
	}
	if err := s.setupPasskeys(ctx); err != nil { // passkey_endpoint.go
		stop()
		return nil, err
	}
	return s, nil
}

// minSecretLen is the length below which a client secret is called short in the log.
const minSecretLen = 32

// Issuer returns the issuer identifier, the "iss" of every token.
func (s *Server) Issuer() string { return s.issuer }

// Keys returns the key manager; its Keyfunc verifies tokens this issuer signed.
func (s *Server) Keys() *keys.Manager { return s.keys }

// Route returns the handler for one of the issuer's own paths, or nil when path is not the
// issuer's, so the host passes the request on.
func (s *Server) Route(path string) http.Handler {
	if h := s.routes[path]; h != nil {
		return h
	}
	return s.registrationRoute(path) // PathRegister + "/<client_id>", when registration is on
}

// ServeHTTP serves the issuer's paths and answers 404 for every other path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.Route(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// clientIP is the client's address as the throttles count it: an IPv4 address, or the /64
// network of an IPv6 one (one host is commonly given a whole /64, so counting single IPv6
// addresses would limit nothing).
func (s *Server) clientIP(r *http.Request) string {
	ip := ""
	if s.ipOf != nil {
		ip = s.ipOf(r)
	}
	if ip == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		ip = host
	}
	return throttleAddress(ip)
}

// throttleAddress is the address a throttle counts for ip: itself for IPv4, its /64 for IPv6;
// anything that is not an IP address is taken as it is.
func throttleAddress(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// endpoint returns the absolute URL of an endpoint path.
func (s *Server) endpoint(path string) string { return s.issuer + path }

package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Paths of an upstream provider's endpoints at Tollgate, with the provider's name in between:
// <issuer>/oauth2/upstream/<name>/start (the sign-in page's button posts there) and
// <issuer>/oauth2/upstream/<name>/callback (the redirect URI to register at the provider).
const (
	pathUpstreamPrefix   = "/oauth2/upstream/"
	pathUpstreamStart    = "/start"
	pathUpstreamCallback = "/callback"
)

// Defaults of an upstream provider.
var (
	defaultUpstreamScopes = []string{"openid", "email", "profile"}
	// defaultUpstreamClaims are mapped under their own names when no claim line is given.
	defaultUpstreamClaims = []string{"email", "email_verified", "name", "given_name", "family_name", "preferred_username"}
)

// upstreamTimeout bounds each call to a provider: discovery, keys, the token exchange.
const upstreamTimeout = 10 * time.Second

// upstreamRetry is how soon discovery of a provider that failed is tried again.
const upstreamRetry = 5 * time.Second

var upstreamName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// protocolClaims are claims an upstream claim may not be mapped to: Tollgate sets them itself.
var protocolClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp", "nonce", "auth_time",
	"at_hash", "c_hash", "acr", "amr", "sid", "client_id", "scope", "act", "cnf", "may_act"}

// CheckUpstreams checks every upstream provider (CheckUpstream) and that no name is used
// twice. As with CheckClients, a parser can append one provider at a time.
func CheckUpstreams(us []Upstream) error {
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		if err := CheckUpstream(u); err != nil {
			return err
		}
		if seen[u.Name] {
			return fmt.Errorf("upstream %q: defined twice", u.Name)
		}
		seen[u.Name] = true
	}
	return nil
}

// CheckUpstream checks one upstream provider's settings.
func CheckUpstream(u Upstream) error {
	if err := CheckUpstreamName(u.Name); err != nil {
		return err
	}
	if u.UserinfoURL == "" || u.Issuer != "" {
		if _, err := ParseIssuerURL(u.Issuer); err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
	}
	if err := checkPlainOAuth(u); err != nil {
		return fmt.Errorf("upstream %s: %w", u.Name, err)
	}
	if u.ClientID == "" {
		return fmt.Errorf("upstream %s: client_id is required", u.Name)
	}
	if len(u.Scopes) > 0 && u.UserinfoURL == "" && !slices.Contains(u.Scopes, "openid") {
		return fmt.Errorf("upstream %s: scopes must include openid", u.Name)
	}
	for _, sc := range u.Scopes {
		if !validScopeToken(sc) {
			return fmt.Errorf("upstream %s: scope %q is not a valid scope token", u.Name, sc)
		}
	}
	targets := map[string]string{}
	for from, to := range u.Claims {
		if err := CheckUpstreamClaim(from, to); err != nil {
			return fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		if other, ok := targets[to]; ok {
			return fmt.Errorf("upstream %s: claims %q and %q are both mapped to %q", u.Name, min(from, other), max(from, other), to)
		}
		targets[to] = from
	}
	for _, d := range u.AllowDomains {
		if err := CheckEmailDomain(d); err != nil {
			return fmt.Errorf("upstream %s: allow_domain: %w", u.Name, err)
		}
	}
	if u.RootCAFile != "" {
		if _, err := loadRootCAs(u.RootCAFile); err != nil {
			return fmt.Errorf("upstream %s: root_ca_file: %w", u.Name, err)
		}
	}
	return nil
}

// checkPlainOAuth checks the settings of a plain OAuth provider (userinfo_url): its three
// endpoints, which only such a provider has.
func checkPlainOAuth(u Upstream) error {
	urls := []struct{ name, v string }{{"userinfo_url", u.UserinfoURL}, {"authorization_url", u.AuthorizationURL}, {"token_url", u.TokenURL}}
	if u.UserinfoURL == "" {
		for _, e := range urls[1:] {
			if e.v != "" {
				return fmt.Errorf("%s is only for a plain OAuth provider, with userinfo_url (an OpenID provider's is discovered)", e.name)
			}
		}
		if u.SubjectClaim != "" {
			return fmt.Errorf("subject_claim is only for a plain OAuth provider, with userinfo_url (an OpenID provider's is sub)")
		}
		return nil
	}
	for _, e := range urls {
		if err := CheckUpstreamURL(e.v); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return nil
}

// CheckUpstreamURL checks an endpoint of a plain OAuth provider: an absolute https URL (http
// on a loopback host), without user info or fragment.
func CheckUpstreamURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("required with userinfo_url")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without user info and fragment", raw)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopbackHost(u.Hostname())) {
		return fmt.Errorf("%q must be https (http only on a loopback host)", raw)
	}
	return nil
}

// CheckUpstreamName checks an upstream provider's name: 1 to 64 of a-z, 0-9, "-" and "_",
// so that it is one path segment and one part of a subject.
func CheckUpstreamName(name string) error {
	if !upstreamName.MatchString(name) {
		return fmt.Errorf("upstream %q: the name must be 1 to 64 of a-z, 0-9, - and _", name)
	}
	return nil
}

// CheckUpstreamClaim checks one claim mapping: the upstream claim from becomes Tollgate's claim to.
func CheckUpstreamClaim(from, to string) error {
	if from == "" || to == "" || strings.ContainsFunc(from+to, func(r rune) bool { return r <= ' ' }) {
		return fmt.Errorf("claim %q %q: claim names must be non-empty and without spaces", from, to)
	}
	for _, p := range protocolClaims {
		if strings.EqualFold(to, p) {
			return fmt.Errorf("claim %s %s: %q is set by Tollgate itself", from, to, to)
		}
	}
	return nil
}

// CheckEmailDomain checks a domain of allow_domain: a host name such as corp.example.
func CheckEmailDomain(d string) error {
	if d == "" || strings.ContainsAny(d, "@/ :") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || d != strings.ToLower(d) {
		return fmt.Errorf("%q is not a lower-case domain name such as corp.example", d)
	}
	return nil
}

// loadRootCAs reads a PEM file of CA certificates.
func loadRootCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// upstreamSubject is the subject at Tollgate of the user whose subject at the provider named
// name (with issuer identifier iss) is sub: stable for one provider and user, never that of a
// local user (UpstreamSubjectPrefix), nor of another provider's user (the name and the issuer
// are both in it).
func upstreamSubject(name, iss, sub string) string {
	d := sha256.Sum256([]byte(iss + "\x00" + sub))
	return UpstreamSubjectPrefix + name + ":" + base64.RawURLEncoding.EncodeToString(d[:])[:22]
}

// upstream is an upstream provider at run time: its settings, and its discovery, made once
// it succeeds (lazily, so a provider that is down when Tollgate starts stops nothing).
type upstream struct {
	cfg      Upstream
	redirect string       // <issuer>/oauth2/upstream/<name>/callback
	client   *http.Client // bounded: its own transport and upstreamTimeout
	log      *zap.Logger

	provider atomic.Pointer[oidc.Provider] // nil until discovery succeeds
	mu       sync.Mutex                    // one discovery at a time; guards failed and lastErr
	failed   time.Time                     // when discovery last failed
	lastErr  error
}

// newUpstream makes the run-time provider of cfg; issuer is Tollgate's identifier.
func newUpstream(cfg Upstream, issuer string, log *zap.Logger) (*upstream, error) {
	if len(cfg.Scopes) == 0 && cfg.UserinfoURL == "" {
		cfg.Scopes = defaultUpstreamScopes
	}
	if cfg.UserinfoURL != "" && cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if len(cfg.Claims) == 0 {
		cfg.Claims = make(map[string]string, len(defaultUpstreamClaims))
		for _, c := range defaultUpstreamClaims {
			cfg.Claims[c] = c
		}
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = cfg.Name
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: upstreamTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	if cfg.RootCAFile != "" {
		pool, err := loadRootCAs(cfg.RootCAFile)
		if err != nil {
			return nil, fmt.Errorf("issuer: upstream %s: root_ca_file: %w", cfg.Name, err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &upstream{
		cfg:      cfg,
		redirect: issuer + pathUpstreamPrefix + cfg.Name + pathUpstreamCallback,
		client:   &http.Client{Transport: tr, Timeout: upstreamTimeout},
		log:      log,
	}, nil
}

// errUpstreamDown is the cause of a provider that cannot be reached or answered nonsense.
type errUpstreamDown struct{ err error }

func (e errUpstreamDown) Error() string { return "upstream unreachable: " + e.err.Error() }
func (e errUpstreamDown) Unwrap() error { return e.err }

// discover returns the provider's discovery, fetching it when it is not known yet; after a
// failure, it answers with that failure for upstreamRetry before trying again, so a provider
// that is down costs each sign-in page nothing.
func (u *upstream) discover(ctx context.Context) (*oidc.Provider, error) {
	if p := u.provider.Load(); p != nil {
		return p, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if p := u.provider.Load(); p != nil {
		return p, nil // made while this call waited
	}
	if time.Since(u.failed) < upstreamRetry {
		return nil, u.lastErr
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, u.client), u.cfg.Issuer)
	if err != nil {
		u.failed, u.lastErr = time.Now(), errUpstreamDown{err}
		u.log.Warn("upstream provider discovery failed", zap.String("upstream", u.cfg.Name),
			zap.String("issuer", u.cfg.Issuer), zap.Error(err))
		return nil, u.lastErr
	}
	u.provider.Store(p)
	return p, nil
}

// known returns the provider's discovery if it was made, without fetching it or waiting for
// a fetch in flight (the sign-in page asks it).
func (u *upstream) known() *oidc.Provider { return u.provider.Load() }

// discoverInBackground tries discovery until it succeeds or ctx ends, so that the sign-in
// page knows the provider's authorization endpoint (for its form-action) from the start.
// Between failures it waits upstreamRetry, doubling up to 5 minutes (so a provider that stays
// down is not asked, nor logged, every few seconds); a sign-in still asks at once.
func (u *upstream) discoverInBackground(ctx context.Context) {
	for wait := upstreamRetry; ; wait = min(2*wait, 5*time.Minute) {
		if _, err := u.discover(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// plain reports a plain OAuth provider (userinfo_url): no discovery, no ID token.
func (u *upstream) plain() bool { return u.cfg.UserinfoURL != "" }

// namespace is the provider's part of its users' subjects: its issuer, or for a plain OAuth
// provider without one, its userinfo URL.
func (u *upstream) namespace() string {
	if u.cfg.Issuer != "" {
		return u.cfg.Issuer
	}
	return u.cfg.UserinfoURL
}

// endpoint returns the provider's OAuth endpoints and, for an OpenID provider, its discovery
// (fetched when not known yet).
func (u *upstream) endpoint(ctx context.Context) (oauth2.Endpoint, *oidc.Provider, error) {
	if u.plain() {
		return oauth2.Endpoint{AuthURL: u.cfg.AuthorizationURL, TokenURL: u.cfg.TokenURL}, nil, nil
	}
	p, err := u.discover(ctx)
	if err != nil {
		return oauth2.Endpoint{}, nil, err
	}
	return p.Endpoint(), p, nil
}

// authorizationURL is the provider's authorization endpoint as far as it is known without a
// request: a plain provider's, the discovered one, or until discovery the issuer (the usual
// origin of the authorization endpoint), for the sign-in page's form-action.
func (u *upstream) authorizationURL() string {
	if u.plain() {
		return u.cfg.AuthorizationURL
	}
	if p := u.known(); p != nil {
		return p.Endpoint().AuthURL
	}
	return u.cfg.Issuer
}

// oauth2Config is the code flow at endpoint ep.
func (u *upstream) oauth2Config(ep oauth2.Endpoint) *oauth2.Config {
	return &oauth2.Config{ClientID: u.cfg.ClientID, ClientSecret: u.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: u.redirect, Scopes: u.cfg.Scopes}
}

// mapClaims turns the provider's claims into Tollgate's by the claim mapping. Values become
// strings as configured users' claims are: booleans "true"/"false", numbers in decimal;
// other values (objects, arrays, null) are left out.
func (u *upstream) mapClaims(in map[string]any) map[string]string {
	out := make(map[string]string, len(u.cfg.Claims))
	for from, to := range u.cfg.Claims {
		switch v := in[from].(type) {
		case string:
			out[to] = v
		case bool:
			out[to] = strconv.FormatBool(v)
		case float64:
			out[to] = strconv.FormatFloat(v, 'f', -1, 64)
		case json.Number:
			out[to] = v.String()
		}
	}
	return out
}

// allowed reports whether the provider's user may sign in: with allow_domain set, the
// email's domain must be listed and the provider must say the email is verified.
func (u *upstream) allowed(in map[string]any) bool {
	return u.allowedEmail(upstreamEmail(in))
}

// upstreamEmail is the email of the provider's claims, and whether the provider says it is
// verified.
func upstreamEmail(in map[string]any) (email string, verified bool) {
	email, _ = in["email"].(string)
	switch v := in["email_verified"].(type) {
	case bool:
		verified = v
	case string: // some providers send the JSON string "true"
		verified = v == "true"
	}
	return email, verified
}

// allowedEmail is allowed for a user with that email, verified or not: at sign-in, and at
// every later use of the account (lookupUser), against the allow_domain configured then.
func (u *upstream) allowedEmail(email string, verified bool) bool {
	if len(u.cfg.AllowDomains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	if !verified || at <= 0 {
		return false
	}
	return slices.Contains(u.cfg.AllowDomains, strings.ToLower(email[at+1:]))
}

// upstreamRoutes adds the start and callback endpoints of every upstream provider to the
// server's routes and logs the redirect URI to register at each.
func (s *Server) upstreamRoutes(ctx context.Context) error {
	s.upstreams = make(map[string]*upstream, len(s.cfg.Upstreams))
	for _, cfg := range s.cfg.Upstreams {
		u, err := newUpstream(cfg, s.issuer, s.log)
		if err != nil {
			return err
		}
		s.upstreams[cfg.Name] = u
		s.upstreamOrder = append(s.upstreamOrder, u)
		base := s.base + pathUpstreamPrefix + cfg.Name
		s.routes[base+pathUpstreamStart] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveUpstreamStart(w, r, u) })
		s.routes[base+pathUpstreamCallback] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveUpstreamCallback(w, r, u) })
		s.log.Info("register this redirect URI at the upstream provider",
			zap.String("upstream", cfg.Name), zap.String("issuer", cfg.Issuer), zap.String("redirect_uri", u.redirect))
		if !u.plain() {
			go u.discoverInBackground(ctx)
		}
	}
	return nil
}

package issuer

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// clientDocument is what the issuer keeps of a fetched client ID metadata document, besides
// the client it describes.
type clientDocument struct {
	// host is the host (and port) of the document's URL, shown on the consent page next to the
	// name the document claims, which anyone may choose.
	host string
	// loopbackOnly: every redirect URI is on a loopback address, so the application runs on
	// the user's own computer, whoever wrote the document.
	loopbackOnly bool
	// clientURI and logoURI are the document's client_uri and logo_uri, if any (https).
	clientURI, logoURI string
}

// Bounds of the metadata document cache and fetches.
const (
	// maxCachedDocuments bounds the cache; past it the entry cached longest ago is dropped.
	maxCachedDocuments = 10000
	// maxDocumentFetches bounds the fetches in flight across all URLs; a lookup that would
	// start one more fails (503 temporarily_unavailable) instead of queueing.
	maxDocumentFetches = 16
	// maxDocumentURLLen bounds a client_id URL.
	maxDocumentURLLen = 2048
	// maxClientNameLen bounds client_name, in characters.
	maxClientNameLen = 100
	// maxDocumentRedirectURIs and maxDocumentKeys bound the lists of a document.
	maxDocumentRedirectURIs = 20
	maxDocumentKeys         = 10
	// maxFetchesPerHost bounds the fetches in flight to one host, so one slow host cannot
	// hold every slot.
	maxFetchesPerHost = 2
	// DocumentFetchesPerAddress is how many documents one address may make the issuer fetch
	// (cache misses) in a minute; past it its lookups of new documents fail (503).
	DocumentFetchesPerAddress = 30
	// maxFailedHosts bounds the hosts remembered as failing.
	maxFailedHosts = 10000
)

// errDocumentsBusy is the lookup error when too many documents are being fetched: a store
// unavailability to the callers, which answer 503 temporarily_unavailable.
var errDocumentsBusy = fmt.Errorf("too many client metadata documents are being fetched: %w", store.ErrUnavailable)

// documentClients fetches, checks and caches client ID metadata documents
// (draft-ietf-oauth-client-id-metadata-document): a client_id that is an https URL names the
// JSON document at that URL, which describes the client. Documents are fetched with an HTTP
// client of their own: a bounded time, no redirects, no proxy, a bounded body, and (unless
// AllowPrivateAddresses) no connection to a loopback, private, link-local or otherwise
// special address, checked after name resolution so a name cannot point the issuer at an
// internal service. A document that cannot be fetched or is not valid makes its client
// unknown; that outcome is cached for CacheMin, so one bad URL is not fetched per request.
//
// In a cluster each node fetches and caches documents on its own: they are public, so there
// is nothing to share, and a change of a document reaches each node within its cache time.
type documentClients struct {
	cfg   MetadataDocuments
	http  *http.Client
	log   *zap.Logger
	group singleflight.Group
	slots chan struct{} // one per fetch in flight
	// perHost is maxFetchesPerHost.
	perHost int
	now     func() time.Time
	// budget counts one fetch for an address and reports whether it is within
	// DocumentFetchesPerAddress; nil: no per-address bound.
	budget func(ctx context.Context, addr string) (bool, error)

	mu    sync.Mutex
	cache map[string]*list.Element // URL → element of order, holding a *cachedDocument
	order *list.List               // oldest first
	// inFlight counts the fetches in flight per host; failed remembers, for CacheMin, hosts
	// whose fetch failed to connect or timed out, so new paths on a dead or slow host are not
	// fetched one after another.
	inFlight map[string]int
	failed   map[string]time.Time
}

// cachedDocument is one cache entry: the client, or nil when the document was refused.
type cachedDocument struct {
	url   string
	c     *client
	until time.Time
}

// newDocumentClients returns the fetcher cfg describes; it fails when the RootCAFile cannot
// be read or holds no certificate.
func newDocumentClients(cfg MetadataDocuments, log *zap.Logger) (*documentClients, error) {
	if log == nil {
		log = zap.NewNop()
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.RootCAFile != "" {
		pem, err := os.ReadFile(cfg.RootCAFile)
		if err != nil {
			return nil, fmt.Errorf("issuer: client_id_metadata_documents: root_ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("issuer: client_id_metadata_documents: root_ca %s holds no PEM certificate", cfg.RootCAFile)
		}
	}
	timeout := time.Duration(cfg.Timeout)
	dialer := &net.Dialer{Timeout: timeout}
	if !cfg.AllowPrivateAddresses {
		dialer.Control = refusePrivateAddresses
	}
	transport := &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &documentClients{
		cfg: cfg,
		http: &http.Client{Transport: transport, Timeout: timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:      log,
		slots:    make(chan struct{}, maxDocumentFetches),
		now:      time.Now,
		cache:    map[string]*list.Element{},
		order:    list.New(),
		perHost:  maxFetchesPerHost,
		inFlight: map[string]int{},
		failed:   map[string]time.Time{},
	}, nil
}

// client returns the client whose metadata document is at id, or nil, nil when id is not a
// valid client ID URL, is outside AllowDomains, its host failed lately, or its document cannot
// be fetched or is not valid. It fails only when too many documents are being fetched: in all,
// from the document's host, or for addr (the requester's throttle address; "" for none), with
// errDocumentsBusy.
func (d *documentClients) client(ctx context.Context, id, addr string) (*client, error) {
	u, err := d.checkURL(id, true)
	if err != nil {
		d.log.Debug("client_id is not a usable metadata document URL", zap.String("client_id", id), zap.Error(err))
		return nil, nil
	}
	if e, ok := d.cached(id); ok {
		return e.c, nil
	}
	host := strings.ToLower(u.Host)
	if d.hostFailed(host) {
		return nil, nil
	}
	if addr != "" && d.budget != nil {
		ok, err := d.budget(ctx, addr)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errDocumentsBusy
		}
	}
	v, err, _ := d.group.Do(id, func() (any, error) {
		if e, ok := d.cached(id); ok { // fetched while this call waited for the group
			return e.c, nil
		}
		select {
		case d.slots <- struct{}{}:
			defer func() { <-d.slots }()
		default:
			return nil, errDocumentsBusy
		}
		if !d.startFetch(host) {
			return nil, errDocumentsBusy
		}
		defer d.endFetch(host)
		// The fetch is shared by every caller waiting for id: no one caller's cancellation
		// ends it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(d.cfg.Timeout))
		defer cancel()
		c, ttl, err := d.fetch(fctx, u)
		if err != nil {
			d.log.Info("client metadata document refused", zap.String("client_id", id), zap.Error(err))
			c, ttl = nil, time.Duration(d.cfg.CacheMin)
			var netErr net.Error
			var opErr *net.OpError
			if errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded) ||
				errors.As(err, &opErr) && opErr.Op == "dial" {
				d.markFailed(host) // slow or down: not a document's fault, the host's
			}
		}
		d.store(id, c, ttl)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	c, _ := v.(*client)
	return c, nil
}

// cached returns the live cache entry of id, if any.
func (d *documentClients) cached(id string) (*cachedDocument, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	el := d.cache[id]
	if el == nil {
		return nil, false
	}
	e := el.Value.(*cachedDocument)
	if !d.now().Before(e.until) {
		d.order.Remove(el)
		delete(d.cache, id)
		return nil, false
	}
	return e, true
}

// store caches c (nil: refused) for id for ttl, dropping the oldest entries past the bound.
func (d *documentClients) store(id string, c *client, ttl time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el := d.cache[id]; el != nil {
		d.order.Remove(el)
	}
	d.cache[id] = d.order.PushBack(&cachedDocument{url: id, c: c, until: d.now().Add(ttl)})
	for d.order.Len() > maxCachedDocuments {
		oldest := d.order.Front()
		d.order.Remove(oldest)
		delete(d.cache, oldest.Value.(*cachedDocument).url)
	}
}

// checkURL checks a client_id (document true) or jwks_uri URL: https, a host (inside
// AllowDomains when set; not a refused IP literal), no user info, no fragment; and for a
// client_id (the draft's §3) a path other than "/" without dot segments, and no query (the
// draft says SHOULD NOT; refusing keeps the exact-match identity simple).
func (d *documentClients) checkURL(raw string, document bool) (*url.URL, error) {
	if len(raw) > maxDocumentURLLen {
		return nil, errors.New("URL too long")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "https":
		return nil, errors.New("not an https URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("user info in the URL")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("fragment in the URL")
	case document && (u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "?")):
		return nil, errors.New("query in the URL")
	case u.String() != raw:
		// The client_id is compared as a string: it must be the URL as it is fetched.
		return nil, errors.New("URL not in its canonical form")
	case strings.Contains(u.Host, "%") || !isASCII(u.Host):
		// An encoded or non-ASCII host is fetched as its punycode, but would be shown on the
		// consent page as look-alike letters (g%D0%BE%D0%BEgle.com): only ASCII hosts, so
		// the host people read is the host that served the document.
		return nil, errors.New("the host is not plain ASCII (use its punycode form)")
	}
	if document {
		p := u.EscapedPath()
		if p == "" || p == "/" {
			return nil, errors.New("no path in the URL")
		}
		for _, seg := range strings.Split(p, "/") {
			if dec, err := url.PathUnescape(seg); err != nil || dec == "." || dec == ".." {
				return nil, errors.New("dot segment in the URL path")
			}
		}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if len(d.cfg.AllowDomains) > 0 && !slices.ContainsFunc(d.cfg.AllowDomains, func(dom string) bool {
		dom = strings.TrimSuffix(strings.ToLower(dom), ".")
		return host == dom || strings.HasSuffix(host, "."+dom)
	}) {
		return nil, errors.New("host is not in allow_domain")
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !d.cfg.AllowPrivateAddresses && refusedAddress(a) {
		return nil, fmt.Errorf("address %s is refused", a)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("bad port")
		}
	}
	return u, nil
}

// documentMetadata is the part of a client ID metadata document (RFC 7591 §2 client
// metadata) the issuer uses.
type documentMetadata struct {
	ClientID                string          `json:"client_id"`
	ClientName              string          `json:"client_name"`
	ClientURI               string          `json:"client_uri"`
	LogoURI                 string          `json:"logo_uri"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	Scope                   string          `json:"scope"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
}

// fetch fetches and checks the document at u and returns its client and how long to cache
// it. Its errors say why the document was refused without quoting it.
func (d *documentClients) fetch(ctx context.Context, u *url.URL) (*client, time.Duration, error) {
	body, header, err := d.get(ctx, u.String(), "application/json")
	if err != nil {
		return nil, 0, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, 0, errors.New("the document is not a JSON object")
	}
	for name := range members {
		if strings.HasPrefix(name, "client_secret") {
			return nil, 0, fmt.Errorf("the document has %s: a client known by a public document has no secret", name)
		}
	}
	var m documentMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, 0, fmt.Errorf("the document's metadata do not have the right types: %w", err)
	}
	if m.ClientID != u.String() {
		return nil, 0, errors.New("the document's client_id is not its URL")
	}
	c, err := d.describe(ctx, u, &m)
	if err != nil {
		return nil, 0, err
	}
	return c, d.cacheTime(header), nil
}

// describe checks a document's metadata and builds its client.
func (d *documentClients) describe(ctx context.Context, u *url.URL, m *documentMetadata) (*client, error) {
	if len(m.RedirectURIs) == 0 {
		return nil, errors.New("the document has no redirect_uris")
	}
	if len(m.RedirectURIs) > maxDocumentRedirectURIs {
		return nil, errors.New("the document has too many redirect_uris")
	}
	loopback := true
	for _, r := range m.RedirectURIs {
		if err := checkRegisteredRedirectURI(r); err != nil { // one rule for every dynamic client
			return nil, err
		}
		p, _ := url.Parse(r)
		loopback = loopback && p.Scheme == "http" && IsLoopbackHost(p.Hostname())
	}
	grants := m.GrantTypes
	if len(grants) == 0 {
		grants = []string{GrantAuthorizationCode}
	}
	for _, g := range grants {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			return nil, fmt.Errorf("grant_type %q is not allowed for a metadata document client", g)
		}
	}
	if !slices.Contains(grants, GrantAuthorizationCode) {
		return nil, errors.New("grant_types lack authorization_code")
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return nil, fmt.Errorf("response_type %q is not allowed for a metadata document client", rt)
		}
	}
	if err := checkClientName(m.ClientName); err != nil {
		return nil, err
	}
	for name, v := range map[string]string{"client_uri": m.ClientURI, "logo_uri": m.LogoURI} {
		if v == "" {
			continue
		}
		if p, err := url.Parse(v); err != nil || p.Scheme != "https" || p.Host == "" || len(v) > maxDocumentURLLen {
			return nil, fmt.Errorf("%s is not an https URL", name)
		}
	}
	var keys []jose.JSONWebKey
	switch m.TokenEndpointAuthMethod {
	case "", "none":
	case authPrivateKeyJWT:
		var err error
		if keys, err = d.keys(ctx, m); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("token_endpoint_auth_method %q is not allowed for a metadata document client", m.TokenEndpointAuthMethod)
	}
	scopes := dynamicScopes(d.cfg.Scopes, grants)
	if m.Scope != "" {
		asked := strings.Fields(m.Scope)
		scopes = slices.DeleteFunc(scopes, func(s string) bool { return !slices.Contains(asked, s) })
	}
	c := newClient(Client{ID: u.String(), Name: m.ClientName, RedirectURIs: slices.Clone(m.RedirectURIs),
		Grants: slices.Clone(grants), Scopes: scopes, Audience: slices.Clone(d.cfg.Audience)})
	c.kind = kindDocument
	c.document = &clientDocument{host: strings.ToLower(u.Host), loopbackOnly: loopback,
		clientURI: m.ClientURI, logoURI: m.LogoURI}
	c.assertionKeys = keys
	return c, nil
}

// checkClientName checks a client_name, which the consent page shows: bounded, valid UTF-8,
// no control or bidirectional-override characters that could disguise it.
func checkClientName(name string) error {
	if !utf8.ValidString(name) {
		return errors.New("client_name is not UTF-8")
	}
	if err := checkText("client_name", name, maxClientNameLen); err != nil { // as for registrations
		return err
	}
	for _, r := range name {
		if unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			return errors.New("client_name has control characters")
		}
	}
	return nil
}

// keys are the public keys of a private_key_jwt document: its jwks, or the key set at its
// jwks_uri (fetched like the document). Symmetric and private keys are refused.
func (d *documentClients) keys(ctx context.Context, m *documentMetadata) ([]jose.JSONWebKey, error) {
	raw := []byte(m.JWKS)
	switch {
	case len(m.JWKS) > 0 && m.JWKSURI != "":
		return nil, errors.New("the document has both jwks and jwks_uri")
	case m.JWKSURI != "":
		u, err := d.checkURL(m.JWKSURI, false)
		if err != nil {
			return nil, fmt.Errorf("jwks_uri: %w", err)
		}
		if raw, _, err = d.get(ctx, u.String(), "application/json", "application/jwk-set+json"); err != nil {
			return nil, fmt.Errorf("jwks_uri: %w", err)
		}
	case len(m.JWKS) == 0:
		return nil, errors.New("private_key_jwt without jwks or jwks_uri")
	}
	return parseKeySet(raw)
}

// checkAssertionKeys keeps the keys of a set that can verify client assertions: public,
// asymmetric, for signing. A set with a symmetric or private key is refused whole; one
// with no usable key too.
func checkAssertionKeys(set []jose.JSONWebKey) ([]jose.JSONWebKey, error) {
	if len(set) > maxDocumentKeys {
		return nil, errors.New("the key set has too many keys")
	}
	var out []jose.JSONWebKey
	for _, k := range set {
		if _, symmetric := k.Key.([]byte); symmetric {
			return nil, errors.New("the key set has a symmetric key")
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, errors.New("the key set has a private or invalid key")
		}
		if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && !slices.Contains(assertionAlgs, k.Algorithm)) {
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("the key set has no signing key")
	}
	return out, nil
}

// get fetches url: status 200 only (a redirect is not followed), a Content-Type among types
// (parameters allowed), a body of at most MaxSize bytes.
func (d *documentClients) get(ctx context.Context, url string, types ...string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", strings.Join(types, ", "))
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %d (redirects are not followed)", resp.StatusCode)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(types, strings.ToLower(mt)) {
		return nil, nil, fmt.Errorf("Content-Type %q is not %s", resp.Header.Get("Content-Type"), strings.Join(types, " or "))
	}
	if resp.ContentLength > int64(d.cfg.MaxSize) {
		return nil, nil, fmt.Errorf("larger than max_size (%d bytes)", d.cfg.MaxSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.MaxSize)+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading: %w", err)
	}
	if len(body) > d.cfg.MaxSize {
		return nil, nil, fmt.Errorf("larger than max_size (%d bytes)", d.cfg.MaxSize)
	}
	return body, resp.Header, nil
}

// cacheTime is how long a document is used, from its response's Cache-Control (no-store and
// no-cache: not at all; max-age) or Expires, clamped to [CacheMin, CacheMax]; CacheMin
// without either.
func (d *documentClients) cacheTime(h http.Header) time.Duration {
	lo, hi := time.Duration(d.cfg.CacheMin), time.Duration(d.cfg.CacheMax)
	ttl, known := time.Duration(0), false
	for _, dir := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return lo
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && n >= 0 && !known {
				ttl, known = time.Duration(min(n, int64(hi/time.Second)+1))*time.Second, true
			}
		}
	}
	if !known {
		if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
			now := d.now()
			if date, err := http.ParseTime(h.Get("Date")); err == nil {
				now = date
			}
			ttl, known = exp.Sub(now), true
		}
	}
	if !known {
		return lo
	}
	return min(max(ttl, lo), hi)
}

// refusePrivateAddresses is the dialer's Control when AllowPrivateAddresses is off: it runs
// after name resolution, on the address about to be connected to, and refuses the special
// ones (refusedAddress), so no name can point a fetch at them.
func refusePrivateAddresses(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to connect to %q: not an IP address", address)
	}
	if refusedAddress(ap.Addr()) {
		return fmt.Errorf("refusing to connect to %s: not a public address", ap.Addr())
	}
	return nil
}

// refusedPrefixes are the special IPv4 ranges netip's predicates do not cover.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard
}

// refusedAddress reports whether a is not a public unicast address: loopback, private
// (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud metadata services, fe80::/10),
// unspecified, multicast, CGNAT, 0.0.0.0/8 and the other special ranges, also when written as
// an IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) IPv6 address.
func refusedAddress(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if a.Is6() {
		b := a.As16()
		var v4 [4]byte
		switch {
		case [12]byte(b[:12]) == [12]byte{}: // IPv4-compatible (also :: and ::1)
			copy(v4[:], b[12:])
			if refusedAddress(netip.AddrFrom4(v4)) {
				return true
			}
		case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
			copy(v4[:], b[12:])
			if refusedAddress(netip.AddrFrom4(v4)) {
				return true
			}
		case b[0] == 0x20 && b[1] == 0x02:
			copy(v4[:], b[2:6])
			if refusedAddress(netip.AddrFrom4(v4)) {
				return true
			}
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range refusedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authPrivateKeyJWT is RFC 7523 client authentication, the token_endpoint_auth_method.
const authPrivateKeyJWT = "private_key_jwt"

// assertionAlgs are the algorithms a client assertion may be signed with: asymmetric only.
var assertionAlgs = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// startFetch takes one of host's fetch slots, or reports false when it has none left.
func (d *documentClients) startFetch(host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[host] >= d.perHost {
		return false
	}
	d.inFlight[host]++
	return true
}

// endFetch gives back host's fetch slot.
func (d *documentClients) endFetch(host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[host]--; d.inFlight[host] <= 0 {
		delete(d.inFlight, host)
	}
}

// markFailed remembers, for CacheMin, that a fetch from host could not connect or timed out.
func (d *documentClients) markFailed(host string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.failed) >= maxFailedHosts {
		now := d.now()
		for h, until := range d.failed {
			if !now.Before(until) {
				delete(d.failed, h)
			}
		}
		if len(d.failed) >= maxFailedHosts {
			clear(d.failed)
		}
	}
	d.failed[host] = d.now().Add(time.Duration(d.cfg.CacheMin))
}

// hostFailed reports whether a fetch from host failed to connect or timed out lately.
func (d *documentClients) hostFailed(host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.failed[host]
	if ok && !d.now().Before(until) {
		delete(d.failed, host)
		return false
	}
	return ok
}

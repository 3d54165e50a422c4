package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
)

// WellKnownResourcePath is where RFC 9728 protected-resource metadata lives (§3).
const WellKnownResourcePath = "/.well-known/oauth-protected-resource"

// Where the RFC 9728 document is, and what its "resource" says.
//
// RFC 9728 §3 puts the document of the resource https://host/api at the path-inserted URL
// https://host/.well-known/oauth-protected-resource/api, and §3.3 wants its "resource" identical
// to the identifier it was derived from and, when a client found it through a challenge, to the
// URL the client asked for (the MCP SDKs check it: Go's oauthex wants it equal to the server URL,
// TypeScript's checkResourceAllowed a same-origin path prefix of it). A Gate mounted at the root
// of its site is exactly that: its document is /.well-known/oauth-protected-resource and its
// resource the origin. A Gate mounted under a prefix (Caddy's handle /api/*, route /api/*,
// handle_path /api/*) only sees requests under /api/, so the path-inserted URL, outside the
// prefix, never reaches it unless the site routes it there. So:
//
//   - The resource R of a request is Config.Resource when set; else the longest audience that
//     is an http(s) URL on the request's host and a path prefix of the request (an MCP server's
//     canonical URI usually is both: clients ask for tokens with it, and it becomes their aud);
//     else the origin plus the prefix a router stripped before the Gate (handle_path), or the
//     prefix under which the host routes requests to it unstripped (handle or route /api/*, as
//     the host found in its routes: Gate.SetMounts), which is the origin alone at the root.
//   - The challenge names R + /.well-known/oauth-protected-resource: a URL under the Gate's own
//     prefix, which reaches it wherever requests to R do. At the root (R an origin) that is the
//     RFC 9728 path itself. Config.ResourceMetadataURL overrides it.
//   - The Gate answers the document, with "resource" R, at that URL and at the path-inserted
//     RFC 9728 §3 URL /.well-known/oauth-protected-resource + R's path, whenever a request for
//     either reaches it: the second one needs the site to route it to the Gate (a rewrite; see
//     the README), except at the root, where both are the same.
//
// Paths are compared as the client sent them (Config.OriginalURL), escaped.

// resourceMetadata locates and builds the RFC 9728 document of a Gate.
type resourceMetadata struct {
	resource   string    // Config.Resource; "" means found per request
	resURL     *siteURL  // Config.Resource when it is an http(s) URL
	audiences  []siteURL // the http(s) audiences, which name the resource on their host
	fixedURL   string    // Config.ResourceMetadataURL
	fixedPath  string    // its path: the Gate answers the document there
	tail       []byte    // the document after its "resource" member: `,"authorization_servers":…}`
	fallback   string    // the resource of a document asked for without a request
	originalOf func(*http.Request) *url.URL
	// mounts are the path prefixes under which the site routes requests to the Gate without
	// stripping them (Caddy's handle /api/*, route /api/*), as the host found them in its
	// routes (Gate.SetMounts); nil when it routes every path, or cannot tell.
	mounts atomic.Pointer[[]string]
}

// siteURL is an http(s) resource identifier, split for matching requests.
type siteURL struct {
	raw    string // as configured: the document's "resource"
	origin string // scheme://host as configured
	host   string // lower case, without the scheme's default port
	path   string // escaped, without a trailing slash; "" at the root
}

// parseSiteURL splits an http(s) URL without query or fragment; ok is false for anything else.
func parseSiteURL(raw string) (siteURL, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return siteURL{}, false
	}
	return siteURL{raw: raw, origin: u.Scheme + "://" + u.Host, host: normalHost(u.Host),
		path: strings.TrimSuffix(u.EscapedPath(), "/")}, true
}

// normalHost lower-cases a host[:port] and drops a default port, so that a request's Host
// compares with an audience's.
func normalHost(h string) string {
	h = strings.ToLower(h)
	if s, ok := strings.CutSuffix(h, ":443"); ok {
		return s
	}
	if s, ok := strings.CutSuffix(h, ":80"); ok {
		return s
	}
	return h
}

// docURL is the metadata URL a challenge names for the resource u: under u's own path.
func (u *siteURL) docURL() string { return u.origin + u.path + WellKnownResourcePath }

// servesAt reports whether the public path p asks for u's document: under u's path, or at the
// path-inserted RFC 9728 §3 URL (with or without the resource's trailing slash).
func (u *siteURL) servesAt(p string) bool {
	if rest, ok := strings.CutPrefix(p, WellKnownResourcePath); ok {
		return rest == u.path || (u.path != "" && rest == u.path+"/")
	}
	return p == u.path+WellKnownResourcePath
}

// covers reports whether the public path p is at or under u's path.
func (u *siteURL) covers(p string) bool {
	return u.path == "" || p == u.path || strings.HasPrefix(p, u.path+"/")
}

// newResourceMetadata builds the document from the validated Config and the compiled rules.
func newResourceMetadata(c Config, issuers []string, rules []rule, base requirement) (*resourceMetadata, error) {
	md := &resourceMetadata{resource: c.Resource, fixedURL: c.ResourceMetadataURL, originalOf: c.OriginalURL}
	if c.Resource != "" {
		if u, err := url.Parse(c.Resource); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			if u.Fragment != "" || u.RawQuery != "" || u.ForceQuery {
				return nil, fmt.Errorf("policy: resource %q must not have a query or fragment (RFC 9728 §1.2)", c.Resource)
			}
			su, ok := parseSiteURL(c.Resource)
			if !ok {
				return nil, fmt.Errorf("policy: resource %q is not a plain http(s) URL", c.Resource)
			}
			md.resURL = &su
		}
	}
	auds := slices.Clone(c.Audience)
	for _, is := range c.Issuers {
		auds = append(auds, is.Audience...)
	}
	for _, a := range auds {
		if su, ok := parseSiteURL(a); ok && !slices.ContainsFunc(md.audiences, func(o siteURL) bool { return o.raw == a }) {
			md.audiences = append(md.audiences, su)
		}
	}
	md.fallback = c.Resource
	if md.fallback == "" {
		md.fallback = c.firstAudience()
	}
	if md.fixedURL != "" {
		u, _ := url.Parse(md.fixedURL)
		md.fixedPath = u.Path
	}
	scopes := slices.Clone(base.scopes)
	for _, r := range rules {
		for _, s := range r.need.scopes {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	methods := []string{"header"}
	if c.AllowQueryToken {
		methods = append(methods, "query")
	}
	rest := struct {
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported,omitempty"`
		BearerMethods        []string `json:"bearer_methods_supported"`
	}{issuers, scopes, methods}
	b, err := json.Marshal(rest)
	if err != nil {
		return nil, err
	}
	md.tail = append([]byte{','}, b[1:]...)
	return md, nil
}

// document is the JSON document with "resource" res.
func (m *resourceMetadata) document(res string) []byte {
	r, _ := json.Marshal(res)
	doc := make([]byte, 0, len(`{"resource":`)+len(r)+len(m.tail))
	doc = append(doc, `{"resource":`...)
	doc = append(doc, r...)
	return append(doc, m.tail...)
}

// firstAudience is the first audience of the Config or, failing that, of its first issuer.
func (c Config) firstAudience() string {
	if len(c.Audience) > 0 {
		return c.Audience[0]
	}
	for _, is := range c.Issuers {
		if len(is.Audience) > 0 {
			return is.Audience[0]
		}
	}
	return ""
}

// public returns r's escaped path as its client sent it, and the prefix a router stripped from
// it before the Gate ("" when none was, or when r.URL is not what remains of it).
func (m *resourceMetadata) public(r *http.Request) (path, prefix string) {
	seen := r.URL.EscapedPath()
	path = seen
	if m.originalOf != nil {
		if u := m.originalOf(r); u != nil && u != r.URL {
			path = u.EscapedPath()
		}
	}
	if path != seen && strings.HasPrefix(seen, "/") && strings.HasSuffix(path, seen) {
		prefix = strings.TrimSuffix(path[:len(path)-len(seen)], "/")
	}
	if mounts := m.mounts.Load(); prefix == "" && mounts != nil {
		for _, mount := range *mounts {
			if (path == mount || strings.HasPrefix(path, mount+"/")) && len(mount) > len(prefix) {
				prefix = mount
			}
		}
	}
	return path, prefix
}

// SetMounts tells the Gate the path prefixes under which its site routes requests to it
// without stripping them: "/api" for Caddy's handle /api/* or route /api/*. The Gate then treats
// the prefix as it treats one a router stripped (handle_path): its resource defaults to the
// origin plus the prefix, and its challenges name a document URL under the prefix, which the
// site routes to it. Each prefix is an escaped path starting with "/", without a trailing
// slash; nil or empty means the Gate may see any path. It is safe to call while the Gate serves.
func (g *Gate) SetMounts(prefixes []string) {
	clean := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		if p = strings.TrimSuffix(p, "/"); strings.HasPrefix(p, "/") && !slices.Contains(clean, p) {
			clean = append(clean, p)
		}
	}
	g.metadata.mounts.Store(&clean)
}

// origin is the scheme and host r was sent to, "" without a host.
func origin(r *http.Request) string {
	if r.Host == "" {
		return ""
	}
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// audienceFor returns the longest audience on r's host whose path covers the public path p.
func (m *resourceMetadata) audienceFor(r *http.Request, p string) *siteURL {
	var best *siteURL
	host := ""
	for i := range m.audiences {
		a := &m.audiences[i]
		if host == "" {
			host = normalHost(r.Host)
		}
		if a.host == host && a.covers(p) && (best == nil || len(a.path) > len(best.path)) {
			best = a
		}
	}
	return best
}

// locate returns the resource of r and the URL of its document, "" when r names no host and
// the Config fixes neither.
func (m *resourceMetadata) locate(r *http.Request) (resource, docURL string) {
	switch {
	case m.fixedURL != "" && m.resURL != nil:
		return m.resource, m.fixedURL
	case m.resURL != nil:
		return m.resource, m.resURL.docURL()
	case r == nil || r.Host == "":
		return m.fallback, m.fixedURL
	}
	p, prefix := m.public(r)
	o := origin(r)
	docURL = o + prefix + WellKnownResourcePath
	switch a := m.audienceFor(r, p); {
	case m.resource != "": // not a URL (a URN): located like the default one
		resource = m.resource
	case a != nil:
		resource, docURL = a.raw, a.docURL()
	default:
		resource = o + prefix
	}
	if m.fixedURL != "" {
		docURL = m.fixedURL
	}
	return resource, docURL
}

// match returns the resource of the document r asks for, if it asks for one.
func (m *resourceMetadata) match(r *http.Request) (resource string, ok bool) {
	seen := r.URL.Path
	if m.fixedPath != "" {
		if seen != m.fixedPath {
			return "", false
		}
		res, _ := m.locate(r)
		return res, true
	}
	if !strings.Contains(seen, WellKnownResourcePath) {
		return "", false // the hot path: one scan of the path
	}
	p, prefix := m.public(r)
	if m.resURL != nil {
		return m.resource, m.resURL.servesAt(p)
	}
	if m.resource == "" && r.Host != "" {
		host := normalHost(r.Host)
		for i := range m.audiences {
			if a := &m.audiences[i]; a.host == host && a.servesAt(p) {
				return a.raw, true
			}
		}
	}
	// The document of origin+prefix, under the prefix; or its path-inserted URL, when the site
	// routed it to the Gate: as it is (the Gate mounted at the root), or rewritten to the
	// Gate's own document URL, whatever the Gate sees of it then.
	switch x, inserted := strings.CutPrefix(p, WellKnownResourcePath); {
	case p == prefix+WellKnownResourcePath:
	case inserted && strings.HasPrefix(x, "/") && prefix == "":
		if seen := r.URL.EscapedPath(); seen != p && seen != WellKnownResourcePath && seen != x+WellKnownResourcePath {
			return "", false
		}
		prefix = strings.TrimSuffix(x, "/")
	default:
		return "", false
	}
	if m.resource != "" {
		return m.resource, true
	}
	if r.Host == "" {
		return m.fallback, true
	}
	return origin(r) + prefix, true
}

// IsResourceMetadata reports whether r asks for the Gate's RFC 9728 metadata document, which
// ServeResourceMetadata answers without a token. It costs one scan of the path for any other
// request.
func (g *Gate) IsResourceMetadata(r *http.Request) bool {
	_, ok := g.metadata.match(r)
	return ok
}

// ServeResourceMetadata answers the RFC 9728 metadata document: GET and HEAD, and OPTIONS for
// CORS preflights, since browser-based clients fetch it from other origins. Its "resource" is
// the one r asks about (see IsResourceMetadata).
func (g *Gate) ServeResourceMetadata(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		res, ok := g.metadata.match(r)
		if !ok {
			res, _ = g.metadata.locate(r)
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(g.metadata.document(res))
		}
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// ResourceMetadataDocument returns the RFC 9728 document as served for r. With a nil r, its
// "resource" is Config.Resource or, when the resource is found per request, the first audience.
func (g *Gate) ResourceMetadataDocument(r ...*http.Request) []byte {
	if len(r) == 0 || r[0] == nil {
		return g.metadata.document(g.metadata.fallback)
	}
	res, ok := g.metadata.match(r[0])
	if !ok {
		res, _ = g.metadata.locate(r[0])
	}
	return g.metadata.document(res)
}

// resourceMetadataURL is the document's absolute URL for a challenge answering r.
func (g *Gate) resourceMetadataURL(r *http.Request) string {
	_, u := g.metadata.locate(r)
	return u
}

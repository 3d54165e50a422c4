package policy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// WellKnownResourcePath is where RFC 9728 protected-resource metadata lives (§3).
const WellKnownResourcePath = "/.well-known/oauth-protected-resource"

// resourceMetadata is the RFC 9728 document of a Gate, built once.
type resourceMetadata struct {
	doc       []byte
	staticURL string // the document's absolute URL when fixed by the Config, else ""
	path      string // the URL path the document is served at
}

// newResourceMetadata builds the document from the validated Config and the compiled rules.
func newResourceMetadata(c Config, issuers []string, rules []rule, base requirement) (*resourceMetadata, error) {
	resource := c.Resource
	if resource == "" {
		resource = c.firstAudience()
	}
	md := &resourceMetadata{path: WellKnownResourcePath, staticURL: c.ResourceMetadataURL}
	if md.staticURL == "" && c.Resource != "" {
		if u, err := url.Parse(c.Resource); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			if u.Fragment != "" || u.RawQuery != "" {
				return nil, fmt.Errorf("policy: resource %q must not have a query or fragment (RFC 9728 §1.2)", c.Resource)
			}
			md.staticURL = u.Scheme + "://" + u.Host + WellKnownResourcePath + strings.TrimSuffix(u.EscapedPath(), "/")
		}
	}
	if md.staticURL != "" {
		u, _ := url.Parse(md.staticURL)
		md.path = u.Path
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
	doc := struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported,omitempty"`
		BearerMethods        []string `json:"bearer_methods_supported"`
	}{resource, issuers, scopes, methods}
	var err error
	md.doc, err = json.Marshal(doc)
	return md, err
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

// IsResourceMetadata reports whether r asks for the Gate's RFC 9728 metadata document, which
// ServeResourceMetadata answers without a token.
func (g *Gate) IsResourceMetadata(r *http.Request) bool { return r.URL.Path == g.metadata.path }

// ServeResourceMetadata answers the RFC 9728 metadata document: GET and HEAD, and OPTIONS for
// CORS preflights, since browser-based clients fetch it from other origins.
func (g *Gate) ServeResourceMetadata(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(g.metadata.doc)
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

// ResourceMetadataDocument returns the RFC 9728 document as served.
func (g *Gate) ResourceMetadataDocument() []byte { return slices.Clone(g.metadata.doc) }

// resourceMetadataURL is the document's absolute URL for a challenge answering r.
func (g *Gate) resourceMetadataURL(r *http.Request) string {
	if g.metadata.staticURL != "" || r == nil || r.Host == "" {
		return g.metadata.staticURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + g.metadata.path
}

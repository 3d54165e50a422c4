package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// edgeSites is one Caddy with an issuer and three API sites: one with oauth_protect under handle
// and handle_path beside a public home page, one under route (Caddy orders route after handle,
// so it has a site of its own), and one protected at site level.
type edgeSites struct {
	issuer, api, routed, root string
}

func newEdgeSites(t *testing.T) *edgeSites {
	t.Helper()
	ip, ap, rp, xp := freePort(t), freePort(t), freePort(t), freePort(t)
	s := &edgeSites{issuer: "http://127.0.0.1:" + ip, api: "http://127.0.0.1:" + ap, root: "http://127.0.0.1:" + rp,
		routed: "http://127.0.0.1:" + xp}
	startCaddy(t, globalOptions+fmt.Sprintf(`
%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[1]s
		storage bolt %[4]s
		client mcp {
			secret mcp-secret
			grants client_credentials
			scopes read write
			audience %[2]s/api/mcp
		}
		client svc {
			secret svc-secret
			grants client_credentials
			scopes read write
			audience https://api.test
		}
		# A browser client besides the services.
		client app {
			redirect_uri http://127.0.0.1/callback
			grants authorization_code
			scopes read
		}
	}
}

%[2]s {
	bind 127.0.0.1
	# The README's snippet: the RFC 9728 path-inserted URL of /rest reaches its gate.
	rewrite /.well-known/oauth-protected-resource/rest /rest/.well-known/oauth-protected-resource
	rewrite /.well-known/oauth-protected-resource/stripped /stripped/.well-known/oauth-protected-resource
	handle /api/* {
		oauth_protect {
			issuer %[1]s
			audience %[2]s/api/mcp
			scope read
		}
		respond "api {path}"
	}
	handle_path /stripped/* {
		oauth_protect {
			issuer %[1]s
			audience https://api.test
			scope read
		}
		respond "stripped {path}"
	}
	handle /rest/* {
		oauth_protect {
			issuer %[1]s
			audience %[2]s/rest
		}
		respond "rest {path}"
	}
	# No resource and no audience on the site: the prefix is found in Caddy's routes.
	handle /plain/* {
		oauth_protect {
			issuer %[1]s
			audience https://api.test
			scope read
		}
		respond "plain {path}"
	}
	handle {
		respond "public home"
	}
}

%[3]s {
	bind 127.0.0.1
	oauth_protect {
		issuer %[1]s
		audience https://api.test
		scope read
	}
	respond "root {path}"
}

%[5]s {
	bind 127.0.0.1
	route /routed/* {
		oauth_protect {
			issuer %[1]s
			audience https://api.test
			resource %[5]s/routed
			scope read
			rule POST /routed/* write
		}
		respond "routed {path}"
	}
	route /bare/* {
		oauth_protect {
			issuer %[1]s
			audience https://api.test
			scope read
		}
		respond "bare {path}"
	}
	respond "public home"
}
`, s.issuer, s.api, s.root, filepath.Join(t.TempDir(), "tollgate.db"), s.routed))
	discover(t, s.issuer)
	return s
}

// challengeParams reads the Bearer challenge of a response the way the Go MCP SDK does.
func challengeParams(t *testing.T, resp *http.Response) map[string]string {
	t.Helper()
	cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(cs) != 1 || cs[0].Scheme != "bearer" {
		t.Fatalf("WWW-Authenticate %q: %v %+v", resp.Header.Values("WWW-Authenticate"), err, cs)
	}
	return cs[0].Params
}

// fetchMetadata GETs an RFC 9728 document; resource is "" when the answer is not one.
func fetchMetadata(t *testing.T, u string) (resource string, servers []string, body string) {
	t.Helper()
	resp, err := bearerClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var md struct {
		Resource string   `json:"resource"`
		Servers  []string `json:"authorization_servers"`
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &md) != nil {
		return "", nil, string(b)
	}
	return md.Resource, md.Servers, string(b)
}

// resourceAllowed is the TypeScript MCP SDK's checkResourceAllowed (packages/core-internal
// src/shared/authUtils.ts), which its client applies to the "resource" of the metadata it
// followed: the same origin, and a path that is a segment prefix of the request's.
func resourceAllowed(requested, configured string) bool {
	r, err1 := url.Parse(requested)
	c, err2 := url.Parse(configured)
	if err1 != nil || err2 != nil || r.Scheme != c.Scheme || r.Host != c.Host {
		return false
	}
	rp, cp := r.Path, c.Path
	if !strings.HasSuffix(rp, "/") {
		rp += "/"
	}
	if !strings.HasSuffix(cp, "/") {
		cp += "/"
	}
	return strings.HasPrefix(rp, cp)
}

// TestEdgeResourceMetadataUnderPrefix: under handle, handle_path and route, the 401 challenge
// names a URL that the same site answers with the RFC 9728 document of that very gate, whose
// resource both MCP SDKs accept, and carries the scopes the route needs.
func TestEdgeResourceMetadataUnderPrefix(t *testing.T) {
	s := newEdgeSites(t)
	tests := []struct {
		name, method, target string
		metadata             string // resource_metadata of the challenge
		resource             string // "resource" of the document
		scope                string
		goSDK                bool // the resource is the request URL, as the Go SDK's exact check wants
	}{
		{name: "handle, audience on the site", method: "GET", target: s.api + "/api/mcp",
			metadata: s.api + "/api/mcp/.well-known/oauth-protected-resource", resource: s.api + "/api/mcp", scope: "read", goSDK: true},
		{name: "handle_path, the stripped prefix", method: "GET", target: s.api + "/stripped/v1/items",
			metadata: s.api + "/stripped/.well-known/oauth-protected-resource", resource: s.api + "/stripped", scope: "read"},
		{name: "route, resource configured", method: "POST", target: s.routed + "/routed/v1/items",
			metadata: s.routed + "/routed/.well-known/oauth-protected-resource", resource: s.routed + "/routed", scope: "read write"},
		{name: "handle, no scope needed", method: "GET", target: s.api + "/rest/x",
			metadata: s.api + "/rest/.well-known/oauth-protected-resource", resource: s.api + "/rest"},
		{name: "handle, prefix from the routes", method: "GET", target: s.api + "/plain/v1/items",
			metadata: s.api + "/plain/.well-known/oauth-protected-resource", resource: s.api + "/plain", scope: "read"},
		{name: "route, prefix from the routes", method: "GET", target: s.routed + "/bare/v1/items",
			metadata: s.routed + "/bare/.well-known/oauth-protected-resource", resource: s.routed + "/bare", scope: "read"},
		{name: "site level", method: "GET", target: s.root + "/v1/items",
			metadata: s.root + "/.well-known/oauth-protected-resource", resource: s.root, scope: "read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := bearerRequest(t, tc.method, tc.target, "")
			if resp.StatusCode != 401 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			params := challengeParams(t, resp)
			if params["resource_metadata"] != tc.metadata || params["scope"] != tc.scope || params["error"] != "" {
				t.Fatalf("challenge %v, want resource_metadata %s and scope %q", params, tc.metadata, tc.scope)
			}
			_, hasScope := params["scope"]
			if tc.scope == "" && hasScope {
				t.Fatalf("a route that needs no scope announced %v", params)
			}
			res, servers, doc := fetchMetadata(t, params["resource_metadata"])
			if res != tc.resource || !slices.Equal(servers, []string{s.issuer}) {
				t.Fatalf("document at %s: %s, want resource %s", params["resource_metadata"], doc, tc.resource)
			}
			// RFC 9728 §3.3 as the TypeScript SDK reads it.
			if !resourceAllowed(tc.target, res) {
				t.Errorf("the TypeScript SDK refuses resource %s for %s", res, tc.target)
			}
			// The Go SDK (oauthex) wants the resource identical to the request URL.
			_, err := oauthex.GetProtectedResourceMetadata(context.Background(), params["resource_metadata"], tc.target, bearerClient)
			if (err == nil) != tc.goSDK {
				t.Errorf("oauthex.GetProtectedResourceMetadata: %v", err)
			}
			// An invalid token gets the same resource_metadata and scope.
			resp, _ = bearerRequest(t, tc.method, tc.target, "not-a-jwt")
			if p := challengeParams(t, resp); resp.StatusCode != 401 || p["error"] != "invalid_token" ||
				p["resource_metadata"] != tc.metadata || p["scope"] != tc.scope {
				t.Errorf("invalid token: %d %v", resp.StatusCode, p)
			}
		})
	}

	t.Run("path-inserted URLs", func(t *testing.T) {
		for u, want := range map[string]string{
			// Outside the prefix: the site answers its home page, not a document.
			s.api + "/.well-known/oauth-protected-resource/api/mcp":   "",
			s.api + "/.well-known/oauth-protected-resource":           "",
			s.routed + "/.well-known/oauth-protected-resource/routed": "",
			// The README's rewrite brings it to the gate.
			s.api + "/.well-known/oauth-protected-resource/rest":     s.api + "/rest",
			s.api + "/.well-known/oauth-protected-resource/stripped": s.api + "/stripped",
			// At site level, RFC 9728 §3 path insertion for any path of the site.
			s.root + "/.well-known/oauth-protected-resource/mcp": s.root + "/mcp",
		} {
			if res, _, body := fetchMetadata(t, u); res != want {
				t.Errorf("%s: resource %q (%.40s), want %q", u, res, body, want)
			}
		}
	})

	t.Run("an upstream path ending like a document is not one", func(t *testing.T) {
		resp, _ := bearerRequest(t, "GET", s.api+"/api/x/.well-known/oauth-protected-resource", "")
		if resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

// TestEdgeMCPClientCredentials drives the Go MCP SDK's client-credentials handler (SEP-1046)
// against the gate: from the 401 alone it finds the metadata, the issuer, its token endpoint
// and the scopes, and the token it gets passes.
func TestEdgeMCPClientCredentials(t *testing.T) {
	s := newEdgeSites(t)
	for _, tc := range []struct{ target, id, secret, want string }{
		{s.api + "/api/mcp", "mcp", "mcp-secret", "api /api/mcp"}, // through the challenge's resource_metadata
		{s.root + "/mcp", "svc", "svc-secret", "root /mcp"},       // site level: through the SDK's own RFC 9728 probes
	} {
		t.Run(tc.target, func(t *testing.T) {
			h, err := extauth.NewClientCredentialsHandler(&extauth.ClientCredentialsHandlerConfig{
				Credentials: &oauthex.ClientCredentials{ClientID: tc.id, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: tc.secret}},
				HTTPClient:  bearerClient,
			})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", tc.target, nil)
			resp, err := bearerClient.Do(req)
			if err != nil || resp.StatusCode != 401 {
				t.Fatalf("%v %v", resp, err)
			}
			if err := h.Authorize(context.Background(), req, resp); err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			ts, _ := h.TokenSource(context.Background())
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			resp, body := bearerRequest(t, "GET", tc.target, tok.AccessToken)
			if resp.StatusCode != 200 || body != tc.want {
				t.Fatalf("with the SDK's token: %d %s", resp.StatusCode, body)
			}
		})
	}
}

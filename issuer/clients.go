package issuer

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// Kinds of client, by where the issuer learned of it (docs/design.md, "Dynamic clients").
const (
	kindConfigured = ""                  // in the configuration
	kindRegistered = "registered"        // registered at run time (RFC 7591 or the admin API), in the store
	kindDocument   = "metadata_document" // an https client_id whose metadata document was fetched
)

// RegisteredClientPrefix starts the id of every client registered at run time, so that only
// such ids are looked up in the store and none can be mistaken for a configured one.
const RegisteredClientPrefix = "tgc_"

// lookupClient is the one place a client_id becomes a client: a configured client, else a
// client registered at run time (read from the store on every use, so a deletion or expiry
// takes effect on every node at once), else, when client ID metadata documents are on and id
// is an https URL, the client its document describes. It returns nil, nil for an unknown id,
// a refused document or one whose host is down; an error only when the store failed or too
// many documents are being fetched, and the caller answers 503.
func (s *Server) lookupClient(ctx context.Context, id string) (*client, error) {
	return s.findClient(ctx, id, "")
}

// lookupClientFor is lookupClient for a request that names a client it may never have named
// before (an authorization request, a token request): a document it makes the issuer fetch
// counts against its address (DocumentFetchesPerAddress).
func (s *Server) lookupClientFor(r *http.Request, id string) (*client, error) {
	if c := s.clients[id]; c != nil { // the token endpoint's common case: one map read
		return c, nil
	}
	addr := ""
	if s.documents != nil && strings.HasPrefix(id, "https://") {
		addr = s.clientIP(r)
	}
	return s.findClient(r.Context(), id, addr)
}

func (s *Server) findClient(ctx context.Context, id, addr string) (*client, error) {
	if c := s.clients[id]; c != nil {
		return c, nil
	}
	switch {
	case strings.HasPrefix(id, RegisteredClientPrefix):
		rec, err := s.state.Client(ctx, id)
		if rec == nil || err != nil {
			return nil, err
		}
		return s.registeredClient(rec), nil
	case s.documents != nil && strings.HasPrefix(id, "https://"):
		return s.documents.client(ctx, id, addr)
	}
	return nil, nil
}

// registeredClient is the client a registration record describes, or nil when it came by a
// registration that is now off. Its consent is always asked for (dynamic), and its secret is
// kept only as the digest the record holds. A client that registered itself gets what the
// registration settings give today, not what they gave when it registered: its scopes are
// narrowed to them and its audience is theirs, so an operator who takes a scope or an API
// away takes it from every registered client at once. An operator's (admin) client keeps what
// the operator gave it.
func (s *Server) registeredClient(rec *state.Client) *client {
	scopes, audience := rec.Scopes, rec.Audience
	if rec.Via != viaAdmin {
		reg := s.cfg.Registration
		if reg == nil {
			return nil
		}
		allowed := dynamicScopes(reg.Scopes, rec.Grants)
		scopes = slices.DeleteFunc(slices.Clone(rec.Scopes), func(sc string) bool { return !slices.Contains(allowed, sc) })
		audience = reg.Audience
	}
	c := newClient(Client{ID: rec.ID, Name: rec.Name, RedirectURIs: rec.RedirectURIs,
		Grants: rec.Grants, Scopes: scopes, Audience: audience})
	c.kind = kindRegistered
	copy(c.secretDigest[:], rec.SecretDigest)
	if rec.AuthMethod == authMethodBasic || rec.AuthMethod == authMethodPost {
		c.authMethod = rec.AuthMethod
	}
	if rec.Expires != 0 {
		c.expires = time.Unix(rec.Expires, 0)
	}
	return c
}

// dynamic reports whether the client was not configured by the operator: anyone may have
// registered it (with any name), so its consent is asked for every time and never remembered
// or skipped.
func (c *client) dynamic() bool { return c.kind != kindConfigured }

// dynamicScopes are the scopes a dynamic client with grants may ask for: the configured ones
// (capped), and offline_access when it may refresh, since that scope is how a refresh token is
// asked for (MCP clients ask for it when scopes_supported lists it).
func dynamicScopes(configured, grants []string) []string {
	out := slices.Clone(configured)
	if slices.Contains(grants, GrantRefreshToken) && !slices.Contains(out, "offline_access") {
		out = append(out, "offline_access")
	}
	return out
}

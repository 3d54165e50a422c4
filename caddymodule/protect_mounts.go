package caddymodule

import (
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

// protectorMounts finds, in the provisioned routes of the http app, the path prefixes under
// which each oauth_protect handler is routed without its path being changed: "/api" for a
// handler inside handle /api/* or route /api/*. The gate cannot see the matchers of the routes
// around it, and RFC 9728 wants its metadata URL and "resource" to name where it is mounted
// (policy.Gate.SetMounts). The prefixes are those of the request as it arrived, which is what
// the gate compares them with: below a rewrite (handle_path's strip), path matchers see a
// changed path, so the prefix stays the one matched before it (the gate also reads what
// handle_path stripped from the original request). A handler reachable for any path on some
// route gets none. Caddy matches paths without regard to case; the gate compares the prefix
// as written, so /API/x under handle /api/* is taken to be at the root.
func protectorMounts(app *caddyhttp.App) map[*ProtectHandler][]string {
	found := map[*ProtectHandler][]string{}
	anywhere := map[*ProtectHandler]bool{} // reachable on a route without a path prefix
	// frozen: a rewrite ran in an enclosing subroute (handle_path strips its prefix), so the
	// matchers below see a changed path and say nothing of the path as it arrived.
	var walk func(routes caddyhttp.RouteList, prefixes []string, frozen bool)
	walk = func(routes caddyhttp.RouteList, prefixes []string, frozen bool) {
		inner := frozen || rewrites(routes)
		for _, rt := range routes {
			p := prefixes
			if own, ok := pathPrefixes(rt.MatcherSets); ok && !frozen {
				p = own // the innermost path matcher is the narrowest
			}
			for _, h := range rt.Handlers {
				switch h := h.(type) {
				case *ProtectHandler:
					if len(p) == 0 {
						anywhere[h] = true
					} else {
						found[h] = append(found[h], p...)
					}
				case *caddyhttp.Subroute:
					walk(h.Routes, p, inner)
					if h.Errors != nil {
						walk(h.Errors.Routes, p, inner)
					}
				}
			}
		}
	}
	for _, srv := range app.Servers {
		walk(srv.Routes, nil, false)
		if srv.Errors != nil {
			walk(srv.Errors.Routes, nil, false)
		}
		for _, rt := range srv.NamedRoutes {
			walk(caddyhttp.RouteList{*rt}, nil, false)
		}
	}
	for h := range anywhere {
		delete(found, h)
	}
	return found
}

// pathPrefixes returns the prefixes that the path matchers of sets confine a route to, and false
// when some matcher set has no path matcher, or a pattern that is not a plain prefix (a route
// that may match other paths too).
func pathPrefixes(sets caddyhttp.MatcherSets) ([]string, bool) {
	if len(sets) == 0 {
		return nil, false
	}
	var out []string
	for _, set := range sets {
		var paths caddyhttp.MatchPath
		for _, m := range set {
			switch mp := m.(type) {
			case *caddyhttp.MatchPath: // as Caddy loads it
				paths = *mp
			case caddyhttp.MatchPath:
				paths = mp
			}
		}
		if len(paths) == 0 {
			return nil, false
		}
		for _, pat := range paths {
			prefix, ok := patternPrefix(pat)
			if !ok {
				return nil, false
			}
			out = append(out, prefix)
		}
	}
	return out, true
}

// rewrites reports whether a route of routes rewrites the request (handle_path does, first).
func rewrites(routes caddyhttp.RouteList) bool {
	for _, rt := range routes {
		for _, h := range rt.Handlers {
			if _, ok := h.(*rewrite.Rewrite); ok {
				return true
			}
		}
	}
	return false
}

// patternPrefix is the path prefix of a path matcher pattern such as "/api/*" or "/api*":
// "/api". A pattern without a trailing wildcard ("/api" matches that path only, so the document
// URL under it would not reach the gate), with a wildcard elsewhere, an escape, or at the root,
// is none.
func patternPrefix(pat string) (string, bool) {
	p, ok := strings.CutSuffix(pat, "*")
	if !ok {
		return "", false
	}
	p = strings.TrimSuffix(p, "/")
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "*%?[") || p == "" {
		return "", false
	}
	return p, true
}

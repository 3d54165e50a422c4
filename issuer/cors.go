package issuer

import (
	"net/http"
	"net/url"
)

// corsOrigins collects the origins allowed to call the issuer's API endpoints from a browser:
// the origins of every registered redirect URI, plus the configured ones.
func (s *Server) allowedOrigins() map[string]bool {
	out := map[string]bool{}
	for _, o := range s.cfg.CORSOrigins {
		out[o] = true
	}
	for _, c := range s.cfg.Clients {
		for _, ru := range c.RedirectURIs {
			if u, err := url.Parse(ru); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
				out[u.Scheme+"://"+u.Host] = true
			}
		}
	}
	return out
}

// withCORS lets allowed origins call h from a browser (userinfo, device authorization, PAR).
// It answers preflights itself. Never used on the authorization endpoint or the pages.
func (s *Server) withCORS(h http.HandlerFunc) http.HandlerFunc { return s.cors(h, false) }

// withOpenCORS is withCORS for the endpoints a dynamic client needs from a browser (metadata,
// JWKS, token, revocation): with dynamic clients on, every origin may call them
// (corsAnyOrigin).
func (s *Server) withOpenCORS(h http.HandlerFunc) http.HandlerFunc {
	return s.cors(h, s.corsAnyOrigin())
}

// cors lets the allowed origins (any, with anyOrigin) call h.
func (s *Server) cors(h http.HandlerFunc, anyOrigin bool) http.HandlerFunc {

	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		hdr := w.Header()
		hdr.Add("Vary", "Origin")
		if origin != "" && (anyOrigin || s.corsOrigins[origin]) {
			hdr.Set("Access-Control-Allow-Origin", origin)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				hdr.Set("Access-Control-Allow-Methods", "GET, POST")
				hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				hdr.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		h(w, r)
	}
}

// corsAnyOrigin reports whether every origin may call the open CORS endpoints: with dynamic
// clients on (registration, metadata documents), a browser-based client's origin is not known
// in advance. This is safe because those endpoints read no cookie and start nothing: every call
// carries its own credential (a code and verifier, a refresh token, a secret), and no
// Access-Control-Allow-Credentials is ever sent. Device authorization stays with the configured
// origins: a page of any origin could otherwise start a device flow and show its user code to
// phish a visitor.
func (s *Server) corsAnyOrigin() bool {
	return s.cfg.Registration != nil || s.cfg.MetadataDocuments != nil
}

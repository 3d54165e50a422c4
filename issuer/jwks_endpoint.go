package issuer

import "net/http"

// serveJWKS publishes the public signing keys (RFC 7517 §5). Caches may keep it briefly; a
// rotation publishes the new key well before it signs.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.keys.JWKS())
}

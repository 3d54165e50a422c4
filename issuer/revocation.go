package issuer

// Revoked reports whether the access token with this jti has been revoked, on this node or on
// any other sharing the store. It reads memory only, so the edge can ask on every request.
func (s *Server) Revoked(jti string) bool { return s.denied.Revoked(jti) }

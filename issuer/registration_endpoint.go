package issuer

// PathRegister is the dynamic client registration endpoint (RFC 7591 §3); a registered
// client's configuration endpoint (RFC 7592) is PathRegister + "/" + its client_id.
const PathRegister = "/oauth2/register"

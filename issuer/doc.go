// Package issuer is Tollgate's OAuth 2.0 / OpenID Connect authorization server as a plain Go
// library (net/http, no Caddy imports). A Server answers the issuer's own paths — metadata,
// JWKS, token endpoint — and reports every other path as not its own, so the host can pass it
// on.
//
// The token endpoint follows one shape (see token_endpoint.go): parse the form once,
// authenticate the client, check the grant is allowed for it, then hand a parsed request to a
// small per-grant type (grant_*.go). Grants return *Error values; only the endpoint writes the
// response.
package issuer

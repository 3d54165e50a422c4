// Package policy is the edge half of Tollgate: it decides whether a request to a protected API may
// pass, before any upstream sees it.
//
// A [Gate] is built once from a [Config] and a [KeySource] (the in-process issuer or a remote JWKS
// such as github.com/MicahParks/keyfunc/v3). For each request, [Gate.Authorize]
//
//  1. extracts the bearer token (RFC 6750 §2.1, and §2.3 only when [Config.AllowQueryToken] is set);
//  2. verifies it as an RFC 9068 JWT access token: "typ" at+jwt, the "alg" allow-list, "iss", "aud",
//     "exp", "nbf" and "iat" with a small leeway, and only then the signature;
//  3. checks that the token grants every scope the request needs: [Config.Scopes] plus the scopes of
//     the first [Rule] whose method and path glob match.
//
// A refusal is a [Denial] that carries the RFC 6750 §3.1 error; [Gate.Challenge] turns it into the
// WWW-Authenticate value. The package is plain net/http: it imports neither Caddy nor the issuer,
// only the shared claim set in issuer/accesstoken.
package policy

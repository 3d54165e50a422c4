// Package policy is the edge half of Tollgate: it decides whether a request to a protected API may
// pass, before any upstream sees it.
//
// A [Gate] is built once from a [Config]: one or more trusted issuers, each with a [KeySource]
// (the in-process issuer, or [RemoteKeys] for any issuer's JWKS, found by [Discover]) or an RFC 7662
// [Introspection] endpoint for opaque tokens. For each request, [Gate.Authorize]
//
//  1. refuses (400) a path that a rule could read differently from the upstream: an encoded
//     slash, a backslash, a dot segment, an encoded control character, a double encoding (see
//     [Gate.RequiredScopes]);
//  2. extracts the bearer token (RFC 6750 §2.1, and §2.3 only when [Config.AllowQueryToken] is set);
//  3. looks it up in a bounded cache of verified tokens; on a miss it picks the issuer by the
//     token's (unverified) "iss", compared exactly, and verifies it there: as an RFC 9068 JWT
//     ("typ" at+jwt, or JWT with [TrustedIssuer.AcceptJWTType] when it is no ID token, the "alg"
//     allow-list, "iss", "aud", numeric "exp", "nbf" and "iat" with a small leeway, a "jti" when
//     the issuer keeps a deny-list, and only then the key lookup and the signature), or by
//     introspection;
//  4. on a hit or a miss alike, checks expiry, the issuer's key version ([KeyVersioner]) and the
//     deny-lists ([RevocationChecker]);
//  5. checks that the token grants every scope the request needs ([Config.Scopes] plus the scopes
//     of the first [Rule] whose method and path glob match) and satisfies the CEL claim conditions.
//
// A refusal is a [Denial] that carries the RFC 6750 §3.1 error and, in [Denial.Reason], which check
// failed (a metrics label; the client is told no more than the error code); [Gate.Challenge]
// turns it into the WWW-Authenticate value, with the scopes the route needs and the RFC 9728
// resource_metadata attribute, and [Gate.ServeResourceMetadata] serves the protected-resource
// metadata document, at the root of the site or under the prefix the Gate is mounted at
// ([Config.Resource], [Config.OriginalURL]). The package is
// plain net/http: it imports neither Caddy nor the issuer, only the shared claim set in
// issuer/accesstoken.
package policy

// Package caddymodule is Tollgate's Caddy glue: module registration, Caddyfile parsing, the two
// HTTP handlers (oauth_issuer and oauth_protect), placeholders, and the "tollgate" app that lets
// a protector find an issuer served by the same Caddy. The protocol logic lives in issuer/ and
// policy/, which know nothing of Caddy.
package caddymodule

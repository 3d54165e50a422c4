// Package tollgate is the module root. Importing it registers Tollgate's Caddy modules
// (oauth_issuer, oauth_protect), so a Caddy with Tollgate builds with
//
//	xcaddy build --with github.com/tollgate-auth/tollgate
//
// The code lives in caddymodule/ (Caddy glue), issuer/ (the authorization server) and
// policy/ (the edge gateway).
package tollgate

import _ "github.com/tollgate-auth/tollgate/caddymodule" // registers the Caddy modules

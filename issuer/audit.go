package issuer

import (
	"net/http"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// Audit events (Deps.Audit): one INFO line per security event, its message and its "event"
// field the event's name, with remote_ip (the address the throttles count: an IPv4 address or
// an IPv6 /64) and these fields where they are known:
//
//	sign_in                 client_id sub [via]                the sign-in page accepted a password, or via=passkey a passkey,
//	                                                           or via=upstream:<name> an upstream provider's answer
//	sign_in_failed          client_id reason [limit] [via]     it did not: reason bad_credentials, throttled (limit: which) or
//	                                                           passkey_required; an upstream's reasons (upstream_endpoint.go)
//	passkey_registered      sub                                a user added a passkey
//	passkey_removed         sub                                a user removed one
//	passkey_clone_suspected client_id sub                      a passkey's sign counter did not increase: refused
//	password_grant          client_id sub                      the password grant accepted a password
//	password_grant_failed   client_id reason [limit]           it did not, as sign_in_failed
//	consent_granted         client_id sub scope                the user allowed a client
//	consent_denied          client_id sub scope                the user denied it
//	consent_withdrawn       client_id sub                      the account page withdrew a consent (and the client's refresh tokens)
//	signed_out_everywhere   sub via                            every session and refresh token of the user ended (via account or logout)
//	token_issued            grant client_id sub scope jti refresh_token
//	                                                           a token response: jti is the access token's id, refresh_token
//	                                                           whether a refresh token came with it (nothing of it is logged)
//	refresh_reuse           client_id sub                      a rotated refresh token was used again: its family is revoked
//	code_reuse              kind client_id [sub]               a single-use code was redeemed again: what it issued is revoked
//	token_revoked           client_id sub kind [jti]           RFC 7009 revocation: kind access_token or refresh_token
//	throttled               limit [client_id]                  a throttle or bound refused an attempt (sign-ins: sign_in_failed)
//	device_approved         client_id sub scope                the user approved a device
//	device_denied           client_id                          the user denied a device
//	client_registered       client_id via                      a client was registered: via open or token (RFC 7591), or admin
//	client_updated          client_id via                      a registered client changed its metadata (RFC 7592): via client
//	client_deleted          client_id via                      a registered client was deleted: via client (RFC 7592) or admin
//
// An operator's actions on users (admin.go: admin_session_ended, admin_family_revoked,
// admin_signed_out_everywhere) have no request: their lines carry via=admin, no remote_ip.
//
// client_id is a client the configuration knows, or a registered one (RegisteredClientPrefix,
// an id the issuer made); an id it knows neither way is not logged. No
// event holds a token, code, secret, password, user code, session id or the user name of a
// failed sign-in (a password typed into the name field would be logged).
const (
	AuditSignIn              = "sign_in"
	AuditSignInFailed        = "sign_in_failed"
	AuditPasswordGrant       = "password_grant"
	AuditPasswordGrantFailed = "password_grant_failed"
	AuditConsentGranted      = "consent_granted"
	AuditConsentDenied       = "consent_denied"
	AuditConsentWithdrawn    = "consent_withdrawn"
	AuditSignedOutEverywhere = "signed_out_everywhere"
	AuditTokenIssued         = "token_issued"
	AuditRefreshReuse        = "refresh_reuse"
	AuditCodeReuse           = "code_reuse"
	AuditTokenRevoked        = "token_revoked"
	AuditThrottled           = "throttled"
	AuditDeviceApproved      = "device_approved"
	AuditDeviceDenied        = "device_denied"
	AuditClientRegistered    = "client_registered"
	AuditClientUpdated       = "client_updated"
	AuditClientDeleted       = "client_deleted"
)

// audit writes one audit line for r. Nothing is built unless the audit logger is on: the
// fields' slice stays on the caller's stack.
func (s *Server) audit(r *http.Request, event string, fields ...zap.Field) {
	ce := s.auditLog.Check(zapcore.InfoLevel, event)
	if ce == nil {
		return
	}
	all := make([]zap.Field, 0, len(fields)+2)
	all = append(append(all, zap.String("event", event)), fields...)
	ce.Write(append(all, zap.String("remote_ip", s.clientIP(r)))...)
}

// clientField is the client_id of an audit line: c's id, or nothing for nil.
func clientField(c *client) zap.Field {
	if c == nil {
		return zap.Skip()
	}
	return zap.String("client_id", c.ID)
}

// clientIDField is clientField of the client with id, which the configuration may not know.
func (s *Server) clientIDField(id string) zap.Field { return clientField(s.clients[id]) }

func subField(user string) zap.Field { return optional("sub", user) }

// optional is a string field, or nothing for "".
func optional(key, v string) zap.Field {
	if v == "" {
		return zap.Skip()
	}
	return zap.String(key, v)
}

func scopeField(scopes []string) zap.Field { return zap.String("scope", strings.Join(scopes, " ")) }

// signInFailed records a failed sign-in by method (methodPage, methodPasswordGrant) of client
// c: limit names the throttle that refused it, "" for wrong credentials.
func (s *Server) signInFailed(r *http.Request, c *client, method, limit string) {
	s.countSignInFailure(method, limit)
	event := AuditSignInFailed
	if method == methodPasswordGrant {
		event = AuditPasswordGrantFailed
	}
	switch limit {
	case "":
		s.audit(r, event, clientField(c), zap.String("reason", reasonBadCreds))
	case refusedPasskeyOnly: // a right password of a user who must use a passkey
		s.audit(r, event, clientField(c), zap.String("reason", refusedPasskeyOnly))
	default:
		s.audit(r, event, clientField(c), zap.String("reason", reasonThrottled), zap.String("limit", limit))
	}
}

// throttled records an attempt the throttle limit refused, for client c if known.
func (s *Server) throttled(r *http.Request, c *client, limit string) {
	s.countThrottled(limit)
	s.audit(r, AuditThrottled, zap.String("limit", limit), clientField(c))
}

// tokenIssued records a token response of grant (a grant label) to client c.
func (s *Server) tokenIssued(r *http.Request, grant string, c *client, sub, scope, jti string, refresh bool) {
	s.countIssued(c, grant)
	s.audit(r, AuditTokenIssued, zap.String("grant", grant), clientField(c), subField(sub), zap.String("scope", scope),
		optional("jti", jti), zap.Bool("refresh_token", refresh))
}

// refreshReused records a reused refresh token of client c and user sub: its family is revoked.
func (s *Server) refreshReused(r *http.Request, c *client, sub string) {
	s.countRefreshReuse(c)
	s.audit(r, AuditRefreshReuse, clientField(c), subField(sub))
}

// codeReused records a second redemption of a code of kind by client c (sub, if known, is the
// user the code was for): what it issued is revoked.
func (s *Server) codeReused(r *http.Request, kind state.Credential, c *client, sub string) {
	s.countCodeReuse(kind.String(), c)
	s.audit(r, AuditCodeReuse, zap.String("kind", kind.String()), clientField(c), subField(sub))
}

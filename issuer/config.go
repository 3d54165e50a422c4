package issuer

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/users"
)

// Grant type names as used in a client's Grants and at the token endpoint.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantImplicit          = "implicit"
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	GrantRefreshToken      = "refresh_token"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantTokenExchange is RFC 8693 token exchange; "token_exchange" in a configuration.
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Config is the issuer's configuration: plain data, the one place where each setting, its
// default and its meaning are written down. The Caddy module embeds it as it is (its JSON
// names are the handler's), and New checks it, once (Check).
type Config struct {
	// Issuer is the "iss" of every token: an https URL, or http on a loopback host for demos.
	Issuer string `json:"issuer"`
	// AccessTokenTTL is the lifetime of access tokens. Default 10m.
	AccessTokenTTL Duration `json:"access_token_ttl,omitempty"`
	// RefreshTokenTTL is the absolute lifetime of a refresh-token family. Default 720h.
	RefreshTokenTTL Duration `json:"refresh_token_ttl,omitempty"`
	// RefreshTokenIdleTTL ends a refresh-token family that is not used for this long.
	// Default 336h (14 days), never longer than RefreshTokenTTL.
	RefreshTokenIdleTTL Duration `json:"refresh_token_idle_ttl,omitempty"`
	// RefreshReuseGrace lets a duplicate refresh of one token within this window get the same
	// answer instead of revoking the family (mobile apps on flaky networks retry). Default 0: off.
	RefreshReuseGrace Duration `json:"refresh_reuse_grace,omitempty"`
	// SigningAlg signs access tokens: ES256 (default), ES384, RS256, PS256 or EdDSA.
	SigningAlg string `json:"signing_alg,omitempty"`
	// KeyRotation is how long a signing key signs before a new one replaces it; the old
	// key stays published until every token it signed has expired. Default 720h (30 days).
	KeyRotation Duration `json:"key_rotation,omitempty"`
	// IDTokenSigningAlg signs ID tokens. Default RS256 (what every OpenID relying party supports).
	IDTokenSigningAlg string `json:"id_token_signing_alg,omitempty"`
	// CodeTTL is the lifetime of authorization codes. Default 60s.
	CodeTTL Duration `json:"code_ttl,omitempty"`
	// PARTTL is how long a pushed authorization request's request_uri may be used (RFC 9126
	// expires_in), in whole seconds. Default 60s.
	PARTTL Duration `json:"par_ttl,omitempty"`
	// RequirePAR makes every client push its authorization requests (RFC 9126 §5,
	// require_pushed_authorization_requests); per client, Client.RequirePAR.
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// DPoPNonce makes the token endpoint require a server nonce in every DPoP proof (RFC 9449
	// §8): a proof without the current one is answered 400 use_dpop_nonce with a fresh nonce in
	// DPoP-Nonce. Nonces are stateless (an HMAC of the time under a secret kept in the store),
	// so every node sharing the store accepts them. Default: off (proofs are still single use).
	DPoPNonce bool `json:"dpop_nonce,omitempty"`
	// SessionTTL is the lifetime of a browser sign-in (SSO) session. Default 24h.
	SessionTTL Duration `json:"session_ttl,omitempty"`
	// DeviceCodeTTL is the lifetime of a device code and its user code (RFC 8628 §3.2
	// expires_in), in whole seconds. Default 10m.
	DeviceCodeTTL Duration `json:"device_code_ttl,omitempty"`
	// DevicePollInterval is the minimum time, in whole seconds, between two token requests
	// with one device code (RFC 8628 §3.2 interval). Default 5s.
	DevicePollInterval Duration `json:"device_poll_interval,omitempty"`
	// CORSOrigins are allowed to call the token, userinfo, JWKS, metadata and revocation
	// endpoints from a browser, in addition to the origins of registered redirect URIs.
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// Limits bound what one address, user or client can make the issuer do or keep.
	Limits Limits `json:"limits,omitzero"`
	// UsersFile is a JSON file of users, reloaded when it changes.
	UsersFile string `json:"users_file,omitempty"`
	// Upstreams are the OpenID Connect providers people may sign in with, each a button on
	// the sign-in page (issuer/upstream.go). Their users get subjects of their own
	// (UpstreamSubjectPrefix), so they never collide with a local user.
	Upstreams []Upstream `json:"upstreams,omitempty"`
	// Passkeys turns on sign-in with passkeys (WebAuthn, issuer/passkey.go): "off" (default),
	// "on" (users may register passkeys on the account page and sign in with one; passwords
	// still work) or "required" (as on, and a user with a passkey can no longer sign in with
	// the password). The relying party ID is the issuer's host, which must be a domain name.
	Passkeys string `json:"passkeys,omitempty"`
	// Users who can sign in.
	Users []User `json:"users,omitempty"`
	// Clients registered with the issuer.
	Clients []Client `json:"clients,omitempty"`
	// Registration turns on dynamic client registration (RFC 7591) and management (RFC 7592).
	// Default: off.
	Registration *Registration `json:"registration,omitempty"`
	// MetadataDocuments lets an https URL be a client_id: the client's metadata is the JSON
	// document at that URL (draft-ietf-oauth-client-id-metadata-document, which the MCP
	// authorization specification prefers). Default: off.
	MetadataDocuments *MetadataDocuments `json:"client_id_metadata_documents,omitempty"`
	// TokenExchange configures what token exchange (RFC 8693) accepts besides this issuer's
	// own access tokens. Default: only those.
	TokenExchange *TokenExchange `json:"token_exchange,omitempty"`
}

// TokenExchange configures token exchange (RFC 8693) beyond this issuer's own tokens.
type TokenExchange struct {
	// Trust are the other issuers whose JWTs may be subject and actor tokens.
	Trust []TrustedIssuer `json:"trust,omitempty"`
}

// TrustedIssuer is another issuer whose signed JWTs token exchange accepts as subject and
// actor tokens: its subjects keep their "sub" in the exchanged token, so trust only an issuer
// whose subjects name the same parties as this issuer's.
type TrustedIssuer struct {
	// Issuer is its identifier, the exact "iss" of its tokens: https, or http on loopback.
	Issuer string `json:"issuer"`
	// JWKSURI is its key set; default: the jwks_uri of its discovery document
	// (<issuer>/.well-known/openid-configuration, else oauth-authorization-server).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Audience: a token of the issuer must name one of them in "aud". Default: this issuer's
	// identifier, so only tokens made for this authorization server are exchanged.
	Audience []string `json:"audience,omitempty"`
}

// Check checks the trusted issuers of token exchange; nil means none.
func (te *TokenExchange) Check(self string) error {
	if te == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, ti := range te.Trust {
		if err := CheckTrustedIssuer(ti.Issuer, self); err != nil {
			return err
		}
		if seen[ti.Issuer] {
			return fmt.Errorf("token_exchange: trust %s: given twice", ti.Issuer)
		}
		seen[ti.Issuer] = true
		if ti.JWKSURI != "" {
			if err := CheckJWKSURI(ti.JWKSURI); err != nil {
				return fmt.Errorf("token_exchange: trust %s: %w", ti.Issuer, err)
			}
		}
		for _, a := range ti.Audience {
			if a == "" {
				return fmt.Errorf("token_exchange: trust %s: empty audience", ti.Issuer)
			}
		}
	}
	return nil
}

// CheckTrustedIssuer checks the identifier of an issuer token exchange trusts (ParseIssuerURL):
// not this issuer self, whose tokens are always accepted.
func CheckTrustedIssuer(iss, self string) error {
	if _, err := ParseIssuerURL(iss); err != nil {
		return fmt.Errorf("token_exchange: trust: %w", err)
	}
	if strings.TrimSuffix(iss, "/") == strings.TrimSuffix(self, "/") {
		return fmt.Errorf("token_exchange: trust %s: this issuer's own tokens are always accepted", iss)
	}
	return nil
}

// Registration modes.
const (
	RegistrationOpen  = "open"  // anyone may register a public client
	RegistrationToken = "token" // registering takes the initial access token
)

// Registration configures dynamic client registration (docs/design.md, "Dynamic clients").
// Registered clients live in the store, so every node of a cluster knows them.
type Registration struct {
	// Mode is "open" (anyone may register a public client: no secret, authorization_code and
	// refresh_token only, https or loopback redirect URIs) or "token" (registering takes
	// InitialAccessToken as a Bearer token, RFC 7591 §3; confidential clients allowed).
	Mode string `json:"mode"`
	// InitialAccessToken is the Bearer token a registration must present in "token" mode.
	InitialAccessToken string `json:"initial_access_token,omitempty"`
	// Scopes are the scopes a registered client may ask for; a registration asking for more is
	// refused (invalid_client_metadata), one asking for none gets them all. Default: none, so
	// registered clients can only ask for tokens without a scope.
	Scopes []string `json:"scopes,omitempty"`
	// Audience is the "aud" of registered clients' tokens, the resources (RFC 8707) they may
	// ask for: the protected APIs (MCP servers) registered clients are for. Default: the
	// client's own id, which no protected API accepts unless configured to.
	Audience []string `json:"audience,omitempty"`
	// Lifetime is how long a registered client lives after its registration; it is then
	// deleted, with the tokens it had no longer refreshable. Default 720h (30 days).
	Lifetime Duration `json:"lifetime,omitempty"`
	// PerAddress is how many clients one address may register in an hour. Default 20.
	PerAddress int `json:"per_address,omitempty"`
	// Total bounds how many registrations all addresses together may make in an hour, so a
	// flood from many addresses is bounded too. Default 2000.
	Total int `json:"total,omitempty"`
	// MaxClients bounds the registrations in one Lifetime, so that no more than twice as many
	// registered clients are ever kept. Default 10000.
	MaxClients int `json:"max_clients,omitempty"`
}

// MetadataDocuments configures client ID metadata documents (docs/design.md, "Dynamic clients").
type MetadataDocuments struct {
	// Scopes, Audience: as Registration's, for clients known by their metadata document.
	Scopes   []string `json:"scopes,omitempty"`
	Audience []string `json:"audience,omitempty"`
	// AllowDomains, when set, are the only hosts (and their subdomains) whose documents are
	// fetched; every other URL client_id is refused. Default: any host.
	AllowDomains []string `json:"allow_domains,omitempty"`
	// AllowPrivateAddresses lets documents be fetched from loopback, private and link-local
	// addresses (for tests and closed networks). Default off: such addresses are refused
	// after name resolution, so a client_id cannot make the issuer reach an internal service.
	AllowPrivateAddresses bool `json:"allow_private_addresses,omitempty"`
	// RootCAFile is a PEM file of CA certificates trusted for fetching documents, in addition
	// to the system's.
	RootCAFile string `json:"root_ca_file,omitempty"`
	// MaxSize is the largest document read, in bytes. Default 5120.
	MaxSize int `json:"max_size,omitempty"`
	// Timeout bounds one fetch. Default 5s.
	Timeout Duration `json:"timeout,omitempty"`
	// CacheMin and CacheMax bound how long a fetched document is used, whatever its HTTP
	// cache headers say. Defaults 1m and 24h.
	CacheMin Duration `json:"cache_min,omitempty"`
	CacheMax Duration `json:"cache_max,omitempty"`
}

// Limits bound brute force and pending state (docs/design.md, "Throttles and bounds"). Each
// counts in a fixed window; a zero field takes its default. Failed attempts are counted before
// they are checked, so a burst cannot outrun a limit.
type Limits struct {
	// SignInFailuresPerUserAddress is how many wrong passwords one address may try for one
	// user in 15 minutes; past it that address is refused for that user. Default 10.
	SignInFailuresPerUserAddress int `json:"sign_in_failures_per_user_address,omitempty"`
	// SignInFailuresPerAddress is how many wrong passwords one address may try in all in 15
	// minutes; past it the address is refused. Default 50.
	SignInFailuresPerAddress int `json:"sign_in_failures_per_address,omitempty"`
	// SignInFailuresPerUser is how many wrong passwords for one user, from all addresses,
	// are checked at full speed in 15 minutes; past it, addresses the user has not signed in
	// from lately get one attempt per back-off interval (2s, doubling every further
	// SignInFailuresPerUser failures, at most a minute), and the user's own keep theirs.
	// Default 20.
	SignInFailuresPerUser int `json:"sign_in_failures_per_user,omitempty"`
	// ClientAuthFailuresPerAddress is how many failed client authentications for one client
	// one address may make in 15 minutes; past it that address is refused for that client.
	// Default 20.
	ClientAuthFailuresPerAddress int `json:"client_auth_failures_per_address,omitempty"`
	// UserCodeFailuresPerAddress is how many wrong device user codes one address may enter
	// in 15 minutes (RFC 8628 §5.1). Default 10.
	UserCodeFailuresPerAddress int `json:"user_code_failures_per_address,omitempty"`
	// PendingPerAddress is how many authorization requests one address may start, each kept
	// while the user signs in, in 15 minutes. Default 200.
	PendingPerAddress int `json:"pending_per_address,omitempty"`
	// PendingPerClient is the same per client. Default 20000.
	PendingPerClient int `json:"pending_per_client,omitempty"`
	// DeviceCodesPerAddress is how many device authorizations one address may start in one
	// device_code_ttl. Default 30.
	DeviceCodesPerAddress int `json:"device_codes_per_address,omitempty"`
	// DeviceCodesPerClient is the same per client. Default 3000.
	DeviceCodesPerClient int `json:"device_codes_per_client,omitempty"`
}

// User is a person who can sign in, configured with a bcrypt or argon2id password hash.
type User struct {
	// Name is the login name and the stable "sub".
	Name string `json:"name"`
	// PasswordHash is a bcrypt hash (as printed by `caddy hash-password`) or an argon2id PHC string.
	PasswordHash string `json:"password_hash"`
	// Claims are extra claims (email, name, …) released by scope.
	Claims map[string]string `json:"claims,omitempty"`
	// PasskeysRequired stops this user's password once they have registered a passkey, as
	// Config.Passkeys "required" does for everyone; it needs Passkeys on. Default false.
	PasskeysRequired bool `json:"passkeys_required,omitempty"`
}

// Validate checks one user's settings.
func (u User) Validate() error { return users.CheckHashFormat(u.PasswordHash) }

// Client is a registered OAuth client.
type Client struct {
	// ID is the client_id.
	ID string `json:"id"`
	// Name is shown on the consent page; default the ID.
	Name string `json:"name,omitempty"`
	// Secret is the client secret; empty for a public client.
	Secret string `json:"secret,omitempty"`
	// RedirectURIs are matched exactly (RFC 9700 §4.1.3). For a public client (a native app),
	// the port of a loopback IP redirect URI is free (RFC 8252 §7.3).
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// LoopbackAnyPort frees the port of loopback redirect URIs for a confidential client too
	// (a native app that has a secret after all). Default off: a web app's loopback URI is
	// matched exactly, port included.
	LoopbackAnyPort bool `json:"loopback_any_port,omitempty"`
	// Grants the client may use; see the Grant* constants. Default authorization_code.
	Grants []string `json:"grants,omitempty"`
	// Scopes the client may ask for.
	Scopes []string `json:"scopes,omitempty"`
	// Audience is the "aud" of the client's access tokens; default the client ID.
	Audience []string `json:"audience,omitempty"`
	// Consent is "required" (default) or "skip" for first-party clients.
	Consent string `json:"consent,omitempty"`
	// PostLogoutRedirectURIs are where RP-initiated logout may send the browser afterwards.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// ResourceServer lets the client (an API) introspect tokens issued to any client
	// (RFC 7662 §4); other clients see only their own tokens.
	ResourceServer bool `json:"resource_server,omitempty"`
	// JWKSFile is a JSON Web Key Set file of the client's public keys, for private_key_jwt
	// client authentication (RFC 7523); such a client has no secret.
	JWKSFile string `json:"jwks_file,omitempty"`
	// JWKSURI is where the client publishes its key set, instead of JWKSFile.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// RequireDPoP makes every token of the client sender-constrained (RFC 9449): a token
	// request without a DPoP proof is refused.
	RequireDPoP bool `json:"require_dpop,omitempty"`
	// RequirePAR makes the client push its authorization requests (RFC 9126): an
	// authorization request without a request_uri is refused.
	RequirePAR bool `json:"require_par,omitempty"`
	// Profile is a security profile preset: "fapi2" (FAPI 2.0 Security Profile) turns on
	// what the profile requires and refuses settings that contradict it.
	Profile string `json:"profile,omitempty"`
}

// IsPublic reports whether the client has no credentials (RFC 6749 §2.1): no secret and no
// keys for private_key_jwt (JWKSFile, JWKSURI).
func (c *Client) IsPublic() bool { return c.Secret == "" && !c.HasKeys() }

// HasKeys reports whether the client authenticates with private_key_jwt (RFC 7523): it has a
// key set (JWKSFile or JWKSURI).
func (c *Client) HasKeys() bool { return c.JWKSFile != "" || c.JWKSURI != "" }

// NormalizeGrant maps a grant name as written in a configuration to its token-endpoint name
// ("device_code" is an alias of the RFC 8628 URN). It returns "" for an unknown name.
func NormalizeGrant(name string) string {
	switch name {
	case GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken:
		return name
	case GrantImplicit, GrantPassword:
		return name
	case "device_code", GrantDeviceCode:
		return GrantDeviceCode
	case "token_exchange", GrantTokenExchange:
		return GrantTokenExchange
	}
	return ""
}

// withDefaults fills defaults into a copy of c.
func (c Config) withDefaults() Config {
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.AccessTokenTTL, 10*time.Minute)
	def(&c.RefreshTokenTTL, 720*time.Hour)
	def(&c.RefreshTokenIdleTTL, 336*time.Hour)
	c.RefreshTokenIdleTTL = min(c.RefreshTokenIdleTTL, c.RefreshTokenTTL)
	def(&c.KeyRotation, 720*time.Hour)
	def(&c.CodeTTL, 60*time.Second)
	def(&c.PARTTL, 60*time.Second)
	def(&c.SessionTTL, 24*time.Hour)
	def(&c.DeviceCodeTTL, 10*time.Minute)
	def(&c.DevicePollInterval, 5*time.Second)
	if c.SigningAlg == "" {
		c.SigningAlg = "ES256"
	}
	if c.IDTokenSigningAlg == "" {
		c.IDTokenSigningAlg = "RS256"
	}
	c.Limits = c.Limits.withDefaults()
	if c.Registration != nil {
		r := *c.Registration
		def(&r.Lifetime, 720*time.Hour)
		if r.PerAddress == 0 {
			r.PerAddress = 20
		}
		if r.Total == 0 {
			r.Total = 2000
		}
		if r.MaxClients == 0 {
			r.MaxClients = 10000
		}
		c.Registration = &r
	}
	if c.MetadataDocuments != nil {
		m := *c.MetadataDocuments
		def(&m.Timeout, 5*time.Second)
		def(&m.CacheMin, time.Minute)
		def(&m.CacheMax, 24*time.Hour)
		if m.MaxSize == 0 {
			m.MaxSize = 5120
		}
		c.MetadataDocuments = &m
	}
	return c
}

// withDefaults fills the default of every limit left at zero.
func (l Limits) withDefaults() Limits {
	def := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&l.SignInFailuresPerUserAddress, 10)
	def(&l.SignInFailuresPerAddress, 50)
	def(&l.SignInFailuresPerUser, 20)
	def(&l.ClientAuthFailuresPerAddress, 20)
	def(&l.UserCodeFailuresPerAddress, 10)
	def(&l.PendingPerAddress, 200)
	def(&l.PendingPerClient, 20000)
	def(&l.DeviceCodesPerAddress, 30)
	def(&l.DeviceCodesPerClient, 3000)
	return l
}

// Check checks the configuration, with its defaults filled in, and says where a mistake is.
// New runs it; so does nothing else (it is not named Validate, so that a Caddy module
// embedding Config does not get it as its caddy.Validator and check twice). Each rule about a
// single setting is an exported Check* function, which the Caddyfile parser runs too, so that
// a mistake is reported at its line there and the rule is written once.
func (c Config) Check() error {
	c = c.withDefaults()
	if _, err := ParseIssuerURL(c.Issuer); err != nil {
		return err
	}
	if err := CheckPasskeys(c.Passkeys, c.Issuer); err != nil {
		return err
	}
	if err := CheckUserPasskeys(c.Passkeys, c.Users); err != nil {
		return err
	}
	for name, d := range map[string]Duration{"access_token_ttl": c.AccessTokenTTL, "refresh_token_ttl": c.RefreshTokenTTL,
		"refresh_token_idle_ttl": c.RefreshTokenIdleTTL, "refresh_reuse_grace": c.RefreshReuseGrace,
		"key_rotation": c.KeyRotation, "code_ttl": c.CodeTTL, "par_ttl": c.PARTTL, "session_ttl": c.SessionTTL,
		"device_code_ttl": c.DeviceCodeTTL, "device_poll_interval": c.DevicePollInterval} {
		if err := CheckDuration(name, d); err != nil {
			return err
		}
	}
	for name, alg := range map[string]string{"signing_alg": c.SigningAlg, "id_token_signing_alg": c.IDTokenSigningAlg} {
		if err := CheckSigningAlg(name, alg); err != nil {
			return err
		}
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if err := CheckUsers(c.Users); err != nil {
		return err
	}
	if err := c.Registration.Check(); err != nil {
		return err
	}
	if err := c.MetadataDocuments.Check(); err != nil {
		return err
	}
	if err := c.TokenExchange.Check(c.Issuer); err != nil {
		return err
	}
	if err := CheckClients(c.Clients); err != nil {
		return err
	}
	if err := CheckUpstreams(c.Upstreams); err != nil {
		return err
	}
	return checkProfileLifetimes(c)
}

// Check checks the registration settings; nil means registration is off.
func (r *Registration) Check() error {
	if r == nil {
		return nil
	}
	if err := CheckRegistrationMode(r.Mode); err != nil {
		return err
	}
	if r.Mode == RegistrationToken && r.InitialAccessToken == "" {
		return fmt.Errorf("registration token: the initial access token is empty")
	}
	if r.Mode == RegistrationOpen && r.InitialAccessToken != "" {
		return fmt.Errorf("registration open takes no initial access token")
	}
	if r.PerAddress < 0 || r.Total < 0 || r.MaxClients < 0 {
		return fmt.Errorf("registration: per_address, total and max_clients must be positive")
	}
	if err := CheckDuration("lifetime", r.Lifetime); err != nil {
		return err
	}
	return checkDynamicGrants(r.Scopes, r.Audience)
}

// CheckRegistrationMode checks the mode of registration: open or token.
func CheckRegistrationMode(mode string) error {
	switch mode {
	case RegistrationOpen, RegistrationToken:
		return nil
	}
	return fmt.Errorf("registration must be open, token <initial-access-token> or off, not %q", mode)
}

// Check checks the client ID metadata document settings; nil means they are off.
func (m *MetadataDocuments) Check() error {
	if m == nil {
		return nil
	}
	if m.MaxSize < 0 {
		return fmt.Errorf("client_id_metadata_documents: max_size must be positive")
	}
	for name, d := range map[string]Duration{"timeout": m.Timeout, "cache_min": m.CacheMin, "cache_max": m.CacheMax} {
		if err := CheckDuration(name, d); err != nil {
			return err
		}
	}
	if m.CacheMin != 0 && m.CacheMax != 0 && m.CacheMin > m.CacheMax {
		return fmt.Errorf("client_id_metadata_documents: cache_min is longer than cache_max")
	}
	for _, d := range m.AllowDomains {
		if d == "" || strings.ContainsAny(d, "/:@ ") {
			return fmt.Errorf("client_id_metadata_documents: allow_domain %q is not a host name", d)
		}
	}
	return checkDynamicGrants(m.Scopes, m.Audience)
}

// checkDynamicGrants checks the scopes and audiences dynamic clients are given.
func checkDynamicGrants(scopes, audience []string) error {
	for _, sc := range scopes {
		if err := CheckScope(sc); err != nil {
			return err
		}
	}
	for _, a := range audience {
		if err := CheckResourceURI(a); err != nil {
			return err
		}
	}
	return nil
}

// CheckResourceURI checks an audience that is also an RFC 8707 resource: an absolute URI
// without a fragment.
func CheckResourceURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" {
		return fmt.Errorf("audience %q must be an absolute URI without a fragment (RFC 8707)", s)
	}
	return nil
}

// CheckDuration checks the duration setting name: none is negative, and those that RFC 8628
// counts in seconds (device_code_ttl, device_poll_interval, and par_ttl: RFC 9126 expires_in) are
// whole seconds.
func CheckDuration(name string, d Duration) error {
	switch name {
	case "device_code_ttl", "device_poll_interval", "par_ttl":
		if d < 0 || time.Duration(d)%time.Second != 0 {
			return fmt.Errorf("%s must be a positive number of whole seconds", name)
		}
	default:
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	return nil
}

// CheckSigningAlg checks the algorithm of the signing setting name (signing_alg,
// id_token_signing_alg): one the issuer can sign with (keys.SupportedAlgorithms).
func CheckSigningAlg(name, alg string) error {
	if !slices.Contains(keys.SupportedAlgorithms, alg) {
		return fmt.Errorf("%s %q is not supported (supported: %s)", name, alg, strings.Join(keys.SupportedAlgorithms, ", "))
	}
	return nil
}

// CheckUsers checks every user and that no name is defined twice. Only a mistake of the last
// user is new when the users before it passed, so a parser that appends one user at a time
// can report it at that user's line.
func CheckUsers(us []User) error {
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		if u.Name == "" {
			return fmt.Errorf("user: empty name")
		}
		if seen[u.Name] {
			return fmt.Errorf("user %q: defined twice", u.Name)
		}
		seen[u.Name] = true
		if err := u.Validate(); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	return nil
}

// CheckClients checks every client (Client.Validate) and that no ID is registered twice. As
// with CheckUsers, a parser can append one client at a time.
func CheckClients(cs []Client) error {
	seen := make(map[string]bool, len(cs))
	for _, cl := range cs {
		if err := cl.Validate(); err != nil {
			return fmt.Errorf("client %q: %w", cl.ID, err)
		}
		if seen[cl.ID] {
			return fmt.Errorf("client %q: defined twice", cl.ID)
		}
		seen[cl.ID] = true
	}
	return nil
}

// validate refuses negative limits (zero means the default).
func (l Limits) validate() error {
	for name, n := range map[string]int{
		"sign_in_failures_per_user_address": l.SignInFailuresPerUserAddress, "sign_in_failures_per_address": l.SignInFailuresPerAddress,
		"sign_in_failures_per_user": l.SignInFailuresPerUser, "client_auth_failures_per_address": l.ClientAuthFailuresPerAddress,
		"user_code_failures_per_address": l.UserCodeFailuresPerAddress, "pending_per_address": l.PendingPerAddress,
		"pending_per_client": l.PendingPerClient, "device_codes_per_address": l.DeviceCodesPerAddress,
		"device_codes_per_client": l.DeviceCodesPerClient} {
		if n < 0 {
			return fmt.Errorf("limits: %s must be positive", name)
		}
	}
	return nil
}

// Validate checks one client's settings: each value on its own (CheckGrant, CheckConsent,
// CheckRedirectURI, CheckScope), then how they go together.
func (cl Client) Validate() error {
	cl = applyProfile(cl) // the checks see what the profile turns on
	if cl.ID == "" {
		return fmt.Errorf("empty client id")
	}
	for _, g := range cl.Grants {
		if err := CheckGrant(g); err != nil {
			return err
		}
	}
	if err := CheckConsent(cl.Consent); err != nil {
		return err
	}
	for _, u := range cl.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return err
		}
	}
	for _, u := range cl.PostLogoutRedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return err
		}
	}
	for _, s := range cl.Scopes {
		if err := CheckScope(s); err != nil {
			return err
		}
	}
	if err := cl.checkProfile(); err != nil {
		return err
	}
	if err := cl.checkKeys(); err != nil {
		return err
	}
	needsRedirect := len(cl.Grants) == 0 // the default grant is authorization_code
	for _, g := range cl.Grants {
		switch n := NormalizeGrant(g); {
		case n == GrantClientCredentials && cl.IsPublic():
			return fmt.Errorf("a public client (no secret) cannot use client_credentials")
		case n == GrantPassword && cl.IsPublic():
			// Anyone could use it by naming the client: a password oracle behind only the
			// throttles (RFC 9700 §2.4 asks that the grant not be used at all).
			return fmt.Errorf("a public client (no secret) cannot use the password grant")
		case n == GrantTokenExchange && cl.IsPublic():
			// Anyone holding a token could trade it, by naming the client, for one with the
			// client's audiences: the exchanging party must prove who it is (RFC 8693 §2.1).
			return fmt.Errorf("a public client (no secret or keys) cannot use token_exchange: anyone could exchange a token they hold by naming it")
		case n == GrantAuthorizationCode, n == GrantImplicit:
			needsRedirect = true
		}
	}
	if needsRedirect && len(cl.RedirectURIs) == 0 {
		return fmt.Errorf("a client using authorization_code or implicit needs a redirect_uri")
	}
	return nil
}

// checkKeys checks how a client's key set settings go together: one of jwks_file and
// jwks_uri, and no secret beside them.
func (cl Client) checkKeys() error {
	if cl.JWKSFile != "" && cl.JWKSURI != "" {
		return fmt.Errorf("jwks_file and jwks_uri: give the client one key set, not both")
	}
	if cl.HasKeys() && cl.Secret != "" {
		return fmt.Errorf("a client with keys authenticates with private_key_jwt and has no secret")
	}
	if cl.JWKSURI != "" {
		return CheckJWKSURI(cl.JWKSURI)
	}
	return nil
}

// CheckJWKSURI checks a client's jwks_uri: an absolute https URL without user info or
// fragment; plain http only on a loopback host.
func CheckJWKSURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("jwks_uri %q must be an absolute https URL without user info or fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return fmt.Errorf("jwks_uri %q: plain http is allowed only on a loopback host; use https", s)
		}
	default:
		return fmt.Errorf("jwks_uri %q must be an https URL", s)
	}
	return nil
}

// CheckGrant checks a grant name as written in a client's grants (see NormalizeGrant).
func CheckGrant(name string) error {
	if NormalizeGrant(name) == "" {
		return fmt.Errorf("unknown grant %q (known: authorization_code implicit client_credentials password refresh_token device_code token_exchange)", name)
	}
	return nil
}

// CheckConsent checks a client's consent setting: required (also when empty) or skip.
func CheckConsent(consent string) error {
	switch consent {
	case "", "required", "skip":
		return nil
	}
	return fmt.Errorf("consent must be required or skip, not %q", consent)
}

// CheckRedirectURI checks a redirect URI or post-logout redirect URI: absolute, without a
// fragment, plain http only on a loopback host, and not a scheme that runs or reads content.
func CheckRedirectURI(u string) error {
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Fragment != "" {
		return fmt.Errorf("redirect URI %q must be an absolute URI without a fragment", u)
	}
	switch strings.ToLower(p.Scheme) {
	case "http":
		if !IsLoopbackHost(p.Hostname()) {
			return fmt.Errorf("redirect URI %q: plain http is allowed only on a loopback host", u)
		}
	case "javascript", "data", "file", "vbscript", "blob":
		return fmt.Errorf("redirect URI %q: the %s scheme cannot be a redirect target", u, p.Scheme)
	}
	return nil
}

// CheckScope checks one scope a client may ask for (RFC 6749 §3.3 scope-token).
func CheckScope(s string) error {
	if !validScopeToken(s) {
		return fmt.Errorf("scope %q has characters RFC 6749 §3.3 does not allow", s)
	}
	return nil
}

// ParseIssuerURL checks an issuer identifier: https, or http on a loopback host; no query or
// fragment (RFC 8414 §2).
func ParseIssuerURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("issuer is required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("issuer %q must not have a query, fragment or user info", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("issuer %q: http is allowed only on a loopback host; use https", s)
		}
	default:
		return nil, fmt.Errorf("issuer %q must be an https URL", s)
	}
	return u, nil
}

// IsLoopbackHost reports whether host is localhost or a loopback IP address.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validScopeToken checks RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// Upstream is an OpenID Connect provider people may sign in with (issuer/upstream.go).
type Upstream struct {
	// Name is the provider's name in the Caddyfile: its button's data-upstream, its callback
	// path <issuer>/oauth2/upstream/<name>/callback, and part of its users' subjects.
	// Lower-case letters, digits, "-" and "_"; unique among the upstreams.
	Name string `json:"name"`
	// Issuer is the provider's OpenID issuer identifier: discovery
	// (<issuer>/.well-known/openid-configuration) and the "iss" its ID tokens must carry.
	// https, or http on a loopback host. Required.
	Issuer string `json:"issuer"`
	// ClientID is Tollgate's client_id at the provider, the "aud" its ID tokens must carry.
	// Required.
	ClientID string `json:"client_id"`
	// ClientSecret is Tollgate's client secret at the provider (client_secret_basic or _post,
	// as the provider supports). Default: none, a public client that relies on PKCE.
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes are asked of the provider; they must include openid. Default: openid email profile.
	Scopes []string `json:"scopes,omitempty"`
	// DisplayName is the text of the provider's button on the sign-in page. Default: Name.
	DisplayName string `json:"display_name,omitempty"`
	// Claims maps the provider's claims (keys) to Tollgate's claims (values), which scopes
	// then release as those of local users. Default: email, email_verified, name, given_name,
	// family_name and preferred_username, under their own names.
	Claims map[string]string `json:"claims,omitempty"`
	// AllowDomains, when set, are the only email domains whose users may sign in: the ID
	// token must carry an email in one of them, with email_verified true. Default: any user
	// the provider signs in.
	AllowDomains []string `json:"allow_domains,omitempty"`
	// RootCAFile is a PEM file of the CA certificates that the provider's TLS certificate is
	// checked against (a provider behind a private CA). Default: the system's roots.
	RootCAFile string `json:"root_ca_file,omitempty"`
	// UserinfoURL makes the provider a plain OAuth 2.0 one, without OpenID Connect (GitHub):
	// no discovery and no ID token; the person is who this URL, called with the access token,
	// says (a JSON object). AuthorizationURL and TokenURL are then required, Issuer is optional
	// (it names the provider in its users' subjects; default: UserinfoURL), and scopes need not
	// include openid. Default: none, an OpenID Connect provider.
	UserinfoURL string `json:"userinfo_url,omitempty"`
	// AuthorizationURL and TokenURL are a plain OAuth provider's endpoints (with UserinfoURL).
	AuthorizationURL string `json:"authorization_url,omitempty"`
	TokenURL         string `json:"token_url,omitempty"`
	// SubjectClaim is the member of a plain OAuth provider's userinfo answer that identifies
	// the person for good (a string or a number). Default: "sub"; GitHub's is "id".
	SubjectClaim string `json:"subject_claim,omitempty"`
}

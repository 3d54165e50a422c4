package issuer

import (
	"crypto/sha256"
	"crypto/subtle"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// client is a registered client prepared for fast, constant-time authentication.
type client struct {
	Client
	secretDigest [sha256.Size]byte // SHA-256 of the secret; the secret itself is not kept
	grants       map[string]bool
	scopes       map[string]bool
	issued       map[string]prometheus.Counter // tokens issued by grant label; nil without metrics
	// kind is where the client came from (clients.go); dynamic clients also have:
	kind    string
	expires time.Time // zero: never
	// authMethod is a registered confidential client's token_endpoint_auth_method
	// (client_secret_basic or client_secret_post), the only one it may use; "" for any.
	authMethod string
	// document is the client ID metadata document of a kindDocument client.
	document *clientDocument
	// assertionKeys are the public keys the client signs its RFC 7523 client assertions with
	// (private_key_jwt); a client with keys is confidential. Any kind of client may have them.
	assertionKeys []jose.JSONWebKey
	// remoteKeys is the key set at a configured client's jwks_uri, fetched and refreshed
	// (client_keys.go); nil otherwise. A client with it is confidential even while no key
	// has arrived yet.
	remoteKeys *remoteKeySet
}

func newClient(c Client) *client {
	c = applyProfile(c)
	cl := &client{Client: c, grants: map[string]bool{}, scopes: map[string]bool{}}
	if c.Secret != "" {
		cl.secretDigest = sha256.Sum256([]byte(c.Secret))
		cl.Client.Secret = "" // only the digest stays in memory
	}
	for _, g := range c.Grants {
		cl.grants[NormalizeGrant(g)] = true
	}
	if len(c.Grants) == 0 {
		cl.grants[GrantAuthorizationCode] = true
	}
	for _, sc := range c.Scopes {
		cl.scopes[sc] = true
	}
	return cl
}

// public reports whether the client has no credentials: no secret and no keys for
// private_key_jwt.
func (c *client) public() bool {
	return c.secretDigest == [sha256.Size]byte{} && !c.hasKeys()
}

// hasKeys reports whether the client authenticates with private_key_jwt: it has keys, or a
// jwks_uri they come from.
func (c *client) hasKeys() bool { return len(c.assertionKeys) > 0 || c.remoteKeys != nil }

// checkSecret compares a presented secret with the configured one in constant time. Comparing
// SHA-256 digests keeps the time independent of both lengths and costs well under a
// microsecond, so issuance is bounded by signing, not by secret hashing (a bcrypt per request
// would cap a core at ~15 tokens/s). Client secrets are high-entropy, so a fast hash is the
// right one here; user passwords use bcrypt/argon2id.
func (c *client) checkSecret(presented string) bool {
	if c.public() {
		return false
	}
	d := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(d[:], c.secretDigest[:]) == 1
}

// displayName is the name shown to people: the configured name, else the ID.
func (c *client) displayName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

package issuer

import (
	"context"
	"errors"
)

// clientDocument is what the issuer keeps of a fetched client ID metadata document.
type clientDocument struct {
	host string
}

// documentClients fetches, checks and caches client ID metadata documents.
type documentClients struct{}

// client returns the client whose metadata document is at id.
func (d *documentClients) client(ctx context.Context, id string) (*client, error) {
	return nil, errors.New("not yet")
}

// authPrivateKeyJWT is RFC 7523 client authentication, the token_endpoint_auth_method.
const authPrivateKeyJWT = "private_key_jwt"

// assertionAlgs are the algorithms a client assertion may be signed with: asymmetric only.
var assertionAlgs = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

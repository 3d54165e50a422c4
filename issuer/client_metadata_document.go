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

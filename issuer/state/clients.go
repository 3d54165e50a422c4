package state

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const bucketClients store.Bucket = "registered_clients" // Key(client id) → Client

// Client is a client registered at run time (RFC 7591 registration or the admin API), kept in
// the store so every node of a cluster knows it and a deletion takes effect everywhere at once.
type Client struct {
	ID   string `json:"client_id"`
	Name string `json:"client_name,omitempty"`
	// SecretDigest is SHA-256 of the client secret of a confidential client; the secret itself
	// is shown once, at registration, and never kept.
	SecretDigest []byte   `json:"secret_sha256,omitempty"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Grants       []string `json:"grant_types,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Audience     []string `json:"audience,omitempty"`
	// Metadata is the client's registered metadata as the registration endpoint answers it
	// (RFC 7591 §3.2.1), secrets excluded.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// RegistrationKey is Key(registration access token) (RFC 7592); empty for admin clients
	// without one.
	RegistrationKey string `json:"registration_key,omitempty"`
	// Via is how the client came: "open" or "token" registration, or "admin".
	Via string `json:"via"`
	// Created and Expires are Unix seconds; Expires 0 means the client does not expire.
	Created int64 `json:"created"`
	Expires int64 `json:"expires,omitempty"`
}

// ErrClientExists is returned by CreateClient when the id is taken.
var ErrClientExists = errors.New("state: client id taken")

// clientTTL is how long the record of c must live at now; false once it has expired.
func clientTTL(c *Client, now time.Time) (time.Duration, bool) {
	if c.Expires == 0 {
		return 0, true
	}
	return until(time.Unix(c.Expires, 0), now)
}

// CreateClient stores a new client; of racing creates of one id exactly one wins (Create), the
// others get ErrClientExists.
func (s *State) CreateClient(ctx context.Context, c Client) error {
	ttl, ok := clientTTL(&c, time.Now())
	if !ok {
		return errors.New("state: client already expired")
	}
	err := create(ctx, s.st, bucketClients, Key(c.ID), c, ttl)
	if errors.Is(err, store.ErrExists) {
		return ErrClientExists
	}
	return err
}

// Client returns the registered client id, or nil when there is none (or it expired).
func (s *State) Client(ctx context.Context, id string) (*Client, error) {
	return get[Client](ctx, s.st, bucketClients, Key(id))
}

// UpdateClient changes the registered client id with fn, atomically (Update): fn sees the
// current record and returns the new one. It returns the new record, or nil when there is no
// such client.
func (s *State) UpdateClient(ctx context.Context, id string, fn func(c *Client) error) (*Client, error) {
	var out *Client
	err := update(ctx, s.st, bucketClients, Key(id), func(cur *Client) (*Client, time.Duration, error) {
		if cur == nil {
			return nil, 0, store.ErrKeep
		}
		if err := fn(cur); err != nil {
			return nil, 0, err
		}
		ttl, ok := clientTTL(cur, time.Now())
		if !ok {
			return nil, 0, store.ErrKeep
		}
		out = cur
		return cur, ttl, nil
	})
	return out, err
}

// DeleteClient removes the registered client id; it reports whether there was one.
func (s *State) DeleteClient(ctx context.Context, id string) (bool, error) {
	c, err := take[Client](ctx, s.st, bucketClients, Key(id))
	return c != nil, err
}

// Clients calls fn with every registered client (Scan: a client registered or deleted meanwhile
// may or may not be seen).
func (s *State) Clients(ctx context.Context, fn func(c *Client) error) error {
	return s.st.Scan(ctx, bucketClients, func(_ string, raw []byte) error {
		c, err := decode[Client](bucketClients, raw)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

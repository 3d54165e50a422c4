package state

import (
	"context"
	"net/url"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// bucketPushed holds pushed authorization requests (RFC 9126): Key(reference) → Pushed, where
// the reference is the secret part of the request_uri.
const bucketPushed store.Bucket = "pushed_requests"

// Pushed is a pushed authorization request: the client that pushed it (authenticated, when it
// has credentials) and the request's parameters, checked when they were pushed and checked again
// when the request_uri is used.
type Pushed struct {
	ClientID string     `json:"client_id"`
	Params   url.Values `json:"params"`
}

// PutPushed stores a pushed request under ref for ttl. ref is a fresh secret (NewSecret), so
// the store never holds a request_uri that would work if read out of it.
func (s *State) PutPushed(ctx context.Context, ref string, p Pushed, ttl time.Duration) error {
	return create(ctx, s.st, bucketPushed, Key(ref), p, ttl)
}

// TakePushed returns the pushed request ref and forgets it in one atomic step, so a request_uri
// is used once however it is replayed or raced; nil when it is unknown, expired or used.
func (s *State) TakePushed(ctx context.Context, ref string) (*Pushed, error) {
	if ref == "" {
		return nil, nil
	}
	return take[Pushed](ctx, s.st, bucketPushed, Key(ref))
}

package state

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// bucketAssertions remembers the client assertions (RFC 7523 private_key_jwt) already used,
// each until it expires, so that one is accepted once.
const bucketAssertions store.Bucket = "client_assertions" // Key(client id\0jti) → "1"

// ErrAssertionReplayed is returned by UseAssertion for an assertion used before.
var ErrAssertionReplayed = errors.New("state: client assertion already used")

// UseAssertion records the one use of the client assertion of clientID with jti, remembered
// until expires (its exp, plus the leeway it was accepted with). The first call returns nil;
// every later or racing call, from any node, gets ErrAssertionReplayed (RFC 7523 §3: "the
// authorization server MAY ensure that JWTs are not replayed"; OpenID Connect Core §9 makes
// jti single-use).
func (s *State) UseAssertion(ctx context.Context, clientID, jti string, expires time.Time) error {
	ttl, ok := until(expires, time.Now())
	if !ok {
		ttl = time.Second // already expired: the caller refused it; keep the record briefly anyway
	}
	err := s.st.Create(ctx, bucketAssertions, Key(clientID+"\x00"+jti), []byte("1"), ttl)
	if errors.Is(err, store.ErrExists) {
		return ErrAssertionReplayed
	}
	return err
}

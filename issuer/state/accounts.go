package state

import (
	"context"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const bucketAccounts store.Bucket = "accounts" // Key(subject) → Account

// Account is a user that no users file holds: one an upstream identity provider signed in.
// Its subject at Tollgate is derived from the provider's name and the provider's own subject
// (issuer/upstream.go), so the record is found again at the next sign-in, and its claims are
// what the provider said then, mapped to Tollgate's claim names.
type Account struct {
	// Upstream names the upstream provider (its Caddyfile name) that signs this user in.
	Upstream string `json:"upstream"`
	// Namespace is the provider's issuer (for a plain OAuth provider without one, its userinfo
	// URL), as in the subject's digest: an account is a user only while the provider of that
	// name still has it, so replacing a provider under the same name drops the old one's users.
	Namespace string `json:"namespace"`
	// Email is the email the provider gave, and EmailVerified whether it said it was verified:
	// the provider's allow_domain is checked against them at every use, not only at sign-in.
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	// Claims are the user's claims, as the Caddyfile's claim mapping made them.
	Claims map[string]string `json:"claims,omitempty"`
	// Updated is when the provider last signed the user in, Unix seconds.
	Updated int64 `json:"updated"`
}

// PutAccount stores the account of subject sub for ttl, replacing the earlier one (every
// sign-in refreshes what the provider says of the user).
func (s *State) PutAccount(ctx context.Context, sub string, a Account, ttl time.Duration) error {
	return put(ctx, s.st, bucketAccounts, Key(sub), a, ttl)
}

// Account returns the account of subject sub, or nil when there is none (never signed in,
// or not for longer than its ttl).
func (s *State) Account(ctx context.Context, sub string) (*Account, error) {
	return get[Account](ctx, s.st, bucketAccounts, Key(sub))
}

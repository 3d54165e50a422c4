package state

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Buckets of single-use credentials. Keys are Key(code).
const (
	bucketCodes          store.Bucket = "authorization_codes" // Key(code) → Code
	bucketRedeemedCodes  store.Bucket = "redeemed_codes"      // Key(code) → Redemption
	bucketDeviceRedeemed store.Bucket = "device_redeemed"     // Key(device code) → Redemption
)

// Code is what an authorization code stands for (RFC 6749 §4.1.2: bound to the client, the
// redirect URI, and here also the PKCE challenge, nonce, scopes, resources, user and
// auth_time).
type Code struct {
	ClientID    string `json:"client_id"`
	RedirectURI string `json:"redirect_uri"`
	// RedirectGiven says the authorization request named the redirect URI, so the token
	// request must repeat it (RFC 6749 §4.1.3).
	RedirectGiven bool     `json:"redirect_given,omitempty"`
	Challenge     string   `json:"code_challenge,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	Scopes        []string `json:"scopes"`
	User          string   `json:"user"`
	AuthTime      int64    `json:"auth_time"`
	// Resources are the RFC 8707 resources the authorization request asked for; none (and
	// every record written before they were kept) means the client's audiences.
	Resources []string `json:"resources,omitempty"`
	// DPoPJKT binds the code to a DPoP key (RFC 9449 §10): the token request must come with
	// a proof of it.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// PutCode stores a new authorization code for ttl.
func (s *State) PutCode(ctx context.Context, code string, c Code, ttl time.Duration) error {
	return put(ctx, s.st, bucketCodes, Key(code), c, ttl)
}

// Code returns what code stands for, or nil when it is unknown, expired or redeemed.
func (s *State) Code(ctx context.Context, code string) (*Code, error) {
	return get[Code](ctx, s.st, bucketCodes, Key(code))
}

// DeleteCode forgets a code once it is redeemed (its Redemption keeps it single-use).
func (s *State) DeleteCode(ctx context.Context, code string) error {
	return s.st.Delete(ctx, bucketCodes, Key(code))
}

// Credential names a kind of single-use credential, for Redeem.
type Credential int

const (
	// AuthorizationCode is an authorization code (RFC 6749 §4.1).
	AuthorizationCode Credential = iota
	// DeviceCode is a device code (RFC 8628).
	DeviceCode
)

func (c Credential) bucket() store.Bucket {
	if c == DeviceCode {
		return bucketDeviceRedeemed
	}
	return bucketRedeemedCodes
}

// String names the credential for logs.
func (c Credential) String() string {
	if c == DeviceCode {
		return "device_code"
	}
	return "authorization_code"
}

// Redemption is what one redemption of a single-use credential issued, chosen before anything
// is minted, so that a replay can revoke it (RFC 6749 §4.1.2).
type Redemption struct {
	ClientID  string `json:"client_id"`
	JTI       string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
	Family    string `json:"family,omitempty"`
}

// ErrRedeemed is returned by Redeem for a credential that was redeemed before.
var ErrRedeemed = errors.New("state: already redeemed")

// Redeem makes the one redemption of a credential: the first call for it records r (kept for
// ttl) and returns nil; every later or racing call, from any node, gets ErrRedeemed after
// Revoke has put what the first one issued on the deny-list and revoked its refresh family
// (RFC 6749 §4.1.2 "SHOULD revoke"). The first redeemer only mints what r names afterwards, so
// whatever order the two take, the access token is denied and the family never lives.
func (s *State) Redeem(ctx context.Context, kind Credential, secret string, r Redemption, ttl time.Duration) error {
	err := create(ctx, s.st, kind.bucket(), Key(secret), r, ttl)
	if !errors.Is(err, store.ErrExists) {
		return err
	}
	if _, err := s.RevokeRedeemed(ctx, kind, secret, r.ClientID); err != nil {
		return err
	}
	return ErrRedeemed
}

// RevokeRedeemed revokes what a redeemed credential issued, if it was redeemed by clientID:
// its access token and its refresh family. It returns the redemption, or nil when there was
// none. The credential is bound to its client, so a replay through another client (a public
// one anyone can name) revokes nothing.
func (s *State) RevokeRedeemed(ctx context.Context, kind Credential, secret, clientID string) (*Redemption, error) {
	r, err := get[Redemption](ctx, s.st, kind.bucket(), Key(secret))
	if r == nil || err != nil || r.ClientID != clientID {
		return nil, err
	}
	// Both, whatever fails: the family must die even if the denial cannot be written.
	var errs []error
	if r.Family != "" {
		errs = append(errs, s.RevokeFamily(ctx, r.Family))
	}
	errs = append(errs, s.Deny(ctx, r.JTI, time.Unix(r.ExpiresAt, 0)))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

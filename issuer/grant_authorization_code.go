package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// authorizationCode is the Authorization Code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636).
// A code is redeemed once (state.Redeem): a second redemption, racing or later, is refused and
// revokes what the first got.
type authorizationCode struct{ s *Server }

func (g authorizationCode) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s := g.s
	code := req.form["code"]
	if code == "" {
		return nil, errInvalidRequest("code is required")
	}
	rec, err := s.state.Code(ctx, code)
	if err != nil {
		return nil, errServer(err)
	} else if rec == nil {
		return nil, s.replayed(ctx, req, state.AuthorizationCode, code, "the code is invalid, expired or already used")
	}
	// Checks that do not burn the code: someone holding only the code cannot spend it.
	if rec.ClientID != req.client.ID {
		return nil, errInvalidGrant("the code was issued to another client")
	}
	if got := req.form["redirect_uri"]; got != rec.RedirectURI && (got != "" || rec.RedirectGiven) {
		return nil, errInvalidGrant("redirect_uri does not match the authorization request")
	}
	if e := checkPKCE(rec.Challenge, req.form["code_verifier"]); e != nil {
		return nil, e
	}
	if rec.DPoPJKT != "" && rec.DPoPJKT != req.jkt {
		// RFC 9449 §10: a code bound with dpop_jkt is redeemed only with a proof of that key.
		// Like a PKCE mismatch, the grant does not match its request: invalid_grant.
		return nil, errInvalidGrant("the code is bound to another DPoP key (dpop_jkt)")
	}
	// RFC 8707 §2.2: the token request may narrow the resources of the authorization request;
	// the refresh family keeps those of the authorization request.
	aud, e := req.client.grantAudience(req.resources, rec.Resources)
	if e != nil {
		return nil, e
	}
	resp, e := s.redeemOnce(ctx, req, state.AuthorizationCode, code, s.redemptionTTL(), grantOf{client: req.client,
		user: rec.User, scopes: rec.Scopes, authTime: rec.AuthTime, nonce: rec.Nonce, audience: aud, resources: rec.Resources, person: true})
	if e == nil {
		_ = s.state.DeleteCode(ctx, code)
	}
	return resp, e
}

// checkPKCE verifies a code_verifier against the stored S256 challenge (RFC 7636 §4.6). A
// verifier sent for a code that had no challenge is refused: that is a downgrade attempt
// (RFC 9700 §2.1.1).
func checkPKCE(challenge, verifier string) *Error {
	if challenge == "" {
		if verifier != "" {
			return errInvalidGrant("code_verifier sent, but the authorization request had no code_challenge")
		}
		return nil
	}
	if verifier == "" {
		return errInvalidGrant("code_verifier is required")
	}
	if len(verifier) < 43 || len(verifier) > 128 || !isPKCEChars(verifier) {
		return errInvalidGrant("code_verifier is malformed")
	}
	d := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(d[:])
	if subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) != 1 {
		return errInvalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

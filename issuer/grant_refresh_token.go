package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// refreshToken is the Refresh Token grant (RFC 6749 §6) with rotation on every use. The first
// use of a token atomically creates its rotation record; any later or racing use finds the
// record and is reuse: within refresh_reuse_grace it gets the same successor again (a retry
// on a flaky network), otherwise the whole family and its access tokens are revoked. Families
// never fork, so two racing refreshes never both get fresh, independent sessions.
type refreshToken struct{ s *Server }

func (g refreshToken) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s := g.s
	presented := req.form["refresh_token"]
	if presented == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	key := hashKey(presented)
	rec, err := getJSON[refreshRecord](ctx, s.store, bucketRefreshTokens, key)
	if err != nil {
		return nil, errServer(err)
	} else if rec == nil {
		return s.refreshReused(ctx, req, key, presented)
	}
	if rec.ClientID != req.client.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	fam, err := s.loadFamily(ctx, rec.Family)
	if err != nil {
		return nil, errServer(err)
	}
	if fam == nil {
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	scopes, e := narrowScopes(req.form["scope"], fam.Scopes)
	if e != nil {
		return nil, e
	}
	// The successor is stored before the rotation record that names it exists, so whoever
	// sees the record (a duplicate in the grace window) also finds the successor.
	successor := randomSecret()
	if err := s.putRefreshToken(ctx, successor, rec.Family, fam); err != nil {
		return nil, errServer(err)
	}
	rot, _ := json.Marshal(rotation{Family: rec.Family, ClientID: rec.ClientID, At: time.Now().Unix(), Sealed: seal(presented, successor)})
	switch err := s.store.Create(ctx, bucketRotatedRefresh, key, rot, time.Until(time.Unix(fam.Expires, 0))); {
	case errors.Is(err, store.ErrExists):
		_ = s.store.Delete(ctx, bucketRefreshTokens, hashKey(successor)) // lost the race: never handed out
		return s.refreshReused(ctx, req, key, presented)
	case err != nil:
		_ = s.store.Delete(ctx, bucketRefreshTokens, hashKey(successor))
		return nil, errServer(err)
	}
	_ = s.store.Delete(ctx, bucketRefreshTokens, key)
	return s.refreshResponse(ctx, req.client, rec.Family, fam, scopes, successor)
}

// refreshReused handles a token that is no longer live: unknown, or rotated already.
func (s *Server) refreshReused(ctx context.Context, req *tokenRequest, key, presented string) (*tokenResponse, *Error) {
	rot, err := getJSON[rotation](ctx, s.store, bucketRotatedRefresh, key)
	if err != nil {
		return nil, errServer(err)
	} else if rot == nil {
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	if rot.ClientID != req.client.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	if grace := s.cfg.RefreshReuseGrace; grace > 0 && time.Since(time.Unix(rot.At, 0)) <= grace {
		if resp, ok, e := s.refreshRetry(ctx, req, *rot, presented); e != nil || ok {
			return resp, e
		}
	}
	s.log.Warn("refresh token reused; revoking its family")
	if err := s.revokeFamily(ctx, rot.Family); err != nil {
		return nil, errServer(err)
	}
	return nil, errInvalidGrant("the refresh token was already used; the session is revoked")
}

// refreshRetry answers a duplicate refresh within the grace window with the same successor,
// if that successor is still the live token of a live family.
func (s *Server) refreshRetry(ctx context.Context, req *tokenRequest, rot rotation, presented string) (*tokenResponse, bool, *Error) {
	successor, err := unseal(presented, rot.Sealed)
	if err != nil {
		return nil, false, nil
	}
	if _, err := s.store.Get(ctx, bucketRefreshTokens, hashKey(successor)); err != nil {
		return nil, false, nil // the successor was used or expired: this is reuse
	}
	fam, err := s.loadFamily(ctx, rot.Family)
	if err != nil {
		return nil, false, errServer(err)
	}
	if fam == nil {
		return nil, false, errInvalidGrant("the refresh token is invalid, expired or revoked")
	}
	scopes, e := narrowScopes(req.form["scope"], fam.Scopes)
	if e != nil {
		return nil, false, e
	}
	resp, e := s.refreshResponse(ctx, req.client, rot.Family, fam, scopes, successor)
	return resp, e == nil, e
}

// refreshResponse mints the access (and ID) token of a refresh and records it in the family.
func (s *Server) refreshResponse(ctx context.Context, c *client, familyID string, fam *family, scopes []string, refresh string) (*tokenResponse, *Error) {
	// Duplicates in the grace window update the family at once; serialize the read-modify-
	// write here so no access token goes unrecorded (and so unrevocable).
	unlock := s.lockFamily(familyID)
	defer unlock()
	if fresh, err := s.loadFamily(ctx, familyID); err != nil {
		return nil, errServer(err)
	} else if fresh == nil {
		return nil, errInvalidGrant("the refresh token is invalid, expired or revoked")
	} else {
		fam = fresh
	}
	jti := randomToken()
	fam.Tokens = append(liveTokens(fam.Tokens), issuedAT{JTI: jti, Exp: s.accessTokenExpiry().Unix()})
	// A family keeps at most maxLiveTokens access tokens alive: the oldest are superseded by
	// newer ones of the same grant and go on the deny-list, so the record stays small even
	// when a client rotates far faster than its access tokens expire.
	for len(fam.Tokens) > maxLiveTokens {
		old := fam.Tokens[0]
		if err := s.revokeAccessToken(ctx, old.JTI, time.Unix(old.Exp, 0)); err != nil {
			return nil, errServer(err)
		}
		fam.Tokens = fam.Tokens[1:]
	}
	if err := s.putFamily(ctx, familyID, fam); err != nil {
		return nil, errServer(err)
	}
	at, err := s.mintAccessToken(c, fam.User, scopes, unixTime(fam.AuthTime), jti)
	if err != nil {
		return nil, errServer(err)
	}
	resp := &tokenResponse{AccessToken: at.raw, TokenType: "Bearer", ExpiresIn: at.expiresIn,
		RefreshToken: refresh, Scope: strings.Join(scopes, " ")}
	if contains(scopes, "openid") {
		if resp.IDToken, err = s.mintIDToken(idTokenInput{client: c, user: fam.User, authTime: fam.AuthTime,
			scopes: scopes, accessToken: at.raw}); err != nil {
			return nil, errServer(err)
		}
	}
	return resp, nil
}

// maxLiveTokens bounds the access tokens one refresh family keeps alive.
const maxLiveTokens = 16

// liveTokens drops the access tokens that have expired: the family remembers only those a
// revocation still has to deny, so its record stays small however often it rotates.
func liveTokens(tokens []issuedAT) []issuedAT {
	now := time.Now().Unix()
	live := tokens[:0]
	for _, t := range tokens {
		if t.Exp > now {
			live = append(live, t)
		}
	}
	return live
}

// narrowScopes applies RFC 6749 §6: a refresh may ask for fewer scopes, never more.
func narrowScopes(requested string, granted []string) ([]string, *Error) {
	if requested == "" {
		return granted, nil
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if !contains(granted, sc) {
			return nil, errInvalidScope("scope " + quoteParam(sc) + " was not granted to this refresh token")
		}
		if !contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

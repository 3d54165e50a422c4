package issuer

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// Token type identifiers of RFC 8693 §3.
const (
	// TokenTypeAccessToken is an OAuth access token; the only type token exchange issues.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeJWT is any JWT; accepted for subject and actor tokens that are JWT access tokens.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
)

// maxExchangedTokenLen bounds a subject or actor token read.
const maxExchangedTokenLen = 16 << 10

// tokenExchange is the Token Exchange grant (RFC 8693): a confidential client trades an
// access token of this issuer (the subject token) for a new one, for the subject's "sub",
// with a scope no wider than the subject token's and the client's (invalid_scope), an
// audience the client may target (audience or resource, RFC 8707: invalid_target), the
// exchanging client as client_id and, when an actor token is given, "act" naming its subject
// (nested over the subject token's own act, §4.1). A subject token's may_act (§4.4) must name
// the actor (or, without an actor token, the client). A revoked, expired or forged subject or
// actor token, or one that is not an access token (an ID token), is invalid_grant. The new
// token lives no longer than the subject token; no refresh token is issued.
//
// The subject and actor tokens are this issuer's access tokens, verified as the edge would
// (signature with this issuer's keys, typ at+jwt, iss, exp, the deny-list), or JWTs of an
// issuer configured in token_exchange's trust (verifyTrustedToken), whose subjects get no
// user-only scope (openid, profile, email, offline_access).
type tokenExchange struct{ s *Server }

// exchangeClaims is what token exchange reads of a subject or actor token.
type exchangeClaims struct {
	accesstoken.Claims
	// MayAct is RFC 8693 §4.4's may_act: who may act for the subject.
	MayAct *accesstoken.Actor `json:"may_act,omitempty"`
	// Cnf is a sender constraint (RFC 7800), read whole: a token bound to a DPoP key (jkt) is
	// exchanged only by a request whose DPoP proof is of that key; any other constraint
	// (RFC 8705 x5t#S256, …) is refused, since the exchange cannot check it.
	Cnf json.RawMessage `json:"cnf,omitempty"`
}

func (g tokenExchange) handle(ctx context.Context, req *tokenRequest) (*tokenResponse, *Error) {
	s, c, f := g.s, req.client, req.form
	if c.public() {
		return nil, errUnauthorizedClient("token_exchange needs a confidential client")
	}
	if rt := f["requested_token_type"]; rt != "" && rt != TokenTypeAccessToken {
		return nil, errInvalidRequest("requested_token_type: only " + TokenTypeAccessToken + " is issued")
	}
	subject, e := s.exchangedToken(ctx, f, "subject_token", req.jkt)
	if e != nil {
		return nil, e
	}
	var actor *exchangeClaims
	if _, ok := f["actor_token"]; ok {
		if actor, e = s.exchangedToken(ctx, f, "actor_token", req.jkt); e != nil {
			return nil, e
		}
	} else if _, ok := f["actor_token_type"]; ok {
		return nil, errInvalidRequest("actor_token_type without actor_token")
	}
	// RFC 8693 §4.4: may_act names who may act for the subject; the actor, or the client
	// when it acts by itself.
	actorSub, actorIss := c.ID, s.issuer
	if actor != nil {
		actorSub, actorIss = actor.Subject, actor.Issuer
	}
	if m := subject.MayAct; m != nil && (m.Subject != actorSub || (m.Issuer != "" && m.Issuer != actorIss)) {
		return nil, errInvalidGrant("the subject token's may_act does not allow this actor")
	}
	// The scope is never wider than the subject token's (nor, grantScopes, the client's).
	granted := subject.Scopes()
	if granted == nil {
		granted = []string{}
	}
	for _, sc := range strings.Split(f["scope"], " ") {
		if sc != "" && validScopeToken(sc) && !slices.Contains(granted, sc) {
			return nil, errInvalidScope("scope " + quoteParam(sc) + " is wider than the subject token's")
		}
	}
	sg := scopeGrant{granted: granted}
	if subject.Issuer != s.issuer {
		// Another issuer's subject is no user of this one: nothing that would read this
		// issuer's user record (userinfo, ID tokens, refresh) is handed out for it.
		sg.refused = userOnlyScopes
	}
	scopes, e := c.grantScopes(f["scope"], sg)
	if e != nil {
		return nil, e
	}
	aud, e := exchangeAudience(c, req.resources, f["audience"])
	if e != nil {
		return nil, e
	}
	act := subject.Act // without an actor token, the subject token's delegation stays as it was
	if actor != nil {
		act = &accesstoken.Actor{Subject: actor.Subject, Act: subject.Act}
		if actor.Issuer != s.issuer {
			act.Issuer = actor.Issuer
		}
	}
	now := time.Now()
	id := s.newTokenID(now)
	if exp := subject.ExpiresAt.Time; exp.Before(id.exp) {
		if !exp.After(now) { // within the verification's leeway: nothing left to hand out
			return nil, errInvalidGrant("the subject_token is invalid, expired or revoked")
		}
		id.exp = exp // no longer than the subject token
	}
	m, err := s.mint(ctx, mintInput{grantOf: grantOf{client: c, user: subject.Subject, scopes: scopes, audience: aud,
		authTime: subject.AuthTime, act: act, jkt: req.jkt}, id: id, accessToken: true})
	if err != nil {
		return nil, errServer(err)
	}
	// RFC 9449: with a DPoP proof, the new token is bound to its key (token_type DPoP).
	return &tokenResponse{AccessToken: m.accessToken, TokenType: tokenType(req.jkt),
		ExpiresIn:       max(int64(id.exp.Sub(now)/time.Second), 0),
		Scope:           strings.Join(scopes, " "),
		IssuedTokenType: TokenTypeAccessToken, sub: subject.Subject, jti: id.jti}, nil
}

// exchangeAudience is the "aud" of an exchanged token: the resources asked for (RFC 8707,
// grantAudience) and the audience parameter (RFC 8693 §2.1, a logical name), each one of the
// client's audiences; neither asked for, the client's audiences.
func exchangeAudience(c *client, resources []string, audience string) ([]string, *Error) {
	aud, e := c.grantAudience(resources, nil)
	if e != nil || audience == "" {
		return aud, e
	}
	if !slices.Contains(c.audience(), audience) {
		return nil, errInvalidTarget("audience " + quoteParam(audience) + " is not an audience of this client")
	}
	if len(resources) == 0 {
		return []string{audience}, nil
	}
	if !slices.Contains(aud, audience) {
		aud = append(aud, audience)
	}
	return aud, nil
}

// exchangedToken reads and verifies the subject or actor token (param) of a token exchange:
// its type must be an access token or a JWT (invalid_request), and it must be a live access
// token of this issuer or a valid JWT of a trusted issuer (invalid_grant otherwise). A token
// bound to a DPoP key needs the request's proof to be of that key (jkt, "" without a proof).
func (s *Server) exchangedToken(ctx context.Context, f form, param, jkt string) (*exchangeClaims, *Error) {
	raw, typ := f[param], f[param+"_type"]
	switch {
	case raw == "":
		return nil, errInvalidRequest(param + " is required")
	case typ == "":
		return nil, errInvalidRequest(param + "_type is required")
	case typ != TokenTypeAccessToken && typ != TokenTypeJWT:
		return nil, errInvalidRequest(param + "_type " + quoteParam(typ) + " is not supported (" +
			TokenTypeAccessToken + " or " + TokenTypeJWT + ")")
	}
	claims, ok := s.verifyExchangedToken(raw)
	if !ok && len(s.trusted) > 0 && len(raw) <= maxExchangedTokenLen {
		claims, ok = s.verifyTrustedToken(ctx, raw)
	}
	if !ok {
		return nil, errInvalidGrant("the " + param + " is invalid, expired or revoked")
	}
	if len(claims.Cnf) > 0 && string(claims.Cnf) != "null" {
		var cnf map[string]json.RawMessage
		var bound string
		if json.Unmarshal(claims.Cnf, &cnf) != nil || len(cnf) != 1 || json.Unmarshal(cnf["jkt"], &bound) != nil ||
			bound == "" || bound != jkt {
			return nil, errInvalidGrant("the " + param + " is sender-constrained: send a DPoP proof of its key")
		}
	}
	return claims, nil
}

// verifyExchangedToken checks one of this issuer's access tokens as verifyAccessToken does
// (signature with the issuer's keys, typ at+jwt, iss, exp, the deny-list), reading the claims
// token exchange needs besides.
func (s *Server) verifyExchangedToken(raw string) (*exchangeClaims, bool) {
	if len(raw) > maxExchangedTokenLen {
		return nil, false
	}
	var claims exchangeClaims
	t, err := jwt.ParseWithClaims(raw, &claims, s.keys.Keyfunc, jwt.WithValidMethods([]string{s.cfg.SigningAlg}),
		jwt.WithIssuer(s.issuer), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil || claims.ID == "" || claims.Subject == "" {
		return nil, false
	}
	if typ, _ := t.Header["typ"].(string); !accesstoken.IsAccessTokenType(typ) {
		return nil, false // an ID token, or any other JWT this issuer signed
	}
	if s.Revoked(claims.ID) {
		return nil, false
	}
	return &claims, true
}

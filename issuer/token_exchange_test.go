package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

const (
	apiA = "https://api-a.test"
	apiB = "https://api-b.test"
)

// exchangeConfig has client web (whose users' tokens are exchanged), gateway (token_exchange
// for api-a and api-b, scopes read write), narrow (token_exchange, read, api-b) and svc
// (client_credentials only).
func exchangeConfig() Config {
	return Config{
		Issuer:            testIssuer,
		IDTokenSigningAlg: "ES256", // so an ID token is told apart by its type, not its algorithm
		Clients: []Client{
			{ID: "web", Secret: "web-secret", Grants: []string{"client_credentials"}, Scopes: []string{"openid", "read", "write"},
				Audience: []string{apiA}},
			{ID: "gateway", Secret: "gw-secret", Grants: []string{"token_exchange"}, Scopes: []string{"read", "write"},
				Audience: []string{apiA, apiB}},
			{ID: "narrow", Secret: "narrow-secret", Grants: []string{"urn:ietf:params:oauth:grant-type:token-exchange"},
				Scopes: []string{"read"}, Audience: []string{apiB}},
			{ID: "svc", Secret: "svc-secret", Grants: []string{"client_credentials"}, Scopes: []string{"read"}},
		},
	}
}

// userToken mints an access token of client for user through the issuer's one minting path.
func userToken(t *testing.T, s *Server, clientID, user string, scopes ...string) string {
	t.Helper()
	m, err := s.mint(t.Context(), mintInput{grantOf: grantOf{client: s.clients[clientID], user: user, scopes: scopes},
		id: s.newTokenID(time.Now()), accessToken: true})
	if err != nil {
		t.Fatal(err)
	}
	return m.accessToken
}

// signedToken signs claims with the issuer's own access-token key and typ.
func signedToken(t *testing.T, s *Server, typ string, claims jwt.MapClaims) string {
	t.Helper()
	raw, err := s.keys.Sign(s.cfg.SigningAlg, typ, claims)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// baseClaims are the claims of a live access token of client web for alice.
func baseClaims(scope string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": []string{apiA}, "client_id": "web", "scope": scope,
		"jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
}

// exchange posts a token exchange as client id.
func exchange(s *Server, id, secret string, v url.Values) (int, map[string]any) {
	v.Set("grant_type", GrantTokenExchange)
	w := recordToken(s, v.Encode(), id, secret)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// exchangedClaims decodes an access token (without verifying it: the test checks its content).
func exchangedClaims(t *testing.T, raw string) jwt.MapClaims {
	t.Helper()
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTokenExchange: RFC 8693 exchanges of this issuer's access tokens, table-driven: what
// is issued (sub kept, act set and nested, scope narrowed, audience chosen, client_id the
// exchanging client, no refresh token) and what is refused with which error.
func TestTokenExchange(t *testing.T) {
	s := newTestServer(t, exchangeConfig())
	subject := userToken(t, s, "web", "alice", "read", "write")
	readOnly := userToken(t, s, "web", "alice", "read")
	actor := userToken(t, s, "svc", "svc", "read")

	revoked := userToken(t, s, "web", "alice", "read")
	if w := serveForm(s, PathRevoke, url.Values{"token": {revoked}}.Encode(), "web", "web-secret"); w.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forgedTok := jwt.NewWithClaims(jwt.SigningMethodES256, baseClaims("read write"))
	forgedTok.Header["typ"] = accesstoken.HeaderType
	forgedTok.Header["kid"] = tokenKID(t, subject) // the issuer's own kid, another key
	forged, _ := forgedTok.SignedString(otherKey)
	expired := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "exp", time.Now().Add(-time.Minute).Unix()))
	otherIssuer := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "iss", "https://other.test"))
	m, err := s.mint(t.Context(), mintInput{grantOf: grantOf{client: s.clients["web"], user: "alice", scopes: []string{"openid"}},
		id: s.newTokenID(time.Now()), idToken: true})
	if err != nil {
		t.Fatal(err)
	}
	idToken := m.idToken
	delegated := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "act", map[string]any{"sub": "first-hop"}))
	mayActSvc := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "may_act", map[string]any{"sub": "svc"}))
	mayActOther := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "may_act", map[string]any{"sub": "mallory"}))
	bound := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "cnf", map[string]any{"jkt": "abc"}))

	at := TokenTypeAccessToken
	type want struct {
		status int
		err    string // error code; "" for success
		scope  string
		aud    []string
		act    string // JSON of the act claim; "" for none
	}
	for _, tc := range []struct {
		name   string
		client string
		params url.Values
		want   want
	}{
		{"good exchange with an actor, narrowed", "gateway", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"actor_token": {actor}, "actor_token_type": {at}, "scope": {"read"}, "audience": {apiB}},
			want{200, "", "read", []string{apiB}, `{"sub":"svc"}`}},
		{"jwt token type, resource parameter", "gateway", url.Values{"subject_token": {subject},
			"subject_token_type": {TokenTypeJWT}, "resource": {apiB}},
			want{200, "", "read write", []string{apiB}, ""}},
		{"default: the subject's scope and the client's", "narrow", url.Values{"subject_token": {subject}, "subject_token_type": {at}},
			want{200, "", "read", []string{apiB}, ""}},
		{"default audience: all of the client's", "gateway", url.Values{"subject_token": {readOnly}, "subject_token_type": {at}},
			want{200, "", "read", []string{apiA, apiB}, ""}},
		{"nested act", "gateway", url.Values{"subject_token": {delegated}, "subject_token_type": {at},
			"actor_token": {actor}, "actor_token_type": {at}},
			want{200, "", "read", []string{apiA, apiB}, `{"act":{"sub":"first-hop"},"sub":"svc"}`}},
		{"may_act allows the actor", "gateway", url.Values{"subject_token": {mayActSvc}, "subject_token_type": {at},
			"actor_token": {actor}, "actor_token_type": {at}},
			want{200, "", "read", []string{apiA, apiB}, `{"sub":"svc"}`}},
		{"scope wider than the subject token's", "gateway", url.Values{"subject_token": {readOnly}, "subject_token_type": {at},
			"scope": {"read write"}}, want{400, "invalid_scope", "", nil, ""}},
		{"scope wider than the client's", "narrow", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"scope": {"write"}}, want{400, "invalid_scope", "", nil, ""}},
		{"audience the client may not target", "gateway", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"audience": {"https://other.test"}}, want{400, "invalid_target", "", nil, ""}},
		{"resource the client may not target", "narrow", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"resource": {apiA}}, want{400, "invalid_target", "", nil, ""}},
		{"revoked subject token (RFC 7009)", "gateway", url.Values{"subject_token": {revoked}, "subject_token_type": {at}},
			want{400, "invalid_grant", "", nil, ""}},
		{"forged subject token", "gateway", url.Values{"subject_token": {forged}, "subject_token_type": {at}},
			want{400, "invalid_grant", "", nil, ""}},
		{"expired subject token", "gateway", url.Values{"subject_token": {expired}, "subject_token_type": {at}},
			want{400, "invalid_grant", "", nil, ""}},
		{"another issuer's token", "gateway", url.Values{"subject_token": {otherIssuer}, "subject_token_type": {TokenTypeJWT}},
			want{400, "invalid_grant", "", nil, ""}},
		{"an ID token as subject", "gateway", url.Values{"subject_token": {idToken}, "subject_token_type": {TokenTypeJWT}},
			want{400, "invalid_grant", "", nil, ""}},
		{"a forged actor token", "gateway", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"actor_token": {forged}, "actor_token_type": {at}}, want{400, "invalid_grant", "", nil, ""}},
		{"may_act names someone else", "gateway", url.Values{"subject_token": {mayActOther}, "subject_token_type": {at},
			"actor_token": {actor}, "actor_token_type": {at}}, want{400, "invalid_grant", "", nil, ""}},
		{"may_act without an actor names the client", "gateway", url.Values{"subject_token": {mayActSvc}, "subject_token_type": {at}},
			want{400, "invalid_grant", "", nil, ""}},
		{"a sender-constrained subject token", "gateway", url.Values{"subject_token": {bound}, "subject_token_type": {at}},
			want{400, "invalid_grant", "", nil, ""}},
		{"no subject_token", "gateway", url.Values{"subject_token_type": {at}}, want{400, "invalid_request", "", nil, ""}},
		{"no subject_token_type", "gateway", url.Values{"subject_token": {subject}}, want{400, "invalid_request", "", nil, ""}},
		{"unknown subject_token_type", "gateway", url.Values{"subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, want{400, "invalid_request", "", nil, ""}},
		{"actor_token_type alone", "gateway", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"actor_token_type": {at}}, want{400, "invalid_request", "", nil, ""}},
		{"a refresh token asked for", "gateway", url.Values{"subject_token": {subject}, "subject_token_type": {at},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, want{400, "invalid_request", "", nil, ""}},
		{"a client without the grant", "web", url.Values{"subject_token": {subject}, "subject_token_type": {at}},
			want{400, "unauthorized_client", "", nil, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := map[string]string{"gateway": "gw-secret", "narrow": "narrow-secret", "web": "web-secret"}[tc.client]
			status, out := exchange(s, tc.client, secret, tc.params)
			if status != tc.want.status || (tc.want.err != "" && out["error"] != tc.want.err) {
				t.Fatalf("got %d %v, want %d %s", status, out, tc.want.status, tc.want.err)
			}
			if tc.want.err != "" {
				return
			}
			if out["issued_token_type"] != TokenTypeAccessToken || out["token_type"] != "Bearer" || out["refresh_token"] != nil ||
				out["scope"] != tc.want.scope {
				t.Errorf("response %v", out)
			}
			raw, _ := out["access_token"].(string)
			claims, err := s.verifyAccessToken(raw) // a valid token of this issuer, by the one verification
			if err != nil {
				t.Fatalf("exchanged token does not verify: %v", err)
			}
			if claims.Subject != "alice" || claims.ClientID != tc.client || claims.Scope != tc.want.scope ||
				toJSON(claims.Audience) != toJSON(tc.want.aud) {
				t.Errorf("claims %+v", claims)
			}
			gotAct := ""
			if a := exchangedClaims(t, raw)["act"]; a != nil {
				gotAct = toJSON(a)
			}
			if gotAct != tc.want.act {
				t.Errorf("act = %s, want %s", gotAct, tc.want.act)
			}
		})
	}
}

// tokenKID is the kid of a JWT's header.
func tokenKID(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestTokenExchangeLifetime: an exchanged token lives no longer than its subject token; the
// metadata lists the grant; the audit line names the grant.
func TestTokenExchangeLifetime(t *testing.T) {
	s := newTestServer(t, exchangeConfig())
	short := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "exp", time.Now().Add(30*time.Second).Unix()))
	status, out := exchange(s, "gateway", "gw-secret", url.Values{"subject_token": {short}, "subject_token_type": {TokenTypeAccessToken}})
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	if exp, _ := out["expires_in"].(float64); exp > 30 || exp < 25 {
		t.Errorf("expires_in %v, want at most the subject token's 30 s", out["expires_in"])
	}
	c := exchangedClaims(t, out["access_token"].(string))
	if exp, _ := c["exp"].(float64); int64(exp) > time.Now().Add(30*time.Second).Unix() {
		t.Errorf("exp %v beyond the subject token's", c["exp"])
	}
	var md map[string]any
	if err := json.Unmarshal(serve(s, http.MethodGet, PathOAuthMetadata).Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(toJSON(md["grant_types_supported"]), GrantTokenExchange) {
		t.Errorf("grant_types_supported = %v", md["grant_types_supported"])
	}
	if grantLabel(GrantTokenExchange) != "token_exchange" {
		t.Errorf("grant label %q", grantLabel(GrantTokenExchange))
	}
}

// externalIssuer is another OpenID provider for token exchange: discovery and a JWKS that a
// test can rotate.
type externalIssuer struct {
	*jwksHost
	url string
}

func newExternalIssuer(t *testing.T) *externalIssuer {
	h := newJWKSHost(t)
	e := &externalIssuer{jwksHost: h, url: h.srv.URL}
	inner := h.srv.Config.Handler
	h.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathOpenIDConfiguration {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": e.url, "jwks_uri": e.url + "/jwks"})
			return
		}
		inner.ServeHTTP(w, r)
	})
	return e
}

// sign signs claims (iss filled in) with key as kid, typ JWT.
func (e *externalIssuer) sign(t *testing.T, key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	claims = with(claims, "iss", e.url)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestTokenExchangeTrustedIssuer: a JWT of an issuer in token_exchange's trust (found by
// discovery) is exchanged like one of this issuer's, with no user-only scope; one for another
// audience, of an untrusted issuer, or signed by another key is invalid_grant; an actor of the
// trusted issuer is named with its iss; after the issuer rotates its key, the new kid is
// fetched.
func TestTokenExchangeTrustedIssuer(t *testing.T) {
	ext := newExternalIssuer(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ext.set(publicSet(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
	cfg := exchangeConfig()
	cfg.Clients[1].Scopes = append(cfg.Clients[1].Scopes, "openid")
	cfg.TokenExchange = &TokenExchange{Trust: []TrustedIssuer{{Issuer: ext.url}}}
	s := newTestServer(t, cfg)
	deadline := time.Now().Add(5 * time.Second)
	for s.trusted[ext.url].keys.current() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": "partner-user", "aud": testIssuer, "scope": "read write openid",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	at := TokenTypeJWT
	good := ext.sign(t, k1, "k1", claims)

	status, out := exchange(s, "gateway", "gw-secret", url.Values{"subject_token": {good}, "subject_token_type": {at},
		"actor_token": {ext.sign(t, k1, "k1", with(claims, "sub", "partner-service"))}, "actor_token_type": {at}})
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, out)
	}
	c := exchangedClaims(t, out["access_token"].(string))
	if c["sub"] != "partner-user" || c["iss"] != testIssuer || c["scope"] != "read write" || c["client_id"] != "gateway" ||
		toJSON(c["act"]) != `{"iss":"`+ext.url+`","sub":"partner-service"}` {
		t.Errorf("exchanged claims %v", c)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		params url.Values
		err    string
	}{
		"openid for another issuer's subject": {url.Values{"subject_token": {good}, "scope": {"openid"}}, "invalid_scope"},
		"another audience":                    {url.Values{"subject_token": {ext.sign(t, k1, "k1", with(claims, "aud", "https://elsewhere.test"))}}, "invalid_grant"},
		"signed by another key":               {url.Values{"subject_token": {ext.sign(t, otherKey, "k1", claims)}}, "invalid_grant"},
		"expired": {url.Values{"subject_token": {ext.sign(t, k1, "k1", with(claims, "exp", now.Add(-time.Minute).Unix()))}},
			"invalid_grant"},
		"a DPoP proof as subject": {url.Values{"subject_token": {func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, with(claims, "iss", ext.url))
			tok.Header["kid"], tok.Header["typ"] = "k1", "dpop+jwt"
			raw, _ := tok.SignedString(k1)
			return raw
		}()}}, "invalid_grant"},
		"an untrusted issuer": {url.Values{"subject_token": {func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, with(claims, "iss", "https://untrusted.test"))
			tok.Header["kid"] = "k1"
			raw, _ := tok.SignedString(k1)
			return raw
		}()}}, "invalid_grant"},
	} {
		tc.params.Set("subject_token_type", at)
		if status, out := exchange(s, "gateway", "gw-secret", tc.params); status != 400 || out["error"] != tc.err {
			t.Errorf("%s: %d %v, want %s", name, status, out, tc.err)
		}
	}

	// The issuer rotates to k2: a token with the new kid makes the issuer fetch its keys again.
	ext.set(publicSet(t, map[string]*ecdsa.PrivateKey{"k2": k2}))
	time.Sleep(keySetUnknownKID + 100*time.Millisecond)
	if status, out := exchange(s, "gateway", "gw-secret", url.Values{"subject_token": {ext.sign(t, k2, "k2", claims)},
		"subject_token_type": {at}}); status != 200 {
		t.Fatalf("after rotation: %d %v", status, out)
	}
}

// TestTokenExchangeConfig: public clients cannot have the grant; trusted issuers are checked.
func TestTokenExchangeConfig(t *testing.T) {
	cfg := exchangeConfig()
	cfg.Clients = append(cfg.Clients, Client{ID: "pub", Grants: []string{"token_exchange"}})
	if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), "cannot use token_exchange") {
		t.Errorf("public client with token_exchange: %v", err)
	}
	for _, tc := range []struct {
		trust []TrustedIssuer
		want  string
	}{
		{[]TrustedIssuer{{Issuer: "http://idp.example"}}, "http is allowed only on a loopback host"},
		{[]TrustedIssuer{{Issuer: testIssuer}}, "own tokens are always accepted"},
		{[]TrustedIssuer{{Issuer: "https://idp.example"}, {Issuer: "https://idp.example"}}, "given twice"},
		{[]TrustedIssuer{{Issuer: "https://idp.example", JWKSURI: "http://idp.example/k"}}, "only on a loopback host"},
	} {
		cfg := exchangeConfig()
		cfg.TokenExchange = &TokenExchange{Trust: tc.trust}
		if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.trust, err, tc.want)
		}
	}
}

// TestTokenExchangeDPoP: a DPoP-bound subject token is exchanged only with a proof of its
// key, and the new token is bound to that key (token_type DPoP); a bearer subject token with
// a proof gets a bound token too.
func TestTokenExchangeDPoP(t *testing.T) {
	s := newTestServer(t, exchangeConfig())
	k, other := dpoptest.NewKey(), dpoptest.NewKey()
	bound := signedToken(t, s, accesstoken.HeaderType, with(baseClaims("read"), "cnf", map[string]any{"jkt": k.JKT}))
	body := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {bound},
		"subject_token_type": {TokenTypeAccessToken}}.Encode()
	post := func(proof string) (int, map[string]any) {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, tokenRequestOf(body, basic("gateway", "gw-secret"), func(r *http.Request) {
			if proof != "" {
				r.Header.Set("DPoP", proof)
			}
		}))
		var out map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}
	if status, out := post(""); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("bound subject without a proof: %d %v", status, out)
	}
	if status, out := post(other.Proof("POST", testIssuer+PathToken, "")); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("bound subject with another key's proof: %d %v", status, out)
	}
	status, out := post(k.Proof("POST", testIssuer+PathToken, ""))
	if status != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("bound subject with its key's proof: %d %v", status, out)
	}
	if c, err := s.verifyAccessToken(out["access_token"].(string)); err != nil || c.BoundKey() != k.JKT {
		t.Errorf("exchanged token bound to %v (%v), want %s", c, err, k.JKT)
	}
}

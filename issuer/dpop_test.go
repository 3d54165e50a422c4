package issuer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
	"github.com/tollgate-auth/tollgate/issuer/dpop"
	"github.com/tollgate-auth/tollgate/issuer/state"
)

const dpopTokenURL = testIssuer + PathToken

// dpopConfig is clusterConfig with a client that must use DPoP and a public client that gets
// refresh tokens through the code grant.
func dpopConfig(t testing.TB) Config {
	cfg := clusterConfig(t)
	cfg.Clients = append(cfg.Clients,
		Client{ID: "bound", Secret: "bound-secret", Grants: []string{"client_credentials"}, Scopes: []string{"read"}, RequireDPoP: true},
		Client{ID: "pub", Grants: []string{"authorization_code", "refresh_token"},
			RedirectURIs: []string{"https://app.test/cb"}, Scopes: []string{"read", "offline_access"}})
	return cfg
}

// dpopToken posts a token request with an optional DPoP proof; Basic credentials when secret
// is set.
func dpopToken(s *Server, body, id, secret, proof string) *httptest.ResponseRecorder {
	r := tokenRequestOf(body)
	if secret != "" {
		basic(id, secret)(r)
	}
	if proof != "" {
		r.Header.Set("DPoP", proof)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code != status || e.Error != code {
		t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, status, code)
	}
}

func decodeToken(t *testing.T, w *httptest.ResponseRecorder) tokenResponse {
	t.Helper()
	var tok tokenResponse
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &tok) != nil {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	return tok
}

const ccBody = "grant_type=client_credentials&scope=read"

func TestDPoPBindsAccessToken(t *testing.T) {
	s := newTestServer(t, dpopConfig(t))
	k := dpoptest.NewKey()
	tok := decodeToken(t, dpopToken(s, ccBody, "svc", "s3cret", k.Proof("POST", dpopTokenURL, "")))
	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q", tok.TokenType)
	}
	claims, err := s.verifyAccessToken(tok.AccessToken)
	if err != nil || claims.BoundKey() != k.JKT {
		t.Fatalf("cnf.jkt %q, want %q (%v)", claims.BoundKey(), k.JKT, err)
	}
	// Without a proof: a bearer token, as before.
	plain := decodeToken(t, dpopToken(s, ccBody, "svc", "s3cret", ""))
	if c, _ := s.verifyAccessToken(plain.AccessToken); plain.TokenType != "Bearer" || c.Cnf != nil {
		t.Fatalf("unbound token: %q %+v", plain.TokenType, c.Cnf)
	}
	// Introspection tells the resource server the binding.
	w := serveForm(s, PathIntrospect, "token="+tok.AccessToken, "svc", "s3cret")
	var in struct {
		TokenType string            `json:"token_type"`
		Cnf       map[string]string `json:"cnf"`
	}
	if json.Unmarshal(w.Body.Bytes(), &in) != nil || in.TokenType != "DPoP" || in.Cnf["jkt"] != k.JKT {
		t.Fatalf("introspection: %s", w.Body)
	}
	// Metadata lists the algorithms.
	var md struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	if json.Unmarshal(serve(s, "GET", PathOAuthMetadata).Body.Bytes(), &md) != nil || !strings.Contains(strings.Join(md.Algs, " "), "ES256") {
		t.Fatal("metadata lacks dpop_signing_alg_values_supported")
	}
}

func TestDPoPRequiredAndRefused(t *testing.T) {
	s := newTestServer(t, dpopConfig(t))
	k := dpoptest.NewKey()
	wantError(t, dpopToken(s, ccBody, "bound", "bound-secret", ""), 400, "invalid_dpop_proof")
	if tok := decodeToken(t, dpopToken(s, ccBody, "bound", "bound-secret", k.Proof("POST", dpopTokenURL, ""))); tok.TokenType != "DPoP" {
		t.Fatal(tok.TokenType)
	}
	priv := &jose.JSONWebKey{Key: k.Private}
	for name, proof := range map[string]string{
		"other url":   k.Proof("POST", testIssuer+"/other", ""),
		"other host":  k.Proof("POST", "https://evil.test"+PathToken, ""),
		"GET":         k.Proof("GET", dpopTokenURL, ""),
		"old iat":     k.Sign(dpoptest.Claims{HTM: "POST", HTU: dpopTokenURL}, dpoptest.Options{Age: 2 * time.Minute}),
		"private jwk": k.Sign(dpoptest.Claims{HTM: "POST", HTU: dpopTokenURL}, dpoptest.Options{JWK: priv}),
		"typ JWT":     k.Sign(dpoptest.Claims{HTM: "POST", HTU: dpopTokenURL}, dpoptest.Options{Typ: "JWT"}),
		"HS256":       hs256Proof(t),
		"none":        noneProof(t, k),
		"garbage":     "not.a.proof",
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, dpopToken(s, ccBody, "svc", "s3cret", proof), 400, "invalid_dpop_proof")
		})
	}
	// Two DPoP headers.
	r := tokenRequestOf(ccBody, basic("svc", "s3cret"))
	r.Header.Add("DPoP", k.Proof("POST", dpopTokenURL, ""))
	r.Header.Add("DPoP", k.Proof("POST", dpopTokenURL, ""))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	wantError(t, w, 400, "invalid_dpop_proof")
}

func hs256Proof(t *testing.T) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", map[string]string{"kty": "oct", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"jti": "x", "htm": "POST", "htu": dpopTokenURL, "iat": time.Now().Unix()})
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// noneProof is a good proof with its header changed to alg none and its signature dropped.
func noneProof(t *testing.T, k *dpoptest.Key) string {
	parts := strings.Split(k.Proof("POST", dpopTokenURL, ""), ".")
	h, _ := jose.ParseSignedCompact(strings.Join(parts, "."), []jose.SignatureAlgorithm{jose.ES256})
	jwk, _ := json.Marshal(h.Signatures[0].Protected.JSONWebKey)
	hdr, _ := json.Marshal(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": json.RawMessage(jwk)})
	return b64(hdr) + "." + parts[1] + "."
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestDPoPProofReplayAcrossNodes(t *testing.T) {
	for _, c := range clusters(t, dpopConfig(t)) {
		t.Run(c.name, func(t *testing.T) {
			k := dpoptest.NewKey()
			proof := k.Proof("POST", dpopTokenURL, "")
			decodeToken(t, dpopToken(c.node(0), ccBody, "svc", "s3cret", proof))
			wantError(t, dpopToken(c.node(1), ccBody, "svc", "s3cret", proof), 400, "invalid_dpop_proof")
			// The store-backed replay cache the edge uses sees the same proofs.
			p, err := dpop.Verify(proof, dpop.Options{Method: "POST", URL: dpopTokenURL})
			if err != nil {
				t.Fatal(err)
			}
			if fresh, err := c.node(1).DPoPReplay().Use(context.Background(), p.ReplayKey(), p.Until); fresh || err != nil {
				t.Fatalf("replay cache: fresh %v, %v", fresh, err)
			}
		})
	}
}

// publicRefresh redeems a code of the public client "pub" with a proof of k and returns the
// token response.
func publicRefresh(t *testing.T, s *Server, k *dpoptest.Key) tokenResponse {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	code := state.NewSecret()
	if err := s.state.PutCode(context.Background(), code, state.Code{ClientID: "pub", RedirectURI: "https://app.test/cb",
		Challenge: oauth2.S256ChallengeFromVerifier(verifier), Scopes: []string{"read", "offline_access"}, User: "alice",
		AuthTime: time.Now().Unix()}, time.Minute); err != nil {
		t.Fatal(err)
	}
	body := "grant_type=authorization_code&client_id=pub&redirect_uri=" + url.QueryEscape("https://app.test/cb") + "&code=" + code + "&code_verifier=" + verifier
	return decodeToken(t, dpopToken(s, body, "pub", "", k.Proof("POST", dpopTokenURL, "")))
}

func TestDPoPBoundRefreshToken(t *testing.T) {
	s := newTestServer(t, dpopConfig(t))
	k, other := dpoptest.NewKey(), dpoptest.NewKey()
	tok := publicRefresh(t, s, k)
	if tok.TokenType != "DPoP" || tok.RefreshToken == "" {
		t.Fatalf("code grant: %+v", tok)
	}
	refresh := func(rt string, proof string) *httptest.ResponseRecorder {
		return dpopToken(s, "grant_type=refresh_token&client_id=pub&refresh_token="+rt, "pub", "", proof)
	}
	// Another key, or none: refused, and the token stays usable (no reuse detection).
	wantError(t, refresh(tok.RefreshToken, other.Proof("POST", dpopTokenURL, "")), 400, "invalid_dpop_proof")
	wantError(t, refresh(tok.RefreshToken, ""), 400, "invalid_dpop_proof")
	next := decodeToken(t, refresh(tok.RefreshToken, k.Proof("POST", dpopTokenURL, "")))
	if c, err := s.verifyAccessToken(next.AccessToken); err != nil || c.BoundKey() != k.JKT || next.TokenType != "DPoP" {
		t.Fatalf("refreshed token not bound: %v %+v", err, next)
	}
	// The binding survives the rotation.
	wantError(t, refresh(next.RefreshToken, other.Proof("POST", dpopTokenURL, "")), 400, "invalid_dpop_proof")
	decodeToken(t, refresh(next.RefreshToken, k.Proof("POST", dpopTokenURL, "")))
}

func TestDPoPNonce(t *testing.T) {
	cfg := dpopConfig(t)
	cfg.DPoPNonce = true
	for _, c := range clusters(t, cfg) {
		t.Run(c.name, func(t *testing.T) {
			k := dpoptest.NewKey()
			w := dpopToken(c.node(0), ccBody, "svc", "s3cret", k.Proof("POST", dpopTokenURL, ""))
			wantError(t, w, 400, "use_dpop_nonce")
			nonce := w.Header().Get("DPoP-Nonce")
			if nonce == "" {
				t.Fatal("no DPoP-Nonce header")
			}
			wantError(t, dpopToken(c.node(0), ccBody, "svc", "s3cret", k.ProofNonce("POST", dpopTokenURL, "", "made-up")), 400, "use_dpop_nonce")
			// Another node accepts the nonce: they share the secret through the store.
			w = dpopToken(c.node(1), ccBody, "svc", "s3cret", k.ProofNonce("POST", dpopTokenURL, "", nonce))
			if tok := decodeToken(t, w); tok.TokenType != "DPoP" || w.Header().Get("DPoP-Nonce") == "" {
				t.Fatalf("with nonce: %+v", tok)
			}
			// A request without a proof needs no nonce.
			decodeToken(t, dpopToken(c.node(0), ccBody, "svc", "s3cret", ""))
		})
	}
}

// TestDPoPJKTBindsTheCode runs the code flow with dpop_jkt (RFC 9449 §10): the code is
// redeemed only with a proof of that key.
func TestDPoPJKTBindsTheCode(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	k, other := dpoptest.NewKey(), dpoptest.NewKey()
	tokenURL := f.url + PathToken
	code := func() string {
		params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
			"scope": {"openid read"}, "dpop_jkt": {k.JKT}}
		resp, _ := f.authorize(b, params, "allow")
		return callback(t, resp, "https://app.test/cb").Get("code")
	}
	redeem := func(c, proof string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", tokenURL, strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {c},
			"redirect_uri": {"https://app.test/cb"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.SetBasicAuth("web", "web-secret")
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, r)
		return w
	}
	c := code()
	wantError(t, redeem(c, ""), 400, "invalid_grant")
	wantError(t, redeem(c, other.Proof("POST", tokenURL, "")), 400, "invalid_grant")
	// Those refusals did not burn the code.
	tok := decodeToken(t, redeem(c, k.Proof("POST", tokenURL, "")))
	if claims, err := f.verifyAccessToken(tok.AccessToken); err != nil || claims.BoundKey() != k.JKT || tok.TokenType != "DPoP" {
		t.Fatalf("token: %v %+v", err, tok)
	}
	// A malformed dpop_jkt is refused at the authorization endpoint.
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
		"scope": {"openid read"}, "dpop_jkt": {"short"}}
	resp, _ := f.authorize(b, params, "allow")
	if got := callback(t, resp, "https://app.test/cb"); got.Get("error") != "invalid_request" {
		t.Fatalf("bad dpop_jkt: %v", got)
	}
}

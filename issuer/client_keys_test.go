package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// signAssertionKID signs claims as a client assertion with key (ES256) and kid.
func signAssertionKID(t *testing.T, key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publicSet is the JWK Set of the public halves of keys, by kid.
func publicSet(t *testing.T, keys map[string]*ecdsa.PrivateKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for kid, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertionToken posts a client_credentials request authenticated by assertion a.
func assertionToken(s *Server, a string) *httptest.ResponseRecorder {
	body := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientAssertionType},
		"client_assertion": {a}}.Encode()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, tokenRequestOf(body))
	return w
}

// TestConfiguredClientJWKSFile: a configured client with a jwks_file authenticates with
// private_key_jwt only: a good assertion gets a client_credentials token, a replayed one, one
// for another audience and one signed by another key are invalid_client, and so is a secret.
// The metadata lists private_key_jwt with its algorithms.
func TestConfiguredClientJWKSFile(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	file := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(file, publicSet(t, map[string]*ecdsa.PrivateKey{"k1": key}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Clients = append(cfg.Clients, Client{ID: "signer", JWKSFile: file, Grants: []string{"client_credentials"},
		Scopes: []string{"read"}, Audience: []string{"https://api.test"}})
	s := newTestServer(t, cfg)

	good := assertionClaims("signer", testIssuer)
	a := signAssertionKID(t, key, "k1", good)
	if w := assertionToken(s, a); w.Code != http.StatusOK {
		t.Fatalf("good assertion: %d %s", w.Code, w.Body)
	}
	if w := assertionToken(s, signAssertionKID(t, key, "k1", assertionClaims("signer", testIssuer+PathToken))); w.Code != http.StatusOK {
		t.Fatalf("assertion for the token endpoint: %d %s", w.Code, w.Body)
	}
	for name, a := range map[string]string{
		"replayed":      a,
		"wrong aud":     signAssertionKID(t, key, "k1", assertionClaims("signer", "https://elsewhere.test")),
		"wrong key":     signAssertionKID(t, other, "k1", assertionClaims("signer", testIssuer)),
		"unknown kid":   signAssertionKID(t, other, "k9", assertionClaims("signer", testIssuer)),
		"sub not iss":   signAssertionKID(t, key, "k1", with(assertionClaims("signer", testIssuer), "sub", "svc")),
		"expired":       signAssertionKID(t, key, "k1", with(assertionClaims("signer", testIssuer), "exp", time.Now().Add(-time.Minute).Unix())),
		"other client":  signAssertionKID(t, key, "k1", assertionClaims("svc", testIssuer)),
		"no jti at all": signAssertionKID(t, key, "k1", with(assertionClaims("signer", testIssuer), "jti", nil)),
	} {
		w := assertionToken(s, a)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "invalid_client") {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
	}
	if w := recordToken(s, "grant_type=client_credentials", "signer", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("Basic with an empty secret: %d %s", w.Code, w.Body)
	}

	var md map[string]any
	if err := json.Unmarshal(serve(s, http.MethodGet, PathOAuthMetadata).Body.Bytes(), &md); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported",
		"revocation_endpoint_auth_methods_supported"} {
		if !strings.Contains(toJSON(md[field]), `"private_key_jwt"`) {
			t.Errorf("%s = %v, want private_key_jwt", field, md[field])
		}
	}
	if !strings.Contains(toJSON(md["token_endpoint_auth_signing_alg_values_supported"]), `"ES256"`) {
		t.Errorf("token_endpoint_auth_signing_alg_values_supported = %v", md["token_endpoint_auth_signing_alg_values_supported"])
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestJWKSFileErrors: New refuses a jwks_file it cannot use, naming the file; the config check
// refuses keys beside a secret and two key sets.
func TestJWKSFileErrors(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	private, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "p", Algorithm: "ES256"}}})
	symmetric, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h", Algorithm: "HS256"}}})
	encOnly, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "e", Use: "enc"}}})
	files := map[string][]byte{"notjson.json": []byte("{not json"), "private.json": private, "symmetric.json": symmetric,
		"enc.json": encOnly, "empty.json": []byte(`{"keys":[]}`)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"missing.json", "missing.json"},
		{"notjson.json", "notjson.json: the key set is not a JWK Set"},
		{"private.json", "private.json: the key set has a private or invalid key"},
		{"symmetric.json", "symmetric.json: the key set has a symmetric key"},
		{"enc.json", "enc.json: the key set has no signing key"},
		{"empty.json", "empty.json: the key set has no signing key"},
	} {
		cfg := testConfig()
		cfg.Clients = append(cfg.Clients, Client{ID: "signer", JWKSFile: filepath.Join(dir, tc.file), Grants: []string{"client_credentials"}})
		st, err := bolt.Open(filepath.Join(t.TempDir(), "i.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(context.Background(), cfg, Deps{Store: st})
		if err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", tc.file)
		} else if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `client "signer"`) {
			t.Errorf("%s: %v, want %q", tc.file, err, tc.want)
		}
		if err := CheckConfig(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckConfig: %v", tc.file, err)
		}
		st.Close()
	}
	for _, tc := range []struct {
		c    Client
		want string
	}{
		{Client{ID: "a", JWKSFile: "/k.json", JWKSURI: "https://a.test/jwks", Grants: []string{"client_credentials"}}, "not both"},
		{Client{ID: "a", Secret: "s", JWKSURI: "https://a.test/jwks", Grants: []string{"client_credentials"}}, "has no secret"},
		{Client{ID: "a", JWKSURI: "http://a.test/jwks", Grants: []string{"client_credentials"}}, "only on a loopback host"},
		{Client{ID: "a", JWKSURI: "ftp://a.test/jwks", Grants: []string{"client_credentials"}}, "must be an https URL"},
		{Client{ID: "a", Grants: []string{"token_exchange"}}, "cannot use token_exchange"},
	} {
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	// With keys, a client is confidential: client_credentials and token_exchange are allowed.
	if err := (Client{ID: "a", JWKSURI: "https://a.test/jwks", Grants: []string{"client_credentials", "token_exchange"}}).Validate(); err != nil {
		t.Errorf("client with a jwks_uri: %v", err)
	}
}

// jwksHost serves a JWK Set that a test can change or take down, counting fetches.
type jwksHost struct {
	mu      sync.Mutex
	body    []byte // nil: 503
	fetches int
	srv     *httptest.Server
}

func newJWKSHost(t *testing.T) *jwksHost {
	h := &jwksHost{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.fetches++
		if h.body == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(h.body)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *jwksHost) set(b []byte) { h.mu.Lock(); h.body = b; h.mu.Unlock() }
func (h *jwksHost) count() int   { h.mu.Lock(); defer h.mu.Unlock(); return h.fetches }

// TestConfiguredClientJWKSURI: a client's jwks_uri that is down at start does not stop the
// issuer (the client cannot authenticate until its keys arrive); once up, an assertion is
// accepted, and after the client rotates its key, an assertion with the new kid makes the
// issuer fetch the set again (at most once per keySetUnknownKID) and is accepted; the old key
// is then refused.
func TestConfiguredClientJWKSURI(t *testing.T) {
	h := newJWKSHost(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := testConfig()
	cfg.Clients = append(cfg.Clients, Client{ID: "signer", JWKSURI: h.srv.URL + "/jwks", Grants: []string{"client_credentials"},
		Scopes: []string{"read"}})
	s := newTestServer(t, cfg) // the set is down: New succeeds all the same
	if w := assertionToken(s, signAssertionKID(t, k1, "k1", assertionClaims("signer", testIssuer))); w.Code != http.StatusUnauthorized {
		t.Fatalf("keys not there yet: %d %s", w.Code, w.Body)
	}
	h.set(publicSet(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
	time.Sleep(keySetUnknownKID + 100*time.Millisecond)
	if w := assertionToken(s, signAssertionKID(t, k1, "k1", assertionClaims("signer", testIssuer))); w.Code != http.StatusOK {
		t.Fatalf("after the set came up: %d %s", w.Code, w.Body)
	}

	// Rotation: the client publishes k2 instead of k1.
	h.set(publicSet(t, map[string]*ecdsa.PrivateKey{"k2": k2}))
	time.Sleep(keySetUnknownKID + 100*time.Millisecond)
	before := h.count()
	if w := assertionToken(s, signAssertionKID(t, k2, "k2", assertionClaims("signer", testIssuer))); w.Code != http.StatusOK {
		t.Fatalf("new kid after rotation: %d %s", w.Code, w.Body)
	}
	if got := h.count() - before; got != 1 {
		t.Errorf("the unknown kid caused %d fetches, want 1", got)
	}
	// A flood of made-up kids right after costs no fetch (rate-limited).
	before = h.count()
	for range 5 {
		if w := assertionToken(s, signAssertionKID(t, k1, "made-up", assertionClaims("signer", testIssuer))); w.Code != http.StatusUnauthorized {
			t.Fatalf("made-up kid: %d %s", w.Code, w.Body)
		}
	}
	if got := h.count() - before; got != 0 {
		t.Errorf("made-up kids caused %d fetches within the interval, want 0", got)
	}
	if w := assertionToken(s, signAssertionKID(t, k1, "k1", assertionClaims("signer", testIssuer))); w.Code != http.StatusUnauthorized {
		t.Errorf("the withdrawn key still works: %d %s", w.Code, w.Body)
	}
}

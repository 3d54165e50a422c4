package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// keyDocument is the document of a confidential web client at url that authenticates with
// private_key_jwt, its public key inline (or, with jwksURI, at that URL).
func keyDocument(url string, key *ecdsa.PrivateKey, jwksURI string) map[string]any {
	doc := map[string]any{
		"client_id":                  url,
		"client_name":                "Acme Web",
		"redirect_uris":              []string{"https://app.test/cb"},
		"token_endpoint_auth_method": "private_key_jwt",
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	if jwksURI != "" {
		doc["jwks_uri"] = jwksURI
	} else {
		doc["jwks"] = set
	}
	return doc
}

// assertion signs claims as a client assertion with key (ES256, kid k1).
func assertion(t *testing.T, key *ecdsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertionClaims are good claims of an assertion by id for aud.
func assertionClaims(id, aud string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": id, "sub": id, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// TestPrivateKeyJWT: a metadata document client with private_key_jwt authenticates with an
// assertion signed by its key, once per jti; every bad assertion is invalid_client.
func TestPrivateKeyJWT(t *testing.T) {
	h := newDocHost(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := h.url("/web.json")
	h.serveJSON("/web.json", keyDocument(id, key, ""))
	viaURI := h.url("/web-uri.json")
	h.serveJSON("/web-uri.json", keyDocument(viaURI, key, h.url("/jwks.json")))
	h.serveJSON("/jwks.json", jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Use: "sig"}}})
	public := h.url("/cli.json")
	h.serveJSON("/cli.json", cliDocument(public))
	f := documentFlowServer(t, h)

	// The full flow: authorize (consent shows the host, no loopback warning), then redeem the
	// code with an assertion.
	verifier := oauth2.GenerateVerifier()
	resp, consent := f.authorizeSeeingConsent(newBrowser(t), url.Values{"client_id": {id}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"read"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"}}, "allow")
	if !strings.Contains(consent, "Acme Web") || !strings.Contains(consent, "data-client-host") || strings.Contains(consent, "data-loopback-warning") {
		t.Errorf("consent page:\n%s", consent)
	}
	code := callback(t, resp, "https://app.test/cb").Get("code")
	good := assertion(t, key, assertionClaims(id, f.url))
	form := func(id, a string, kv ...string) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {"https://app.test/cb"},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {a}}
		if id != "" {
			v.Set("client_id", id)
		}
		return cloneWith(v, kv...)
	}
	status, body := f.postToken(t, form(id, good, "code", code, "code_verifier", verifier))
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("good assertion: %d %v", status, body)
	}
	if status, body := f.postToken(t, form(id, good)); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("replayed assertion: %d %v", status, body)
	}

	// With a bogus code, a request whose client authenticates gets invalid_grant, one whose
	// client does not gets invalid_client.
	hs256 := func() string {
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, assertionClaims(id, f.url))
		tok.Header["kid"] = "k1"
		s, _ := tok.SignedString(der)
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, assertionClaims(id, f.url))
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}
	now := time.Now()
	cases := []struct {
		name   string
		form   url.Values
		mutate func(*http.Request)
		want   string
	}{
		{"good", form(id, assertion(t, key, assertionClaims(id, f.url))), nil, "invalid_grant"},
		{"aud is the token endpoint", form(id, assertion(t, key, assertionClaims(id, f.url+PathToken))), nil, "invalid_grant"},
		{"aud a list", form(id, assertion(t, key, with(assertionClaims(id, ""), "aud", []string{"x", f.url}))), nil, "invalid_grant"},
		{"no client_id: found by iss", form("", assertion(t, key, assertionClaims(id, f.url))), nil, "invalid_grant"},
		{"keys at jwks_uri", form(viaURI, assertion(t, key, assertionClaims(viaURI, f.url))), nil, "invalid_grant"},
		{"wrong aud", form(id, assertion(t, key, assertionClaims(id, "https://other.test"))), nil, "invalid_client"},
		{"no aud", form(id, assertion(t, key, with(assertionClaims(id, f.url), "aud", nil))), nil, "invalid_client"},
		{"expired", form(id, assertion(t, key, with(assertionClaims(id, f.url), "exp", now.Add(-2*time.Minute).Unix()))), nil, "invalid_client"},
		{"no exp", form(id, assertion(t, key, with(assertionClaims(id, f.url), "exp", nil))), nil, "invalid_client"},
		{"exp an hour ahead", form(id, assertion(t, key, with(assertionClaims(id, f.url), "exp", now.Add(time.Hour).Unix()))), nil, "invalid_client"},
		{"nbf in the future", form(id, assertion(t, key, with(assertionClaims(id, f.url), "nbf", now.Add(2*time.Minute).Unix()))), nil, "invalid_client"},
		{"iat in the future", form(id, assertion(t, key, with(assertionClaims(id, f.url), "iat", now.Add(2*time.Minute).Unix()))), nil, "invalid_client"},
		{"no jti", form(id, assertion(t, key, with(assertionClaims(id, f.url), "jti", nil))), nil, "invalid_client"},
		{"sub is another client", form(id, assertion(t, key, with(assertionClaims(id, f.url), "sub", public))), nil, "invalid_client"},
		{"iss is another client", form(id, assertion(t, key, with(assertionClaims(id, f.url), "iss", public))), nil, "invalid_client"},
		{"client_id is another client", form(viaURI, assertion(t, key, assertionClaims(id, f.url))), nil, "invalid_client"},
		{"signed by another key", form(id, assertion(t, other, assertionClaims(id, f.url))), nil, "invalid_client"},
		{"HS256 with the public key as secret", form(id, hs256()), nil, "invalid_client"},
		{"alg none", form(id, none()), nil, "invalid_client"},
		{"not a JWT", form(id, "not-a-jwt"), nil, "invalid_client"},
		{"public client sends an assertion", form(public, assertion(t, key, assertionClaims(public, f.url))), nil, "invalid_client"},
		{"secret client sends an assertion", form("web", assertion(t, key, assertionClaims("web", f.url))), nil, "invalid_client"},
		{"unknown client", form("https://127.0.0.1:1/nobody.json", assertion(t, key, assertionClaims("https://127.0.0.1:1/nobody.json", f.url))), nil, "invalid_client"},
		{"private_key_jwt client without an assertion", url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"},
			"redirect_uri": {"https://app.test/cb"}, "client_id": {id}}, nil, "invalid_client"},
		{"assertion and client_secret", form(id, assertion(t, key, assertionClaims(id, f.url)), "client_secret", "x"), nil, "invalid_request"},
		{"assertion and Basic", form(id, assertion(t, key, assertionClaims(id, f.url))), func(r *http.Request) { r.SetBasicAuth("web", "web-secret") }, "invalid_request"},
		{"wrong assertion type", form(id, assertion(t, key, assertionClaims(id, f.url)), "client_assertion_type", "urn:x"), nil, "invalid_request"},
		{"assertion type without assertion", url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"},
			"client_id": {id}, "client_assertion_type": {clientAssertionType}}, nil, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mutate []func(*http.Request)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			status, body := f.postToken(t, tc.form, mutate...)
			if body["error"] != tc.want {
				t.Fatalf("%d %v, want %s", status, body, tc.want)
			}
			if tc.want == "invalid_client" && status != http.StatusUnauthorized {
				t.Fatalf("status %d", status)
			}
		})
	}
}

// TestPrivateKeyJWTFailuresAreThrottled: failed assertions count like wrong secrets; past the
// limit even a good assertion from that address is refused.
func TestPrivateKeyJWTFailuresAreThrottled(t *testing.T) {
	h := newDocHost(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := h.url("/web.json")
	h.serveJSON("/web.json", keyDocument(id, key, ""))
	cfg := documentConfig(h)
	f := newFlowServer(t, func(c *Config) {
		c.MetadataDocuments = &cfg
		c.Limits.ClientAuthFailuresPerAddress = 3
	})
	post := func(k *ecdsa.PrivateKey) string {
		_, body := f.postToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "client_id": {id},
			"client_assertion_type": {clientAssertionType}, "client_assertion": {assertion(t, k, assertionClaims(id, f.url))}},
			func(r *http.Request) { r.Header.Set(clientIPHeader, "192.0.2.7") })
		s, _ := body["error"].(string)
		return s
	}
	for i := 0; i < 3; i++ {
		if got := post(other); got != "invalid_client" {
			t.Fatalf("bad assertion %d: %s", i, got)
		}
	}
	if got := post(key); got != "invalid_client" {
		t.Fatalf("good assertion past the limit: %s, want invalid_client", got)
	}
}

package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// postForm posts a form to u, with Basic credentials when id is not empty, and decodes the
// JSON answer.
func postForm(t *testing.T, u string, v url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out
}

// goJoseAssertion signs an RFC 7523 client assertion for client id and audience aud with
// go-jose, as a client library would.
func goJoseAssertion(t *testing.T, key *ecdsa.PrivateKey, kid, id, aud string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: id, Subject: id, Audience: josejwt.Audience{aud},
		ID: rand.Text(), IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestEndToEndPrivateKeyJWT: a client configured with a jwks_file gets a client_credentials
// token with a go-jose assertion through a real Caddy, and the token is accepted at an
// oauth_protect route; the same assertion again is invalid_client.
func TestEndToEndPrivateKeyJWT(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	dir := t.TempDir()
	jwksFile := filepath.Join(dir, "signer.jwks.json")
	if err := os.WriteFile(jwksFile, set, 0o600); err != nil {
		t.Fatal(err)
	}
	issuerPort, apiPort := freePort(t), freePort(t)
	iss, api := "http://127.0.0.1:"+issuerPort, "http://127.0.0.1:"+apiPort
	startCaddy(t, globalOptions+fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage bolt %[3]s
		client signer {
			jwks_file %[4]s
			grants client_credentials
			scopes read
			audience https://api.test
		}
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[1]s
		audience https://api.test
		scope read
	}
	respond "protected ok"
}
`, issuerPort, apiPort, filepath.Join(dir, "tollgate.db"), jwksFile))
	md := discover(t, iss)
	if !strings.Contains(fmt.Sprint(md["token_endpoint_auth_methods_supported"]), "private_key_jwt") {
		t.Errorf("token_endpoint_auth_methods_supported = %v", md["token_endpoint_auth_methods_supported"])
	}
	tokenURL := md["token_endpoint"].(string)
	a := goJoseAssertion(t, key, "k1", "signer", tokenURL)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"read"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	status, out := postForm(t, tokenURL, form, "", "")
	tok, _ := out["access_token"].(string)
	if status != 200 || tok == "" {
		t.Fatalf("token: %d %v", status, out)
	}
	if resp, body := bearerRequest(t, "GET", api+"/v1/things", tok); resp.StatusCode != 200 || body != "protected ok" {
		t.Fatalf("protected route: %d %s", resp.StatusCode, body)
	}
	if status, out := postForm(t, tokenURL, form, "", ""); status != 401 || out["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", status, out)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	form.Set("client_assertion", goJoseAssertion(t, other, "k1", "signer", tokenURL))
	if status, out := postForm(t, tokenURL, form, "", ""); status != 401 || out["error"] != "invalid_client" {
		t.Fatalf("assertion by another key: %d %v", status, out)
	}
}

// TestEndToEndTokenExchange: through a real Caddy, client gateway exchanges client web's
// token (for api-a) for one for api-b (RFC 8693); api-b's oauth_protect accepts the exchanged
// token and refuses the original, api-a refuses the exchanged one; once the original is
// revoked (RFC 7009), it can no longer be exchanged.
func TestEndToEndTokenExchange(t *testing.T) {
	issuerPort, apiA, apiB := freePort(t), freePort(t), freePort(t)
	iss := "http://127.0.0.1:" + issuerPort
	startCaddy(t, globalOptions+fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage bolt %[4]s
		client web {
			secret web-secret
			grants client_credentials
			scopes read write
			audience https://api-a.test
		}
		client gateway {
			secret gateway-secret
			grants token_exchange
			scopes read
			audience https://api-b.test
		}
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[1]s
		audience https://api-a.test
		scope read
	}
	respond "api-a ok"
}

http://127.0.0.1:%[3]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[1]s
		audience https://api-b.test
		scope read
	}
	respond "api-b ok"
}
`, issuerPort, apiA, apiB, filepath.Join(t.TempDir(), "tollgate.db")))
	md := discover(t, iss)
	if !strings.Contains(fmt.Sprint(md["grant_types_supported"]), "urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Errorf("grant_types_supported = %v", md["grant_types_supported"])
	}
	tokenURL := md["token_endpoint"].(string)
	original := clientCredentialsToken(t, tokenURL, "web", "web-secret", "read", "write")
	if resp, body := bearerRequest(t, "GET", "http://127.0.0.1:"+apiA+"/x", original); resp.StatusCode != 200 {
		t.Fatalf("original at api-a: %d %s", resp.StatusCode, body)
	}

	ex := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {original},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"https://api-b.test"}}
	status, out := postForm(t, tokenURL, ex, "gateway", "gateway-secret")
	exchanged, _ := out["access_token"].(string)
	if status != 200 || exchanged == "" || out["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" ||
		out["scope"] != "read" || out["refresh_token"] != nil {
		t.Fatalf("exchange: %d %v", status, out)
	}
	if resp, body := bearerRequest(t, "GET", "http://127.0.0.1:"+apiB+"/x", exchanged); resp.StatusCode != 200 || body != "api-b ok" {
		t.Fatalf("exchanged at api-b: %d %s", resp.StatusCode, body)
	}
	if resp, _ := bearerRequest(t, "GET", "http://127.0.0.1:"+apiB+"/x", original); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("original at api-b: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := bearerRequest(t, "GET", "http://127.0.0.1:"+apiA+"/x", exchanged); resp.StatusCode != 401 {
		t.Fatalf("exchanged at api-a: %d", resp.StatusCode)
	}

	// A widened exchange is refused.
	wide := url.Values{}
	for k, v := range ex {
		wide[k] = v
	}
	wide.Set("scope", "read write")
	if status, out := postForm(t, tokenURL, wide, "gateway", "gateway-secret"); status != 400 || out["error"] != "invalid_scope" {
		t.Fatalf("widened exchange: %d %v", status, out)
	}
	// Revoked at the issuer (RFC 7009), the original is no longer exchanged.
	if status, out := postForm(t, iss+"/oauth2/revoke", url.Values{"token": {original}}, "web", "web-secret"); status != 200 {
		t.Fatalf("revoke: %d %v", status, out)
	}
	if status, out := postForm(t, tokenURL, ex, "gateway", "gateway-secret"); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("exchange of a revoked token: %d %v", status, out)
	}
}

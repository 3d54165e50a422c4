package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
)

// writeKeyFile writes a JWK Set file with key's public key (kid k1, ES256).
func writeKeyFile(t testing.TB, key *ecdsa.PrivateKey) string {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "bank.jwks")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fapi2Client is a client that meets the fapi2 profile.
func fapi2Client(keyFile string) Client {
	return Client{ID: "bank", Profile: ProfileFAPI2, JWKSFile: keyFile, RedirectURIs: []string{"https://bank.test/cb"},
		Grants: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "accounts"}}
}

// TestProfileFAPI2Refusals: a client whose settings contradict FAPI 2.0 is refused, with the
// reason; so is an unknown profile and a code or request_uri lifetime too long for it.
func TestProfileFAPI2Refusals(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyFile := writeKeyFile(t, key)
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for a config that is fine
	}{
		{"meets the profile", func(*Config) {}, ""},
		{"with a jwks_uri", func(c *Config) { c.Clients[0].JWKSFile, c.Clients[0].JWKSURI = "", "https://bank.test/jwks" }, ""},
		{"code_ttl 60s", func(c *Config) { c.CodeTTL = Duration(time.Minute) }, ""},
		{"a secret", func(c *Config) { c.Clients[0].Secret = "s3cret-s3cret-s3cret-s3cret-s3cret" }, "private_key_jwt only"},
		{"a secret and no keys", func(c *Config) { c.Clients[0].Secret, c.Clients[0].JWKSFile = "s3cret-s3cret-s3cret-s3cret-s3cret", "" }, "private_key_jwt only"},
		{"public", func(c *Config) { c.Clients[0].JWKSFile = "" }, "needs jwks_file or jwks_uri"},
		{"implicit", func(c *Config) { c.Clients[0].Grants = []string{"authorization_code", "implicit"} }, "the implicit grant is not allowed"},
		{"password", func(c *Config) { c.Clients[0].Grants = []string{"password"} }, "the password grant is not allowed"},
		{"http loopback redirect", func(c *Config) { c.Clients[0].RedirectURIs = []string{"http://127.0.0.1/cb"} }, `redirect_uri "http://127.0.0.1/cb" must be https`},
		{"private-use scheme redirect", func(c *Config) { c.Clients[0].RedirectURIs = []string{"com.bank.app:/cb"} }, "must be https"},
		{"code_ttl 61s", func(c *Config) { c.CodeTTL = Duration(61 * time.Second) }, `client "bank": profile fapi2 needs code_ttl of at most 60s, not 1m1s`},
		{"par_ttl 10m", func(c *Config) { c.PARTTL = Duration(10 * time.Minute) }, "profile fapi2 needs par_ttl under 600s"},
		{"unknown profile", func(c *Config) { c.Clients[0].Profile = "fapi1" }, `unknown profile "fapi1" (known: fapi2)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Issuer: testIssuer, Clients: []Client{fapi2Client(keyFile)}}
			tc.change(&cfg)
			err := cfg.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), `"bank"`):
				t.Fatalf("the error %q does not name the client", err)
			}
		})
	}
	// Without the profile the same settings are fine.
	cfg := Config{Issuer: testIssuer, CodeTTL: Duration(5 * time.Minute), Clients: []Client{{ID: "web", Secret: "s",
		RedirectURIs: []string{"http://127.0.0.1/cb"}, Grants: []string{"authorization_code", "implicit", "password"}}}}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestProfileFAPI2Implied: a fapi2 client requires PAR, DPoP and PKCE although it is
// confidential, and names its redirect_uri; with all of it, its pushed request goes on to
// sign-in and a code.
func TestProfileFAPI2Implied(t *testing.T) {
	if c := applyProfile(Client{ID: "x", Profile: ProfileFAPI2}); !c.RequirePAR || !c.RequireDPoP {
		t.Fatalf("applyProfile: %+v", c)
	}
	if c := applyProfile(Client{ID: "x"}); c.RequirePAR || c.RequireDPoP {
		t.Fatalf("applyProfile without a profile: %+v", c)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyFile := writeKeyFile(t, key)
	f := newFlowServer(t, func(c *Config) { c.Clients = append(c.Clients, fapi2Client(keyFile)) })
	c := f.clients["bank"]
	if !c.RequirePAR || !c.RequireDPoP || !c.needsPKCE() || c.public() || !f.needsPAR(c) {
		t.Fatalf("the running client: require_par %v, require_dpop %v, PKCE %v, public %v", c.RequirePAR, c.RequireDPoP, c.needsPKCE(), c.public())
	}
	if web := f.clients["web"]; web.needsPKCE() || f.needsPAR(web) {
		t.Fatal("a confidential client without the profile must not need PKCE or PAR")
	}
	verifier := oauth2.GenerateVerifier()
	good := url.Values{"response_type": {"code"}, "client_id": {"bank"}, "redirect_uri": {"https://bank.test/cb"},
		"scope": {"openid accounts"}, "state": {"st-bank"}, "nonce": {"n-bank"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	push := func(form url.Values) (int, map[string]any) {
		form = cloneWith(form, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			"client_assertion", assertion(t, key, assertionClaims("bank", f.url)))
		status, _, body := f.push(t, form, "", "")
		return status, body
	}
	b := newBrowser(t)
	resp, _ := b.get(f.url + PathAuthorize + "?" + good.Encode())
	if got := callback(t, resp, "https://bank.test/cb"); got.Get("error") != "invalid_request" || got.Get("state") != "st-bank" {
		t.Fatalf("not pushed: %v", got)
	}
	without := func(k string) url.Values {
		v := cloneWith(good)
		v.Del(k)
		return v
	}
	if status, body := push(without("code_challenge")); status != 400 || body["error"] != "invalid_request" ||
		!strings.Contains(body["error_description"].(string), "code_challenge") {
		t.Fatalf("without PKCE: %d %v", status, body)
	}
	if status, body := push(without("redirect_uri")); status != 400 || body["error"] != "invalid_request" ||
		!strings.Contains(body["error_description"].(string), "redirect_uri") {
		t.Fatalf("without redirect_uri: %d %v", status, body)
	}
	if status, _, body := f.push(t, good, "bank", "a-secret"); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("with a secret: %d %v", status, body)
	}
	status, body := push(good)
	if status != http.StatusCreated {
		t.Fatalf("push: %d %v", status, body)
	}
	resp, _ = f.authorize(b, url.Values{"client_id": {"bank"}, "request_uri": {body["request_uri"].(string)}}, "allow")
	got := callback(t, resp, "https://bank.test/cb")
	if got.Get("code") == "" || got.Get("iss") != f.url || got.Get("state") != "st-bank" {
		t.Fatalf("authorization response %v", got)
	}
	// The code is redeemed with private_key_jwt and a DPoP proof (require_dpop, implied).
	redeem := func(proof string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {"https://bank.test/cb"},
			"code_verifier": {verifier}, "client_id": {"bank"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, key, assertionClaims("bank", f.url))}}
		req, _ := http.NewRequest("POST", f.url+PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, body := redeem(""); status != 400 || body["access_token"] != nil {
		t.Fatalf("without a DPoP proof: %d %v", status, body)
	}
	dk := dpoptest.NewKey()
	status, body = redeem(dk.Proof("POST", f.url+PathToken, ""))
	if status != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("with a DPoP proof: %d %v", status, body)
	}
}

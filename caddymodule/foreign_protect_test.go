package caddymodule

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestProtectForeignIssuer runs Caddy against an issuer on HTTPS with a private CA, whose access
// tokens are typed JWT as Keycloak's, Entra ID's and Auth0's are: trust_pool makes its keys
// reachable, accept_jwt_typ makes its access tokens usable, and its ID tokens are still refused.
func TestProtectForeignIssuer(t *testing.T) {
	idp, caPEM := newTLSStaticIssuer(t, "k1")
	caFile := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newUpstreamRecorder(t)
	ports := []string{freePort(t), freePort(t), freePort(t)}
	site := func(port, block string) string {
		return fmt.Sprintf(`
http://127.0.0.1:%s {
	bind 127.0.0.1
	oauth_protect {
		issuer %s {
			%s
		}
		audience https://api.test
	}
	reverse_proxy %s
}
`, port, idp.url, block, strings.TrimPrefix(up.URL, "http://"))
	}
	startCaddy(t, globalOptions+
		site(ports[0], "trust_pool file "+caFile+"\n\t\t\taccept_jwt_typ\n\t\t\taudience https://api.test spa")+
		site(ports[1], "trust_pool file "+caFile)+
		site(ports[2], "audience https://api.test"))
	addr := func(i int) string { return "127.0.0.1:" + ports[i] }

	at := idp.mint(t, "k1", "https://api.test", nil)
	deadline := time.Now().Add(5 * time.Second)
	for status, _ := rawDo(t, addr(0), "GET", "/x", at); status != 200; status, _ = rawDo(t, addr(0), "GET", "/x", at) {
		if status != 503 || time.Now().After(deadline) {
			t.Fatalf("status %d while the keys load over the private CA", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	up.take()

	accessJWT := idp.mintTyp(t, "k1", "JWT", "https://api.test", map[string]any{"azp": "spa", "client_id": nil, "typ": "Bearer"})
	untyped := idp.mintTyp(t, "k1", "", "https://api.test", map[string]any{"client_id": "spa"})
	tests := []struct {
		name   string
		site   int
		token  string
		status int
	}{
		{"at+jwt", 0, at, 200},
		{"access token typed JWT (Keycloak)", 0, accessJWT, 200},
		{"untyped access token (Cognito)", 0, untyped, 200},
		{"ID token: nonce", 0, idp.mintTyp(t, "k1", "JWT", "https://api.test", map[string]any{"nonce": "n", "azp": "spa"}), 401},
		{"ID token: its client is the audience", 0, idp.mintTyp(t, "k1", "JWT", "spa", map[string]any{"azp": "spa", "client_id": nil}), 401},
		{"ID token: Keycloak typ ID", 0, idp.mintTyp(t, "k1", "JWT", "https://api.test", map[string]any{"typ": "ID"}), 401},
		{"ID token: at_hash", 0, idp.mintTyp(t, "k1", "", "https://api.test", map[string]any{"at_hash": "h"}), 401},
		{"iss with a trailing slash", 0, idp.mint(t, "k1", "https://api.test", map[string]any{"iss": idp.url + "/"}), 401},
		{"exp as a string", 0, idp.mint(t, "k1", "https://api.test", map[string]any{"exp": fmt.Sprint(time.Now().Add(time.Hour).Unix())}), 401},
		{"typ JWT without accept_jwt_typ", 1, accessJWT, 401},
		{"at+jwt without accept_jwt_typ", 1, at, 200},
		{"without trust_pool: keys out of reach", 2, at, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, challenge := rawDo(t, addr(tc.site), "GET", "/x", tc.token)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%s)", status, tc.status, challenge)
			}
			if got := up.take(); (tc.status == 200) != (len(got) == 1) {
				t.Fatalf("upstream received %q", got)
			}
		})
	}
}

// TestProtectIssuerTransport: plain http:// to an issuer beyond loopback stops the
// configuration with a message naming the issuer, unless its block says insecure_http; then a
// warning is logged.
func TestProtectIssuerTransport(t *testing.T) {
	intro := func(u string) *IntrospectionConfig { return &IntrospectionConfig{URL: u, ClientID: "gw"} }
	tests := []struct {
		name string
		p    ProtectHandler
		err  string // "" for none
		warn bool
	}{
		{name: "https", p: ProtectHandler{Issuer: "https://idp.example"}},
		{name: "http on 127.0.0.1", p: ProtectHandler{Issuer: "http://127.0.0.1:9"}},
		{name: "http on [::1]", p: ProtectHandler{Issuer: "http://[::1]:9"}},
		{name: "http on localhost", p: ProtectHandler{Issuer: "http://localhost:9"}},
		{name: "http beyond loopback", p: ProtectHandler{Issuer: "http://idp.example"},
			err: "issuer http://idp.example: http://idp.example: plain http:// to a host that is not loopback"},
		{name: "http beyond loopback, opted in", p: ProtectHandler{Issuers: []IssuerConfig{{Issuer: "http://idp.example", InsecureHTTP: true}}}, warn: true},
		{name: "http JWKS of an https issuer", p: ProtectHandler{Issuers: []IssuerConfig{{Issuer: "https://idp.example", JWKSURI: "http://10.0.0.7/keys"}}},
			err: "issuer https://idp.example: http://10.0.0.7/keys"},
		{name: "https JWKS of an http issuer", p: ProtectHandler{Issuers: []IssuerConfig{{Issuer: "http://idp.example", JWKSURI: "https://idp.example/keys"}}}},
		{name: "http introspection", p: ProtectHandler{Issuers: []IssuerConfig{{Issuer: "https://legacy.example", Introspection: intro("http://legacy.example/i")}}},
			err: "issuer https://legacy.example: http://legacy.example/i"},
		{name: "http introspection, opted in", p: ProtectHandler{Issuers: []IssuerConfig{{Issuer: "https://legacy.example", Introspection: intro("http://legacy.example/i"), InsecureHTTP: true}}}, warn: true},
		{name: "not a URL", p: ProtectHandler{Issuer: "idp.example"}, err: "not an http(s) URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			p := tc.p
			p.Audience, p.log = []string{"https://api.test"}, zap.New(core)
			err := p.compile()
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), "insecure_http") && strings.Contains(tc.err, "http://"):
				t.Fatalf("error %q does not name the way out (insecure_http)", err)
			}
			warned := logs.FilterMessageSnippet("in clear").Len() == 1
			if warned != tc.warn {
				t.Fatalf("warning logged: %v, want %v (%v)", warned, tc.warn, logs.All())
			}
		})
	}

	// In a real configuration: the Caddyfile adapter refuses it at its line; a JSON config, which
	// bypasses the adapter, is refused when it loads.
	caddyfileText := globalOptions + `
http://127.0.0.1:` + freePort(t) + ` {
	bind 127.0.0.1
	oauth_protect {
		issuer http://idp.example
		audience https://api.test
	}
	respond ok
}
`
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err == nil || !strings.Contains(err.Error(), "insecure_http") || !strings.Contains(err.Error(), "Caddyfile:") {
		t.Fatalf("adapting a Caddyfile with an http issuer beyond loopback: %v; want an error at its line", err)
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(strings.Replace(caddyfileText,
		"issuer http://idp.example", "issuer https://idp.example", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`"https://idp.example"`), []byte(`"http://idp.example"`), -1)
	err = caddy.Load(cfg, true)
	_ = caddy.Stop()
	if err == nil || !strings.Contains(err.Error(), "issuer http://idp.example") || !strings.Contains(err.Error(), "insecure_http") {
		t.Fatalf("loading a JSON config with an http issuer beyond loopback: %v", err)
	}
}

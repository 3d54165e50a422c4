package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/policy"
)

// TestSecretsFailClosed: a secret whose placeholder is unset stops the configuration with a
// message naming the client (or the store) and the placeholder; it never makes a client
// public or a Redis connection password-less. Braces that are part of a literal secret stay.
func TestSecretsFailClosed(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_EMPTY", "")
	t.Setenv("TOLLGATE_TEST_SET", "web-secret")
	tests := []struct {
		name, lines string
		want        string // in the error; "" means the config loads
	}{
		{"unset variable", "client web {\n secret {env.TOLLGATE_TEST_UNSET}\n redirect_uri https://app.test/cb\n}",
			`client "web": secret: evaluated placeholder {env.TOLLGATE_TEST_UNSET} is empty`},
		{"empty variable", "client web {\n secret {env.TOLLGATE_TEST_EMPTY}\n redirect_uri https://app.test/cb\n}",
			`client "web": secret: evaluated placeholder {env.TOLLGATE_TEST_EMPTY} is empty`},
		{"half empty", "client web {\n secret pre-{env.TOLLGATE_TEST_UNSET}\n redirect_uri https://app.test/cb\n}",
			`client "web": secret: evaluated placeholder`},
		{"redis password unset", "storage redis redis://:{env.TOLLGATE_TEST_UNSET}@127.0.0.1:1/0",
			"storage redis: url: evaluated placeholder {env.TOLLGATE_TEST_UNSET} is empty"},
		{"set variable", "client web {\n secret {env.TOLLGATE_TEST_SET}\n redirect_uri https://app.test/cb\n}", ""},
		{"literal braces", "client web {\n secret \"a{literal}b\"\n redirect_uri https://app.test/cb\n}", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			caddyfile := fmt.Sprintf("%shttp://127.0.0.1:%s {\n\toauth_issuer {\n\t\tissuer http://127.0.0.1:%s\n\t\tstorage bolt %s\n%s\n\t}\n}\n",
				globalOptions, port, port, filepath.Join(t.TempDir(), "s.db"), tc.lines)
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			err = caddy.Load(cfg, true)
			t.Cleanup(func() { _ = caddy.Stop() })
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("load: %v; want an error with %q", err, tc.want)
			case tc.want != "" && strings.Contains(err.Error(), "web-secret"):
				t.Fatalf("the error shows a secret: %v", err)
			}
			if tc.name == "set variable" {
				// The resolved secret authenticates; no secret does not.
				tokenURL := "http://127.0.0.1:" + port + "/oauth2/token"
				for secret, want := range map[string]int{"web-secret": 400, "": 401} {
					form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"web"}}
					if secret != "" {
						form.Set("client_secret", secret)
					}
					if status := postStatus(t, tokenURL, form); status != want {
						t.Errorf("token request with secret %q: %d, want %d", secret, status, want)
					}
				}
			}
		})
	}
}

// postStatus posts form to u and returns the status.
func postStatus(t *testing.T, u string, form url.Values) int {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestIntrospectionSecretFailsClosed: the edge's introspection credentials fail closed too.
func TestIntrospectionSecretFailsClosed(t *testing.T) {
	caddyfile := fmt.Sprintf(`%shttp://127.0.0.1:%s {
	oauth_protect {
		issuer https://idp.example {
			introspection https://idp.example/introspect
			client_id api
			client_secret {env.TOLLGATE_TEST_UNSET}
		}
		audience https://api.test
	}
	respond ok
}
`, globalOptions, freePort(t))
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	err = caddy.Load(cfg, true)
	t.Cleanup(func() { _ = caddy.Stop() })
	if err == nil || !strings.Contains(err.Error(), "client_secret: evaluated placeholder {env.TOLLGATE_TEST_UNSET} is empty") {
		t.Fatalf("load: %v; want the empty placeholder named", err)
	}
}

// TestLeewayWithinDenyMargin: the edge's largest leeway is the time the issuer keeps revoked
// tokens denied past their expiry; were it longer, a revoked token could pass in between.
func TestLeewayWithinDenyMargin(t *testing.T) {
	if policy.MaxLeeway > state.DenyMargin {
		t.Fatalf("policy.MaxLeeway %v exceeds state.DenyMargin %v", policy.MaxLeeway, state.DenyMargin)
	}
}

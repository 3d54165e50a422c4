package caddymodule

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestUpstreamCaddyfileErrorLines: every bad upstream block is reported at the line of the
// value that is wrong (or at the upstream line, for what concerns the whole provider).
func TestUpstreamCaddyfileErrorLines(t *testing.T) {
	block := func(lines string) string {
		return ":8080 {\n\toauth_issuer {\n\t\tissuer https://a.example\n" + lines + "\n\t}\n}"
	}
	// line 4 is the first line given to block.
	tests := []struct {
		name, lines, want string
		line              int
	}{
		{"bad name", "\t\tupstream Corp/x {\n\t\t\tissuer https://login.corp.example\n\t\t}", "the name must be", 4},
		{"no name", "\t\tupstream {\n\t\t}", "want `upstream <name>", 4},
		{"http issuer", "\t\tupstream corp {\n\t\t\tclient_id x\n\t\t\tissuer http://login.corp.example\n\t\t}", "http is allowed only on a loopback host", 6},
		{"no issuer", "\t\tupstream corp {\n\t\t\tclient_id x\n\t\t}", "the issuer sub-directive is required", 4},
		{"no client_id", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t}", "client_id is required", 4},
		{"client_id twice the values", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a b\n\t\t}", "client_id takes one value", 6},
		{"unknown", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tuserinfo_uri https://x\n\t\t}", `unknown sub-directive "userinfo_uri"`, 7},
		{"bad scope", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tscopes openid \"a b\"\n\t\t}", "scopes", 7},
		{"no openid", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tscopes email\n\t\t}", "scopes must include openid", 4},
		{"claim one value", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclaim email\n\t\t\tclient_id a\n\t\t}", "want `claim <upstream-claim> <tollgate-claim>`", 6},
		{"claim to sub", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tclaim oid sub\n\t\t}", "set by Tollgate itself", 7},
		{"two claims to one", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tclaim mail email\n\t\t\tclaim email email\n\t\t}", "both mapped to email", 8},
		{"bad domain", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\tallow_domain corp.example\n\t\t\tallow_domain ok.example @corp.example\n\t\t}", "allow_domain", 8},
		{"plain without token_url", "\t\tupstream github {\n\t\t\tuserinfo_url https://api.github.com/user\n\t\t\tauthorization_url https://github.com/login/oauth/authorize\n\t\t\tclient_id a\n\t\t}", "token_url: required with userinfo_url", 4},
		{"plain http userinfo", "\t\tupstream github {\n\t\t\tclient_id a\n\t\t\tuserinfo_url http://api.github.com/user\n\t\t}", "must be https", 6},
		{"OpenID with token_url", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t\ttoken_url https://login.corp.example/token\n\t\t}", "token_url is only for a plain OAuth provider", 4},
		{"defined twice", "\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t}\n\t\tupstream corp {\n\t\t\tissuer https://login.corp.example\n\t\t\tclient_id a\n\t\t}", `upstream "corp": defined twice`, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := block(tt.lines)
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			checkAdaptError(t, input, err, tt.want, tt.line)
		})
	}
}

// TestUpstreamSecretsFailClosed: an upstream's client_id or client_secret whose placeholder
// resolves to nothing stops the configuration, naming the upstream, and never shows the secret.
func TestUpstreamSecretsFailClosed(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_EMPTY", "")
	t.Setenv("TOLLGATE_TEST_SET", "corp-secret")
	tests := []struct{ name, lines, want string }{
		{"secret unset", "client_id tollgate\n client_secret {env.TOLLGATE_TEST_UNSET}",
			`upstream "corp": client_secret: evaluated placeholder {env.TOLLGATE_TEST_UNSET} is empty`},
		{"secret empty", "client_id tollgate\n client_secret {env.TOLLGATE_TEST_EMPTY}",
			`upstream "corp": client_secret: evaluated placeholder {env.TOLLGATE_TEST_EMPTY} is empty`},
		{"client_id unset", "client_id {env.TOLLGATE_TEST_UNSET}\n client_secret {env.TOLLGATE_TEST_SET}",
			`upstream "corp": client_id: evaluated placeholder {env.TOLLGATE_TEST_UNSET} is empty`},
		{"set", "client_id tollgate\n client_secret {env.TOLLGATE_TEST_SET}", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			caddyfile := fmt.Sprintf("%shttp://127.0.0.1:%s {\n\toauth_issuer {\n\t\tissuer http://127.0.0.1:%s\n\t\tstorage bolt %s\n"+
				"upstream corp {\n issuer http://127.0.0.1:1\n %s\n}\n\t}\n}\n",
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
			case err != nil && strings.Contains(err.Error(), "corp-secret"):
				t.Fatalf("the error shows a secret: %v", err)
			}
		})
	}
}

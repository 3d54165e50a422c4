package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var updateAdapt = flag.Bool("update-adapt", false, "rewrite the expected JSON of testdata/*.caddyfiletest")

// TestCaddyfileAdapt adapts every testdata/*.caddyfiletest: a Caddyfile, a line of dashes, then
// either the expected JSON or "error: <substring of the expected error>" and, on the next line,
// "at: Caddyfile:<line>", the one place the error must name.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".caddyfiletest"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := splitFixture(string(raw))
			if !ok {
				t.Fatalf("%s: no line of dashes", file)
			}
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			if want, isErr := strings.CutPrefix(strings.TrimSpace(expected), "error:"); isErr {
				want, at, _ := strings.Cut(want, "\n")
				want = strings.TrimSpace(want)
				line, ok := strings.CutPrefix(strings.TrimSpace(at), "at: Caddyfile:")
				n, convErr := strconv.Atoi(line)
				if !ok || convErr != nil {
					t.Fatalf("%s: after the error line, want `at: Caddyfile:<line>`, got %q", file, at)
				}
				checkAdaptError(t, input, err, want, n)
				return
			}
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(pretty.String())
			if *updateAdapt {
				if err := os.WriteFile(file, []byte(input+"----------\n"+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != strings.TrimSpace(expected) {
				t.Fatalf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, strings.TrimSpace(expected))
			}
		})
	}
}

// TestCaddyfileErrorLines adapts bad Caddyfiles and checks that each error says what is wrong
// and names the line of the offending value: not the closing brace of its block, nor the line
// of the block's last value.
func TestCaddyfileErrorLines(t *testing.T) {
	const hash = "$2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG" // from caddy hash-password
	tests := []struct {
		name      string
		caddyfile string // its line 1 is the line after the backquote
		want      string // substring of the error
		line      int    // the one Caddyfile:<line> the error names
	}{
		// oauth_issuer
		{"signing_alg HS256", `:8080 {
	oauth_issuer {
		issuer https://a.example
		signing_alg HS256
		code_ttl 30s
	}
}`, `signing_alg "HS256" is not supported (supported: ES256, ES384, RS256, PS256, EdDSA)`, 4},
		{"id_token_signing_alg none", `:8080 {
	oauth_issuer {
		issuer https://a.example
		id_token_signing_alg none
	}
}`, `id_token_signing_alg "none" is not supported`, 4},
		{"duplicate client", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			secret s1
			grants client_credentials
		}
		client svc {
			secret s2
			grants client_credentials
		}
	}
}`, `client "svc": defined twice`, 8},
		{"duplicate user", `:8080 {
	oauth_issuer {
		issuer https://a.example
		user alice ` + hash + `
		user bob ` + hash + `
		user alice ` + hash + ` {
			claim email alice@a.example
		}
	}
}`, `user "alice": defined twice`, 6},
		{"unknown grant on a middle line of a client block", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			name "Web app"
			secret s
			grants authorization_code magic refresh_token
			redirect_uri https://app.example/cb
			scopes openid profile
		}
	}
}`, `client web: grants: unknown grant "magic" (known: authorization_code implicit client_credentials password refresh_token device_code token_exchange)`, 7},
		{"relative redirect URI", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			redirect_uri /cb
			consent skip
		}
	}
}`, `client web: redirect_uri: redirect URI "/cb" must be an absolute URI without a fragment`, 5},
		{"second redirect URI plain http off loopback", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			secret s
			redirect_uri https://app.example/cb http://app.example/cb
			scopes read
		}
	}
}`, `redirect URI "http://app.example/cb": plain http is allowed only on a loopback host`, 6},
		{"javascript post-logout redirect URI", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			redirect_uri https://app.example/cb
			post_logout_redirect_uri javascript:alert(1)
			consent skip
		}
	}
}`, `the javascript scheme cannot be a redirect target`, 6},
		{"bad duration", `:8080 {
	oauth_issuer {
		issuer https://a.example
		access_token_ttl soon
		code_ttl 30s
	}
}`, `access_token_ttl: "soon" is not a positive duration`, 4},
		{"device poll interval not whole seconds", `:8080 {
	oauth_issuer {
		issuer https://a.example
		device_poll_interval 1500ms
		device_code_ttl 10m
	}
}`, `device_poll_interval must be a positive number of whole seconds`, 4},
		{"bad client scope", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			secret s
			scopes read "write all"
			grants client_credentials
		}
	}
}`, `client svc: scopes: scope "write all" has characters RFC 6749 §3.3 does not allow`, 6},
		{"bad consent", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			redirect_uri https://app.example/cb
			consent maybe
			scopes read
		}
	}
}`, `consent must be required or skip, not "maybe"`, 6},
		{"public client with client_credentials, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			name Service
			grants client_credentials
			scopes read
		}
	}
}`, `client "svc": a public client (no secret) cannot use client_credentials`, 4},
		{"jwks_file and jwks_uri together", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			jwks_file /etc/keys.json
			grants client_credentials
			jwks_uri https://svc.example/jwks
		}
	}
}`, `client svc: jwks_file and jwks_uri: give the client one key set, not both`, 7},
		{"keys after a secret", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			secret s
			jwks_uri https://svc.example/jwks
		}
	}
}`, `client svc: a client with keys authenticates with private_key_jwt and has no secret`, 6},
		{"a secret after keys", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			jwks_file /etc/keys.json
			grants client_credentials
			secret s
		}
	}
}`, `client svc: a client with keys authenticates with private_key_jwt and has no secret`, 7},
		{"jwks_uri over plain http", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			jwks_uri http://svc.example/jwks
		}
	}
}`, `plain http is allowed only on a loopback host`, 5},
		{"jwks_uri with two values", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client svc {
			jwks_uri https://a.example/1 https://a.example/2
		}
	}
}`, `client svc: jwks_uri takes one value`, 5},
		{"public client with token_exchange, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client gw {
			grants token_exchange
			scopes read
		}
	}
}`, `client "gw": a public client (no secret or keys) cannot use token_exchange`, 4},
		{"token_exchange trust of a plain http issuer", `:8080 {
	oauth_issuer {
		issuer https://a.example
		token_exchange {
			trust https://idp.example
			trust http://idp2.example
		}
	}
}`, `http is allowed only on a loopback host`, 6},
		{"token_exchange trusting itself", `:8080 {
	oauth_issuer {
		issuer https://a.example
		token_exchange {
			trust https://a.example
		}
	}
}`, `this issuer's own tokens are always accepted`, 5},
		{"token_exchange trust given twice, in a block", `:8080 {
	oauth_issuer {
		issuer https://a.example
		token_exchange {
			trust https://idp.example
			trust https://idp.example {
				audience https://a.example
			}
		}
	}
}`, `trust https://idp.example: given twice`, 6},
		{"token_exchange trust with a bad jwks_uri", `:8080 {
	oauth_issuer {
		issuer https://a.example
		token_exchange {
			trust https://idp.example jwks_uri http://idp.example/keys
		}
	}
}`, `plain http is allowed only on a loopback host`, 5},
		{"token_exchange unknown line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		token_exchange {
			allow everything
		}
	}
}`, `token_exchange: unknown sub-directive "allow"`, 5},
		{"public client with the password grant, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client cli {
			grants password refresh_token
			scopes read
		}
	}
}`, `client "cli": a public client (no secret) cannot use the password grant`, 4},
		{"code client without redirect_uri, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			secret s
			grants implicit
		}
	}
}`, `client "web": a client using authorization_code or implicit needs a redirect_uri`, 4},
		{"fapi2 client with a secret, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client bank {
			secret s
			redirect_uri https://bank.example/cb
			profile fapi2
		}
	}
}`, `client "bank": profile fapi2: the client authenticates with private_key_jwt only`, 4},
		{"public fapi2 client, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client bank {
			profile fapi2
			redirect_uri https://bank.example/cb
		}
	}
}`, `client "bank": profile fapi2: the client needs jwks_file or jwks_uri`, 4},
		{"fapi2 client with an http redirect URI, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client bank {
			jwks_uri https://bank.example/jwks
			redirect_uri http://127.0.0.1/cb
			profile fapi2
		}
	}
}`, `client "bank": profile fapi2: redirect_uri "http://127.0.0.1/cb" must be https`, 4},
		{"fapi2 client with the implicit grant, at the client line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client bank {
			jwks_uri https://bank.example/jwks
			redirect_uri https://bank.example/cb
			grants authorization_code implicit
			profile fapi2
		}
	}
}`, `client "bank": profile fapi2: the implicit grant is not allowed`, 4},
		{"unknown profile, at the profile line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client bank {
			jwks_uri https://bank.example/jwks
			profile fapi1
			redirect_uri https://bank.example/cb
		}
	}
}`, `client bank: unknown profile "fapi1" (known: fapi2)`, 6},
		{"require_par with a value", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			redirect_uri https://app.example/cb
			require_par yes
		}
	}
}`, `client web: require_par takes no value`, 6},
		{"par_ttl not whole seconds", `:8080 {
	oauth_issuer {
		issuer https://a.example
		par_ttl 1500ms
	}
}`, `par_ttl must be a positive number of whole seconds`, 4},
		{"empty client id", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client "" {
			secret s
			grants client_credentials
		}
	}
}`, `empty client id`, 4},
		{"unknown client sub-directive", `:8080 {
	oauth_issuer {
		issuer https://a.example
		client web {
			redirect_uri https://app.example/cb
			colour blue
			consent skip
		}
	}
}`, `client web: unknown sub-directive "colour"`, 6},
		{"plain password user, at the user line", `:8080 {
	oauth_issuer {
		issuer https://a.example
		user alice hunter2 {
			claim email alice@a.example
		}
	}
}`, `user "alice": password hash must be bcrypt`, 4},
		{"missing issuer, at the directive", `:8080 {
	oauth_issuer {
		code_ttl 30s
	}
}`, `oauth_issuer: the issuer sub-directive is required`, 2},

		// oauth_protect
		{"algorithms HS256", `:8080 {
	oauth_protect {
		issuer https://a.example
		algorithms ES256 HS256
		audience api
	}
}`, `algorithms: algorithm "HS256" is not allowed: the edge accepts only asymmetric signatures`, 4},
		{"algorithms unsupported", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api
		algorithms ES256K
	}
}`, `algorithms: unsupported algorithm "ES256K"`, 5},
		{"bad scope", `:8080 {
	oauth_protect {
		issuer https://a.example
		scope "read write"
		audience api
	}
}`, `scope: invalid scope "read write"`, 4},
		{"empty audience", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api ""
		scope read
	}
}`, `audience: empty audience`, 4},
		{"leeway past the deny-list margin", `:8080 {
	oauth_protect {
		issuer https://a.example
		leeway 10m
		audience api
	}
}`, `leeway 10m0s is not between 0 and 5m0s`, 4},
		{"bad leeway", `:8080 {
	oauth_protect {
		issuer https://a.example
		leeway soon
		audience api
	}
}`, `leeway: "soon" is not a positive duration`, 4},
		{"duplicate issuer", `:8080 {
	oauth_protect {
		issuer https://a.example
		issuer https://b.example
		issuer https://a.example/ {
			audience other
		}
		audience api
	}
}`, `policy: issuer 3 (https://a.example/): configured twice (as https://a.example too)`, 5},
		{"plain http issuer off loopback", `:8080 {
	oauth_protect {
		issuer http://idp.example
		audience api
		scope read
	}
}`, `plain http:// to a host that is not loopback`, 3},
		{"plain http jwks_uri on a middle line of an issuer block", `:8080 {
	oauth_protect {
		issuer https://a.example {
			audience api
			jwks_uri http://keys.example/jwks
			accept_jwt_typ
		}
	}
}`, `http://keys.example/jwks: plain http:// to a host that is not loopback`, 5},
		{"plain http introspection", `:8080 {
	oauth_protect {
		issuer https://a.example {
			introspection http://a.example/introspect
			client_id gw
			client_secret s
		}
		audience api
	}
}`, `http://a.example/introspect: plain http:// to a host that is not loopback`, 4},
		{"plain http jwks_uri of the short form", `:8080 {
	oauth_protect {
		issuer https://a.example
		jwks_uri http://keys.example/jwks
		audience api
	}
}`, `plain http:// to a host that is not loopback`, 4},
		{"jwks_uri with several issuers", `:8080 {
	oauth_protect {
		issuer https://a.example
		jwks_uri https://a.example/jwks
		issuer https://b.example
		audience api
	}
}`, `put jwks_uri inside the issuer's block`, 4},
		{"jwks_uri and introspection, at the issuer line", `:8080 {
	oauth_protect {
		issuer https://a.example {
			jwks_uri https://a.example/jwks
			introspection https://a.example/introspect
			client_id gw
		}
		audience api
	}
}`, `issuer https://a.example: use either jwks_uri or introspection`, 3},
		{"rule path not absolute", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api
		rule GET v1/* read
		rule * /admin/* admin
	}
}`, `rule GET v1/*: path must start with / or *`, 5},
		{"rule with a bad glob and a block", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api
		rule GET /v1/[ read {
			claim ` + "`claims.admin == true`" + `
		}
	}
}`, `rule GET /v1/[: syntax error in pattern`, 5},
		{"rule scope", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api
		rule POST /v1/* "write all"
	}
}`, `invalid scope "write all"`, 5},
		{"rule without scope or claim, at the rule line", `:8080 {
	oauth_protect {
		issuer https://a.example
		audience api
		rule GET /v1/* {
		}
	}
}`, "rule: want `rule <METHOD[,METHOD]|*> <path-glob> <scope>...`", 5},
		{"unknown protect sub-directive", `:8080 {
	oauth_protect {
		issuer https://a.example
		audiences api
		scope read
	}
}`, `oauth_protect: unknown sub-directive "audiences"`, 4},
		{"missing audience, at the directive", `:8080 {
	oauth_protect {
		issuer https://a.example
		scope read
	}
}`, `oauth_protect: the audience sub-directive is required`, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tc.caddyfile), map[string]any{"filename": "Caddyfile"})
			checkAdaptError(t, tc.caddyfile, err, tc.want, tc.line)
		})
	}
}

// caddyfileLine matches where a Caddyfile error says it is: "…, at Caddyfile:12" from the
// dispenser's helpers, "Caddyfile:12 - Error during parsing: …" from Caddy's parser.
var caddyfileLine = regexp.MustCompile(`Caddyfile:(\d+)`)

// checkAdaptError checks that err contains want and names line of input, and only that line.
// The line must hold more than a closing brace: the point is that errors name the value
// they are about, not the end of its block.
func checkAdaptError(t *testing.T, input string, err error, want string, line int) {
	t.Helper()
	if err == nil {
		t.Fatalf("adapted without error, want an error containing %q at Caddyfile:%d", want, line)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	m := caddyfileLine.FindAllStringSubmatch(err.Error(), -1)
	if len(m) != 1 {
		t.Fatalf("error %q names %d Caddyfile lines, want exactly Caddyfile:%d", err, len(m), line)
	}
	if got, _ := strconv.Atoi(m[0][1]); got != line {
		t.Fatalf("error %q is at Caddyfile:%s, want Caddyfile:%d", err, m[0][1], line)
	}
	lines := strings.Split(input, "\n")
	if line < 1 || line > len(lines) {
		t.Fatalf("Caddyfile:%d is not a line of the input", line)
	}
	if text := strings.TrimSpace(lines[line-1]); text == "}" {
		t.Fatalf("Caddyfile:%d is a closing brace; name the offending line", line)
	}
}

// splitFixture splits a fixture at its first line made only of dashes.
func splitFixture(s string) (input, expected string, ok bool) {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); len(t) >= 3 && strings.Trim(t, "-") == "" {
			return strings.Join(lines[:i], ""), strings.Join(lines[i+1:], ""), true
		}
	}
	return "", "", false
}

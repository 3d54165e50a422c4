package caddymodule_test

// What an operator sees of the built Caddy: issuers under several paths of one host, each with
// its own discovery document and sessions; the metrics and audit trail of a run of every grant
// (checked by TestNoSecretsInCaddyLogs, which runs them).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
)

// pathIssuersCaddyfile: arguments are the port, the directory and alice's hash.
const pathIssuersCaddyfile = `{
	admin off
	persist_config off
	storage file_system %[2]s/data
}

http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	handle /a/* {
		oauth_issuer {
			issuer http://127.0.0.1:%[1]s/a
			user alice %[3]s
			client app {
				redirect_uri https://app.test/cb
				scopes openid
				consent skip
			}
		}
	}
	handle /b/* {
		oauth_issuer {
			issuer http://127.0.0.1:%[1]s/b
			user alice %[3]s
			client app {
				redirect_uri https://app.test/cb
				scopes openid
				consent skip
			}
			client svc {
				secret svc-secret-value-for-the-b-issuer
				grants client_credentials
				scopes read
			}
		}
	}
	handle {
		respond "public home"
	}
}
`

// TestPathIssuersKeepTheirSessions: two issuers under /a and /b of one host, one browser, each
// discovery document following its own clients.
// Signing in to /b does not sign the browser out of /a: each issuer's cookies have their own
// names, and neither reads the other's.
func TestPathIssuersKeepTheirSessions(t *testing.T) {
	bin := caddyBin(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password-value"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := freePorts(t, 1)[0]
	origin := "http://127.0.0.1:" + port
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, fmt.Appendf(nil, pathIssuersCaddyfile, port, dir, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	exited := startBinary(t, bin, dir, config)
	for _, p := range []string{"/a", "/b"} {
		if md := waitForMetadata(t, origin+p, exited); md.Issuer != origin+p {
			t.Fatalf("issuer at %s says it is %q", p, md.Issuer)
		}
	}
	// Each discovery document lists what its own clients can use.
	for p, want := range map[string]struct{ grants, methods, scopes string }{
		"/a": {"[authorization_code]", "[none]", "[openid]"},
		"/b": {"[authorization_code client_credentials]", "[client_secret_basic client_secret_post none]", "[openid read]"},
	} {
		resp, body := call(t, "GET", origin+p+"/.well-known/openid-configuration", "")
		var md struct {
			Grants  []string `json:"grant_types_supported"`
			Methods []string `json:"token_endpoint_auth_methods_supported"`
			Scopes  []string `json:"scopes_supported"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &md) != nil {
			t.Fatalf("discovery of %s: %d %.200s", p, resp.StatusCode, body)
		}
		if got := fmt.Sprint(md.Grants); got != want.grants {
			t.Errorf("%s grant_types_supported %s, want %s", p, got, want.grants)
		}
		if got := fmt.Sprint(md.Methods); got != want.methods {
			t.Errorf("%s token_endpoint_auth_methods_supported %s, want %s", p, got, want.methods)
		}
		if got := fmt.Sprint(md.Scopes); got != want.scopes {
			t.Errorf("%s scopes_supported %s, want %s", p, got, want.scopes)
		}
	}

	jar, _ := cookiejar.New(nil)
	browser := map[string]*pageClient{"/a": newPageClientJar(t, origin+"/a", jar), "/b": newPageClientJar(t, origin+"/b", jar)}
	request := func(extra ...string) url.Values {
		v := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s"}, "nonce": {"n"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	// Signs in at /a, then at /b.
	for _, p := range []string{"/a", "/b"} {
		loc, err := url.Parse(browser[p].authorize(request()))
		if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("iss") != origin+p {
			t.Fatalf("sign-in at %s ended at %v (%v)", p, loc, err)
		}
	}
	// Both sessions hold: prompt=none gets a code from each, without a sign-in page.
	for _, p := range []string{"/a", "/b"} {
		resp, body := browser[p].do("GET", p+"/oauth2/authorize?"+request("prompt", "none").Encode(), nil)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
			t.Errorf("%s with prompt=none after signing in to both: %d %v %.200s; want a code (the session was lost)",
				p, resp.StatusCode, loc, body)
		}
	}
	// Each issuer's cookies have their own names (all with Path=/, so that over TLS they can be
	// __Host- cookies, which no sibling subdomain can plant): a session and a CSRF cookie each,
	// four names in all, none of them the root issuer's.
	u, _ := url.Parse(origin + "/a/oauth2/authorize")
	names := map[string]bool{}
	for _, c := range jar.Cookies(u) {
		names[c.Name] = true
	}
	if len(names) != 4 || names["tollgate_session"] || names["tollgate_csrf"] {
		t.Errorf("cookies %v: want a session and a CSRF cookie per issuer, each named for its issuer", names)
	}
}

// checkIssuerMetrics looks in a /metrics scrape, taken after TestNoSecretsInCaddyLogs ran every
// grant, for each grant's issued tokens and the security counters that run must have moved.
func checkIssuerMetrics(t *testing.T, scrape string) {
	t.Helper()
	for _, want := range []string{
		`tollgate_issuer_tokens_issued_total{client="web",grant="authorization_code"} 1`,
		`tollgate_issuer_tokens_issued_total{client="web",grant="refresh_token"} 1`,
		`tollgate_issuer_tokens_issued_total{client="spa",grant="authorization_code"} 1`,
		`tollgate_issuer_tokens_issued_total{client="imp",grant="implicit"} 1`,
		`tollgate_issuer_tokens_issued_total{client="svc",grant="client_credentials"} 1`,
		`tollgate_issuer_tokens_issued_total{client="cli",grant="password"} 1`,
		`tollgate_issuer_tokens_issued_total{client="tv",grant="device_code"} 1`,
		`tollgate_issuer_sign_in_failures_total{method="page",reason="bad_credentials"} 1`,
		`tollgate_issuer_sign_in_failures_total{method="password_grant",reason="bad_credentials"} 1`,
		`tollgate_issuer_device_polls_total{outcome="ok"} 1`,
		`tollgate_protect_denied_total{reason="revoked"}`,
		`tollgate_issuer_store_operation_duration_seconds_count{bucket=`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^tollgate_issuer_code_reuse_total\{[^}]*client="web"[^}]*\} 1$`).MatchString(scrape) {
		t.Error("/metrics does not count the replayed code")
	}
	// Bounded labels: no user, address or token anywhere in Tollgate's series.
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, "tollgate_") && (strings.Contains(line, "alice") || strings.Contains(line, "127.0.0.1")) {
			t.Errorf("a series names a user or an address: %s", line)
		}
	}
}

// checkAuditTrail reads the audit log that TestNoSecretsInCaddyLogs routed to a file of its own
// and wants one structured line per security event of the run.
func checkAuditTrail(t *testing.T, text string) {
	t.Helper()
	type line struct {
		Logger, Event, ClientID, Sub, RemoteIP, Grant, Reason string
	}
	var events []line
	for _, raw := range strings.Split(strings.TrimSpace(text), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, raw)
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		l := line{Logger: str("logger"), Event: str("event"), ClientID: str("client_id"), Sub: str("sub"),
			RemoteIP: str("remote_ip"), Grant: str("grant"), Reason: str("reason")}
		if !strings.HasSuffix(l.Logger, ".audit") || l.Event == "" || l.RemoteIP != "127.0.0.1" {
			t.Errorf("audit line without its logger, event or address: %s", raw)
		}
		if _, named := m["username"]; named {
			t.Errorf("audit line names the user name tried: %s", raw)
		}
		events = append(events, l)
	}
	has := func(what string, ok func(line) bool) {
		t.Helper()
		for _, e := range events {
			if ok(e) {
				return
			}
		}
		t.Errorf("the audit log has no %s (%d lines)", what, len(events))
	}
	has("failed sign-in on the page", func(e line) bool {
		return e.Event == "sign_in_failed" && e.ClientID == "web" && e.Reason == "bad_credentials" && e.Sub == ""
	})
	has("good sign-in", func(e line) bool { return e.Event == "sign_in" && e.ClientID == "web" && e.Sub != "" })
	has("failed password grant", func(e line) bool { return e.Event == "password_grant_failed" && e.ClientID == "cli" })
	for client, grant := range map[string]string{"web": "authorization_code", "imp": "implicit", "svc": "client_credentials",
		"cli": "password", "tv": "device_code"} {
		has(grant+" token for "+client, func(e line) bool {
			return e.Event == "token_issued" && e.ClientID == client && e.Grant == grant
		})
	}
	has("code reuse", func(e line) bool { return e.Event == "code_reuse" && e.ClientID == "web" })
	has("revocation", func(e line) bool { return e.Event == "token_revoked" && e.ClientID == "svc" })
	has("device approval", func(e line) bool { return e.Event == "device_approved" && e.ClientID == "tv" && e.Sub != "" })
}

package caddymodule_test

// What an operator sees of the built Caddy: issuers under several paths of one host.

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
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
		}
	}
	handle {
		respond "public home"
	}
}
`

// TestPathIssuersKeepTheirSessions: two issuers under /a and /b of one host, one browser.
// Signing in to /b does not sign the browser out of /a: each issuer's cookies have their own
// name and path, and neither sees the other's.
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
	// Each issuer's cookies are scoped to its path, and their names differ.
	names := map[string][]string{}
	for _, p := range []string{"/a", "/b"} {
		u, _ := url.Parse(origin + p + "/oauth2/authorize")
		for _, c := range jar.Cookies(u) {
			names[p] = append(names[p], c.Name)
		}
	}
	if len(names["/a"]) == 0 || strings.Join(names["/a"], " ") == strings.Join(names["/b"], " ") {
		t.Errorf("cookies sent to /a %q and to /b %q: want distinct names", names["/a"], names["/b"])
	}
	u, _ := url.Parse(origin + "/")
	if root := jar.Cookies(u); len(root) != 0 {
		t.Errorf("cookies sent to the host's root: %v; want none (each issuer's stay under its path)", root)
	}
}

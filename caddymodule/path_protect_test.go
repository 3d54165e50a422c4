package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pathAttacks are request targets by which a read-only token tries to POST to a route that
// `rule POST /v1/* write` gives to write, each written as a client sends it on the wire.
var pathAttacks = []string{
	// The four.
	"/v1/x%2f..%2f..%2fadmin",
	"/v1/%2e%2e%2fadmin",
	"/v1/x/..%2f..%2fadmin",
	"/v1/..%2F..%2Fother",
	// Dot segments, raw and encoded, in any case.
	"/v1/../v1/x",
	"/v1/./x",
	"/v1/%2e%2e/x",
	"/v1/%2E%2e/x",
	"/v1/.%2E/x",
	"/x/..%2fv1/y",
	// Double encoding.
	"/v1/x%252f..%252f..%252fadmin",
	"/%2576%2531/x",
	"/v1/%252e%252e/x",
	// ";" parameters.
	"/v1/x;/../admin",
	"/v1/..;/x",
	"/v1;x/y",
	"/V1;JSESSIONID=1/y",
	// Backslashes, raw and encoded.
	`/v1\..\admin`,
	"/v1/x%5c..%5cadmin",
	"/v1%5Cx",
	// NUL and other control characters.
	"/v1/x%00.json",
	"/v1/x%0d%0a",
	// Case and encoded letters.
	"/V1/x",
	"/%76%31/x",
	"/%56%31/X",
	"//v1/x",
	"/v1//x",
}

// upstreamRecorder is an upstream that records every request it receives.
type upstreamRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD request-URI (route)"
}

func newUpstreamRecorder(t *testing.T) *upstreamRecorder {
	u := &upstreamRecorder{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.RequestURI+" ("+r.Header.Get("X-Route")+")")
		u.mu.Unlock()
		fmt.Fprint(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

// take returns what the upstream received since the last call.
func (u *upstreamRecorder) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// rawDo sends one request with exactly this target on the wire (no client rewrites it) and
// returns the response status and WWW-Authenticate.
func rawDo(t *testing.T, addr, method, target, token string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, addr, token)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// rawTry is GET /v1/x, with status 0 while nothing listens yet.
func rawTry(addr, token string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	c.Close()
	resp, err := bearerClient.Do(mustRequest("http://"+addr+"/v1/x", token))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

var bearerClient = &http.Client{Timeout: 5 * time.Second}

func mustRequest(u, token string) *http.Request {
	r, _ := http.NewRequest("GET", u, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// coveredByV1 reports whether an upstream could read the request URI it received as a path
// under /v1/: it decodes the path once (and again, for an upstream that decodes twice), reads
// "\" as "/", drops ";" parameters, merges slashes, resolves dot segments, ignores case.
func coveredByV1(uri string) bool {
	p, _, _ := strings.Cut(uri, "?")
	for range 3 {
		q := strings.ToLower(strings.ReplaceAll(p, `\`, "/"))
		var segs []string
		for _, s := range strings.Split(q, "/") {
			s, _, _ = strings.Cut(s, ";")
			switch s {
			case "", ".":
			case "..":
				if len(segs) > 0 {
					segs = segs[:len(segs)-1]
				}
			default:
				segs = append(segs, s)
			}
		}
		if len(segs) > 0 && segs[0] == "v1" {
			return true
		}
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			return false
		}
		p = d
	}
	return false
}

// TestProtectPathAttacks runs Caddy in this process with oauth_protect + reverse_proxy under a
// plain `handle`, under `handle_path` (Caddy strips a prefix before oauth_protect runs) and with
// allow_encoded_slashes, and POSTs every attack with a read-only token: the upstream never
// receives a POST that it could read as a path under /v1/. Under plain `handle`, every attack
// that an upstream could read two ways is refused with 400 invalid_request.
func TestProtectPathAttacks(t *testing.T) {
	testPathAttacks(t, func(t *testing.T, caddyfile string) { startCaddy(t, caddyfile) })
}

// TestBuiltBinaryPathAttacks is TestProtectPathAttacks against the Caddy binary that
// ./xcaddy.sh builds (TOLLGATE_CADDY_BIN).
func TestBuiltBinaryPathAttacks(t *testing.T) {
	bin := os.Getenv("TOLLGATE_CADDY_BIN")
	if bin == "" {
		t.Skip("TOLLGATE_CADDY_BIN is not set: run ./xcaddy.sh test, or set it to a Caddy built with this module")
	}
	testPathAttacks(t, func(t *testing.T, caddyfile string) {
		file := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(file, []byte(caddyfile), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "run", "--config", file, "--adapter", "caddyfile")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("caddy output:\n%s", out.String())
			}
		})
	})
}

// testPathAttacks starts the configuration with start and runs the attacks against it.
func testPathAttacks(t *testing.T, start func(*testing.T, string)) {
	idp, _ := newStaticIssuer(t, true, "k1")
	up := newUpstreamRecorder(t)
	port := freePort(t)
	addr := "127.0.0.1:" + port
	protect := func(extra string) string {
		return fmt.Sprintf(`oauth_protect {
			issuer %s
			audience https://api.test
			scope read
			rule POST /v1/* write
			%s
		}`, idp.url, extra)
	}
	start(t, globalOptions+fmt.Sprintf(`
http://%[1]s {
	bind 127.0.0.1
	handle_path /strip/* {
		%[2]s
		reverse_proxy %[4]s {
			header_up X-Route strip
		}
	}
	handle /slashes/* {
		uri strip_prefix /slashes
		%[3]s
		reverse_proxy %[4]s {
			header_up X-Route slashes
		}
	}
	handle {
		%[2]s
		reverse_proxy %[4]s {
			header_up X-Route plain
		}
	}
}
`, addr, protect(""), protect("allow_encoded_slashes"), strings.TrimPrefix(up.URL, "http://")))
	readOnly := idp.mint(t, "k1", "https://api.test", nil)
	readWrite := idp.mint(t, "k1", "https://api.test", map[string]any{"scope": "read write"})
	deadline := time.Now().Add(10 * time.Second)
	for status, _ := rawTry(addr, readOnly); status != 200; status, _ = rawTry(addr, readOnly) {
		if (status != 503 && status != 0) || time.Now().After(deadline) {
			t.Fatalf("status %d while Caddy starts and the keys load", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	up.take()

	// The rules are live on each route: a write needs write, a read passes.
	for _, prefix := range []string{"", "/strip", "/slashes"} {
		if status, _ := rawDo(t, addr, "POST", prefix+"/v1/x", readOnly); status != 403 {
			t.Fatalf("POST %s/v1/x with a read-only token: %d", prefix, status)
		}
		if status, _ := rawDo(t, addr, "POST", prefix+"/v1/x", readWrite); status != 200 {
			t.Fatalf("POST %s/v1/x with write: %d", prefix, status)
		}
		if got := up.take(); len(got) != 1 || !strings.HasPrefix(got[0], "POST /v1/x ") {
			t.Fatalf("POST %s/v1/x: the upstream received %q", prefix, got)
		}
	}

	refused := map[string]bool{} // under plain handle
	for _, prefix := range []string{"", "/strip", "/slashes"} {
		for _, attack := range pathAttacks {
			target := prefix + attack
			status, challenge := rawDo(t, addr, "POST", target, readOnly)
			received := up.take()
			for _, got := range received {
				method, uri, _ := strings.Cut(got, " ")
				uri, _, _ = strings.Cut(uri, " (")
				if method == "POST" && coveredByV1(uri) {
					t.Errorf("POST %s with a read-only token: the upstream received %q (status %d)", target, got, status)
				}
			}
			switch status {
			case 400:
				if !strings.Contains(challenge, `error="invalid_request"`) {
					t.Errorf("POST %s: 400 with challenge %q", target, challenge)
				}
				if prefix == "" {
					refused[attack] = true
				}
			case 403:
				if !strings.Contains(challenge, `error="insufficient_scope", scope="read write"`) {
					t.Errorf("POST %s: 403 with challenge %q", target, challenge)
				}
			}
			t.Logf("POST %-40s → %d %q", target, status, received)
		}
	}
	for _, attack := range pathAttacks {
		ambiguous := strings.ContainsAny(attack, `%\;`) || strings.Contains(attack, "/.")
		plainCase := attack == "/V1/x" || strings.HasPrefix(attack, "/%76") || strings.HasPrefix(attack, "/%56") || strings.Contains(attack, "//") ||
			strings.HasPrefix(strings.ToLower(attack), "/v1;")
		if ambiguous && !plainCase && !refused[attack] {
			t.Errorf("POST %s under handle: not refused with 400", attack)
		}
	}
}

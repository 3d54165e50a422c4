package caddymodule_test

// Smoke tests of the Caddy binary that ./xcaddy.sh builds: they run the real binary on the
// repository's Caddyfile.example, as a user would. They only start a subprocess, so they do not
// touch the process-wide Caddy state the in-process tests of this package use; still, no
// t.Parallel() here.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

const binEnv = "TOLLGATE_CADDY_BIN"

// caddyBin returns the binary under test, or skips the test when none is configured.
func caddyBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Skipf("%s is not set: run ./xcaddy.sh test, which builds ./caddy and sets it, "+
			"or set it to a Caddy built with this module", binEnv)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (stat error: %v)", binEnv, bin, err)
	}
	return bin
}

func TestBuiltBinaryListsModules(t *testing.T) {
	bin := caddyBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("%s list-modules: %v\n%s", bin, err, out)
	}
	modules := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		modules[strings.TrimSpace(line)] = true
	}
	for _, id := range []string{"http.handlers.oauth_issuer", "http.handlers.oauth_protect", "tollgate", "admin.api.tollgate"} {
		if !modules[id] {
			t.Errorf("%s list-modules does not list %s", bin, id)
		}
	}
}

// The demo's fixed addresses; the test moves each to a free port.
var demoAddrs = []string{"127.0.0.1:9080", "127.0.0.1:9081", "127.0.0.1:9082"}

var (
	boltLine   = regexp.MustCompile(`(?m)^(\s*storage\s+bolt)\b.*$`)
	fixedPorts = regexp.MustCompile(`:908[0-2]\b`)
)

func TestBuiltBinaryRunsExample(t *testing.T) {
	bin := caddyBin(t)
	const secret = "binary-test-secret" // passed as DEMO_SECRET, read by {$DEMO_SECRET:…}

	example, err := os.ReadFile(filepath.Join("..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ports := freePorts(t, len(demoAddrs))
	text := string(example)
	for i, addr := range demoAddrs {
		if !strings.Contains(text, addr) {
			t.Fatalf("Caddyfile.example no longer mentions %s; update this test", addr)
		}
		text = strings.ReplaceAll(text, addr, "127.0.0.1:"+ports[i])
	}
	if m := fixedPorts.FindString(text); m != "" {
		t.Fatalf("Caddyfile.example still uses a fixed port (%s) after the rewrite", m)
	}
	if !boltLine.MatchString(text) {
		t.Fatal("Caddyfile.example has no `storage bolt <path>` line; update this test")
	}
	text = boltLine.ReplaceAllLiteralString(text, "storage bolt "+quoteCaddyfile(filepath.Join(dir, "tollgate.db")))
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	issuerURL, apiURL := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]

	exited := startBinary(t, bin, dir, config, "DEMO_SECRET="+secret)
	md := waitForMetadata(t, issuerURL, exited)
	if md.Issuer != issuerURL {
		t.Errorf("metadata issuer = %q, want %q", md.Issuer, issuerURL)
	}
	if md.TokenEndpoint == "" {
		t.Fatalf("metadata has no token_endpoint: %+v", md)
	}

	token := func(scopes ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc := clientcredentials.Config{ClientID: "demo", ClientSecret: secret, TokenURL: md.TokenEndpoint, Scopes: scopes}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("client credentials (scopes %q): %v", scopes, err)
		}
		if !strings.EqualFold(tok.TokenType, "bearer") {
			t.Fatalf("token_type = %q, want Bearer", tok.TokenType)
		}
		return tok.AccessToken
	}
	full, readOnly := token(), token("read")

	// A valid token reaches the upstream, which learns the caller from the gateway; a
	// client-sent X-User is replaced, not passed on.
	resp, body := call(t, http.MethodGet, apiURL+"/orders", full, "X-User", "mallory")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with token: status %d, body %q", resp.StatusCode, body)
	}
	var echo struct{ User, Method, Path string }
	if err := json.Unmarshal(body, &echo); err != nil {
		t.Fatalf("upstream response is not JSON: %v: %q", err, body)
	}
	if echo.User != "demo" || echo.Path != "/orders" {
		t.Errorf("upstream saw user %q path %q, want demo /orders (body %s)", echo.User, echo.Path, body)
	}
	if resp, body := call(t, http.MethodPost, apiURL+"/orders", full); resp.StatusCode != http.StatusOK {
		t.Errorf("POST with read+write token: status %d, body %q", resp.StatusCode, body)
	}

	// No token: 401 with a Bearer challenge.
	resp, _ = call(t, http.MethodGet, apiURL+"/orders", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without token: status %d, want 401", resp.StatusCode)
	}
	if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer realm=") {
		t.Errorf("GET without token: WWW-Authenticate = %q, want Bearer realm=…", wa)
	}

	// A read-only token may read but not POST: 403 insufficient_scope.
	if resp, body := call(t, http.MethodGet, apiURL+"/orders", readOnly); resp.StatusCode != http.StatusOK {
		t.Errorf("GET with read-only token: status %d, body %q", resp.StatusCode, body)
	}
	resp, _ = call(t, http.MethodPost, apiURL+"/orders", readOnly)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with read-only token: status %d, want 403", resp.StatusCode)
	}
	if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="insufficient_scope"`) {
		t.Errorf("POST with read-only token: WWW-Authenticate = %q, want error=\"insufficient_scope\"", wa)
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1, held open until all are chosen.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	ports := make([]string, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, ports[i], _ = net.SplitHostPort(l.Addr().String())
	}
	return ports
}

// quoteCaddyfile quotes a path as one Caddyfile token.
func quoteCaddyfile(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// startBinary runs `bin run` on config with HOME and the XDG directories inside dir. It stops
// the process when the test ends and then, if the test failed, logs Caddy's output. The
// returned channel yields the process's exit error once it has exited.
func startBinary(t *testing.T, bin, dir, config string, env ...string) <-chan error {
	t.Helper()
	exited, _ := startBinaryStoppable(t, bin, dir, config, env...)
	return exited
}

// startBinaryStoppable is startBinary that also returns a function stopping the process now
// (an interrupt, as Ctrl-C; it waits until the process has exited).
func startBinaryStoppable(t *testing.T, bin, dir, config string, env ...string) (<-chan error, func()) {
	t.Helper()
	logPath := filepath.Join(dir, "caddy.log")
	if _, err := os.Stat(logPath); err == nil {
		logPath = filepath.Join(dir, "caddy-output.log") // the config logs to caddy.log itself
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Later entries win, so these override the caller's environment.
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
	)
	cmd.Env = append(cmd.Env, env...)
	// Registered first, so it runs last: after the process has stopped and written everything.
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("caddy output (%s):\n%s", logPath, out)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		exited <- err
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	return exited, stop
}

type metadata struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
}

// waitForMetadata polls the discovery document until it answers, Caddy exits, or 20s pass.
func waitForMetadata(t *testing.T, issuerURL string, exited <-chan error) metadata {
	t.Helper()
	url := issuerURL + "/.well-known/openid-configuration"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("caddy exited before serving %s: %v", url, err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			var md metadata
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if err := json.Unmarshal(body, &md); err != nil {
					t.Fatalf("%s: not JSON: %v: %q", url, err, body)
				}
				return md
			}
			err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within 20s: %v", url, last)
	return metadata{}
}

// call sends a request with an optional bearer token and extra header pairs.
func call(t *testing.T, method, url, token string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}

package caddymodule_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

// caddyValidate runs `bin validate` on config with the same HOME and XDG directories as
// startBinary gives a running Caddy in dir, and returns its combined output and exit error.
func caddyValidate(t *testing.T, bin, dir, config string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "validate", "--config", config, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
	)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dbFiles lists the bolt files under dir.
func dbFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".db") {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// TestValidateHasNoSideEffects: `caddy validate` of the config a Caddy is running (whose bolt
// file that Caddy holds locked) succeeds at once, and validating configs that never run opens
// no store and creates no file or key; mistakes are still found.
func TestValidateHasNoSideEffects(t *testing.T) {
	bin := caddyBin(t)
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	issuerURL := "http://127.0.0.1:" + port
	const live = `{
	admin off
}
http://127.0.0.1:%s {
	oauth_issuer {
		issuer http://127.0.0.1:%s
		client svc {
			secret {env.SVC_SECRET}
			grants client_credentials
			scopes read
		}
	}
}
`
	config := filepath.Join(dir, "Caddyfile")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(config, strings.ReplaceAll(live, "%s", port))
	secret := "SVC_SECRET=validate-test-secret-0123456789abcdef"
	exited := startBinary(t, bin, dir, config, secret)
	waitForMetadata(t, issuerURL, exited)
	running := dbFiles(t, dir)
	if len(running) != 1 {
		t.Fatalf("the running Caddy has %d bolt files (%q), want 1 in its data directory", len(running), running)
	}

	// The live config, while its Caddy holds the bolt file: no lock timeout, no wait.
	began := time.Now()
	out, err := caddyValidate(t, bin, dir, config, secret)
	if err != nil {
		t.Fatalf("caddy validate of the running config: %v\n%s", err, out)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("caddy validate of the running config took %v", took)
	}
	if !strings.Contains(out, "Valid configuration") {
		t.Errorf("caddy validate said %q, want \"Valid configuration\"", out)
	}

	// Configs never run: nothing is opened or created — not the default bolt file of another
	// issuer, not a bolt file at a configured path, not a connection to a Redis that is not there.
	fresh := t.TempDir()
	never := filepath.Join(fresh, "never")
	if err := os.Mkdir(never, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, storage := range map[string]string{
		"default bolt": "",
		"bolt path":    "storage bolt " + quoteCaddyfile(filepath.Join(never, "explicit.db")),
		"redis":        "storage redis redis://127.0.0.1:1/0",
	} {
		cfg := filepath.Join(fresh, "Caddyfile")
		write(cfg, strings.ReplaceAll(strings.Replace(live, "issuer http://127.0.0.1:%s",
			"issuer http://127.0.0.1:%s\n\t\t"+storage, 1), "%s", port))
		began := time.Now()
		out, err := caddyValidate(t, bin, fresh, cfg, secret)
		if err != nil {
			t.Errorf("%s: caddy validate: %v\n%s", name, err, out)
			continue
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("%s: caddy validate took %v (did it try to connect?)", name, took)
		}
		if files := dbFiles(t, fresh); len(files) > 0 {
			t.Errorf("%s: caddy validate created %q", name, files)
		}
		if _, err := os.Stat(filepath.Join(fresh, "data", "caddy", "tollgate")); err == nil {
			t.Errorf("%s: caddy validate created Tollgate's data directory", name)
		}
	}

	// Validation still finds what is wrong, each without opening anything.
	for name, c := range map[string]struct{ edit, want string }{
		"unset secret": {edit: "", want: "SVC_SECRET"},
		"redis url placeholder": {edit: "storage redis {env.NO_SUCH_REDIS_URL}",
			want: "NO_SUCH_REDIS_URL"},
		"backend": {edit: "storage etcd", want: "etcd"},
	} {
		cfg := filepath.Join(fresh, "Caddyfile")
		text := strings.ReplaceAll(live, "%s", port)
		env := []string{secret}
		if c.edit == "" {
			env = []string{"SVC_SECRET="}
		} else {
			text = strings.Replace(text, "\t\tclient svc {", "\t\t"+c.edit+"\n\t\tclient svc {", 1)
		}
		write(cfg, text)
		out, err := caddyValidate(t, bin, fresh, cfg, env...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: caddy validate: err %v, output %q; want a failure naming %q", name, err, out, c.want)
		}
	}
	if files := dbFiles(t, fresh); len(files) > 0 {
		t.Errorf("failed validations created %q", files)
	}

	// The running Caddy was not disturbed: it still issues tokens.
	if got := dbFiles(t, dir); len(got) != 1 || got[0] != running[0] {
		t.Errorf("bolt files of the running Caddy's directory are now %q, want %q", got, running)
	}
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: "validate-test-secret-0123456789abcdef",
		TokenURL: issuerURL + "/oauth2/token", Scopes: []string{"read"}}
	if _, err := cc.Token(context.Background()); err != nil {
		t.Errorf("the running Caddy issues no token after the validations: %v", err)
	}
}

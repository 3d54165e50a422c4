package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	benchClient   = "bench"
	benchSecret   = "bench-secret-not-for-production"
	benchAudience = "https://bench.api.test"
)

// environment is the running upstream and Caddy.
type environment struct {
	dir                              string
	caddy, upstream                  *exec.Cmd
	version                          string
	admin                            string
	issuerURL                        string
	tokenURL, plainURL, protectedURL string
	floorURL                         string // the floor site's token path
	floorSize                        int    // its body's size in bytes
	hz                               int64  // clock ticks per second in /proc/<pid>/stat
}

// caddyfile is the benchmark's configuration: the issuer, a plain proxy and a protected proxy,
// all in front of the same upstream, and the floor: a site that answers the token request with
// a fixed token response, so that its cost is Caddy's own request handling. Access logs stay
// off, as in a tuned production setup.
const caddyfile = `{
	admin 127.0.0.1:%[1]s
	persist_config off
	auto_https off
	storage file_system %[6]s/data
	log {
		level ERROR
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[2]s
		storage bolt %[6]s/tollgate.db
		access_token_ttl 2h
		client %[7]s {
			secret %[8]s
			grants client_credentials
			scopes read
			audience %[9]s
		}
	}
}

http://127.0.0.1:%[3]s {
	bind 127.0.0.1
	reverse_proxy %[5]s
}

http://127.0.0.1:%[4]s {
	bind 127.0.0.1
	oauth_protect {
		issuer http://127.0.0.1:%[2]s
		audience %[9]s
		scope read
	}
	reverse_proxy %[5]s
}

http://127.0.0.1:%[10]s {
	bind 127.0.0.1
	header Content-Type application/json
	header Cache-Control no-store
	header Pragma no-cache
	respond /oauth2/token %[11]s 200
}
`

// startEnvironment starts the upstream and Caddy on free loopback ports and waits for both.
// Caddy runs as pin says.
func startEnvironment(ctx context.Context, caddyBin string, pin pinning) (*environment, error) {
	bin, err := filepath.Abs(caddyBin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found: build it with ./xcaddy.sh build (%v)", caddyBin, err)
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return nil, err
	}
	env := &environment{dir: dir, hz: clockTicks()}
	ports := make([]string, 6)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			env.stop()
			return nil, err
		}
	}
	admin, issuer, plain, protected, up, floor := ports[0], ports[1], ports[2], ports[3], "127.0.0.1:"+ports[4], ports[5]
	env.admin = "http://127.0.0.1:" + admin
	env.issuerURL = "http://127.0.0.1:" + issuer
	env.tokenURL = env.issuerURL + "/oauth2/token"
	env.plainURL = "http://127.0.0.1:" + plain + "/items/42"
	env.protectedURL = "http://127.0.0.1:" + protected + "/items/42"
	env.floorURL = "http://127.0.0.1:" + floor + "/oauth2/token"
	floorBody, err := floorResponse(env.issuerURL)
	if err != nil {
		env.stop()
		return nil, err
	}
	env.floorSize = len(floorBody)

	self, err := os.Executable()
	if err != nil {
		env.stop()
		return nil, err
	}
	env.upstream = exec.CommandContext(ctx, self, "-role", "upstream", "-addr", up)
	env.upstream.Stderr = os.Stderr
	env.upstream.SysProcAttr = dieWithParent()
	if err := env.upstream.Start(); err != nil {
		env.stop()
		return nil, fmt.Errorf("starting the upstream: %w", err)
	}

	cfg := filepath.Join(dir, "Caddyfile")
	// A backquoted Caddyfile token keeps the JSON's quotes and braces as they are.
	text := fmt.Sprintf(caddyfile, admin, issuer, plain, protected, up, dir, benchClient, benchSecret, benchAudience,
		floor, "`"+floorBody+"`")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		env.stop()
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		env.version = "Caddy " + strings.Fields(string(out))[0]
	}
	name, args := pin.command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	env.caddy = exec.CommandContext(ctx, name, args...)
	env.caddy.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	env.caddy.Env = append(env.caddy.Env, pin.environ()...)
	env.caddy.Stdout, env.caddy.Stderr = io.Discard, os.Stderr
	env.caddy.SysProcAttr = dieWithParent()
	if err := env.caddy.Start(); err != nil {
		env.stop()
		return nil, fmt.Errorf("starting Caddy: %w", err)
	}
	for _, p := range []string{ports[4], issuer, plain, protected, floor} {
		if err := waitPort(ctx, p); err != nil {
			env.stop()
			return nil, err
		}
	}
	return env, nil
}

// stop ends the child processes and removes the temporary directory.
func (e *environment) stop() {
	for _, c := range []*exec.Cmd{e.caddy, e.upstream} {
		if c != nil && c.Process != nil {
			_ = c.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = c.Process.Kill()
			}
		}
	}
	_ = os.RemoveAll(e.dir)
}

// rss is Caddy's resident set size in KiB, from /proc/<pid>/status; 0 when unknown.
func (e *environment) rss() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.caddy.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb
		}
	}
	return 0
}

// cpu is the CPU time Caddy has used so far (taskset execs Caddy, so the pid is Caddy's); 0 when
// unknown.
func (e *environment) cpu() time.Duration {
	return cpuTime(e.caddy.Process.Pid, e.hz)
}

// cacheCounters reads oauth_protect's cache counters from Caddy's admin /metrics; zeros when the
// endpoint does not have them.
func (e *environment) cacheCounters() (hits, misses int64) {
	resp, err := http.Get(e.admin + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "tollgate_protect_cache_hits_total":
			hits = int64(v)
		case "tollgate_protect_cache_misses_total":
			misses = int64(v)
		}
	}
	return hits, misses
}

// profile records a CPU profile of Caddy (admin /debug/pprof) for the next phase into
// dir/name.pprof when dir is set and on is true; the returned func waits for it.
func (e *environment) profile(ctx context.Context, dir string, on bool, name string, d time.Duration) func() {
	if dir == "" || !on {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(math.Ceil(d.Seconds()))) // pprof takes whole seconds, and 0 means 30
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", e.admin, secs), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: profile:", err)
			return
		}
		defer resp.Body.Close()
		_ = os.MkdirAll(dir, 0o755)
		f, err := os.Create(filepath.Join(dir, name+".pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: profile:", err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}()
	return func() { <-done }
}

// dieWithParent makes a child process get SIGKILL when the benchmark dies, however it dies (an
// interrupt, a closed output pipe), so that no Caddy is left running.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

// waitPort waits up to 30 s for something to listen on a loopback port.
func waitPort(ctx context.Context, port string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing listens on 127.0.0.1:%s: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveUpstream is the upstream: a fixed small JSON answer, like a typical API read.
func serveUpstream(addr string) {
	body := []byte(`{"id":42,"name":"item","ok":true}`)
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "bench upstream:", err)
		os.Exit(1)
	}
}

// Package redistest starts real redis-server processes on free loopback ports for tests of the
// redis store and of several issuers sharing one Redis. A test is skipped, with a message, only
// where redis-server is not installed (CI installs it).
package redistest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bin finds Debian's redis-server, or skips the test when it is not installed.
func Bin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	t.Skip("redis-server is not installed (apt-get install redis-server); skipping the redis store tests")
	return ""
}

// Server is a redis-server process of one test, listening on 127.0.0.1.
type Server struct {
	t    testing.TB
	bin  string
	args []string // the arguments after --port
	conf string   // a config file read before the arguments, or ""
	Addr string   // host:port

	mu     sync.Mutex
	proc   *os.Process   // nil while stopped
	exited chan struct{} // closed once proc has been reaped
}

// Start starts redis-server on a free port, with persistence off unless extra asks for
// it, and stops it when t ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartConfig(t, "", extra...)
}

// StartConfig is Start with the config file conf (unless "") read before the arguments, as a
// Sentinel needs: it rewrites its config file with what it learns.
func StartConfig(t testing.TB, conf string, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Bin(t), conf: conf}
	s.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--loglevel", "warning", "--daemonize", "no"}, extra...)
	t.Cleanup(s.Kill)
	var err error
	for range 5 { // another process may take the port between freeAddr and bind
		s.Addr = FreeAddr(t)
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("start redis-server: %v", err)
	return nil
}

// URL is the redis:// URL of database 0 of the server.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Restart kills the server (SIGKILL: nothing is flushed on the way out) and starts it again
// on the same port with the same arguments.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// Kill stops the server with SIGKILL and waits until it is gone; a stopped server is left
// alone.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Signal(syscall.SIGCONT) // in case a test froze it
	_ = s.proc.Kill()
	<-s.exited
	s.proc = nil
}

// Signal sends sig to the running server.
func (s *Server) Signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		_ = s.proc.Signal(sig)
	}
}

// start runs redis-server and waits until it answers PING.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{"--port", port}, s.args...)
	if s.conf != "" {
		args = append([]string{s.conf}, args...)
	}
	cmd := exec.Command(s.bin, args...)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for !Ping(s.Addr) {
		select {
		case <-exited:
			return &startError{log.String()}
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return &startError{"no PONG within 10s: " + log.String()}
		}
	}
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()
	return nil
}

// syncBuffer is a bytes.Buffer that the process's output goroutine and the test can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Ping reports whether a Redis server at addr is up: it answers PING with PONG, or asks for a
// password (but not "LOADING").
func Ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startError is a redis-server that did not come up; it carries the server's log.
type startError struct{ log string }

func (e *startError) Error() string { return "redis-server did not start: " + strings.TrimSpace(e.log) }

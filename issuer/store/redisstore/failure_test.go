package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
)

// TestRedisOpenErrors checks that Open fails quickly, says what is wrong, and never shows the
// password.
func TestRedisOpenErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55"
	srv := redistest.Start(t, "--requirepass", "the-right-one")
	closed := redistest.FreeAddr(t) // nothing listens there
	cases := []struct {
		name, url string
		want      []string // substrings of the error
		down      bool     // the error wraps store.ErrUnavailable
	}{
		{"Scheme", "http://u:" + secret + "@127.0.0.1:6379/0", []string{"invalid URL scheme", "xxxxx"}, false},
		{"NotAURL", "redis://u:" + secret + "%zz@127.0.0.1:6379/0", []string{"not a valid URL", "redis://xxxxx@127.0.0.1:6379/0"}, false},
		{"Database", "redis://u:" + secret + "@127.0.0.1:6379/zero", []string{"invalid database number", "xxxxx"}, false},
		{"Refused", "redis://u:" + secret + "@" + closed + "/0", []string{"redis://u:xxxxx@" + closed + "/0", "connection refused"}, true},
		{"WrongPassword", "redis://:" + secret + "@" + srv.Addr + "/0", []string{"redis://:xxxxx@" + srv.Addr, "WRONGPASS"}, true},
		{"NoPassword", srv.URL(), []string{"NOAUTH"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s, err := Open(t.Context(), c.url, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Open took %v to fail", d)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, "s3cret") {
				t.Errorf("error shows the password: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if errors.Is(err, store.ErrUnavailable) != c.down {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !c.down, c.down)
			}
		})
	}
	t.Run("RightPassword", func(t *testing.T) {
		t.Parallel()
		s := open(t, "redis://:the-right-one@"+srv.Addr+"/3", Options{})
		if err := s.Put(t.Context(), "b", "k", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DialTimeout", func(t *testing.T) {
		t.Parallel()
		// 192.0.2.0/24 is TEST-NET-1: never routed, so the dial either hangs or fails at once.
		start := time.Now()
		s, err := Open(t.Context(), "redis://192.0.2.1:6379/0", Options{DialTimeout: 300 * time.Millisecond})
		if err == nil {
			s.Close()
			t.Fatal("Open of an unroutable address succeeded")
		}
		if d := time.Since(start); d > 2*time.Second || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Open failed after %v with %v; want ErrUnavailable within the dial timeout", d, err)
		}
	})
}

// TestRedisURLRedact checks the redaction of URLs that parse and of URLs that do not.
func TestRedisURLRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":            "redis://127.0.0.1:6379/0",
		"redis://user:pw@host:1/2":            "redis://user:xxxxx@host:1/2",
		"rediss://:pw@host":                   "rediss://:xxxxx@host",
		"redis://user:p%zz@host:1/2":          "redis://xxxxx@host:1/2",
		"redis://user:p%zz@w@host:1":          "redis://xxxxx@host:1",
		"redis://user:p%zz/@host":             "redis://user:p%zz/@host", // '/' ends the authority: no password
		"redis://%zz":                         "redis://%zz",
		"redis://user:with space@host:1/0":    "redis://xxxxx@host:1/0",
		"redis://user:p%40ss@host:6379/0?x=1": "redis://user:xxxxx@host:6379/0?x=1",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedisServerGone checks that a server killed or frozen under a live store gives
// ErrUnavailable within the timeouts, not a hang, and that the store recovers by itself once
// a server is back.
func TestRedisServerGone(t *testing.T) {
	t.Parallel()
	opts := Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	for _, c := range []struct {
		name string
		stop func(*redistest.Server)
	}{
		{"Killed", (*redistest.Server).Kill},
		{"Frozen", func(srv *redistest.Server) { srv.Signal(syscall.SIGSTOP) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			s := open(t, srv.URL(), opts)
			ctx := t.Context()
			if err := s.Put(ctx, "b", "k", []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
			c.stop(srv)
			for _, call := range []func(context.Context) error{
				func(ctx context.Context) error { _, err := s.Get(ctx, "b", "k"); return err },
				func(ctx context.Context) error { return s.Put(ctx, "b", "k", []byte("w"), 0) },
				func(ctx context.Context) error { _, err := s.Take(ctx, "b", "k"); return err },
				func(ctx context.Context) error { _, err := s.Incr(ctx, "b", "n", 1, 0); return err },
				func(ctx context.Context) error { return s.Scan(ctx, "b", func(string, []byte) error { return nil }) },
				func(ctx context.Context) error {
					return s.Update(ctx, "b", "u", func([]byte, bool) ([]byte, time.Duration, error) { return []byte("u"), 0, nil })
				},
				func(ctx context.Context) error { return s.Publish(ctx, "t", []byte("m")) },
			} {
				start := time.Now()
				err := call(ctx)
				if d := time.Since(start); d > 2*time.Second || !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("call with the server down: %v after %v; want ErrUnavailable within 2s", err, d)
				}
			}
			if c.name == "Frozen" {
				srv.Signal(syscall.SIGCONT)
			} else {
				srv.Restart() // no persistence: the server comes back empty
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := s.Put(ctx, "b", "k", []byte("back"), 0)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("store did not recover once the server was back: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got, err := s.Get(ctx, "b", "k"); err != nil || string(got) != "back" {
				t.Errorf("Get after recovery = %q, %v", got, err)
			}
		})
	}
}

// TestRedisContextDeadline checks that a context deadline shorter than the read timeout bounds a
// call, and that the error says so as well as that the store is unavailable.
func TestRedisContextDeadline(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{})
	srv.Signal(syscall.SIGSTOP)
	defer srv.Signal(syscall.SIGCONT)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Get(ctx, "b", "k")
	if d := time.Since(start); d > time.Second || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get on a frozen server with a 200ms deadline: %v after %v", err, d)
	}
}

// TestRedisSubscriptionSurvivesOutage checks what the edge's deny-list relies on: a
// subscription whose server is killed or frozen is reported lost within a few seconds, and
// once the server is back it resubscribes by itself, calls Resync (so the subscriber rereads
// what it missed) and delivers again.
func TestRedisSubscriptionSurvivesOutage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		stop, back func(*redistest.Server)
	}{
		{"Killed", (*redistest.Server).Kill, (*redistest.Server).Restart},
		{"Frozen", func(srv *redistest.Server) { srv.Signal(syscall.SIGSTOP) },
			func(srv *redistest.Server) { srv.Signal(syscall.SIGCONT) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			opts := Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
			pub, sub := open(t, srv.URL(), opts), open(t, srv.URL(), opts)
			var mu sync.Mutex
			var got []string
			resyncs, lost := make(chan struct{}, 10), make(chan error, 10)
			err := sub.Subscribe(t.Context(), "revoked", store.Subscriber{
				Message: func(m []byte) { mu.Lock(); got = append(got, string(m)); mu.Unlock() },
				Resync:  func() { resyncs <- struct{}{} },
				Lost:    func(err error) { lost <- err },
			})
			if err != nil {
				t.Fatal(err)
			}
			wait := func(what string, ch <-chan struct{}, within time.Duration) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(within):
					t.Fatalf("no %s within %v", what, within)
				}
			}
			wait("first Resync", resyncs, 5*time.Second)
			c.stop(srv)
			start := time.Now()
			select {
			case err := <-lost:
				if !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("Lost(%v), want an error wrapping ErrUnavailable", err)
				}
				t.Logf("lost after %v: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(6 * time.Second):
				t.Fatal("the subscription was not reported lost within 6s of the outage")
			}
			c.back(srv)
			wait("Resync after the outage", resyncs, 10*time.Second)
			for _, m := range []string{"a", "b"} {
				if err := pub.Publish(t.Context(), "revoked", []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the outage, %d of 2 messages arrived", n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestRedisSlowResyncKeepsSubscription: a resync that takes longer than the health checks (a
// large deny-list) does not make the subscription look dead, and messages keep arriving while
// it runs.
func TestRedisSlowResyncKeepsSubscription(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	pub, sub := open(t, srv.URL(), Options{}), open(t, srv.URL(), Options{})
	var mu sync.Mutex
	var resyncs, losts, messages int
	err := sub.Subscribe(t.Context(), "slow", store.Subscriber{
		Message: func([]byte) { mu.Lock(); messages++; mu.Unlock() },
		Resync: func() {
			mu.Lock()
			resyncs++
			mu.Unlock()
			time.Sleep(5 * pubsubCheck)
		},
		Lost: func(error) { mu.Lock(); losts++; mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * pubsubCheck)
	for time.Now().Before(deadline) {
		_ = pub.Publish(t.Context(), "slow", []byte("m"))
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if resyncs != 1 || losts != 0 || messages == 0 {
		t.Fatalf("over %v with a resync of %v: %d resyncs, %d losts, %d messages; want 1, 0 and some",
			8*pubsubCheck, 5*pubsubCheck, resyncs, losts, messages)
	}
}

// TestRedisResubscribeBackOffResets: the pause before subscribing again grows while Redis
// stays away, and starts short again once a subscription has worked. Otherwise a process
// that has seen a few outages in its life waits the longest pause after every later one, and
// its deny-list stays stale seconds longer than it must.
func TestRedisResubscribeBackOffResets(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	opts := Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	sub := open(t, srv.URL(), opts)
	resyncs := make(chan struct{}, 10)
	err := sub.Subscribe(t.Context(), "revoked", store.Subscriber{
		Message: func([]byte) {},
		Resync:  func() { resyncs <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-resyncs:
	case <-time.After(5 * time.Second):
		t.Fatal("no first Resync within 5s")
	}
	var took time.Duration
	for i := range 8 { // more outages than the back-off has steps
		start := time.Now()
		srv.Restart()
		select {
		case <-resyncs:
			took = time.Since(start)
		case <-time.After(10 * time.Second):
			t.Fatalf("outage %d: no Resync within 10s", i+1)
		}
	}
	if took >= pubsubRetryMax {
		t.Fatalf("after 8 short outages, resubscribing took %v: the back-off did not start again (max pause %v)", took, pubsubRetryMax)
	}
	t.Logf("resubscribed %v after the 8th outage", took.Round(time.Millisecond))
}

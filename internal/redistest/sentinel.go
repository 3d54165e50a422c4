package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Sentinel timings: a master that has not answered for SentinelDownAfter is down, and a
// failover that has not finished within SentinelFailoverTimeout is tried again. A failover
// after a master dies thus takes about two to four seconds.
const (
	SentinelDownAfter       = time.Second
	SentinelFailoverTimeout = 3 * time.Second
)

// SentinelQuorum is how many of the three Sentinels must agree that the master is down.
const SentinelQuorum = 2

// Topology is a Redis master with replicas watched by three Sentinels, every process a
// redis-server on a free loopback port, all killed when the test ends.
type Topology struct {
	t testing.TB
	// Name is the master name the Sentinels monitor.
	Name string
	// Data are the master and the replicas, in the order started: Data[0] was the first
	// master. After a failover another one is Master.
	Data []*Server
	// Sentinels are the three Sentinels.
	Sentinels []*Server

	password string // of the data servers, or ""

	mu     sync.Mutex
	master *Server // the master as of the last WaitForFailover
}

// StartSentinel starts a master, replicas replicas of it (each in sync before it returns),
// and three Sentinels monitoring the master under name with quorum SentinelQuorum, and
// returns once every Sentinel knows the replicas and the other Sentinels, so that a failover
// can happen as soon as the master is killed. extra are more redis-server arguments of the
// master and the replicas (such as "--appendonly", "yes"); with "--requirepass", "<pw>" the
// replicas and Sentinels authenticate to the master with pw (the Sentinels themselves need
// none).
func StartSentinel(t testing.TB, name string, replicas int, extra ...string) *Topology {
	t.Helper()
	tp := &Topology{t: t, Name: name, password: password(extra)}
	master, reps := StartReplicated(t, replicas, extra...)
	tp.Data = append([]*Server{master}, reps...)
	tp.master = master
	host, port, _ := net.SplitHostPort(master.Addr)
	ctx := context.Background()
	for range 3 {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s %s %s %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			name, host, port, SentinelQuorum,
			name, SentinelDownAfter.Milliseconds(),
			name, SentinelFailoverTimeout.Milliseconds(),
			name)
		if pw := password(extra); pw != "" {
			text += fmt.Sprintf("sentinel auth-pass %s %s\n", name, pw)
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s := StartConfig(t, conf, "--sentinel", "--dir", dir)
		tp.Sentinels = append(tp.Sentinels, s)
	}
	waitFor(t, 20*time.Second, "the Sentinels to know each other and the replicas", func() (bool, string) {
		for _, s := range tp.Sentinels {
			m, err := sentinelMaster(ctx, s.Addr, name)
			if err != nil {
				return false, s.Addr + ": " + err.Error()
			}
			if m["num-other-sentinels"] != "2" || m["num-slaves"] != strconv.Itoa(replicas) {
				return false, fmt.Sprintf("%s: %s other sentinels, %s replicas", s.Addr, m["num-other-sentinels"], m["num-slaves"])
			}
		}
		return true, ""
	})
	return tp
}

// StartReplicated starts a master and n replicas of it, and returns once every replica is in
// sync. extra are more redis-server arguments of all of them; with "--requirepass", "<pw>"
// the replicas authenticate to the master with pw.
func StartReplicated(t testing.TB, n int, extra ...string) (master *Server, replicas []*Server) {
	t.Helper()
	master = Start(t, extra...)
	pw := password(extra)
	host, port, _ := net.SplitHostPort(master.Addr)
	repl := []string{"--replicaof", host, port, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	if pw != "" {
		repl = append(repl, "--masterauth", pw)
	}
	for range n {
		r := Start(t, slices.Concat(repl, extra)...)
		replicas = append(replicas, r)
	}
	ctx := context.Background()
	waitFor(t, 10*time.Second, "the replicas to sync", func() (bool, string) {
		for _, r := range replicas {
			if st := infoField(ctx, r.Addr, pw, "replication", "master_link_status"); st != "up" {
				return false, r.Addr + ": master_link_status " + st
			}
		}
		if got := infoField(ctx, master.Addr, pw, "replication", "connected_slaves"); got != strconv.Itoa(n) {
			return false, "master: connected_slaves " + got
		}
		return true, ""
	})
	return master, replicas
}

// SentinelURL is the URL of the master named masterName through the three Sentinels, in the
// form go-redis's ParseFailoverURL reads:
// redis://<sentinel1>/0?master_name=<name>&addr=<sentinel2>&addr=<sentinel3>.
func (tp *Topology) SentinelURL(masterName string) string {
	u := "redis://" + tp.Sentinels[0].Addr + "/0?master_name=" + masterName
	for _, s := range tp.Sentinels[1:] {
		u += "&addr=" + s.Addr
	}
	return u
}

// URL is SentinelURL of the monitored master.
func (tp *Topology) URL() string { return tp.SentinelURL(tp.Name) }

// Master is the master as of the start or the last WaitForFailover; Kill it to make the
// Sentinels fail over.
func (tp *Topology) Master() *Server {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.master
}

// Replicas are the data servers other than Master.
func (tp *Topology) Replicas() []*Server {
	m := tp.Master()
	var out []*Server
	for _, s := range tp.Data {
		if s != m {
			out = append(out, s)
		}
	}
	return out
}

// WaitForFailover waits up to timeout until a majority of the Sentinels name a master other
// than Master, and that server answers as a master; it then becomes Master and is returned.
// It fails the test on timeout.
func (tp *Topology) WaitForFailover(t testing.TB, timeout time.Duration) *Server {
	t.Helper()
	old := tp.Master()
	ctx := context.Background()
	var next *Server
	waitFor(t, timeout, "a failover away from "+old.Addr, func() (bool, string) {
		votes := map[string]int{}
		for _, s := range tp.Sentinels {
			addr, err := masterAddr(ctx, s.Addr, tp.Name)
			if err == nil {
				votes[addr]++
			}
		}
		for addr, n := range votes {
			if addr == old.Addr || n < SentinelQuorum {
				continue
			}
			for _, d := range tp.Data {
				if d.Addr == addr && infoField(ctx, addr, tp.password, "replication", "role") == "master" {
					next = d
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("sentinels name %v", votes)
	})
	tp.mu.Lock()
	tp.master = next
	tp.mu.Unlock()
	return next
}

// waitFor polls ok every 50ms until it reports true, and fails t with what it last said
// after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, why := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no %s within %v: %s", what, timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client is a one-shot go-redis client of addr with short timeouts, authenticating with
// password if given.
func client(addr string, password ...string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: strings.Join(password, ""), DialTimeout: 300 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, PoolSize: 1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
}

// infoField is one field of an INFO section of the server at addr (password, unless "",
// authenticates), or "" when the server does not answer or has no such field.
func infoField(ctx context.Context, addr, password, section, field string) string {
	c := client(addr, password)
	defer c.Close()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return ""
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// sentinelMaster is SENTINEL MASTER name on the Sentinel at addr, as a map.
func sentinelMaster(ctx context.Context, addr, name string) (map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	return c.Master(ctx, name).Result()
}

// masterAddr is the host:port the Sentinel at addr names for the master name.
func masterAddr(ctx context.Context, addr, name string) (string, error) {
	c := client(addr)
	defer c.Close()
	hp, err := c.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).StringSlice()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("GET-MASTER-ADDR-BY-NAME = %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// password is the value of --requirepass in args, or "".
func password(args []string) string {
	for i, a := range args {
		if a == "--requirepass" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

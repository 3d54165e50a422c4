package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of one test: redis-server nodes on free loopback ports, with the
// hash slots spread over the masters by redis-cli --cluster create, all killed when the test
// ends.
type Cluster struct {
	// Nodes are every node, masters first as redis-cli assigned them.
	Nodes []*Server
}

// StartCluster starts masters*(1+replicas) cluster nodes, joins them with
// `redis-cli --cluster create … --cluster-replicas replicas --cluster-yes` (redis-cli comes
// with redis-server on Debian), and returns once every node reports cluster_state:ok and
// every replica is in sync.
func StartCluster(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (it comes with redis-server); skipping the Redis Cluster tests")
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range masters * (1 + replicas) {
		n := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--appendonly", "no")
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx := context.Background()
	waitFor(t, 20*time.Second, "cluster_state:ok on every node", func() (bool, string) {
		for _, n := range c.Nodes {
			cl := client(n.Addr)
			info, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return false, n.Addr + ": " + err.Error()
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return false, n.Addr + " is not ok yet"
			}
			switch infoField(ctx, n.Addr, "", "replication", "role") {
			case "master":
				if got := infoField(ctx, n.Addr, "", "replication", "connected_slaves"); got != strconv.Itoa(replicas) {
					return false, n.Addr + ": connected_slaves " + got
				}
			case "slave":
				if st := infoField(ctx, n.Addr, "", "replication", "master_link_status"); st != "up" {
					return false, n.Addr + ": master_link_status " + st
				}
			}
		}
		return true, ""
	})
	return c
}

// URL is the cluster's URL in the form go-redis's ParseClusterURL reads:
// redis://<node1>?addr=<node2>&addr=<node3>…
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

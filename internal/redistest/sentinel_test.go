package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSentinelFailover: killing the master of a Sentinel topology promotes the replica within
// seconds, with what was replicated before.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	tp := StartSentinel(t, "tollgate", 1)
	ctx := context.Background()
	old := tp.Master()
	c := client(old.Addr)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v", n, err)
	}
	start := time.Now()
	old.Kill()
	next := tp.WaitForFailover(t, 15*time.Second)
	t.Logf("failover took %v", time.Since(start))
	if next == old || next != tp.Data[1] {
		t.Fatalf("new master %s, want the replica %s", next.Addr, tp.Data[1].Addr)
	}
	nc := client(next.Addr)
	defer nc.Close()
	if v, err := nc.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET on the new master = %q, %v", v, err)
	}
	if got := len(tp.Replicas()); got != 1 || tp.Replicas()[0] != old {
		t.Errorf("Replicas after the failover = %d, want the old master", got)
	}
}

// TestCluster: a three-master cluster comes up with every slot served.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, 0)
	cl := client(c.Nodes[0].Addr)
	defer cl.Close()
	info, err := cl.ClusterInfo(context.Background()).Result()
	if err != nil || !strings.Contains(info, "cluster_slots_ok:16384") || !strings.Contains(info, "cluster_size:3") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
}

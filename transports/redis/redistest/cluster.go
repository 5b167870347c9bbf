package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters (no replicas) on loopback
// ports, for one test.
type Cluster struct {
	Addrs []string
}

// StartCluster starts three cluster-enabled redis-servers, joins them into
// one Redis Cluster with redis-cli, waits until it serves every slot, and
// stops them when t ends. Like Start, it fails t under CI=true when Redis is
// not installed, and skips it otherwise.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (apt-get install redis-server): %v", bin, err)
			}
			t.Skipf("%s is not installed: %v", bin, err)
		}
	}
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cmd := exec.Command("redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if !WaitFor(startTimeout, func() bool { return ping(addr) == nil }) {
			t.Fatalf("cluster node %s did not answer PING", addr)
		}
		c.Addrs = append(c.Addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ok := WaitFor(20*time.Second, func() bool {
		for _, a := range c.Addrs {
			host, port, _ := strings.Cut(a, ":")
			out, err := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatal(fmt.Errorf("the Redis Cluster on %v did not reach cluster_state:ok", c.Addrs))
	}
	return c
}

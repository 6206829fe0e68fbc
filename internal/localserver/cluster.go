package localserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ValkeyCluster is a Valkey Cluster of local servers on loopback, one primary per node.
type ValkeyCluster struct {
	// Addrs are the nodes' host:port.
	Addrs []string
	nodes []*Valkey
}

// StartValkeyCluster starts n cluster-enabled valkey-servers, splits the 16384 slots between
// them, joins them and waits until every node reports cluster_state:ok.
func StartValkeyCluster(ctx context.Context, n int) (*ValkeyCluster, error) {
	bin, err := FindValkeyServer()
	if err != nil {
		return nil, err
	}
	c := &ValkeyCluster{}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	for i := 0; i < n; i++ {
		dir, err := os.MkdirTemp("", "spendcap-valkey-cluster-")
		if err != nil {
			return nil, err
		}
		v := &Valkey{Dir: dir, tempDir: true}
		var lastErr error
		for attempt := 0; attempt < 4; attempt++ {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--logfile", filepath.Join(dir, "valkey.log"), "--daemonize", "no", "--save", "", "--appendonly", "no",
				"--maxmemory-policy", "noeviction", "--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000"}
			if lastErr = v.start(ctx, bin, args, port); lastErr == nil {
				break
			}
		}
		if lastErr != nil {
			return nil, lastErr
		}
		c.nodes = append(c.nodes, v)
		c.Addrs = append(c.Addrs, v.Addr)
	}
	per := 16384 / n
	for i, v := range c.nodes {
		first, last := i*per, (i+1)*per-1
		if i == n-1 {
			last = 16383
		}
		cl := redis.NewClient(&redis.Options{Addr: v.Addr})
		err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err()
		if err == nil && i > 0 {
			host, port, _ := strings.Cut(c.Addrs[0], ":")
			err = cl.Do(ctx, "CLUSTER", "MEET", host, port).Err()
		}
		_ = cl.Close()
		if err != nil {
			return nil, fmt.Errorf("cluster setup on %s: %w", v.Addr, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range c.Addrs {
		cl := redis.NewClient(&redis.Options{Addr: addr})
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if time.Now().After(deadline) {
				_ = cl.Close()
				return nil, fmt.Errorf("valkey cluster not ok after 30s on %s: %v %s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = cl.Close()
	}
	ok = true
	return c, nil
}

// Stop stops every node and removes their directories.
func (c *ValkeyCluster) Stop() {
	for _, v := range c.nodes {
		v.Stop()
	}
}

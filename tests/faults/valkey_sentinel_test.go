package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// startSentinel runs one Valkey Sentinel on loopback that monitors primary as "spendcap" (quorum
// 1, a primary is down after 500 ms) and returns its address.
func startSentinel(t *testing.T, primary *localserver.Valkey) string {
	t.Helper()
	bin, err := localserver.FindValkeyServer()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	host, pport, _ := strings.Cut(primary.Addr, ":")
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`port %s
bind 127.0.0.1
dir %s
sentinel monitor spendcap %s %s 1
sentinel down-after-milliseconds spendcap 500
sentinel failover-timeout spendcap 5000
`, port, dir, host, pport)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Ready once it knows the replica: a failover needs one.
		replicas, err := s.Replicas(context.Background(), "spendcap").Result()
		if err == nil && len(replicas) > 0 {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel did not find the replica: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Behind Sentinel (go-redis's failover client), the Valkey client follows a failover: the primary
// is killed under 32 clients, Sentinel promotes the replica, and the calls in flight, retried with
// their keys, succeed on it. No call acknowledged as confirmed by the replica is lost; after the
// promotion the new primary has no replica, so writes report ErrNotReplicated without waiting.
func TestValkeySentinelFailoverMovesTheClientToThePromotedReplica(t *testing.T) {
	ctx := context.Background()
	primary, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, AppendFsync: "always"})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	replica, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, AppendFsync: "always"})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop()
	replicaOf(t, replica, primary)
	sentinel := startSentinel(t, primary)

	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "spendcap", SentinelAddrs: []string{sentinel},
		PoolSize: clients + 8, DialTimeout: time.Second, MaxRetries: -1})
	defer rdb.Close()
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{MinReplicas: 1, ReplicaTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "s"}); err != nil && !errors.Is(err, valkey.ErrNotReplicated) {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var confirmed []string
	kinds := map[string]int{}
	var killedAt, firstAfter time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("c%d-%d", c, n)
				for {
					_, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "s", Deltas: map[string]int64{"t": 1}, DedupKey: key})
					mu.Lock()
					if err == nil {
						confirmed = append(confirmed, key)
					} else {
						kinds[errorKind(err)]++
					}
					if (err == nil || errors.Is(err, valkey.ErrNotReplicated)) && !killedAt.IsZero() && firstAfter.IsZero() {
						firstAfter = time.Now()
					}
					mu.Unlock()
					if err == nil || errors.Is(err, valkey.ErrNotReplicated) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	primary.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := !firstAfter.IsZero()
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no call succeeded 30 s after the primary was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	lost := 0
	for _, key := range confirmed {
		o, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "s", Deltas: map[string]int64{"t": 1}, DedupKey: key})
		if err != nil && !errors.Is(err, valkey.ErrNotReplicated) {
			t.Fatal(err)
		}
		if !o.Replayed {
			lost++
		}
	}
	t.Logf("Sentinel failover: calls resumed %v after the kill; %d confirmed calls, %d lost; errors %v",
		firstAfter.Sub(killedAt).Round(10*time.Millisecond), len(confirmed), lost, kinds)
	if lost > 0 {
		t.Errorf("%d calls confirmed by the replica were lost", lost)
	}
	for kind := range kinds {
		if kind != "ErrNotReplicated" && kind != "connection" && kind != "server: READONLY" {
			t.Errorf("a caller saw %q", kind)
		}
	}
}

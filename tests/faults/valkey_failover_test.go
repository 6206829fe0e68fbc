package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// failoverRound is what one failover did to the calls of the load.
type failoverRound struct {
	confirmed, unconfirmed         int // calls acknowledged as plain successes, and with ErrNotReplicated
	lostConfirmed, lostUnconfirmed int // of those, the ones the promoted replica did not have
	retried                        int // calls retried with their key after an error
	errorKinds                     map[string]int
}

// replicaOf makes replica a replica of primary and waits until it is in sync.
func replicaOf(t *testing.T, replica, primary *localserver.Valkey) {
	t.Helper()
	if err := replica.ReplicaOf(context.Background(), primary); err != nil {
		t.Fatal(err)
	}
}

// errorKind names an error a caller saw during a failover.
func errorKind(err error) string {
	var nerr net.Error
	var rerr redis.Error
	switch {
	case errors.Is(err, valkey.ErrNotReplicated):
		return "ErrNotReplicated"
	case errors.As(err, &nerr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "EOF"):
		return "connection"
	case errors.As(err, &rerr):
		return "server: " + strings.Fields(rerr.Error())[0]
	default:
		return "other: " + err.Error()
	}
}

// failover runs one round: a primary and its replica on loopback, 32 clients reporting one token
// per call with a dedup key each; the replica is frozen for a second while the primary keeps
// acknowledging (as a replica in another zone lags), then the primary is killed, the replica
// resumed and promoted, and the clients moved to it (as Sentinel or a managed service's endpoint
// would), retrying their calls in flight with their keys. Each acknowledged call is then replayed
// on the promoted replica: a replay that counts again is a call it lost.
func failover(t *testing.T, minReplicas int) failoverRound {
	t.Helper()
	ctx := context.Background()
	primary, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, AppendFsync: "always"})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	// The replica fsyncs once a second: the client warns about it once it is the primary.
	replica, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, AppendFsync: "everysec"})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop()
	replicaOf(t, replica, primary)

	var addr atomic.Value
	addr.Store(primary.Addr)
	rdb := redis.NewClient(&redis.Options{
		Addr: "primary-of-" + replica.Addr, // a name of its own: warnings are logged once per address and process
		Dialer: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return net.Dial(network, addr.Load().(string))
		},
		PoolSize:    clients + 8,
		DialTimeout: time.Second,
		MaxRetries:  -1, // the load retries itself, with the call's key
	})
	defer rdb.Close()
	var logs testenv.SyncBuffer
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{MinReplicas: minReplicas, ReplicaTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The budgets are created without waiting, then waited for once: they are on the replica
	// before the load starts, however slow its first confirmation.
	setup, err := valkey.NewClient(ctx, rdb, valkey.Options{SkipLoad: true})
	if err != nil {
		t.Fatal(err)
	}
	budgets := []string{"f0", "f1", "f2", "f3"}
	for _, b := range budgets {
		if _, err := setup.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: b}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica after setup: %d, %v", n, err)
	}

	round := failoverRound{errorKinds: map[string]int{}}
	var mu sync.Mutex
	confirmed, unconfirmed := map[string][]string{}, map[string][]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			budget := budgets[c%len(budgets)]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("c%d-%d", c, n)
				for attempt := 0; ; attempt++ {
					_, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: budget, Deltas: map[string]int64{"t": 1}, DedupKey: key})
					mu.Lock()
					switch {
					case err == nil:
						confirmed[budget] = append(confirmed[budget], key)
					case errors.Is(err, valkey.ErrNotReplicated):
						unconfirmed[budget] = append(unconfirmed[budget], key)
						round.errorKinds[errorKind(err)]++
					default:
						round.errorKinds[errorKind(err)]++
						if attempt == 0 {
							round.retried++
						}
					}
					mu.Unlock()
					if err == nil || errors.Is(err, valkey.ErrNotReplicated) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	primary.Kill()
	if err := replica.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	promoted := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer promoted.Close()
	if err := promoted.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	addr.Store(replica.Addr)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	// What the promoted replica counted, before the replays below add to it.
	var counted int64
	for _, b := range budgets {
		st, err := client.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: b})
		if err != nil {
			t.Fatal(err)
		}
		counted += st.Usage["t"]
	}
	survived := 0
	replay := func(budget string, keys []string) (lost int) {
		for len(keys) > 0 {
			n := min(len(keys), spendcap.MaxBatchItems)
			items := make([]spendcap.BatchItem, n)
			for i, k := range keys[:n] {
				items[i] = spendcap.BatchItem{BudgetID: budget, Deltas: map[string]int64{"t": 1}, DedupKey: k}
			}
			res, err := client.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items})
			if err != nil && !errors.Is(err, valkey.ErrNotReplicated) {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Outcome.Replayed {
					survived++
				} else {
					lost++
				}
			}
			keys = keys[n:]
		}
		return lost
	}
	for _, b := range budgets {
		round.confirmed += len(confirmed[b])
		round.unconfirmed += len(unconfirmed[b])
		round.lostConfirmed += replay(b, confirmed[b])
		round.lostUnconfirmed += replay(b, unconfirmed[b])
	}
	if int64(survived) != counted {
		t.Errorf("the promoted replica counted %d tokens for %d surviving keys: something was counted twice or lost without its key", counted, survived)
	}
	findings, err := client.Audit(ctx, spendcap.AuditParams{})
	if err != nil || len(findings) > 0 {
		t.Errorf("audit on the promoted replica: %v, %v", findings, err)
	}
	// The settings of the new primary were checked once calls reached it.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "appendfsync everysec"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no settings check of the promoted replica (appendfsync everysec) was logged:\n%s", logs.String())
			break
		}
	}
	return round
}

// With MinReplicas 1, a failover to a replica that lagged loses no call acknowledged as a plain
// success: the calls the replica did not confirm were reported to their callers with
// ErrNotReplicated. The errors a caller sees are that, and connection errors it retries with its
// key; nothing is counted twice.
func TestValkeyFailoverLosesNoCallTheReplicaConfirmed(t *testing.T) {
	for r := 0; r < rounds(t); r++ {
		res := failover(t, 1)
		t.Logf("round %d, MinReplicas 1: %d confirmed, %d lost; %d unconfirmed, %d of them lost; %d calls retried after an error; errors %v",
			r, res.confirmed, res.lostConfirmed, res.unconfirmed, res.lostUnconfirmed, res.retried, res.errorKinds)
		if res.lostConfirmed > 0 {
			t.Errorf("round %d: %d calls acknowledged as confirmed by the replica were lost", r, res.lostConfirmed)
		}
		if res.confirmed == 0 || res.unconfirmed == 0 {
			t.Errorf("round %d: %d confirmed and %d unconfirmed calls: the load did not cover both", r, res.confirmed, res.unconfirmed)
		}
		for kind := range res.errorKinds {
			if kind != "ErrNotReplicated" && kind != "connection" {
				t.Errorf("round %d: a caller saw %q", r, kind)
			}
		}
	}
}

// Without MinReplicas, the same failover loses acknowledged calls: the test counts them (it does
// not assert a number: how many depends on the replica's lag).
func TestValkeyFailoverWithoutWaitingForReplicasCountsWhatItLoses(t *testing.T) {
	for r := 0; r < rounds(t); r++ {
		res := failover(t, 0)
		t.Logf("round %d, MinReplicas 0: %d acknowledged, %d lost (%.1f%%); %d calls retried after an error; errors %v",
			r, res.confirmed, res.lostConfirmed, 100*float64(res.lostConfirmed)/float64(max(res.confirmed, 1)), res.retried, res.errorKinds)
		for kind := range res.errorKinds {
			if kind != "connection" {
				t.Errorf("round %d: a caller saw %q", r, kind)
			}
		}
	}
}

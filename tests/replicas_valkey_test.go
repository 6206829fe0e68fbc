package tests

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/valkey"
)

// startReplicated starts a primary and a replica of it on loopback and waits until the replica is
// in sync.
func startReplicated(t *testing.T) (primary, replica *localserver.Valkey) {
	t.Helper()
	var err error
	if primary, err = localserver.StartValkey(ctx, localserver.ValkeyOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Stop)
	if replica, err = localserver.StartValkey(ctx, localserver.ValkeyOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	if err := replica.ReplicaOf(ctx, primary); err != nil {
		t.Fatal(err)
	}
	return primary, replica
}

// With MinReplicas, a write returns once the replica has it; a write the replica did not confirm in
// time returns its outcome with ErrNotReplicated, never as plain success; while the replica does
// not confirm, writes do not wait for it; once it is back, a write waits again and succeeds.
func TestValkeyWriteWaitsForItsReplicaAndSaysWhenItDidNot(t *testing.T) {
	t.Parallel()
	primary, replica := startReplicated(t)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, MinReplicas: 1, ReplicaTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: map[string]int64{"tokens": 1000}}); err != nil {
		t.Fatal(err)
	}
	report := func(key string) (spendcap.Outcome, time.Duration, error) {
		start := time.Now()
		o, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"tokens": 1}, DedupKey: key})
		return o, time.Since(start), err
	}
	if o, _, err := report("k1"); err != nil || !o.Applied {
		t.Fatalf("with the replica in sync: %v, %v", o, err)
	}

	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	o, took, err := report("k2")
	var rerr *valkey.ReplicationError
	if !errors.Is(err, valkey.ErrNotReplicated) || !errors.As(err, &rerr) || !rerr.Waited || rerr.Confirmed != 0 || !o.Applied {
		t.Fatalf("with the replica frozen: outcome %v, err %v; want the applied outcome and ErrNotReplicated after a wait", o, err)
	}
	if took < 450*time.Millisecond {
		t.Errorf("the unconfirmed write returned after %v, before its timeout", took)
	}
	o, took, err = report("k3")
	if !errors.As(err, &rerr) || rerr.Waited || !o.Applied {
		t.Fatalf("the next write: outcome %v, err %v; want ErrNotReplicated without a wait", o, err)
	}
	if took > 200*time.Millisecond {
		t.Errorf("the next write took %v: it waited for a replica that did not confirm the last one", took)
	}

	if err := replica.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// One write a second waits again; the replica confirms it, and writes wait from then on.
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; ; n++ {
		_, _, err := report(fmt.Sprintf("back%d", n))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still unconfirmed 5 s after the replica resumed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, _, err := report("k4"); err != nil {
		t.Errorf("a write after the replica came back: %v", err)
	}
	// Reads never wait.
	if _, err := client.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"}); err != nil {
		t.Fatal(err)
	}
}

// A batch waits for its replica as one write, and a Batcher hands each of its calls the outcome
// with ErrNotReplicated when the replica did not confirm.
func TestValkeyBatchAndBatcherSayWhenTheReplicaDidNotConfirm(t *testing.T) {
	t.Parallel()
	primary, replica := startReplicated(t)
	rdb := redis.NewClient(&redis.Options{Addr: primary.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, MinReplicas: 1, ReplicaTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b"}); err != nil {
		t.Fatal(err)
	}
	items := []spendcap.BatchItem{{BudgetID: "b", Deltas: map[string]int64{"tokens": 1}}, {BudgetID: "b", Deltas: map[string]int64{"tokens": 2}}}
	if res, err := client.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items}); err != nil || len(res) != 2 {
		t.Fatalf("batch with the replica in sync: %v, %v", res, err)
	}
	if err := replica.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Signal(syscall.SIGCONT) })
	res, err := client.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items})
	if !errors.Is(err, valkey.ErrNotReplicated) || len(res) != 2 || !res[0].Outcome.Applied || !res[1].Outcome.Applied {
		t.Fatalf("batch with the replica frozen: %v, %v; want both outcomes and ErrNotReplicated", res, err)
	}
	b := spendcap.NewBatcher(client, spendcap.BatcherOptions{})
	defer b.Close()
	o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"tokens": 4}})
	if !errors.Is(err, valkey.ErrNotReplicated) || !o.Applied {
		t.Fatalf("a Batcher call with the replica frozen: %v, %v; want the outcome and ErrNotReplicated", o, err)
	}
	st, err := client.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
	if err != nil || st.Usage["tokens"] != 10 {
		t.Errorf("usage %v (%v), want 10: every unconfirmed write happened on the primary", st.Usage, err)
	}
}

// Package faults kills the servers under load and checks what survives: nothing acknowledged is
// lost, nothing is counted twice once the calls in flight are retried with their keys, and the
// audit finds every aggregate equal to its rows. Each test starts its own server from the binaries
// on this machine, with the durability settings production runs, because it must kill it: a
// server from the environment or from Docker is not ours to kill.
package faults

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) {
	// Every kill makes each pooled connection log its failed dials: the test counts failures itself.
	redis.SetLogger(quiet{})
	testenv.Main(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// clients is how many callers report at once when the server is killed.
const clients = 32

// rounds is how many kills a test survives: 3, or $SPENDCAP_FAULT_ROUNDS for a longer run.
func rounds(t *testing.T) int {
	if s := os.Getenv("SPENDCAP_FAULT_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("SPENDCAP_FAULT_ROUNDS=%q: want a positive integer", s)
		}
		return n
	}
	return 3
}

type backend interface {
	spendcap.Budgets
	spendcap.BatchReporter
}

// target is a server the test can kill, and how to read what it kept.
type target struct {
	b backend
	// kill kills the server in round n's way.
	kill    func(n int)
	restart func(context.Context) error
	// total is the usage of dimension "t" a budget has counted over all its windows.
	total func(ctx context.Context, id string) (int64, error)
	// audit returns the audit's findings, described.
	audit func(ctx context.Context) ([]string, error)
	// mayLose says the setting may lose acknowledged reports on a kill, as appendfsync everysec
	// may: only what it kept is checked, and the loss reported.
	mayLose bool
}

// The budgets of the load: flat budgets alone, keys under two teams under one organisation (sets
// of three), and model tags charged along with a key (sets of four).
var (
	flats   = []string{"flat-0", "flat-1", "flat-2", "flat-3"}
	keys    = []string{"key-0", "key-1", "key-2", "key-3", "key-4", "key-5", "key-6", "key-7"}
	models  = []string{"model-0", "model-1"}
	parents = map[string]string{"team-0": "org", "team-1": "org"}
)

func init() {
	for i, k := range keys {
		parents[k] = fmt.Sprintf("team-%d", i%2)
	}
}

// budgetIDs lists every budget of the load, each after its parent.
func budgetIDs() []string {
	ids := []string{"org", "team-0", "team-1"}
	ids = append(ids, keys...)
	ids = append(ids, flats...)
	return append(ids, models...)
}

// createBudgets creates the load's budgets, without limits so that every report applies;
// resetEvery (may be empty) is given to the organisation and the keys so that windows roll.
func createBudgets(t *testing.T, b backend, resetEvery string) {
	t.Helper()
	for _, id := range budgetIDs() {
		p := spendcap.CreateBudgetParams{BudgetID: id, ParentID: parents[id]}
		if id == "org" || parents[id] != "" && parents[id] != "org" {
			p.ResetEvery = resetEvery
		}
		if _, err := b.CreateBudget(context.Background(), p); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
}

// chargedBy lists the budgets an item charges: its budget, the budgets it also charges, and the
// ancestors of each.
func chargedBy(it spendcap.BatchItem) []string {
	var set []string
	for _, id := range append([]string{it.BudgetID}, it.AlsoCharge...) {
		for ; id != ""; id = parents[id] {
			if !slices.Contains(set, id) {
				set = append(set, id)
			}
		}
	}
	return set
}

// amountOf derives an item's amount from its dedup key, so a retry sends the same deltas.
func amountOf(key string) int64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return 1 + int64(h.Sum32()%9)
}

// call is one report_usage (one item) or one report_usage_batch.
type call struct {
	items []spendcap.BatchItem
	batch bool
}

// newCall is client c's n-th call of the round: each client keeps to one shape (a flat budget, a
// key and its chain, a key with a model, or a batch of five mixed items).
func newCall(round, c, n int) call {
	item := func(i int, budget string, also ...string) spendcap.BatchItem {
		key := fmt.Sprintf("r%d-c%d-n%d-i%d", round, c, n, i)
		return spendcap.BatchItem{BudgetID: budget, Deltas: map[string]int64{"t": amountOf(key)}, DedupKey: key, AlsoCharge: also}
	}
	switch c % 4 {
	case 0:
		return call{items: []spendcap.BatchItem{item(0, flats[c/4%len(flats)])}}
	case 1:
		return call{items: []spendcap.BatchItem{item(0, keys[c%len(keys)])}}
	case 2:
		return call{items: []spendcap.BatchItem{item(0, keys[c%len(keys)], models[c/4%len(models)])}}
	default:
		var items []spendcap.BatchItem
		for i := 0; i < 5; i++ {
			if i%2 == 0 {
				items = append(items, item(i, keys[(c+i)%len(keys)]))
			} else {
				items = append(items, item(i, flats[(c+i)%len(flats)]))
			}
		}
		return call{items: items, batch: true}
	}
}

// errItem is an item that failed with a SPEC error: never expected here, every report applies.
var errItem = errors.New("item failed")

// send makes the call and returns one outcome per item.
func send(ctx context.Context, b backend, c call) ([]spendcap.Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if !c.batch {
		it := c.items[0]
		o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey, AlsoCharge: it.AlsoCharge})
		return []spendcap.Outcome{o}, err
	}
	rs, err := b.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: c.items})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.Outcome, len(rs))
	for i, r := range rs {
		if r.Err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", errItem, i, r.Err)
		}
		out[i] = r.Outcome
	}
	return out, nil
}

// sums adds up, per budget, the amounts of the items of calls that pick says count.
type sums map[string]int64

func (s sums) add(it spendcap.BatchItem) {
	for _, id := range chargedBy(it) {
		s[id] += it.Deltas["t"]
	}
}

// roundFigures are what a round counted, for the log and the figures.
type roundFigures struct {
	acked, ackedItems, inflight, inflightItems, committed int
	// lost is the acknowledged amount the restarted server did not have.
	lost int64
}

// survive runs rounds of: 32 clients reporting with dedup keys, the server killed at a random
// moment, restarted; then it checks that every budget counted at least what was acknowledged and
// exactly that plus the calls in flight that had committed (those the retry replays), that the
// retry with the same keys makes each budget's usage the sum of its distinct keys, and that the
// audit finds nothing. With tg.mayLose, what was kept may be less than what was acknowledged
// (the loss is logged), never more than what was sent, and the retry still counts each key once.
func survive(t *testing.T, tg target) {
	ctx := context.Background()
	acked := sums{}
	var total roundFigures
	for round := 0; round < rounds(t); round++ {
		var (
			mu       sync.Mutex
			inflight []call
			fig      roundFigures
			wg       sync.WaitGroup
			failed   = make(chan error, clients)
		)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each client reports until its first error, which the kill brings: the call that
				// failed is in flight, it may or may not have committed.
				for n := 0; ; n++ {
					cl := newCall(round, c, n)
					outs, err := send(ctx, tg.b, cl)
					if errors.Is(err, errItem) {
						failed <- err
						return
					}
					mu.Lock()
					if err != nil {
						inflight = append(inflight, cl)
						fig.inflight++
						fig.inflightItems += len(cl.items)
						mu.Unlock()
						return
					}
					for i, o := range outs {
						if !o.Applied || o.Replayed {
							mu.Unlock()
							failed <- fmt.Errorf("%s: outcome %+v, want applied and not replayed", cl.items[i].DedupKey, o)
							return
						}
						acked.add(cl.items[i])
					}
					fig.acked++
					fig.ackedItems += len(cl.items)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(500*time.Millisecond + rand.N(time.Second))
		tg.kill(round)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: clients still running 60 s after the kill", round)
		}
		close(failed)
		for err := range failed {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := tg.restart(ctx); err != nil {
			t.Fatalf("round %d: restart: %v", round, err)
		}

		// What the server kept: never more than was sent; with a durable setting at least every
		// acknowledged report.
		inflightSums := sums{}
		for _, cl := range inflight {
			for _, it := range cl.items {
				inflightSums.add(it)
			}
		}
		kept := totals(t, tg)
		for _, id := range budgetIDs() {
			if kept[id] > acked[id]+inflightSums[id] || !tg.mayLose && kept[id] < acked[id] {
				t.Errorf("round %d: %s counts %d after the restart, want %d (acknowledged) to %d (and in flight)",
					round, id, kept[id], acked[id], acked[id]+inflightSums[id])
			}
		}

		// The retry with the same keys: an item that had committed replays, the others apply.
		committed := sums{}
		for _, cl := range inflight {
			outs := retry(t, tg.b, cl)
			for i, o := range outs {
				if !o.Applied {
					t.Fatalf("round %d: retry of %s: %+v, want applied", round, cl.items[i].DedupKey, o)
				}
				if o.Replayed {
					committed.add(cl.items[i])
				}
			}
			if outs[0].Replayed {
				fig.committed++
			}
		}
		after := totals(t, tg)
		for _, id := range budgetIDs() {
			// Exactly the acknowledged reports and the in-flight ones the retry replayed had counted.
			if want := acked[id] + committed[id]; kept[id] != want && !tg.mayLose {
				t.Errorf("round %d: %s counted %d after the restart; the acknowledged reports and the in-flight ones the retry replayed add up to %d",
					round, id, kept[id], want)
			}
			if want := kept[id] + inflightSums[id] - committed[id]; after[id] != want {
				t.Errorf("round %d: %s counts %d after the retry, want %d (what it kept and the in-flight keys it had not, once)", round, id, after[id], want)
			}
		}
		// Every report charges the organisation (keys) or a flat budget, once.
		for _, id := range append([]string{"org"}, flats...) {
			fig.lost += acked[id] + committed[id] - kept[id]
		}
		acked = after
		findings, err := tg.audit(ctx)
		if err != nil {
			t.Fatalf("round %d: audit: %v", round, err)
		}
		for _, f := range findings {
			t.Errorf("round %d: audit: %s", round, f)
		}
		t.Logf("round %d: %d calls acknowledged (%d items), %d in flight at the kill (%d items), %d of them had committed, %d acknowledged tokens lost; audit: %d findings",
			round, fig.acked, fig.ackedItems, fig.inflight, fig.inflightItems, fig.committed, fig.lost, len(findings))
		total.acked += fig.acked
		total.ackedItems += fig.ackedItems
		total.inflight += fig.inflight
		total.inflightItems += fig.inflightItems
		total.committed += fig.committed
		total.lost += fig.lost
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds: %d calls acknowledged (%d items), %d in flight (%d items), %d of those had committed, %d applied by the retry; %d acknowledged tokens lost; audit clean",
		rounds(t), total.acked, total.ackedItems, total.inflight, total.inflightItems, total.committed, total.inflight-total.committed, total.lost)
}

// totals reads every budget's total, retrying while the restarted server warms up.
func totals(t *testing.T, tg target) sums {
	t.Helper()
	out := sums{}
	for _, id := range budgetIDs() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := tg.total(context.Background(), id)
			if err == nil {
				out[id] = n
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("total of %s: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

// retry sends a call until the restarted server answers it.
func retry(t *testing.T, b backend, cl call) []spendcap.Outcome {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		outs, err := send(context.Background(), b, cl)
		if err == nil {
			return outs
		}
		if errors.Is(err, errItem) || time.Now().After(deadline) {
			t.Fatalf("retry of %s: %v", cl.items[0].DedupKey, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

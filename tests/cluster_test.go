package tests

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/tests/conformance"
	"github.com/spendcap/spendcap/valkey"
)

// clusterSlice names the conformance scenarios run through a ClusterClient: windows, admission,
// keys, the ledger and reservations, budget sets (whose ids the prefix puts in one slot), usage
// series, remaining, if_exists (validation scenarios depend on exact ids, which the prefix below
// changes).
var clusterSlice = []string{"Monthly", "Daily", "Hourly", "Report", "Hard", "Soft", "Observe", "Key", "Release",
	"RecordSpend", "Reservation", "Settle", "Cancel", "ManualReset", "History", "DeleteBudget", "SetLimits", "Quota",
	"Chain", "Set", "Tag", "Level", "Parent", "Top", "UsageSeries", "Remaining", "IfExists"}

// startCluster starts a Valkey Cluster of 3 primaries for the test and returns its client.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	cluster, err := localserver.StartValkeyCluster(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestValkeyClusterPassesTheConformanceSlice(t *testing.T) {
	t.Parallel()
	rdb := startCluster(t)
	c, err := valkey.NewClient(context.Background(), rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	// The library is on every primary.
	var mu sync.Mutex
	primaries := 0
	err = rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: valkey.LibraryName}).Result()
		if err == nil && len(libs) == 1 {
			mu.Lock()
			primaries++
			mu.Unlock()
		}
		return err
	})
	if err != nil || primaries != 3 {
		t.Fatalf("library on %d of 3 primaries (%v)", primaries, err)
	}
	var seq atomic.Int64
	ran := 0
	// t.Run returns when the parallel scenarios of the group have finished.
	t.Run("slice", func(t *testing.T) {
		conformance.RunSelected(t, func(t *testing.T) spendcap.Backend {
			return prefixed{c, fmt.Sprintf("t%d/", seq.Add(1))} // ids t<n>/<id>: hash tag t<n>
		}, func(name string) bool {
			if strings.Contains(name, "Validation") || strings.Contains(name, "Invalid") {
				return false
			}
			for _, s := range clusterSlice {
				if strings.Contains(name, s) {
					ran++
					return true
				}
			}
			return false
		})
	})
	if ran < 30 {
		t.Errorf("the slice ran %d scenarios", ran)
	}
	// The budgets of the scenarios spread over every primary.
	keys := 0
	_ = rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		if k, err := n.DBSize(ctx).Result(); err == nil && k > 0 {
			mu.Lock()
			keys++
			mu.Unlock()
		}
		return nil
	})
	if keys != 3 {
		t.Errorf("keys on %d of 3 primaries", keys)
	}
	// Every key the scenarios left is placed by the first segment of its id (t<n>), the budget's
	// own keys and its reservations, ledgers, histories and dedup keys alike.
	_ = rdb.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		iter := n.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if strings.HasPrefix(k, "sc:ix:{") {
				continue // a slot's listing index (TestValkeyClusterListsTheBudgetsOfEverySlot)
			}
			open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}')
			if open < 0 || end < open || strings.ContainsRune(k[open+1:end], '/') || !strings.HasPrefix(k[open+1:], "t") {
				t.Errorf("key %q is not placed by the first segment of its id", k)
			}
		}
		return iter.Err()
	})
	// The operator's gauges read the budgets of every primary: the ranking scans each node, and
	// the budgets named by id, spread over the slots, come back the same in one pipelined read.
	top, err := c.BudgetGauges(ctx, spendcap.BudgetGaugesParams{TopN: 20})
	if err != nil {
		t.Fatalf("gauges ranked on a cluster: %v", err)
	}
	var ids []string
	slots := map[string]bool{}
	for _, g := range top {
		if len(ids) == 0 || ids[len(ids)-1] != g.BudgetID {
			ids = append(ids, g.BudgetID)
			slots[strings.SplitN(g.BudgetID, "/", 2)[0]] = true
		}
	}
	if len(ids) < 2 || len(slots) < 2 {
		t.Fatalf("the top 20 on a cluster: %v", ids)
	}
	named, err := c.BudgetGauges(ctx, spendcap.BudgetGaugesParams{BudgetIDs: ids})
	if err != nil || gaugesString(named) != gaugesString(top) {
		t.Errorf("gauges of the ranked ids by name on a cluster: %v\n got %s\nwant %s", err, gaugesString(named), gaugesString(top))
	}
}

// On a cluster each slot has its listing index, in that slot; ListBudgets merges them: every
// listing scenario passes there too, one after the other on a flushed cluster.
func TestValkeyClusterListsTheBudgetsOfEverySlot(t *testing.T) {
	t.Parallel()
	rdb := startCluster(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(listingScenarios))
	for name := range listingScenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.FlushAll(ctx).Err() }); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { listingScenarios[name](t, c) })
	}
	// The fixture's budgets are in five slots; each slot's index is in that slot, on its node.
	var mu sync.Mutex
	indexes := 0
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, "sc:ix:*:ids").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			ids, err := n.ZRange(ctx, k, 0, -1).Result()
			if err != nil {
				return err
			}
			for _, id := range ids {
				if a, b := rdb.ClusterKeySlot(ctx, k).Val(), rdb.ClusterKeySlot(ctx, valkey.Key(id)).Val(); a != b {
					t.Errorf("budget %s (slot %d) is listed in %s (slot %d)", id, b, k, a)
				}
			}
			mu.Lock()
			indexes++
			mu.Unlock()
		}
		return nil
	})
	if err != nil || indexes < 3 {
		t.Errorf("%d slot indexes (%v)", indexes, err)
	}
	// Quota policies too: one index per slot, merged in id order, a page at a time.
	for _, id := range []string{"q1/a", "q2/b", "q3/c", "q4", "q5/e"} {
		if _, err := c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: id, MaxConcurrent: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var pages []string
	after := ""
	for range 4 {
		page, err := c.ListQuotaPolicies(ctx, spendcap.ListQuotaPoliciesParams{After: after, MaxRows: 2})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range page.Policies {
			ids = append(ids, p.PolicyID)
		}
		pages = append(pages, strings.Join(ids, " "))
		if after = page.Next; after == "" {
			break
		}
	}
	if got := strings.Join(pages, " | "); got != "q1/a q2/b | q3/c q4 | q5/e" {
		t.Errorf("policy pages on a cluster: %s", got)
	}
}

func TestValkeyBudgetsSharingTheFirstSegmentOfTheirIdsShareASlot(t *testing.T) {
	t.Parallel()
	rdb := startCluster(t)
	slot := func(key string) int64 {
		s, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	org := slot(valkey.Key("acme"))
	for _, id := range []string{"acme/team-1", "acme/team-1/key-7", "acme/daily"} {
		if got := slot(valkey.Key(id)); got != org {
			t.Errorf("budget %s in slot %d, acme in %d", id, got, org)
		}
	}
	if got := slot(valkey.PolicyKey("acme/rpm")); got != slot(valkey.PolicyKey("acme")) {
		t.Errorf("policy acme/rpm in slot %d, acme in %d", got, slot(valkey.PolicyKey("acme")))
	}

	t.Run("ASetInOneSlotIsChargedAndASetAcrossSlotsIsRefusedWritingNothing", func(t *testing.T) {
		c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []spendcap.CreateBudgetParams{
			{BudgetID: "acme", HardLimits: map[string]int64{"t": 100}},
			{BudgetID: "acme/team", ParentID: "acme"},
			{BudgetID: "acme/key", ParentID: "acme/team"},
			{BudgetID: "globex"},
		} {
			if _, err := c.CreateBudget(ctx, p); err != nil {
				t.Fatalf("create %s: %v", p.BudgetID, err)
			}
		}
		usage := func() string {
			var parts []string
			for _, id := range []string{"acme/key", "acme/team", "acme", "globex"} {
				st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
				if err != nil {
					t.Fatal(err)
				}
				parts = append(parts, fmt.Sprintf("%s=%v/%d", id, st.Usage, st.BreachCount))
			}
			return strings.Join(parts, " ")
		}
		if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/key", Deltas: map[string]int64{"t": 30}}); err != nil || o.Kind != spendcap.OutcomeOK {
			t.Fatalf("charge to the chain in one slot: %+v, %v", o, err)
		}
		want := "acme/key=map[t:30]/0 acme/team=map[t:30]/0 acme=map[t:30]/0 globex=map[]/0"
		if got := usage(); got != want {
			t.Fatalf("after the charge: %s", got)
		}
		_, err = c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/key", Deltas: map[string]int64{"t": 1}, AlsoCharge: []string{"globex"}})
		if !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), "globex") {
			t.Errorf("a set across slots: %v; want SC002 naming the budgets", err)
		}
		// The library itself refuses a call whose keys miss an ancestor, before it writes.
		err = rdb.FCall(ctx, "sc_report_usage", []string{valkey.Key("acme/key")}, `{"budget_id":"acme/key","deltas":{"t":1}}`).Err()
		// (cjson writes / as \/ in strings.)
		if err == nil || !strings.HasPrefix(strings.ReplaceAll(err.Error(), `\/`, "/"), `SC002 keys: missing the keys of budgets ["acme","acme/team"]`) {
			t.Errorf("a call without its ancestors' keys: %v", err)
		}
		if got := usage(); got != want {
			t.Errorf("refused calls wrote: %s", got)
		}
	})
	t.Run("ABatcherSendsReportsOfDifferentSlotsInDifferentBatches", func(t *testing.T) {
		c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"initech/key", "hooli/key", "umbrella/key"}
		for _, id := range ids {
			if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id}); err != nil {
				t.Fatal(err)
			}
		}
		// One call at a time and a wait, so that reports of all three slots are queued together:
		// one batch holding them would be refused (a cluster batch fits one slot).
		b := spendcap.NewBatcher(c, spendcap.BatcherOptions{MaxInFlight: 1, MaxWait: 20 * time.Millisecond})
		defer b.Close()
		const perBudget = 20
		var wg sync.WaitGroup
		errs := make(chan error, perBudget*len(ids))
		for i := range perBudget * len(ids) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: ids[i%len(ids)], Deltas: map[string]int64{"t": 1}})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a report through the Batcher: %v", err)
			}
		}
		for _, id := range ids {
			if st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id}); err != nil || st.Usage["t"] != perBudget {
				t.Errorf("%s: usage %v, %v; want %d", id, st.Usage, err, perBudget)
			}
		}
	})
}

// prefixed gives each test its own budget and policy ids on a shared server (a cluster has one
// database).
type prefixed struct {
	spendcap.Backend
	p string
}

func (b prefixed) CreateBudget(ctx context.Context, p spendcap.CreateBudgetParams) (spendcap.CreateBudgetResult, error) {
	p.BudgetID = b.p + p.BudgetID
	if p.ParentID != "" {
		p.ParentID = b.p + p.ParentID
	}
	c, err := b.Backend.CreateBudget(ctx, p)
	c.BudgetID = strings.TrimPrefix(c.BudgetID, b.p)
	return c, err
}

func (b prefixed) SetParent(ctx context.Context, p spendcap.SetParentParams) (spendcap.Status, error) {
	p.BudgetID = b.p + p.BudgetID
	if p.ParentID != "" {
		p.ParentID = b.p + p.ParentID
	}
	st, err := b.Backend.SetParent(ctx, p)
	st.BudgetID = strings.TrimPrefix(st.BudgetID, b.p)
	st.ParentID = strings.TrimPrefix(st.ParentID, b.p)
	return st, err
}

func (b prefixed) SetLimits(ctx context.Context, p spendcap.SetLimitsParams) (spendcap.Status, error) {
	p.BudgetID = b.p + p.BudgetID
	st, err := b.Backend.SetLimits(ctx, p)
	st.BudgetID = strings.TrimPrefix(st.BudgetID, b.p)
	return st, err
}

func (b prefixed) DeleteBudget(ctx context.Context, p spendcap.DeleteBudgetParams) (bool, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.DeleteBudget(ctx, p)
}

func (b prefixed) ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error) {
	p.BudgetID, p.AlsoCharge = b.p+p.BudgetID, b.all(p.AlsoCharge)
	return b.outcome(b.Backend.ReportUsage(ctx, p))
}

func (b prefixed) CheckUsage(ctx context.Context, p spendcap.CheckUsageParams) (spendcap.Outcome, error) {
	p.BudgetID, p.AlsoCharge = b.p+p.BudgetID, b.all(p.AlsoCharge)
	return b.outcome(b.Backend.CheckUsage(ctx, p))
}

func (b prefixed) RecordSpend(ctx context.Context, p spendcap.RecordSpendParams) (spendcap.Outcome, error) {
	p.BudgetID, p.AlsoCharge = b.p+p.BudgetID, b.all(p.AlsoCharge)
	return b.outcome(b.Backend.RecordSpend(ctx, p))
}

func (b prefixed) ReleaseSpend(ctx context.Context, p spendcap.ReleaseSpendParams) (map[string]int64, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.ReleaseSpend(ctx, p)
}

func (b prefixed) Reserve(ctx context.Context, p spendcap.ReserveParams) (spendcap.Outcome, error) {
	p.BudgetID, p.AlsoCharge = b.p+p.BudgetID, b.all(p.AlsoCharge)
	return b.outcome(b.Backend.Reserve(ctx, p))
}

func (b prefixed) Settle(ctx context.Context, p spendcap.SettleParams) (spendcap.Outcome, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.outcome(b.Backend.Settle(ctx, p))
}

// all prefixes every id of a list.
func (b prefixed) ReportUsageBatch(ctx context.Context, p spendcap.ReportUsageBatchParams) ([]spendcap.BatchResult, error) {
	items := make([]spendcap.BatchItem, len(p.Items))
	for i, it := range p.Items {
		it.BudgetID, it.AlsoCharge = b.p+it.BudgetID, b.all(it.AlsoCharge)
		items[i] = it
	}
	p.Items = items
	res, err := b.Backend.(spendcap.BatchReporter).ReportUsageBatch(ctx, p)
	for i := range res {
		res[i].Outcome, _ = b.outcome(res[i].Outcome, nil)
	}
	return res, err
}

// EventsSince reads the events of the backend's one slot group (every id starts with p) and
// answers those of p.Group's budgets, unprefixed.
func (b prefixed) EventsSince(ctx context.Context, p spendcap.EventsSinceParams) ([]spendcap.Event, error) {
	group := p.Group
	p.Group = strings.TrimSuffix(b.p, "/")
	es, err := b.Backend.(spendcap.EventSource).EventsSince(ctx, p)
	var out []spendcap.Event
	for _, e := range es {
		e.BudgetID = strings.TrimPrefix(e.BudgetID, b.p)
		if e.BudgetID == group || strings.HasPrefix(e.BudgetID, group+"/") {
			out = append(out, e)
		}
	}
	return out, err
}

func (b prefixed) all(ids []string) []string {
	if ids == nil {
		return nil
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = b.p + id
	}
	return out
}

func (b prefixed) outcome(o spendcap.Outcome, err error) (spendcap.Outcome, error) {
	o.BreachBudgetID = strings.TrimPrefix(o.BreachBudgetID, b.p)
	return o, err
}

func (b prefixed) CancelReservation(ctx context.Context, p spendcap.CancelReservationParams) (map[string]int64, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.CancelReservation(ctx, p)
}

func (b prefixed) ResetBudget(ctx context.Context, p spendcap.ResetBudgetParams) (spendcap.Window, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.ResetBudget(ctx, p)
}

func (b prefixed) BudgetStatus(ctx context.Context, p spendcap.BudgetStatusParams) (spendcap.Status, error) {
	p.BudgetID = b.p + p.BudgetID
	st, err := b.Backend.BudgetStatus(ctx, p)
	st.BudgetID = strings.TrimPrefix(st.BudgetID, b.p)
	st.ParentID = strings.TrimPrefix(st.ParentID, b.p)
	return st, err
}

func (b prefixed) BudgetHistory(ctx context.Context, p spendcap.BudgetHistoryParams) ([]spendcap.HistoryWindow, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.BudgetHistory(ctx, p)
}

func (b prefixed) UsageSeries(ctx context.Context, p spendcap.UsageSeriesParams) ([]spendcap.UsageBucket, error) {
	p.BudgetID = b.p + p.BudgetID
	return b.Backend.(spendcap.SeriesReader).UsageSeries(ctx, p)
}

func (b prefixed) CreateQuotaPolicy(ctx context.Context, p spendcap.CreateQuotaPolicyParams) (spendcap.CreateQuotaPolicyResult, error) {
	p.PolicyID = b.p + p.PolicyID
	r, err := b.Backend.CreateQuotaPolicy(ctx, p)
	r.PolicyID = strings.TrimPrefix(r.PolicyID, b.p)
	return r, err
}

func (b prefixed) AcquireQuota(ctx context.Context, p spendcap.AcquireQuotaParams) (spendcap.Acquired, error) {
	p.PolicyID, p.AlsoPolicies = b.p+p.PolicyID, b.all(p.AlsoPolicies)
	r, err := b.Backend.AcquireQuota(ctx, p)
	r.PolicyID = strings.TrimPrefix(r.PolicyID, b.p)
	return r, err
}

func (b prefixed) RenewQuota(ctx context.Context, p spendcap.RenewQuotaParams) (time.Time, error) {
	p.PolicyID, p.AlsoPolicies = b.p+p.PolicyID, b.all(p.AlsoPolicies)
	return b.Backend.RenewQuota(ctx, p)
}

func (b prefixed) ReleaseQuota(ctx context.Context, p spendcap.ReleaseQuotaParams) (bool, error) {
	p.PolicyID, p.AlsoPolicies = b.p+p.PolicyID, b.all(p.AlsoPolicies)
	return b.Backend.ReleaseQuota(ctx, p)
}

func (b prefixed) QuotaStatus(ctx context.Context, p spendcap.QuotaStatusParams) (spendcap.QuotaStatus, error) {
	p.PolicyID = b.p + p.PolicyID
	st, err := b.Backend.QuotaStatus(ctx, p)
	st.PolicyID = strings.TrimPrefix(st.PolicyID, b.p)
	return st, err
}

func (b prefixed) DeleteQuotaPolicy(ctx context.Context, p spendcap.DeleteQuotaPolicyParams) (bool, error) {
	p.PolicyID = b.p + p.PolicyID
	return b.Backend.DeleteQuotaPolicy(ctx, p)
}

// On a Valkey Cluster, a write waits for its replicas on the primary of its key's slot, on the
// connection that made it: with no replica there, every write (a single call and a batch, on
// budgets of every slot) returns its outcome with ErrNotReplicated, and the next one does not
// wait.
func TestValkeyClusterWritesWaitForReplicasOnTheirSlotsPrimary(t *testing.T) {
	t.Parallel()
	rdb := startCluster(t)
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, MinReplicas: 1, ReplicaTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		_, err := client.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id})
		var rerr *valkey.ReplicationError
		if !errors.As(err, &rerr) {
			t.Fatalf("create_budget %s: %v, want ErrNotReplicated", id, err)
		}
		o, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1}})
		if !errors.Is(err, valkey.ErrNotReplicated) || !o.Applied {
			t.Fatalf("report_usage %s: %v, %v; want the applied outcome and ErrNotReplicated", id, o, err)
		}
		res, err := client.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: []spendcap.BatchItem{{BudgetID: id, Deltas: map[string]int64{"t": 2}}}})
		if !errors.Is(err, valkey.ErrNotReplicated) || len(res) != 1 || !res[0].Outcome.Applied {
			t.Fatalf("batch on %s: %v, %v", id, res, err)
		}
		st, err := client.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		if err != nil || st.Usage["t"] != 3 {
			t.Errorf("budget %s: usage %v, %v; want 3", id, st.Usage, err)
		}
	}
}

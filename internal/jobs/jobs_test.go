package jobs_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

func startWorker(t *testing.T, pool *pgxpool.Pool, cfg jobs.Config) *jobs.Worker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w, err := jobs.New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = w.Stop(stopCtx)
	})
	return w
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dueBudgets creates n daily budgets with usage in a window ten days ago. Their boundaries fall
// twelve hours from now, so once rolled they stay rolled for the rest of the test.
func dueBudgets(t *testing.T, c *gobinding.Client, n int) time.Time {
	t.Helper()
	past := time.Now().Add(-10*24*time.Hour - 12*time.Hour).Truncate(time.Millisecond)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%d", i)
		if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: "1 day", ResetAnchor: &past, At: past}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1}, At: past}); err != nil {
			t.Fatal(err)
		}
	}
	return past
}

func storedSeqs(t *testing.T, pool *pgxpool.Pool) map[int64]int {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT window_seq, count(*) FROM spendcap.budgets GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var seq int64
		var n int
		_ = rows.Scan(&seq, &n)
		out[seq] = n
	}
	return out
}

func TestWorkerRollsMissedWindowsOnSchedule(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	past := dueBudgets(t, c, 5)
	w := startWorker(t, pool, jobs.Config{RollInterval: time.Second, RollBatch: 2})
	eventually(t, "the worker rolls every due budget", 20*time.Second, func() bool {
		return storedSeqs(t, pool)[2] == 5
	})
	for i := 0; i < 5; i++ {
		h, err := c.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: fmt.Sprintf("b%d", i)})
		if err != nil || len(h) != 1 || h[0].ClosedBy != spendcap.ClosedBySchedule || h[0].WindowSeq != 1 || !h[0].WindowStart.Equal(past) ||
			!h[0].WindowEnd.Equal(past.Add(24*time.Hour)) || h[0].Usage["t"] != 1 {
			t.Errorf("history of b%d = %+v, %v; ten missed periods are one scheduled roll", i, h, err)
		}
	}
	if rolled, due := metric(t, w, "spendcap_windows_rolled_total"), metric(t, w, "spendcap_due_windows"); rolled != 5 || due != 0 {
		t.Errorf("metrics: rolled %v, due %v", rolled, due)
	}
}

func TestReportsRacingTheJobLoseNoUsage(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	ids := []string{"r0", "r1", "r2"}
	for _, id := range ids {
		if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: "1 second"}); err != nil {
			t.Fatal(err)
		}
	}
	startWorker(t, pool, jobs.Config{RollInterval: time.Second, RollBatch: 1})
	reported := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	end := time.Now().Add(3500 * time.Millisecond)
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				id := ids[(g+i)%len(ids)]
				o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1}})
				if err != nil || !o.Applied {
					t.Errorf("report: %+v %v", o, err)
					return
				}
				mu.Lock()
				reported[id]++
				mu.Unlock()
				time.Sleep(3 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		if err != nil {
			t.Fatal(err)
		}
		h, err := c.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, MaxRows: 1000})
		if err != nil {
			t.Fatal(err)
		}
		total := st.Usage["t"]
		seen := map[int64]bool{}
		for _, w := range h {
			total += w.Usage["t"]
			if seen[w.WindowSeq] {
				t.Errorf("%s: window %d closed twice", id, w.WindowSeq)
			}
			seen[w.WindowSeq] = true
		}
		if total != reported[id] || len(h) < 2 {
			t.Errorf("%s: %d reported, %d counted over %d closed windows and the current one", id, reported[id], total, len(h))
		}
	}
}

func TestTwoWorkersRollEachWindowOnce(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	pool := testenv.PoolFor(t, url)
	dueBudgets(t, gobinding.NewClient(pool, gobinding.Options{}), 200)
	// Two workers, each with its own pool, as two processes would be.
	a := startWorker(t, testenv.PoolFor(t, url), jobs.Config{RollInterval: time.Second, RollBatch: 7})
	b := startWorker(t, testenv.PoolFor(t, url), jobs.Config{RollInterval: time.Second, RollBatch: 7})
	eventually(t, "every window rolled", 20*time.Second, func() bool { return storedSeqs(t, pool)[2] == 200 })
	var history int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM spendcap.budget_history WHERE closed_by = 'schedule'`).Scan(&history); err != nil {
		t.Fatal(err)
	}
	rolled := metric(t, a, "spendcap_windows_rolled_total") + metric(t, b, "spendcap_windows_rolled_total")
	failures := metric(t, a, "spendcap_job_failures_total") + metric(t, b, "spendcap_job_failures_total")
	if history != 200 || rolled != 200 || failures != 0 || storedSeqs(t, pool)[3] != 0 {
		t.Errorf("history rows %d, rolled %v, failures %v; want each of 200 windows rolled exactly once", history, rolled, failures)
	}
}

func TestPurgeJobDeletesExpiredRows(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	past := time.Now().Add(-time.Hour)
	if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b", DedupTTL: 1 * time.Second, At: past}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		if _, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 1}, DedupKey: fmt.Sprint(i), At: past}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWorker(t, pool, jobs.Config{PurgeInterval: time.Second, PurgeBatch: 10})
	eventually(t, "expired keys purged", 20*time.Second, func() bool {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM spendcap.dedup_keys`).Scan(&n)
		return n == 0
	})
	eventually(t, "the purge is counted", 5*time.Second, func() bool { return metric(t, w, `spendcap_purged_rows_total{kind="dedup_keys"}`) == 25 })
}

// metric reads one sample from the worker's registry in the text exposition format.
func metric(t *testing.T, w *jobs.Worker, name string) float64 {
	t.Helper()
	families, err := w.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	base, labels, _ := strings.Cut(name, "{")
	labels = strings.TrimSuffix(labels, "}")
	var total float64
	for _, f := range families {
		if f.GetName() != base {
			continue
		}
		for _, m := range f.Metric {
			if labels != "" {
				var ls []string
				for _, l := range m.Label {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				if strings.Join(ls, ",") != labels {
					continue
				}
			}
			if m.Counter != nil {
				total += m.Counter.GetValue()
			} else if m.Gauge != nil {
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

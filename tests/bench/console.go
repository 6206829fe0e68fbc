package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
)

// The console's rows: the time the server takes for a page (the handler, its calls to the
// backend included) with 100,000 budgets (1,000 organisations of 99 keys each, used from 0 to
// 110% of their limit), one request at a time.
const (
	consoleBudgets      = 100_000
	consolePGList       = "console pg budgets page by utilisation 100k"
	consolePGFiltered   = "console pg budgets page near a limit by id 100k"
	consolePGBudget     = "console pg budget page 100k"
	consoleVKList       = "console valkey budgets page by utilisation 100k"
	consoleVKFiltered   = "console valkey budgets page near a limit by id 100k"
	consoleVKBudget     = "console valkey budget page 100k"
	consolePGParent     = "console pg parent budget page 100k"
	consoleVKParent     = "console valkey parent budget page 100k"
	consoleListTargetMs = 100 // p99 on PostgreSQL
	consoleVKTargetMs   = 500 // p99 on Valkey
	consolePageTargetMs = 50  // a budget's page, p99
)

func consoleBenches(ctx context.Context, only string) ([]bench, error) {
	names := strings.Join([]string{consolePGList, consolePGFiltered, consolePGBudget, consoleVKList, consoleVKFiltered, consoleVKBudget,
		consolePGParent, consoleVKParent}, "\n")
	if only != "" && !strings.Contains(names, only) {
		return nil, nil
	}
	started := time.Now()
	pool, _, vk, err := durableServers(ctx)
	if err != nil {
		return nil, err
	}
	// Organisations o<n>, keys o<n>/k<i> under them; usage spread from 0 to 110% of the limit
	// (over it only in observe mode, which admits past the limit).
	if _, err := pool.Exec(ctx, `
		SELECT spendcap.create_budget('o' || i, '{"usd": 100000000}', reset_every => '1 month') FROM generate_series(0, 999) AS i;
		SELECT spendcap.create_budget('o' || i % 1000 || '/k' || i, '{"usd": 1000, "tokens": 1000000}', parent_id => 'o' || i % 1000,
		                              reset_every => '1 day', mode => CASE WHEN i % 10 = 0 THEN 'observe' ELSE 'enforce' END)
		  FROM generate_series(1000, 99999) AS i;
		SELECT spendcap.report_usage('o' || i % 1000 || '/k' || i, jsonb_build_object('usd', (i::bigint * 7919) % 1100, 'tokens', (i::bigint * 104729) % 900000))
		  FROM generate_series(1000, 99999) AS i`); err != nil {
		return nil, fmt.Errorf("console postgres setup: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE spendcap.budgets`); err != nil {
		return nil, err
	}
	var orgs, keys []spendcap.CreateBudgetParams
	for i := range 1000 {
		orgs = append(orgs, spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("o%d", i), ResetEvery: "1 month"})
	}
	for i := 1000; i < consoleBudgets; i++ {
		mode := spendcap.ModeEnforce
		if i%10 == 0 {
			mode = spendcap.ModeObserve
		}
		keys = append(keys, spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("o%d/k%d", i%1000, i), ParentID: fmt.Sprintf("o%d", i%1000),
			ResetEvery: "1 day", Mode: mode, HardLimits: map[string]int64{"usd": 1000, "tokens": 1_000_000}})
	}
	if err := createEach(ctx, orgs, func(p spendcap.CreateBudgetParams) error {
		p.HardLimits = map[string]int64{"usd": 100_000_000}
		_, err := vk.CreateBudget(ctx, p)
		return err
	}); err != nil {
		return nil, err
	}
	if err := createEach(ctx, keys, func(p spendcap.CreateBudgetParams) error {
		if _, err := vk.CreateBudget(ctx, p); err != nil {
			return err
		}
		var i int64
		fmt.Sscanf(p.BudgetID[strings.IndexByte(p.BudgetID, 'k')+1:], "%d", &i)
		_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: p.BudgetID,
			Deltas: map[string]int64{"usd": (i * 7919) % 1100, "tokens": (i * 104729) % 900_000}})
		return err
	}); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "setup: %d budgets on durable postgres and valkey for the console in %v\n", consoleBudgets, time.Since(started).Round(time.Second))

	page := func(h http.Handler, path func(i int64) string) op {
		return func(ctx context.Context, w int, i int64) error {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path(i), nil))
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", path(i), rec.Code, rec.Body.String())
			}
			return nil
		}
	}
	var out []bench
	for _, b := range []struct {
		backend                          console.Backend
		list, filtered, budgetPg, parent string
	}{
		{gobinding.NewClient(pool, gobinding.Options{}), consolePGList, consolePGFiltered, consolePGBudget, consolePGParent},
		{vk, consoleVKList, consoleVKFiltered, consoleVKBudget, consoleVKParent},
	} {
		h, err := console.NewHandler(console.Options{Backend: b.backend})
		if err != nil {
			return nil, err
		}
		c1 := []int{1}
		out = append(out,
			bench{name: b.list, cs: c1, run: page(h, func(int64) string { return "/budgets?order=utilisation" })},
			bench{name: b.filtered, cs: c1, run: page(h, func(int64) string { return "/budgets?near=1&mode=enforce" })},
			bench{name: b.budgetPg, cs: c1, run: page(h, func(i int64) string {
				n := 1000 + (i*7919)%(consoleBudgets-1000)
				return fmt.Sprintf("/budget?id=o%d%%2Fk%d", n%1000, n)
			})},
			// An organisation's page lists its 99 keys, by utilisation.
			bench{name: b.parent, cs: c1, run: page(h, func(i int64) string { return fmt.Sprintf("/budget?id=o%d", (i*7919)%1000) })})
	}
	return out, nil
}

// createEach runs create for every p from 16 goroutines.
func createEach(ctx context.Context, ps []spendcap.CreateBudgetParams, create func(spendcap.CreateBudgetParams) error) error {
	work := make(chan spendcap.CreateBudgetParams, len(ps))
	for _, p := range ps {
		work <- p
	}
	close(work)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			var first error
			for p := range work {
				if err := create(p); err != nil && first == nil {
					first = err
				}
			}
			errs <- first
		}()
	}
	var first error
	for range 16 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// consoleTargets are the console's latency targets as ratios: p99 in ms, at most the target.
func consoleTargets(results []Result) []Ratio {
	var out []Ratio
	for _, t := range []struct {
		name   string
		target float64
	}{
		{consolePGList, consoleListTargetMs}, {consolePGFiltered, consoleListTargetMs}, {consolePGBudget, consolePageTargetMs},
		{consoleVKList, consoleVKTargetMs}, {consoleVKFiltered, consoleVKTargetMs}, {consoleVKBudget, consolePageTargetMs},
		{consolePGParent, consolePageTargetMs}, {consoleVKParent, consolePageTargetMs},
	} {
		for _, r := range results {
			if r.Name == t.name {
				ms := r.P99us / 1000
				out = append(out, Ratio{Name: t.name + " p99 ms", Value: ms, Target: t.target, AtMost: true, Met: ms <= t.target})
			}
		}
	}
	return out
}

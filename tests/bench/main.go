// Command bench measures spendcap against its baselines in one process, on the same servers
// (`make bench`, `make bench BENCH_TIME=2s` for a quick run): report_usage through the Go binding
// against a single-row UPDATE (baseline A, the per-commit floor) and against the same admission done
// as a client-side transaction of separate statements (baseline B), the Valkey library against a raw
// HINCRBY, a charge to a 3-level chain (key, team, organisation) against one to a single budget,
// and the two-phase and quota calls on both backends. It prints ops/s, p50 and p99 per
// concurrency and the ratios, and can write them as JSON and a PNG chart.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

const budgets = 10000

var concurrencies = []int{1, 8, 32}

// Result is one benchmark at one concurrency.
type Result struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	// ServerUs is the Valkey server's time per FCALL (INFO commandstats) in a Valkey row.
	ServerUs float64 `json:"server_us,omitempty"`
}

// Ratio compares a spendcap benchmark with a baseline at one concurrency, against a target: at
// least Target, or at most when AtMost (latency).
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	AtMost bool    `json:"at_most,omitempty"`
	Met    bool    `json:"met"`
}

// bench is one benchmark: run is one call, which counts weight operations (items of a batch).
// cs are its concurrencies (concurrencies when nil).
type bench struct {
	name   string
	run    op
	weight int
	cs     []int
	// server, for a Valkey row of FCALLs, is the server whose time per call is reported.
	server *redis.Client
}

type op func(ctx context.Context, worker int, i int64) error

func main() {
	dur := flag.Duration("time", 5*time.Second, "how long each benchmark runs at each concurrency")
	jsonPath := flag.String("json", "", "write the results as JSON to this file")
	pngPath := flag.String("png", "", "write a chart of ops/s by concurrency to this PNG file")
	only := flag.String("run", "", "run only the benchmarks whose name contains this")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the client side) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	defer testenv.Arrange()()
	ctx := context.Background()

	pgURL := testenv.ExampleDatabase()
	pool, err := pgxpool.New(ctx, pgURL+"&pool_max_conns=40")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	vopts, err := redis.ParseURL(testenv.MustValkeyURL())
	if err != nil {
		log.Fatal(err)
	}
	vopts.PoolSize = 40
	rdb := redis.NewClient(vopts)
	defer rdb.Close()
	if err := setup(ctx, pool, rdb); err != nil {
		log.Fatal(err)
	}
	pg := gobinding.NewClient(pool, gobinding.Options{})
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		log.Fatal(err)
	}

	var seq atomic.Int64
	key := func() string { return fmt.Sprintf("k%d", seq.Add(1)) }
	pick := func(w int, i int64) string { return fmt.Sprintf("b%d", (int64(w)*7919+i*104729)%budgets) }
	vkBatcher := spendcap.NewBatcher(vk, spendcap.BatcherOptions{})
	defer vkBatcher.Close()
	pickKey := func(w int, i int64) string { return chainKey((int64(w)*7919 + i*104729) % budgets) }
	one := map[string]int64{"tokens": 1}
	four := map[string]int64{"tokens": 1, "usd_micros": 1, "requests": 1, "images": 1}

	benches := []bench{
		{name: "pg report_usage 10k budgets 1 dim", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		// The same budgets with alert percents that no call reaches: the cost of watching them.
		{name: "pg report_usage 10k budgets 1 dim alerts", cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a" + pick(w, i)[1:], Deltas: one})
			return err
		}},
		// The same budgets recording an hourly usage series: the cost of keeping it.
		{name: "pg report_usage 10k budgets 1 dim series", cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "s" + pick(w, i)[1:], Deltas: one})
			return err
		}},
		{name: "pg report_usage 10k budgets 1 dim dedup", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one, DedupKey: key()})
			return err
		}},
		{name: "pg report_usage 10k budgets 4 dims", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: four})
			return err
		}},
		{name: "pg report_usage 10k budgets 4 dims dedup", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: four, DedupKey: key()})
			return err
		}},
		{name: "pg report_usage 3-level chain 1 dim", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pickKey(w, i), Deltas: one})
			return err
		}},
		{name: "pg report_usage hot budget 1 dim", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "hot", Deltas: one})
			return err
		}},
		{name: "pg report_usage hot budget 4 dims dedup", run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "hot", Deltas: four, DedupKey: key()})
			return err
		}},
		{name: "baseline A update 10k rows", run: func(ctx context.Context, w int, i int64) error {
			_, err := pool.Exec(ctx, `UPDATE bench_counters SET v = v + $1 WHERE id = $2`, 1, (int64(w)*7919+i*104729)%budgets)
			return err
		}},
		{name: "baseline A update hot row", run: func(ctx context.Context, w int, i int64) error {
			_, err := pool.Exec(ctx, `UPDATE bench_counters SET v = v + $1 WHERE id = $2`, 1, -1)
			return err
		}},
		{name: "baseline B client transaction 4 dims dedup", run: func(ctx context.Context, w int, i int64) error {
			return clientSideAdmission(ctx, pool, pick(w, i), four, key())
		}},
		{name: "pg reserve+settle", run: func(ctx context.Context, w int, i int64) error {
			id, rid := pick(w, i), key()
			if _, err := pg.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: one}); err != nil {
				return err
			}
			_, err := pg.Settle(ctx, spendcap.SettleParams{BudgetID: id, ReservationID: rid, Actual: one})
			return err
		}},
		{name: "pg acquire+release quota", run: func(ctx context.Context, w int, i int64) error {
			h := key()
			if _, err := pg.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "q", HolderID: h}); err != nil {
				return err
			}
			_, err := pg.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "q", HolderID: h})
			return err
		}},
		{name: "valkey sc_report_usage 1 dim", run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		{name: "valkey sc_report_usage 10k limited 1 dim", cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "h" + pick(w, i)[1:], Deltas: one})
			return err
		}},
		{name: "valkey sc_report_usage 10k limited 1 dim alerts", cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a" + pick(w, i)[1:], Deltas: one})
			return err
		}},
		{name: "valkey sc_report_usage 10k limited 1 dim series", cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "s" + pick(w, i)[1:], Deltas: one})
			return err
		}},
		{name: "valkey sc_report_usage 3-level chain 1 dim", run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pickKey(w, i), Deltas: one})
			return err
		}},
		// The same reports through a Batcher: concurrent calls share FCALLs (after the chain row, so
		// that the client knows the chains' keys, as a running service does).
		{name: vkBatcherSingle, cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := vkBatcher.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		{name: vkBatcherChain, cs: []int{32}, run: func(ctx context.Context, w int, i int64) error {
			_, err := vkBatcher.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pickKey(w, i), Deltas: one})
			return err
		}},
		{name: "valkey sc_report_usage 4 dims dedup", run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: four, DedupKey: key()})
			return err
		}},
		{name: "valkey raw HINCRBY", run: func(ctx context.Context, w int, i int64) error {
			return rdb.HIncrBy(ctx, fmt.Sprintf("raw:{b%d}", (int64(w)*7919+i*104729)%budgets), "tokens", 1).Err()
		}},
		{name: "valkey baseline C token bucket", run: func(ctx context.Context, w int, i int64) error {
			return tokenBucket(ctx, rdb, fmt.Sprintf("tb:{b%d}", (int64(w)*7919+i*104729)%budgets))
		}},
		{name: "valkey reserve+settle", run: func(ctx context.Context, w int, i int64) error {
			id, rid := pick(w, i), key()
			if _, err := vk.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: one}); err != nil {
				return err
			}
			_, err := vk.Settle(ctx, spendcap.SettleParams{BudgetID: id, ReservationID: rid, Actual: one})
			return err
		}},
		{name: "valkey acquire+release quota", run: func(ctx context.Context, w int, i int64) error {
			h := key()
			if _, err := vk.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "q", HolderID: h}); err != nil {
				return err
			}
			_, err := vk.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "q", HolderID: h})
			return err
		}},
	}

	durable, err := durableBenches(ctx, *only)
	if err != nil {
		log.Fatal(err)
	}
	benches = append(benches, durable...)
	middleware, err := middlewareBenches(*only, pg, vk)
	if err != nil {
		log.Fatal(err)
	}
	benches = append(benches, middleware...)
	replicas, err := replicaBenches(ctx, *only)
	if err != nil {
		log.Fatal(err)
	}
	benches = append(benches, replicas...)
	releases, err := releaseBenches(ctx, *only)
	if err != nil {
		log.Fatal(err)
	}
	benches = append(benches, releases...)
	consoles, err := consoleBenches(ctx, *only)
	if err != nil {
		log.Fatal(err)
	}
	benches = append(benches, consoles...)
	for i := range benches {
		if strings.HasPrefix(benches[i].name, "valkey ") && !strings.Contains(benches[i].name, "HINCRBY") {
			benches[i].server = rdb
		}
	}

	var results []Result
	fmt.Printf("%-50s %4s %11s %9s %9s %9s\n", "benchmark (durable: fsync and synchronous_commit on)", "c", "ops/s", "p50 µs", "p99 µs", "server µs")
	for _, b := range benches {
		if *only != "" && !strings.Contains(b.name, *only) {
			continue
		}
		cs := b.cs
		if cs == nil {
			cs = concurrencies
		}
		for _, c := range cs {
			if b.server != nil {
				if err := b.server.ConfigResetStat(ctx).Err(); err != nil {
					log.Fatal(err)
				}
			}
			r, err := measure(ctx, b.name, c, *dur, b.run, max(b.weight, 1))
			if err != nil {
				log.Fatalf("%s at c=%d: %v", b.name, c, err)
			}
			server := ""
			if b.server != nil {
				if r.ServerUs, err = serverMicros(ctx, b.server); err != nil {
					log.Fatal(err)
				}
				server = fmt.Sprintf("%9.2f", r.ServerUs)
			}
			results = append(results, r)
			fmt.Printf("%-50s %4d %11.0f %9.0f %9.0f %s\n", r.Name, r.Concurrency, r.OpsPerSec, r.P50us, r.P99us, server)
		}
	}
	ratios := append(computeRatios(results), consoleTargets(results)...)
	fmt.Println()
	middlewareOverhead(results)
	for _, r := range ratios {
		met, bound := "below target", ""
		if r.AtMost {
			met, bound = "above target", "at most "
		}
		if r.Met {
			met = "target met"
		}
		fmt.Printf("%-72s %6.2f  (target %s%.2f, %s)\n", r.Name, r.Value, bound, r.Target, met)
	}
	if *jsonPath != "" {
		b, _ := json.MarshalIndent(map[string]any{"duration": dur.String(), "results": results, "ratios": ratios}, "", "  ")
		if err := os.WriteFile(*jsonPath, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *pngPath != "" {
		if err := chart(*pngPath, results); err != nil {
			log.Fatal(err)
		}
	}
}

// measure runs op from c goroutines for d and returns the throughput (weight operations per call)
// and the latency percentiles of a call.
func measure(ctx context.Context, name string, c int, d time.Duration, run op, weight int) (Result, error) {
	lat := make([][]time.Duration, c)
	var firstErr error
	var errOnce sync.Once
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Go(func() {
			for i := int64(0); time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := run(ctx, w, i+rand.Int64N(1<<20)); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ops := int64(len(all)) * int64(weight)
	r := Result{Name: name, Concurrency: c, Ops: ops, OpsPerSec: float64(ops) / elapsed.Seconds()}
	if len(all) > 0 {
		r.P50us = float64(all[len(all)/2].Microseconds())
		r.P99us = float64(all[len(all)*99/100].Microseconds())
	}
	return r, firstErr
}

func find(results []Result, name string, c int) float64 {
	for _, r := range results {
		if r.Name == name && r.Concurrency == c {
			return r.OpsPerSec
		}
	}
	return 0
}

func findP99(results []Result, name string, c int) float64 {
	for _, r := range results {
		if r.Name == name && r.Concurrency == c {
			return r.P99us
		}
	}
	return 0
}

func computeRatios(results []Result) []Ratio {
	var out []Ratio
	add := func(label, num, den string, c int, target float64) {
		n, d := find(results, num, c), find(results, den, c)
		if n == 0 || d == 0 {
			return
		}
		out = append(out, Ratio{Name: fmt.Sprintf("%s (c=%d)", label, c), Value: n / d, Target: target, Met: n/d >= target})
	}
	for _, c := range concurrencies {
		add("pg report_usage 10k 1 dim / baseline A", "pg report_usage 10k budgets 1 dim", "baseline A update 10k rows", c, 0.8)
		add("pg report_usage 10k 4 dims dedup / baseline B", "pg report_usage 10k budgets 4 dims dedup", "baseline B client transaction 4 dims dedup", c, 4)
		add("pg report_usage hot / baseline A hot row", "pg report_usage hot budget 1 dim", "baseline A update hot row", c, 0.9)
		add("valkey sc_report_usage / raw HINCRBY", "valkey sc_report_usage 1 dim", "valkey raw HINCRBY", c, 0.6)
		add("valkey sc_report_usage / baseline C token bucket", "valkey sc_report_usage 1 dim", "valkey baseline C token bucket", c, 1.2)
	}
	durable := func(label, num string, nc int, den string, dc int, target float64) {
		n, d := find(results, num, nc), find(results, den, dc)
		if n == 0 || d == 0 {
			return
		}
		out = append(out, Ratio{Name: label, Value: n / d, Target: target, Met: n/d >= target})
	}
	durable("durable pg report_usage_batch 100 items c=8 / report_usage c=32", durablePGBatch, 8, durablePGSingle, 32, 5)
	durable("durable pg batcher c=32 / report_usage c=32", durablePGBatcher, 32, durablePGSingle, 32, 3)
	if n, d := findP99(results, durablePGBatcher, 32), findP99(results, durablePGSingle, 32); n > 0 && d > 0 {
		out = append(out, Ratio{Name: "durable pg batcher p99 / report_usage p99 (c=32)", Value: n / d, Target: 2, AtMost: true, Met: n/d <= 2})
	}
	durable("durable pg batcher hot budget c=32 / report_usage hot budget c=32", durablePGHotBatcher, 32, durablePGHot, 32, 10)
	durable("durable valkey sc_report_usage_batch 100 items c=8 / sc_report_usage c=32", durableVKBatch, 8, durableVKSingle, 32, 3)
	add("pg report_usage 3-level chain / single budget", "pg report_usage 3-level chain 1 dim", "pg report_usage 10k budgets 1 dim", 32, 0.5)
	add("pg report_usage with alert_percents / without", "pg report_usage 10k budgets 1 dim alerts", "pg report_usage 10k budgets 1 dim", 32, 0.9)
	add("valkey sc_report_usage with alert_percents / without", "valkey sc_report_usage 10k limited 1 dim alerts",
		"valkey sc_report_usage 10k limited 1 dim", 32, 0.9)
	add("pg report_usage with usage_series / without", "pg report_usage 10k budgets 1 dim series", "pg report_usage 10k budgets 1 dim", 32, 0.9)
	add("valkey sc_report_usage with usage_series / without", "valkey sc_report_usage 10k limited 1 dim series",
		"valkey sc_report_usage 10k limited 1 dim", 32, 0.9)
	add("valkey sc_report_usage 3-level chain / single budget", "valkey sc_report_usage 3-level chain 1 dim", "valkey sc_report_usage 1 dim", 32, 0.5)
	add("valkey batcher sc_report_usage / baseline C token bucket", vkBatcherSingle, "valkey baseline C token bucket", 32, 1.2)
	add("valkey batcher 3-level chain / baseline C token bucket", vkBatcherChain, "valkey baseline C token bucket", 32, 0.8)
	release := func(label, now, before string) {
		add(label, now, before, releaseConcurrency, 0.95)
	}
	release("release pg report_usage this tree / previous release", relPGSingleNow, relPGSingleBefore)
	release("release pg report_usage 3-level chain this tree / previous release", relPGChainNow, relPGChainBefore)
	release("release valkey sc_report_usage this tree / previous release", relVKSingleNow, relVKSingleBefore)
	release("release valkey sc_report_usage 3-level chain this tree / previous release", relVKChainNow, relVKChainBefore)
	add("valkey sc_report_usage waiting for a loopback replica / not waiting", replicaWait, replicaNoWait, 32, 0.6)
	add("valkey sc_report_usage 3-level chain / baseline C token bucket", "valkey sc_report_usage 3-level chain 1 dim", "valkey baseline C token bucket", 32, 0.8)
	return out
}

// The Valkey rows through a Batcher (spendcap.NewBatcher on the Valkey client, default options).
const (
	vkBatcherSingle = "valkey batcher sc_report_usage 1 dim"
	vkBatcherChain  = "valkey batcher sc_report_usage 3-level chain 1 dim"
)

// setup creates 10,000 budgets and a hot one on both backends, a quota policy, and the baseline
// tables.
func setup(ctx context.Context, pool *pgxpool.Pool, rdb *redis.Client) error {
	started := time.Now()
	if _, err := pool.Exec(ctx, `
		SELECT spendcap.create_budget('b' || i, '{"tokens": 1000000000000000}') FROM generate_series(0, 9999) AS i;
		SELECT * FROM spendcap.create_budget('hot', '{"tokens": 1000000000000000}');
		SELECT spendcap.create_budget('a' || i, '{"tokens": 1000000000000000}', alert_percents => '{50,80,100}') FROM generate_series(0, 9999) AS i;
		SELECT spendcap.create_budget('s' || i, '{"tokens": 1000000000000000}', usage_series => '1 hour') FROM generate_series(0, 9999) AS i;
		SELECT * FROM spendcap.create_quota_policy('q', max_concurrent => 100000, lease_seconds => 60);
		SELECT spendcap.create_budget('g' || i, '{"tokens": 1000000000000000}') FROM generate_series(0, 99) AS i;
		SELECT spendcap.create_budget('g' || i % 100 || '/t' || i, '{"tokens": 1000000000000000}', parent_id => 'g' || i % 100)
		  FROM generate_series(0, 999) AS i;
		SELECT spendcap.create_budget('g' || i % 100 || '/k' || i, '{"tokens": 1000000000000000}', parent_id => 'g' || i % 100 || '/t' || i % 1000)
		  FROM generate_series(0, 9999) AS i;
		CREATE TABLE bench_counters (id integer PRIMARY KEY, v bigint NOT NULL) WITH (fillfactor = 80);
		INSERT INTO bench_counters SELECT i, 0 FROM generate_series(-1, 9999) AS i;
		CREATE TABLE bench_policy (budget_id text PRIMARY KEY, hard_limits jsonb NOT NULL);
		INSERT INTO bench_policy SELECT 'b' || i, '{"tokens": 1000000000000000}' FROM generate_series(0, 9999) AS i;
		CREATE TABLE bench_usage (budget_id text, dimension text, v bigint NOT NULL, PRIMARY KEY (budget_id, dimension));
		CREATE TABLE bench_dedup (budget_id text, dedup_key text, PRIMARY KEY (budget_id, dedup_key))`); err != nil {
		return fmt.Errorf("postgres setup: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		return err
	}
	if err := loadTokenBucket(ctx, rdb); err != nil {
		return err
	}
	// The single budgets, then the chains level by level: a parent exists before its children.
	levels := [][]spendcap.CreateBudgetParams{nil, nil, nil}
	for i := int64(0); i < budgets; i++ {
		levels[0] = append(levels[0], spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("b%d", i)},
			// With a hard limit, and with alert percents too: the cost of watching them.
			spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("h%d", i), HardLimits: map[string]int64{"tokens": 1e15}},
			spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("a%d", i), HardLimits: map[string]int64{"tokens": 1e15},
				AlertPercents: []int32{50, 80, 100}},
			// With an hourly usage series: the cost of keeping it.
			spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("s%d", i), UsageSeries: spendcap.UsageSeriesHour})
		levels[2] = append(levels[2], spendcap.CreateBudgetParams{BudgetID: chainKey(i), ParentID: chainTeam(i % 1000)})
	}
	for i := int64(0); i < 1000; i++ {
		if i < 100 {
			levels[0] = append(levels[0], spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("g%d", i)})
		}
		levels[1] = append(levels[1], spendcap.CreateBudgetParams{BudgetID: chainTeam(i), ParentID: fmt.Sprintf("g%d", i%100)})
	}
	for _, level := range levels {
		if err := createAll(ctx, vk, level); err != nil {
			return err
		}
	}
	if _, err := vk.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "q", MaxConcurrent: 100000}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "setup: %d budgets and %d 3-level chains on each backend in %v\n", budgets, budgets, time.Since(started).Round(time.Millisecond))
	return nil
}

// chainKey and chainTeam name the budgets of the 3-level chains: 10,000 keys under 1,000 teams
// under 100 organisations, each chain in one cluster slot (the ids share their first segment).
func chainKey(i int64) string  { return fmt.Sprintf("g%d/k%d", i%100, i) }
func chainTeam(i int64) string { return fmt.Sprintf("g%d/t%d", i%100, i) }

// createAll creates budgets on Valkey from 16 goroutines, each with a limit no call reaches.
func createAll(ctx context.Context, vk *valkey.Client, ps []spendcap.CreateBudgetParams) error {
	pipe := make(chan spendcap.CreateBudgetParams, len(ps))
	for _, p := range ps {
		p.HardLimits = map[string]int64{"tokens": 1e15}
		pipe <- p
	}
	close(pipe)
	var wg sync.WaitGroup
	var setupErr atomic.Value
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for p := range pipe {
				if _, err := vk.CreateBudget(ctx, p); err != nil {
					setupErr.Store(err)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// clientSideAdmission is baseline B: the admission of report_usage with a dedup key, written as a
// client-side transaction of separate statements, as a service without spendcap would.
func clientSideAdmission(ctx context.Context, pool *pgxpool.Pool, id string, deltas map[string]int64, key string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var limits map[string]int64
		if err := tx.QueryRow(ctx, `SELECT hard_limits FROM bench_policy WHERE budget_id = $1 FOR UPDATE`, id).Scan(&limits); err != nil {
			return err
		}
		dims := make([]string, 0, len(deltas))
		for d := range deltas {
			dims = append(dims, d)
		}
		sort.Strings(dims)
		usage := map[string]int64{}
		for _, d := range dims {
			if _, err := tx.Exec(ctx, `INSERT INTO bench_usage VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`, id, d); err != nil {
				return err
			}
			var v int64
			if err := tx.QueryRow(ctx, `SELECT v FROM bench_usage WHERE budget_id = $1 AND dimension = $2 FOR UPDATE`, id, d).Scan(&v); err != nil {
				return err
			}
			usage[d] = v
		}
		for _, d := range dims {
			if h, ok := limits[d]; ok && usage[d]+deltas[d] > h {
				return nil // refused: nothing applied
			}
		}
		for _, d := range dims {
			if _, err := tx.Exec(ctx, `UPDATE bench_usage SET v = v + $3 WHERE budget_id = $1 AND dimension = $2`, id, d, deltas[d]); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO bench_dedup VALUES ($1, $2)`, id, key)
		return err
	})
}

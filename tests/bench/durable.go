package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The batch rows compare batches with single calls on servers with production durability: a
// PostgreSQL with fsync, full_page_writes and synchronous_commit on, a Valkey with appendfsync
// always. There a commit waits for the disk, which is the floor batching goes past.
const (
	durablePGSingle     = "durable pg report_usage 10k budgets"
	durablePGBatch      = "durable pg report_usage_batch 100 items 10k"
	durablePGBatcher    = "durable pg batcher 10k budgets"
	durablePGHot        = "durable pg report_usage hot budget"
	durablePGHotBatcher = "durable pg batcher hot budget"
	durableVKSingle     = "durable valkey sc_report_usage 10k budgets"
	durableVKBatch      = "durable valkey sc_report_usage_batch 100 items"
)

const batchItems = 100

// durableBenches starts the durable servers (unless only names none of their rows), sets up 10,000
// budgets and a hot one on each, and returns the batch rows.
func durableBenches(ctx context.Context, only string) ([]bench, error) {
	names := strings.Join([]string{durablePGSingle, durablePGBatch, durablePGBatcher, durablePGHot, durablePGHotBatcher,
		durableVKSingle, durableVKBatch}, "\n")
	if only != "" && !strings.Contains(names, only) {
		return nil, nil
	}
	pool, rdb, vk, err := durableServers(ctx)
	if err != nil {
		return nil, err
	}
	var fsync, syncCommit string
	if err := pool.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).Scan(&fsync, &syncCommit); err != nil {
		return nil, err
	}
	if fsync != "on" || syncCommit != "on" {
		return nil, fmt.Errorf("durable postgres has fsync=%s synchronous_commit=%s", fsync, syncCommit)
	}
	if _, err := pool.Exec(ctx, `
		SELECT spendcap.create_budget('b' || i, '{"tokens": 1000000000000000}') FROM generate_series(0, 9999) AS i;
		SELECT * FROM spendcap.create_budget('hot', '{"tokens": 1000000000000000}')`); err != nil {
		return nil, fmt.Errorf("durable postgres setup: %w", err)
	}
	var ps []spendcap.CreateBudgetParams
	for i := range budgets {
		ps = append(ps, spendcap.CreateBudgetParams{BudgetID: fmt.Sprintf("b%d", i)})
	}
	if err := createAll(ctx, vk, ps); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "setup: durable postgres (fsync=%s, synchronous_commit=%s) and valkey (appendfsync always), %d budgets each\n",
		fsync, syncCommit, budgets)

	pg := gobinding.NewClient(pool, gobinding.Options{})
	pgBatcher := spendcap.NewBatcher(pg, spendcap.BatcherOptions{})
	pgHotBatcher := spendcap.NewBatcher(pg, spendcap.BatcherOptions{MaxInFlight: 1})
	testenv.OnShutdown(pgBatcher.Close)
	testenv.OnShutdown(pgHotBatcher.Close)
	one := map[string]int64{"tokens": 1}
	pick := func(w int, i int64) string { return fmt.Sprintf("b%d", (int64(w)*7919+i*104729)%budgets) }
	items := func(w int, i int64) []spendcap.BatchItem {
		out := make([]spendcap.BatchItem, batchItems)
		for j := range out {
			out[j] = spendcap.BatchItem{BudgetID: pick(w, i*batchItems+int64(j)), Deltas: one}
		}
		return out
	}
	c32, c8 := []int{32}, []int{8}
	return []bench{
		{name: durablePGSingle, cs: c32, run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		{name: durablePGBatch, cs: c8, weight: batchItems, run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items(w, i)})
			return err
		}},
		{name: durablePGBatcher, cs: c32, run: func(ctx context.Context, w int, i int64) error {
			_, err := pgBatcher.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		{name: durablePGHot, cs: c32, run: func(ctx context.Context, w int, i int64) error {
			_, err := pg.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "hot", Deltas: one})
			return err
		}},
		{name: durablePGHotBatcher, cs: c32, run: func(ctx context.Context, w int, i int64) error {
			_, err := pgHotBatcher.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "hot", Deltas: one})
			return err
		}},
		{name: durableVKSingle, cs: c32, server: rdb, run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: pick(w, i), Deltas: one})
			return err
		}},
		{name: durableVKBatch, cs: c8, weight: batchItems, server: rdb, run: func(ctx context.Context, w int, i int64) error {
			_, err := vk.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items(w, i)})
			return err
		}},
	}, nil
}

// durableServers starts a PostgreSQL server (migrated) and a Valkey server of their own, both
// durable (fsync and synchronous_commit on; appendfsync always), stopped when the benchmarks end,
// and returns a pool of 40 connections, a client of 40 connections and the Valkey client on it.
func durableServers(ctx context.Context) (*pgxpool.Pool, *redis.Client, *valkey.Client, error) {
	pgs, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Durable: true})
	if err != nil {
		return nil, nil, nil, err
	}
	testenv.OnShutdown(pgs.Stop)
	m, err := migrator.New(pgs.URL, migrator.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := m.Up(ctx); err != nil {
		return nil, nil, nil, err
	}
	pool, err := pgxpool.New(ctx, pgs.URL+"&pool_max_conns=40")
	if err != nil {
		return nil, nil, nil, err
	}
	testenv.OnShutdown(pool.Close)
	vs, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true})
	if err != nil {
		return nil, nil, nil, err
	}
	testenv.OnShutdown(vs.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: vs.Addr, PoolSize: 40})
	testenv.OnShutdown(func() { _ = rdb.Close() })
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	return pool, rdb, vk, nil
}

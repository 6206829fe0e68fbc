package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The release rows compare this tree with a frozen earlier release (tests/testdata/releases) on
// the same calls: report_usage on a single budget and on a 3-level chain, from raw SQL and raw
// FCALLs, so that both sides pay the same client cost. The baseline is the release before the one
// this tree builds (sql/releases.txt): a release must not make the call slower.
const (
	relPGSingleBefore  = "release pg report_usage 1 dim, previous release"
	relPGSingleNow     = "release pg report_usage 1 dim, this tree"
	relPGChainBefore   = "release pg report_usage 3-level chain, previous release"
	relPGChainNow      = "release pg report_usage 3-level chain, this tree"
	relVKSingleBefore  = "release valkey sc_report_usage 1 dim, previous release"
	relVKSingleNow     = "release valkey sc_report_usage 1 dim, this tree"
	relVKChainBefore   = "release valkey sc_report_usage 3-level chain, previous release"
	relVKChainNow      = "release valkey sc_report_usage 3-level chain, this tree"
	releaseConcurrency = 32
)

// releaseName is the previous release: the one before the release this tree builds.
var releaseName = func() string {
	rs, err := migrator.Releases(nil)
	if err != nil || len(rs) < 2 {
		panic(fmt.Sprintf("sql/releases.txt: %v, %v", rs, err))
	}
	return rs[len(rs)-2].Name
}()

// releaseFile reads a file of the frozen release, from the checkout's root (where make bench runs).
func releaseFile(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("tests", "testdata", "releases", releaseName, name))
	return string(b), err
}

// releaseBenches starts one PostgreSQL with two databases (the release's install script, and
// this tree's migrations) and two Valkey servers (the release's library, and this tree's), sets
// up the same budgets on each, and returns the rows, each database's and server's in turn.
func releaseBenches(ctx context.Context, only string) ([]bench, error) {
	names := strings.Join([]string{relPGSingleBefore, relPGSingleNow, relPGChainBefore, relPGChainNow,
		relVKSingleBefore, relVKSingleNow, relVKChainBefore, relVKChainNow}, "\n")
	if only != "" && !strings.Contains(names, only) {
		return nil, nil
	}
	releaseInstall, err := releaseFile("install.sql")
	if err != nil {
		return nil, err
	}
	releaseLibrary, err := releaseFile("spendcap.lua")
	if err != nil {
		return nil, err
	}
	pgs, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{})
	if err != nil {
		return nil, err
	}
	testenv.OnShutdown(pgs.Stop)
	pools := map[string]*pgxpool.Pool{}
	for _, side := range []string{"before", "now"} {
		admin, err := pgxpool.New(ctx, pgs.URL)
		if err != nil {
			return nil, err
		}
		_, err = admin.Exec(ctx, "CREATE DATABASE release_"+side)
		admin.Close()
		if err != nil {
			return nil, err
		}
		url := testenv.WithDatabase(pgs.URL, "release_"+side)
		if side == "before" {
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				return nil, err
			}
			_, err = p.Exec(ctx, releaseInstall)
			p.Close()
			if err != nil {
				return nil, fmt.Errorf("release %s install script: %w", releaseName, err)
			}
		} else {
			m, err := migrator.New(url, migrator.Options{})
			if err != nil {
				return nil, err
			}
			if _, err := m.Up(ctx); err != nil {
				return nil, err
			}
		}
		pool, err := pgxpool.New(ctx, url+"&pool_max_conns=40")
		if err != nil {
			return nil, err
		}
		testenv.OnShutdown(pool.Close)
		if _, err := pool.Exec(ctx, `
			SELECT spendcap.create_budget('b' || i, '{"tokens": 1000000000000000}') FROM generate_series(0, 9999) AS i;
			SELECT spendcap.create_budget('g' || i, '{"tokens": 1000000000000000}') FROM generate_series(0, 99) AS i;
			SELECT spendcap.create_budget('g' || i % 100 || '/t' || i, '{"tokens": 1000000000000000}', parent_id => 'g' || i % 100)
			  FROM generate_series(0, 999) AS i;
			SELECT spendcap.create_budget('g' || i % 100 || '/k' || i, '{"tokens": 1000000000000000}', parent_id => 'g' || i % 100 || '/t' || i % 1000)
			  FROM generate_series(0, 9999) AS i`); err != nil {
			return nil, fmt.Errorf("release postgres setup (%s): %w", side, err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
			return nil, err
		}
		pools[side] = pool
	}
	rdbs := map[string]*redis.Client{}
	for _, side := range []string{"before", "now"} {
		vs, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{})
		if err != nil {
			return nil, err
		}
		testenv.OnShutdown(vs.Stop)
		rdb := redis.NewClient(&redis.Options{Addr: vs.Addr, PoolSize: 40})
		testenv.OnShutdown(func() { _ = rdb.Close() })
		if side == "before" {
			if err := rdb.FunctionLoadReplace(ctx, releaseLibrary).Err(); err != nil {
				return nil, fmt.Errorf("release %s library: %w", releaseName, err)
			}
		} else if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
			return nil, err
		}
		if err := releaseValkeyBudgets(ctx, rdb); err != nil {
			return nil, fmt.Errorf("release valkey setup (%s): %w", side, err)
		}
		rdbs[side] = rdb
	}
	fmt.Fprintf(os.Stderr, "setup: release %s and this tree, %d budgets and %d 3-level chains on each\n", releaseName, budgets, budgets)

	pick := func(w int, i int64) int64 { return (int64(w)*7919 + i*104729) % budgets }
	const sql = `SELECT * FROM spendcap.report_usage($1, '{"tokens": 1}')`
	pgRow := func(pool *pgxpool.Pool, id func(int64) string) op {
		return func(ctx context.Context, w int, i int64) error {
			_, err := pool.Exec(ctx, sql, id(pick(w, i)))
			return err
		}
	}
	vkRow := func(rdb *redis.Client, id func(int64) string) op {
		return func(ctx context.Context, w int, i int64) error {
			b := id(pick(w, i))
			k := []string{valkey.Key(b)}
			if strings.Contains(b, "/k") { // a chain: the key, its team, its organisation
				n := pick(w, i)
				k = append(k, valkey.Key(chainTeam(n%1000)), valkey.Key(fmt.Sprintf("g%d", n%100)))
			}
			return rdb.FCall(ctx, "sc_report_usage", k, `{"budget_id":"`+b+`","deltas":{"tokens":1}}`).Err()
		}
	}
	single := func(n int64) string { return fmt.Sprintf("b%d", n) }
	c := []int{releaseConcurrency}
	return []bench{
		{name: relPGSingleBefore, cs: c, run: pgRow(pools["before"], single)},
		{name: relPGSingleNow, cs: c, run: pgRow(pools["now"], single)},
		{name: relPGChainBefore, cs: c, run: pgRow(pools["before"], chainKey)},
		{name: relPGChainNow, cs: c, run: pgRow(pools["now"], chainKey)},
		{name: relVKSingleBefore, cs: c, server: rdbs["before"], run: vkRow(rdbs["before"], single)},
		{name: relVKSingleNow, cs: c, server: rdbs["now"], run: vkRow(rdbs["now"], single)},
		{name: relVKChainBefore, cs: c, server: rdbs["before"], run: vkRow(rdbs["before"], chainKey)},
		{name: relVKChainNow, cs: c, server: rdbs["now"], run: vkRow(rdbs["now"], chainKey)},
	}, nil
}

// releaseValkeyBudgets creates the budgets of the release rows with raw FCALLs (the release's
// library has no Go client here): 10,000 single budgets, then the chains level by level, each
// call with the keys of the budget and its chain.
func releaseValkeyBudgets(ctx context.Context, rdb *redis.Client) error {
	const limit = `"hard_limits":{"tokens":1000000000000000}`
	pipe := rdb.Pipeline()
	for i := range int64(budgets) {
		id := fmt.Sprintf("b%d", i)
		pipe.FCall(ctx, "sc_create_budget", []string{valkey.Key(id)}, `{"budget_id":"`+id+`",`+limit+`}`)
	}
	for i := range int64(100) {
		id := fmt.Sprintf("g%d", i)
		pipe.FCall(ctx, "sc_create_budget", []string{valkey.Key(id)}, `{"budget_id":"`+id+`",`+limit+`}`)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i := range int64(1000) {
		org := fmt.Sprintf("g%d", i%100)
		pipe.FCall(ctx, "sc_create_budget", []string{valkey.Key(chainTeam(i)), valkey.Key(org)},
			`{"budget_id":"`+chainTeam(i)+`","parent_id":"`+org+`",`+limit+`}`)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i := range int64(budgets) {
		team, org := chainTeam(i%1000), fmt.Sprintf("g%d", i%100)
		pipe.FCall(ctx, "sc_create_budget", []string{valkey.Key(chainKey(i)), valkey.Key(team), valkey.Key(org)},
			`{"budget_id":"`+chainKey(i)+`","parent_id":"`+team+`",`+limit+`}`)
	}
	_, err := pipe.Exec(ctx)
	return err
}

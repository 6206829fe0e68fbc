package tests

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
	spendcapsql "github.com/spendcap/spendcap/sql"
)

// releasesDir holds the frozen install script (`migrate sql` output) and Valkey library of each
// release, from which the upgrade tests start.
const releasesDir = "testdata/releases"

// frozenReleases lists the releases kept under releasesDir, oldest first.
func frozenReleases(t *testing.T) []migrator.Release {
	t.Helper()
	all, err := migrator.Releases(nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []migrator.Release
	for _, r := range all {
		if _, err := os.Stat(filepath.Join(releasesDir, r.Name, "install.sql")); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func installRelease(t *testing.T, url, release string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(releasesDir, release, "install.sql"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// No arguments: pgx sends the script with the simple protocol, as psql would.
	if _, err := conn.Exec(ctx, string(script)); err != nil {
		t.Fatalf("install %s: %v", release, err)
	}
}

// Every release but the one this tree builds is frozen, and a frozen release's install script is
// what `migrate sql` printed for it: a change to the SQL after a release is frozen needs a new
// release in sql/releases.txt.
func TestEveryEarlierReleaseIsFrozenAndTheCurrentOneUnchanged(t *testing.T) {
	t.Parallel()
	all, err := migrator.Releases(nil)
	if err != nil || len(all) == 0 {
		t.Fatalf("releases: %v, %v", all, err)
	}
	entries, err := os.ReadDir(releasesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.ContainsFunc(all, func(r migrator.Release) bool { return r.Name == e.Name() }) {
			t.Errorf("%s/%s is not a release of sql/releases.txt", releasesDir, e.Name())
		}
	}
	for _, r := range all[:len(all)-1] {
		for _, f := range []string{"install.sql", "spendcap.lua"} {
			if _, err := os.Stat(filepath.Join(releasesDir, r.Name, f)); err != nil {
				t.Errorf("release %s is not frozen: %v", r.Name, err)
			}
		}
	}
	current := all[len(all)-1]
	migs, err := migrator.Migrations(nil)
	if err != nil {
		t.Fatal(err)
	}
	if latest := migs[len(migs)-1].Version; current.Schema != latest {
		t.Errorf("sql/releases.txt: release %s migrates to schema %d, the tree's migrations to %d", current.Name, current.Schema, latest)
	}
	frozen, err := os.ReadFile(filepath.Join(releasesDir, current.Name, "install.sql"))
	if errors.Is(err, fs.ErrNotExist) {
		return // not frozen yet
	} else if err != nil {
		t.Fatal(err)
	}
	script, err := migrator.Script(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(frozen) != script {
		t.Errorf("the SQL changed after release %s was frozen: add the next release to sql/releases.txt", current.Name)
	}
	library, err := os.ReadFile("../valkey/spendcap.lua")
	if err != nil {
		t.Fatal(err)
	}
	if frozenLib, err := os.ReadFile(filepath.Join(releasesDir, current.Name, "spendcap.lua")); err != nil || string(frozenLib) != string(library) {
		t.Errorf("the Valkey library changed after release %s was frozen (%v): add the next release to sql/releases.txt", current.Name, err)
	}
}

// loadClient is one connection of the upgrade load: a pgx execution mode and the statement it
// calls report_usage with.
type loadClient struct {
	mode  pgx.QueryExecMode
	query string // "" for spendcap's Go client (gobinding) on a pool
}

func (c loadClient) String() string {
	mode := map[pgx.QueryExecMode]string{pgx.QueryExecModeCacheStatement: "cache-statement", pgx.QueryExecModeExec: "exec"}[c.mode]
	if c.query == "" {
		return "gobinding " + mode
	}
	return mode + " " + strings.Fields(c.query)[1]
}

// raw says whether the client sends its own SQL.
func (c loadClient) raw() bool { return c.query != "" }

// upgradeLoadClients are 16 connections, four of each kind: both pgx modes that prepare or parse
// each call, and both `SELECT *` (whose columns a release may add to) and a named column; with
// withGo, four more: spendcap's Go client on a pool of its own in either mode.
func upgradeLoadClients(withGo bool) []loadClient {
	var out []loadClient
	if withGo {
		for i := 0; i < 2; i++ {
			out = append(out, loadClient{mode: pgx.QueryExecModeCacheStatement}, loadClient{mode: pgx.QueryExecModeExec})
		}
	}
	for i := 0; i < 4; i++ {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
			for _, q := range []string{
				`SELECT * FROM spendcap.report_usage($1, $2::jsonb, $3)`,
				`SELECT applied FROM spendcap.report_usage($1, $2::jsonb, $3)`,
			} {
				out = append(out, loadClient{mode: mode, query: q})
			}
		}
	}
	return out
}

// loadError is an error a client saw, and the call it retried.
type loadError struct {
	client loadClient
	code   string
	msg    string
}

// loadResult is what the clients saw around a deploy.
type loadResult struct {
	acked      map[string]int64 // acknowledged tokens per budget
	calls      int64
	errors     []loadError
	deploy     time.Duration
	slowest    time.Duration // the longest call, retries included
	deployErr  error
	perClient  []int64
	duringCall int64 // calls acknowledged while the deploy ran
}

// runUpgradeLoad calls report_usage from 16 connections on 4 unlimited budgets, each call with
// its own dedup key and one token, retrying a failed call with its key until it succeeds, and
// runs deploy once every client has made calls; it stops once every client has made calls after.
func runUpgradeLoad(t *testing.T, url string, withGo bool, deploy func() error) loadResult {
	t.Helper()
	clients := upgradeLoadClients(withGo)
	budgets := []string{"u0", "u1", "u2", "u3"}
	res := loadResult{acked: map[string]int64{}, perClient: make([]int64, len(clients))}
	var mu sync.Mutex
	var calls atomic.Int64
	var deploying atomic.Bool
	var during atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		var call func(budget, key string) error
		if c.raw() {
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = c.mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close(ctx) })
			call = func(budget, key string) error {
				rows, err := conn.Query(ctx, c.query, budget, `{"tokens": 1}`, key)
				if err == nil {
					for rows.Next() {
					}
					rows.Close()
					err = rows.Err()
				}
				return err
			}
		} else {
			client := gobinding.NewClient(testenv.PoolFor(t, url), gobinding.Options{ExecMode: &c.mode})
			call = func(budget, key string) error {
				_, err := client.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: budget, Deltas: map[string]int64{"tokens": 1}, DedupKey: key})
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			budget := budgets[i%len(budgets)]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("c%d-%d", i, n)
				start := time.Now()
				for {
					err := call(budget, key)
					if err == nil {
						break
					}
					le := loadError{client: c, msg: err.Error()}
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) {
						le.code = pgErr.Code
					}
					mu.Lock()
					res.errors = append(res.errors, le)
					tooMany := len(res.errors) > 1000
					mu.Unlock()
					if tooMany {
						return
					}
					time.Sleep(time.Millisecond)
				}
				d := time.Since(start)
				mu.Lock()
				res.acked[budget]++
				res.slowest = max(res.slowest, d)
				res.perClient[i]++
				mu.Unlock()
				calls.Add(1)
				if deploying.Load() {
					during.Add(1)
				}
			}
		}()
	}
	waitCalls := func(atLeast int64) {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			least := slices.Min(res.perClient)
			mu.Unlock()
			if least >= atLeast {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Errorf("a client made fewer than %d calls in 30 s", atLeast)
	}
	waitCalls(20)
	deploying.Store(true)
	start := time.Now()
	res.deployErr = deploy()
	res.deploy = time.Since(start)
	deploying.Store(false)
	mu.Lock()
	after := slices.Max(res.perClient)
	mu.Unlock()
	waitCalls(after + 20)
	close(stop)
	wg.Wait()
	res.calls = calls.Load()
	res.duringCall = during.Load()
	return res
}

// checkUpgrade asserts that nothing acknowledged was lost or counted twice and that the audit of
// the upgraded database is clean.
func checkUpgrade(t *testing.T, url string, fsys fs.FS, res loadResult) {
	t.Helper()
	db := testenv.PoolFor(t, url)
	for budget, want := range res.acked {
		var got int64
		if err := db.QueryRow(ctx, `SELECT coalesce((usage ->> 'tokens')::bigint, 0) FROM spendcap.budget_status($1)`, budget).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("budget %s counts %d tokens, the clients were acknowledged %d", budget, got, want)
		}
	}
	var findings []string
	rows, err := db.Query(ctx, `SELECT format('%s %s %s %s %s', check_name, budget_id, dimension, expected, found) FROM spendcap.audit(1000000, false)`)
	if err != nil {
		t.Fatal(err)
	}
	findings, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(findings) > 0 {
		t.Errorf("audit after the upgrade: %v, %v", findings, err)
	}
	st, err := migrator.New(url, migrator.Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.Status(ctx)
	if err != nil || status.Pending {
		t.Errorf("status after the upgrade: pending %v, err %v", status != nil && status.Pending, err)
	}
}

func createLoadBudgets(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, b := range []string{"u0", "u1", "u2", "u3"} {
		// One positional argument: every release's create_budget takes it first.
		if _, err := conn.Exec(ctx, `SELECT spendcap.create_budget($1)`, b); err != nil {
			t.Fatal(err)
		}
	}
}

func summarize(res loadResult) string {
	codes := map[string]int{}
	for _, e := range res.errors {
		codes[e.client.String()+" "+e.code]++
	}
	var keys []string
	for k, n := range codes {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(keys)
	return fmt.Sprintf("%d calls (%d while the deploy ran), deploy %v, slowest call %v, errors %v",
		res.calls, res.duringCall, res.deploy.Round(time.Millisecond), res.slowest.Round(time.Millisecond), keys)
}

// resultTypesChanged says whether a release's outcome types differ from this tree's: v0.2.0's
// lack remaining, v0.1.0's breach_budget_id too.
func resultTypesChanged(rel migrator.Release) bool { return rel.Schema < 16 }

// checkLoadErrors fails the test for every error a client saw, except the SQLSTATEs allowed to raw
// clients when the deployed release changed the result type of report_usage: PostgreSQL refuses
// a statement in flight across the deploy (42804: it started before and its function returned
// after) and, when the function was re-created, a prepared SELECT * (0A000). Each fails the
// statement whole and comes at most once per connection. spendcap's Go client runs such a
// statement again itself: it never sees them.
func checkLoadErrors(t *testing.T, res loadResult, allowed ...string) {
	t.Helper()
	perKind := map[string]int{}
	for _, e := range res.errors {
		if e.client.raw() && slices.Contains(allowed, e.code) {
			perKind[e.client.String()]++
			continue
		}
		t.Errorf("%s saw %s %s", e.client, e.code, e.msg)
	}
	for kind, n := range perKind {
		if n > 4 { // four connections of each kind
			t.Errorf("%s saw %d refusals, want at most one per connection", kind, n)
		}
	}
}

// Upgrading from each frozen release to this tree while 16 clients call report_usage loses
// nothing, counts nothing twice and leaves the audit clean, and from the release before this one
// gives no client an error. From the releases whose outcome types lacked a column, a raw call in
// flight across the deploy may fail once (checkLoadErrors).
func TestUpgradeUnderLoadFromEachReleaseLosesNothing(t *testing.T) {
	t.Parallel()
	current := migrator.CurrentRelease(nil)
	for _, rel := range frozenReleases(t) {
		if rel.Name == current {
			continue
		}
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			url := testenv.NewEmptyDatabase(t)
			installRelease(t, url, rel.Name)
			createLoadBudgets(t, url)
			m, err := migrator.New(url, migrator.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res := runUpgradeLoad(t, url, false, func() error { _, err := m.Up(ctx); return err })
			t.Logf("from %s (schema %d): %s", rel.Name, rel.Schema, summarize(res))
			if res.deployErr != nil {
				t.Fatalf("migrate up: %v", res.deployErr)
			}
			if resultTypesChanged(rel) {
				checkLoadErrors(t, res, "42804", "0A000")
			} else {
				checkLoadErrors(t, res)
			}
			checkUpgrade(t, url, nil, res)
		})
	}
}

// nextRelease is this tree with one more migration, as the next release would be: every
// implementation re-created onto a schema whose budgets table gained a column and, with
// newResultColumn, whose outcome type did too.
func nextRelease(t *testing.T, newResultColumn bool) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(spendcapsql.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(spendcapsql.FS, p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	migration := "ALTER TABLE spendcap.budgets ADD COLUMN next_column integer;\n"
	if newResultColumn {
		migration += "ALTER TYPE spendcap.usage_outcome ADD ATTRIBUTE next_column integer;\n"
	}
	out["migrations/999999_next.up.sql"] = &fstest.MapFile{Data: []byte(migration)}
	out["releases.txt"] = &fstest.MapFile{Data: []byte("v99.0.0 999999 2099-01-01\n")}
	return out
}

// From this release on, deploying the next one under load gives no client an error in any mode
// and keeps a prepared SELECT * working with the columns it was prepared with: the entry points
// stay, and calls wait at the deploy gate, outside the implementations being replaced. When the
// next release adds a column to the outcome, PostgreSQL refuses a raw statement in flight across
// the deploy once, and spendcap's Go client runs it again.
func TestUpgradeUnderLoadToTheNextReleaseGivesNoError(t *testing.T) {
	t.Parallel()
	for _, newResultColumn := range []bool{false, true} {
		t.Run(map[bool]string{false: "same result types", true: "a new result column"}[newResultColumn], func(t *testing.T) {
			t.Parallel()
			url := testenv.NewDatabase(t)
			createLoadBudgets(t, url)
			before := entryPoints(t, url)
			next := nextRelease(t, newResultColumn)
			m, err := migrator.New(url, migrator.Options{FS: next})
			if err != nil {
				t.Fatal(err)
			}
			var up *migrator.UpResult
			res := runUpgradeLoad(t, url, true, func() error {
				var err error
				up, err = m.Up(ctx)
				return err
			})
			t.Logf("to the next release: %s", summarize(res))
			if res.deployErr != nil {
				t.Fatalf("migrate up: %v", res.deployErr)
			}
			if len(up.Schema.Applied) != 1 || up.Functions.Unchanged != 0 {
				t.Errorf("the next release applied migrations %v and left %d function files unchanged; want one migration and every file", up.Schema.Applied, up.Functions.Unchanged)
			}
			if newResultColumn {
				// In flight across the deploy only: the entry point stays, so a statement
				// prepared before it keeps its columns (no 0A000).
				checkLoadErrors(t, res, "42804")
			} else {
				checkLoadErrors(t, res)
			}
			if after := entryPoints(t, url); !maps.Equal(before, after) {
				t.Errorf("the deploy re-created entry points whose signature did not change:\nbefore %v\nafter  %v", before, after)
			}
			checkUpgrade(t, url, next, res)
		})
	}
}

// entryPoints maps each function of schema spendcap to its oid.
func entryPoints(t *testing.T, url string) map[string]uint32 {
	t.Helper()
	rows, err := testenv.PoolFor(t, url).Query(ctx, `SELECT oid::regprocedure::text, oid FROM pg_proc WHERE pronamespace = 'spendcap'::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	var sig string
	var oid uint32
	if _, err := pgx.ForEachRow(rows, []any{&sig, &oid}, func() error { out[sig] = oid; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no entry points")
	}
	return out
}

package migrator_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
	spendcapsql "github.com/spendcap/spendcap/sql"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newMigrator(t *testing.T, url string, fsys fs.FS) *migrator.Migrator {
	t.Helper()
	m, err := migrator.New(url, migrator.Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func functionFileNames(t *testing.T) []string {
	t.Helper()
	files, err := migrator.FunctionFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	return names
}

func latestVersion(t *testing.T) uint {
	t.Helper()
	migs, err := migrator.Migrations(nil)
	if err != nil {
		t.Fatal(err)
	}
	return migs[len(migs)-1].Version
}

func TestUpFromEmptyAppliesSchemaFunctionsAndRiver(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	res, err := newMigrator(t, url, nil).Up(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Schema.From != 0 || res.Schema.To != latestVersion(t) || len(res.Schema.Applied) == 0 {
		t.Errorf("schema = %+v, want 0 -> %d", res.Schema, latestVersion(t))
	}
	if !slices.Equal(res.Functions.Applied, functionFileNames(t)) || res.Functions.Unchanged != 0 {
		t.Errorf("functions = %+v, want every file applied", res.Functions)
	}
	if len(res.River.Applied) == 0 {
		t.Errorf("river applied nothing")
	}
	conn := connect(t, url)
	var created bool
	if err := conn.QueryRow(context.Background(), `SELECT created FROM spendcap.create_budget('b1')`).Scan(&created); err != nil || !created {
		t.Fatalf("create_budget after up: created=%v err=%v", created, err)
	}
	var jobs int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs); err != nil {
		t.Fatalf("river_job after up: %v", err)
	}
}

func TestSecondUpChangesNothing(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	m := newMigrator(t, url, nil)
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := m.Up(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Schema.Applied) != 0 || len(res.Functions.Applied) != 0 || len(res.River.Applied) != 0 {
		t.Errorf("second up applied %+v", res)
	}
	if res.Functions.Unchanged != len(functionFileNames(t)) {
		t.Errorf("unchanged = %d, want %d", res.Functions.Unchanged, len(functionFileNames(t)))
	}
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending {
		t.Errorf("status after up is pending: %s", st.Text())
	}
}

func TestConcurrentUpsApplyEverythingOnce(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	var wg sync.WaitGroup
	results := make([]*migrator.UpResult, 4)
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = newMigrator(t, url, nil).Up(context.Background())
		})
	}
	wg.Wait()
	var schema []uint
	var functions []string
	var river []int
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("up %d: %v", i, errs[i])
		}
		schema = append(schema, res.Schema.Applied...)
		functions = append(functions, res.Functions.Applied...)
		river = append(river, res.River.Applied...)
	}
	slices.Sort(functions)
	if len(schema) != int(latestVersion(t)) || !slices.Equal(functions, functionFileNames(t)) || len(river) != 8 {
		t.Errorf("across 4 concurrent ups: schema %v, functions %v, river %v; want each applied once", schema, functions, river)
	}
}

func TestDownToZeroAndBack(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	m := newMigrator(t, url, nil)
	ctx := context.Background()
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	down, err := m.Down(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if down.Schema.To != 0 || len(down.Schema.Applied) != int(latestVersion(t)) {
		t.Errorf("down = %+v, want to 0", down.Schema)
	}
	conn := connect(t, url)
	var schemas int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'spendcap%'`).Scan(&schemas); err != nil || schemas != 0 {
		t.Errorf("after down to 0: %d spendcap schemas (err %v)", schemas, err)
	}
	if v, dirty, err := m.Version(ctx); err != nil || v != 0 || dirty {
		t.Errorf("version after down = %d dirty=%v err=%v", v, dirty, err)
	}
	up, err := m.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up.Functions.Applied, functionFileNames(t)) {
		t.Errorf("up after down re-applied functions %v, want all", up.Functions.Applied)
	}
	var created bool
	if err := conn.QueryRow(ctx, `SELECT created FROM spendcap.create_budget('b1')`).Scan(&created); err != nil || !created {
		t.Fatalf("create_budget after down and up: created=%v err=%v", created, err)
	}
}

// withChangedFile copies the embedded SQL, replacing one file's content.
func withChangedFile(t *testing.T, name string, change func(string) string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(spendcapsql.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		b, err := fs.ReadFile(spendcapsql.FS, p)
		if err != nil {
			return err
		}
		if p == name {
			b = []byte(change(string(b)))
		}
		out[p] = &fstest.MapFile{Data: b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestChangedFunctionFileIsReapplied(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	changed := withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		return s + "\nCOMMENT ON FUNCTION spendcap.budget_status IS 'changed by test';\n"
	})
	res, err := newMigrator(t, url, changed).Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Functions.Applied, []string{"110_budget_status.sql"}) || res.Functions.Unchanged != len(functionFileNames(t))-1 {
		t.Errorf("functions = %+v, want only 110_budget_status.sql applied", res.Functions)
	}
	var comment string
	if err := connect(t, url).QueryRow(ctx, `SELECT coalesce(obj_description('spendcap.budget_status'::regproc, 'pg_proc'), '')`).Scan(&comment); err != nil || comment != "changed by test" {
		t.Errorf("comment = %q (err %v), want the changed file applied", comment, err)
	}
	st, err := newMigrator(t, url, nil).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Functions {
		want := "applied"
		if f.Name == "110_budget_status.sql" {
			want = "changed"
		}
		if f.State != want {
			t.Errorf("status of %s = %s, want %s (against the embedded files)", f.Name, f.State, want)
		}
	}
}

func TestFunctionSignatureChangeReplacesTheOldOne(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	changed := withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		return strings.Replace(s, "at        timestamptz DEFAULT NULL)", "at        timestamptz DEFAULT NULL,\n    verbose   boolean DEFAULT false)", 1)
	})
	if _, err := newMigrator(t, url, changed).Up(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := connect(t, url).QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname = 'budget_status'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("budget_status has %d definitions (err %v), want 1", n, err)
	}
}

// A deleted file's functions are dropped and a renamed file's are kept; status shows both before.
func TestDeletedAndRenamedFunctionFilesLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	changed := withChangedFile(t, "", nil)
	delete(changed, "functions/230_release_spend.sql")
	changed["functions/311_history.sql"] = changed["functions/310_budget_history.sql"]
	delete(changed, "functions/310_budget_history.sql")

	st, err := newMigrator(t, url, changed).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, f := range st.Functions {
		states[f.Name] = f.State
	}
	if states["230_release_spend.sql"] != "removed" || states["310_budget_history.sql"] != "removed" || states["311_history.sql"] != "pending" ||
		!st.Pending || !slices.Equal(st.LeftoverFunctions, []string{"spendcap.release_spend(text,text,timestamp with time zone)"}) {
		t.Errorf("status before up: %v, pending %v, leftover %v", states, st.Pending, st.LeftoverFunctions)
	}

	res, err := newMigrator(t, url, changed).Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Functions.Removed, []string{"230_release_spend.sql", "310_budget_history.sql"}) ||
		!slices.Equal(res.Functions.Dropped, []string{"spendcap.release_spend(text,text,timestamp with time zone)"}) {
		t.Errorf("up: removed %v, dropped %v", res.Functions.Removed, res.Functions.Dropped)
	}
	var releaseSpend, budgetHistory bool
	if err := connect(t, url).QueryRow(ctx, `SELECT to_regproc('spendcap.release_spend') IS NOT NULL, to_regproc('spendcap.budget_history') IS NOT NULL`).
		Scan(&releaseSpend, &budgetHistory); err != nil || releaseSpend || !budgetHistory {
		t.Errorf("after up: release_spend exists %v, budget_history exists %v (err %v); want only the renamed file's function", releaseSpend, budgetHistory, err)
	}
	st, err = newMigrator(t, url, changed).Status(ctx)
	if err != nil || st.Pending || len(st.LeftoverFunctions) != 0 {
		t.Errorf("status after up: pending %v, leftover %v, err %v", st.Pending, st.LeftoverFunctions, err)
	}
}

func TestFailedMigrationLeavesDirtyStateUntilForced(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	broken := withChangedFile(t, "", nil)
	broken["migrations/999999_broken.up.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE spendcap.ok_part (x int);\nSELECT no_such_column FROM spendcap.budgets;\n")}
	broken["migrations/999999_broken.down.sql"] = &fstest.MapFile{Data: []byte("DROP TABLE IF EXISTS spendcap.ok_part;\n")}
	_, err := newMigrator(t, url, broken).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("up with a broken migration: err = %v, want the SQL error", err)
	}
	_, err = newMigrator(t, url, nil).Up(ctx)
	var dirty *migrator.DirtyError
	if !errors.As(err, &dirty) || dirty.Version != 999999 {
		t.Fatalf("up on a dirty schema: err = %v, want DirtyError at 999999", err)
	}
	if err := newMigrator(t, url, nil).Force(ctx, int(latestVersion(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatalf("up after force: %v", err)
	}
	var exists bool
	if err := connect(t, url).QueryRow(ctx, `SELECT to_regclass('spendcap.ok_part') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("the failed migration's first statement persisted (exists=%v err=%v): files must run in one transaction", exists, err)
	}
}

func TestScriptMatchesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	viaUp := testenv.NewEmptyDatabase(t)
	if _, err := newMigrator(t, viaUp, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	viaScript := testenv.NewEmptyDatabase(t)
	script, err := migrator.Script(nil)
	if err != nil {
		t.Fatal(err)
	}
	psql := clientBinary(t, "psql")
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", viaScript)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate sql | psql: %v\n%s", err, out)
	}
	up, sc := dump(t, viaUp), dump(t, viaScript)
	if !strings.Contains(up, "CREATE TABLE spendcap.budgets") || !strings.Contains(up, "FUNCTION spendcap.create_budget(") {
		t.Fatalf("pg_dump of the migrated database lacks the budgets table or create_budget:\n%.2000s", up)
	}
	if up != sc {
		t.Errorf("pg_dump of schemas spendcap*: `migrate up` and `migrate sql | psql` differ:\n%s", firstDifference(up, sc))
	}
	if up, sc := bookkeeping(t, viaUp), bookkeeping(t, viaScript); up != sc {
		t.Errorf("bookkeeping differs: up %q, script %q", up, sc)
	}
	// A later `migrate up` finds the scripted schema complete and only adds River.
	res, err := newMigrator(t, viaScript, nil).Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Schema.Applied) != 0 || len(res.Functions.Applied) != 0 {
		t.Errorf("up after the script applied %+v, want nothing but River", res)
	}
}

func clientBinary(t *testing.T, name string) string {
	t.Helper()
	if bin, err := localserver.FindPostgresBin(); err == nil {
		if p := filepath.Join(bin, name); fileExists(p) {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s", name, localserver.PostgresInstallHint)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func dump(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command(clientBinary(t, "pg_dump"), "-n", "spendcap", "-n", "spendcap_internal", url).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	// Recent pg_dump brackets the dump with \restrict <random key>; the key differs per run.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, `\restrict `) && !strings.HasPrefix(l, `\unrestrict `) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func bookkeeping(t *testing.T, url string) string {
	t.Helper()
	var s string
	err := connect(t, url).QueryRow(context.Background(), `SELECT
		(SELECT string_agg(version || ':' || dirty, ',') FROM public.spendcap_schema_migrations) || ' ' ||
		(SELECT string_agg(name || ':' || sha256 || ':' || schema_version, ',' ORDER BY name) FROM public.spendcap_functions)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + strconv.Itoa(i+1) + ":\n  up:     " + x + "\n  script: " + y
		}
	}
	return ""
}

func TestEveryFunctionFileCanBeReapplied(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(ctx, `DELETE FROM public.spendcap_functions`); err != nil {
		t.Fatal(err)
	}
	res, err := newMigrator(t, url, nil).Up(ctx)
	if err != nil {
		t.Fatalf("re-applying every function file onto existing functions: %v", err)
	}
	if !slices.Equal(res.Functions.Applied, functionFileNames(t)) {
		t.Errorf("applied %v, want every file", res.Functions.Applied)
	}
}

// Migration 5 moves the quota counts onto the policy row: leases and window entries recorded
// before it must be counted from the start.
func TestQuotaCountersMigrationCountsWhatWasThere(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	m := newMigrator(t, url, nil)
	ctx := context.Background()
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `SELECT * FROM spendcap.create_quota_policy('q', window_seconds => 600, max_requests => 10, max_concurrent => 10, lease_seconds => 3600);
		SELECT * FROM spendcap.acquire_quota('q', 'h1', at => '2026-03-10 12:00Z');
		SELECT * FROM spendcap.acquire_quota('q', 'h2', at => '2026-03-10 12:01Z')`); err != nil {
		t.Fatal(err)
	}
	if v := latestVersion(t); v != 5 {
		t.Skipf("the newest migration is %d; this test goes down to before migration 5", v)
	}
	if _, err := m.Down(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	var inWindow, active int
	if err := conn.QueryRow(ctx, `SELECT in_window, active FROM spendcap.acquire_quota('q', 'h3', at => '2026-03-10 12:02Z')`).Scan(&inWindow, &active); err != nil {
		t.Fatal(err)
	}
	if inWindow != 3 || active != 3 {
		t.Errorf("after migration 5 a third acquire counts in_window=%d active=%d, want 3 and 3", inWindow, active)
	}
}

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
	"time"

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
		if err != nil || d.IsDir() || p == "embed.go" {
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
	// A new argument: the implementation's file gains it, and so does its line of the entry points.
	changed := withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		return strings.Replace(s, "at        timestamptz DEFAULT NULL)", "at        timestamptz DEFAULT NULL,\n    verbose   boolean DEFAULT false)", 1)
	})
	changed["functions/990_entry_points.sql"].Data = []byte(strings.Replace(string(changed["functions/990_entry_points.sql"].Data),
		"'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone',\n        'spendcap.budget_status_result'",
		"'budget_id text, at timestamp with time zone DEFAULT NULL::timestamp with time zone, verbose boolean DEFAULT false',\n        'spendcap.budget_status_result'", 1))
	if _, err := newMigrator(t, url, changed).Up(ctx); err != nil {
		t.Fatal(err)
	}
	var defs string
	if err := connect(t, url).QueryRow(ctx, `SELECT string_agg(oid::regprocedure::text, ' ' ORDER BY 1) FROM pg_proc WHERE proname = 'budget_status'`).Scan(&defs); err != nil ||
		defs != "spendcap.budget_status(text,timestamp with time zone,boolean) spendcap_internal.budget_status(text,timestamp with time zone,boolean)" {
		t.Errorf("budget_status is defined as %q (err %v), want one entry point and one implementation with the new argument", defs, err)
	}
}

// An implementation file changed in a way its entry point no longer matches is refused, and the
// refused deploy changes nothing: callers keep the entry point and the implementation they had.
func TestAnEntryPointWithoutItsImplementationIsRefused(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	changed := withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		return strings.Replace(s, "at        timestamptz DEFAULT NULL)", "at        timestamptz DEFAULT NULL,\n    verbose   boolean DEFAULT false)", 1)
	})
	_, err := newMigrator(t, url, changed).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "spendcap.budget_status(text,timestamp with time zone)") {
		t.Fatalf("up with a mismatched implementation: err = %v, want the entry point named", err)
	}
	deleted := withChangedFile(t, "", nil)
	delete(deleted, "functions/230_release_spend.sql")
	_, err = newMigrator(t, url, deleted).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "spendcap.release_spend") {
		t.Fatalf("up without an implementation: err = %v, want the entry point named", err)
	}
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `SELECT spendcap.create_budget('b', '{"tokens": 10}')`); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := conn.QueryRow(ctx, `SELECT budget_id FROM spendcap.budget_status('b')`).Scan(&status); err != nil || status != "b" {
		t.Errorf("budget_status after the refused deploys: %q, %v", status, err)
	}
	st, err := newMigrator(t, url, nil).Status(ctx)
	if err != nil || st.Pending {
		t.Errorf("status after the refused deploys: pending %v, err %v; want nothing pending", st != nil && st.Pending, err)
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
	// Removing an API function takes a migration that drops its entry point, and the deletion of its
	// line of the entry points and of its implementation's file.
	changed := withChangedFile(t, "functions/990_entry_points.sql", func(s string) string {
		i := strings.Index(s, "    PERFORM spendcap_internal.ensure_entry_point('release_spend',")
		j := i + strings.Index(s[i:], ";\n") + 2
		return s[:i] + s[j:]
	})
	delete(changed, "functions/230_release_spend.sql")
	changed["migrations/999999_no_release_spend.up.sql"] = &fstest.MapFile{Data: []byte("DROP FUNCTION spendcap.release_spend;\n")}
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
		!st.Pending || !slices.Equal(st.LeftoverFunctions, []string{"spendcap_internal.release_spend(text,text,timestamp with time zone)"}) {
		t.Errorf("status before up: %v, pending %v, leftover %v", states, st.Pending, st.LeftoverFunctions)
	}

	res, err := newMigrator(t, url, changed).Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Functions.Removed, []string{"230_release_spend.sql", "310_budget_history.sql"}) ||
		!slices.Equal(res.Functions.Dropped, []string{"spendcap_internal.release_spend(text,text,timestamp with time zone)"}) {
		t.Errorf("up: removed %v, dropped %v", res.Functions.Removed, res.Functions.Dropped)
	}
	var releaseSpend, budgetHistory bool
	if err := connect(t, url).QueryRow(ctx, `SELECT to_regproc('spendcap.release_spend') IS NOT NULL OR to_regproc('spendcap_internal.release_spend') IS NOT NULL, to_regproc('spendcap.budget_history') IS NOT NULL`).
		Scan(&releaseSpend, &budgetHistory); err != nil || releaseSpend || !budgetHistory {
		t.Errorf("after up: release_spend exists %v, budget_history exists %v (err %v); want only the renamed file's function", releaseSpend, budgetHistory, err)
	}
	st, err = newMigrator(t, url, changed).Status(ctx)
	if err != nil || st.Pending || len(st.LeftoverFunctions) != 0 {
		t.Errorf("status after up: pending %v, leftover %v, err %v", st.Pending, st.LeftoverFunctions, err)
	}
}

// The whole deploy (every pending migration and every changed function file) is one transaction:
// a failure anywhere in it leaves the database exactly as it was, never dirty.
func TestFailedDeployLeavesTheDatabaseAsItWas(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	broken := withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		return strings.Replace(s, "-- budget_status", "-- changed budget_status", 1)
	})
	broken["migrations/999999_broken.up.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE spendcap.ok_part (x int);\nSELECT no_such_column FROM spendcap.budgets;\n")}
	broken["migrations/999999_broken.down.sql"] = &fstest.MapFile{Data: []byte("DROP TABLE IF EXISTS spendcap.ok_part;\n")}
	_, err := newMigrator(t, url, broken).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "999999_broken") || !strings.Contains(err.Error(), "no_such_column") {
		t.Fatalf("up with a broken migration: err = %v, want the migration and the SQL error", err)
	}
	var spendcapSchema bool
	if err := connect(t, url).QueryRow(ctx, `SELECT to_regnamespace('spendcap') IS NOT NULL`).Scan(&spendcapSchema); err != nil || spendcapSchema {
		t.Errorf("after a failed first deploy the schema spendcap exists (%v, err %v): the earlier migrations must roll back too", spendcapSchema, err)
	}
	if v, dirty, err := newMigrator(t, url, nil).Version(ctx); err != nil || v != 0 || dirty {
		t.Errorf("version after a failed first deploy = %d dirty=%v err=%v, want 0, clean", v, dirty, err)
	}

	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := newMigrator(t, url, broken).Up(ctx); err == nil {
		t.Fatal("up with a broken migration on a deployed database succeeded")
	}
	st, err := newMigrator(t, url, nil).Status(ctx)
	if err != nil || st.Pending || st.Schema.Dirty || st.Schema.Version != latestVersion(t) {
		t.Errorf("status after a failed deploy: %+v, err %v; want the deployed state, clean", st, err)
	}
	var exists bool
	if err := connect(t, url).QueryRow(ctx, `SELECT to_regclass('spendcap.ok_part') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("the failed migration's first statement persisted (exists=%v err=%v)", exists, err)
	}
}

// A dirty flag (left by an interrupted `down`, which golang-migrate runs) stops `up` until forced.
func TestDirtySchemaStopsUpUntilForced(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url).Exec(ctx, `UPDATE public.spendcap_schema_migrations SET dirty = true`); err != nil {
		t.Fatal(err)
	}
	_, err := newMigrator(t, url, nil).Up(ctx)
	var dirty *migrator.DirtyError
	if !errors.As(err, &dirty) || dirty.Version != int(latestVersion(t)) {
		t.Fatalf("up on a dirty schema: err = %v, want DirtyError", err)
	}
	if err := newMigrator(t, url, nil).Force(ctx, int(latestVersion(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := newMigrator(t, url, nil).Up(ctx); err != nil {
		t.Fatalf("up after force: %v", err)
	}
}

// A migrate older than the database (a rollback of the binary) refuses to deploy its functions
// onto a schema they were not written for.
func TestOlderMigrateRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	url := testenv.NewEmptyDatabase(t)
	ctx := context.Background()
	newer := withChangedFile(t, "", nil)
	newer["migrations/999999_newer.up.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE spendcap.newer (x int);\n")}
	if _, err := newMigrator(t, url, newer).Up(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := newMigrator(t, url, nil).Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "newer than this migrate") {
		t.Fatalf("an older migrate on a newer schema: err = %v, want a refusal", err)
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

// nextStatus is a release whose budget_status says it is the next one: its budget_id ends in
// " (next)".
func nextStatus(t *testing.T) fstest.MapFS {
	t.Helper()
	return withChangedFile(t, "functions/110_budget_status.sql", func(s string) string {
		s = strings.Replace(s, "    t timestamptz;\nBEGIN", "    t timestamptz;\n    r spendcap.budget_status_result;\nBEGIN", 1)
		return strings.Replace(s, "    RETURN spendcap_internal.status_row(spendcap_internal.advanced(b, t), t);",
			"    r := spendcap_internal.status_row(spendcap_internal.advanced(b, t), t);\n    r.budget_id := r.budget_id || ' (next)';\n    RETURN r;", 1)
	})
}

// waitForGateWaiters waits until n sessions wait for a lock on the deploy gate of conn's database
// (pg_locks shows every database's, and databases cloned from one template share relation oids).
func waitForGateWaiters(t *testing.T, conn *pgx.Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var waiting int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE relation = 'spendcap.deploy_gate'::regclass AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d sessions wait at the deploy gate", n)
}

// openCallerTransaction returns a deployed database with budget b, a connection to it, and a
// transaction that called budget_status and so holds the deploy gate until it ends.
func openCallerTransaction(t *testing.T) (string, *pgx.Conn, pgx.Tx) {
	t.Helper()
	url := testenv.NewDatabase(t)
	ctx := context.Background()
	admin := connect(t, url)
	if _, err := admin.Exec(ctx, `SELECT spendcap.create_budget('b')`); err != nil {
		t.Fatal(err)
	}
	tx, err := connect(t, url).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT spendcap.budget_status('b')`); err != nil {
		t.Fatal(err)
	}
	return url, admin, tx
}

// A deploy waits for the transactions running spendcap code to end; a call that arrives meanwhile
// waits at the gate, outside the implementation, and then runs the new release.
func TestCallsWaitAtTheDeployGateAndRunTheNewRelease(t *testing.T) {
	t.Parallel()
	url, admin, tx := openCallerTransaction(t)
	ctx := context.Background()
	deployed := make(chan error, 1)
	go func() { _, err := newMigrator(t, url, nextStatus(t)).Up(ctx); deployed <- err }()
	waitForGateWaiters(t, admin, 1)
	called := make(chan string, 1)
	go func() {
		var id string
		err := connect(t, url).QueryRow(ctx, `SELECT budget_id FROM spendcap.budget_status('b')`).Scan(&id)
		if err != nil {
			id = err.Error()
		}
		called <- id
	}()
	waitForGateWaiters(t, admin, 2)
	select {
	case err := <-deployed:
		t.Fatalf("the deploy finished while a transaction that called spendcap was open: %v", err)
	case id := <-called:
		t.Fatalf("a call passed the closed gate: %q", id)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-deployed; err != nil {
		t.Fatal(err)
	}
	if id := <-called; id != "b (next)" {
		t.Errorf("the call held at the gate returned budget_id %q, want the new release's %q", id, "b (next)")
	}
}

// A transaction that called spendcap and stays open longer than the gate timeout makes the deploy
// let the held calls through and try again, until it gets the gate.
func TestADeployBlockedByAnOpenTransactionLetsCallsThroughAndRetries(t *testing.T) {
	t.Parallel()
	url, admin, tx := openCallerTransaction(t)
	ctx := context.Background()
	m, err := migrator.New(url, migrator.Options{FS: nextStatus(t), GateTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deployed := make(chan error, 1)
	go func() { _, err := m.Up(ctx); deployed <- err }()
	waitForGateWaiters(t, admin, 1)
	// A call held behind the waiting deploy goes through when the attempt gives up.
	start := time.Now()
	var id string
	if err := connect(t, url).QueryRow(ctx, `SELECT budget_id FROM spendcap.budget_status('b')`).Scan(&id); err != nil || id != "b" {
		t.Fatalf("a call during the blocked deploy: %q, %v; want the old release's answer", id, err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("a call waited %v at the gate, want at most about the gate timeout", waited)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-deployed; err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRow(ctx, `SELECT budget_id FROM spendcap.budget_status('b')`).Scan(&id); err != nil || id != "b (next)" {
		t.Errorf("after the deploy: %q, %v", id, err)
	}
}

// An up with nothing to deploy does not close the gate: it returns at once even while a
// transaction that called spendcap is open, and holds no call.
func TestUpWithNothingToDeployLeavesTheGateOpen(t *testing.T) {
	t.Parallel()
	url, _, tx := openCallerTransaction(t)
	defer func() { _ = tx.Rollback(context.Background()) }()
	m, err := migrator.New(url, migrator.Options{GateTimeout: 100 * time.Millisecond, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Closing the gate would wait for the open transaction past both timeouts and fail.
	res, err := m.Up(context.Background())
	if err != nil || len(res.Schema.Applied) != 0 || len(res.Functions.Applied) != 0 {
		t.Fatalf("up on a deployed database while a caller's transaction is open: %+v, %v", res, err)
	}
}

package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestWriterCannotReadOrWriteTablesDirectly(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	if _, err := testenv.PoolFor(t, url).Exec(ctx, `SELECT * FROM spendcap.create_budget('b1')`); err != nil {
		t.Fatal(err)
	}
	writer := loginRole(t, url, "spendcap_writer")
	for _, sql := range []string{
		`SELECT * FROM spendcap.budgets`,
		`UPDATE spendcap.budgets SET usage = '{}'`,
		`INSERT INTO spendcap.dedup_keys VALUES ('b1', 'k', 'f', '{}', now())`,
		`DELETE FROM spendcap.budget_history`,
		`SELECT * FROM spendcap.reservations`,
		`SELECT * FROM spendcap.spend_ledger`,
	} {
		_, err := writer.Exec(ctx, sql)
		requireCode(t, err, "42501", "permission denied")
	}
}

func TestWriterCannotCreateBudgets(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	writer := loginRole(t, url, "spendcap_writer")
	_, err := writer.Exec(ctx, `SELECT * FROM spendcap.create_budget('b1')`)
	requireCode(t, err, "42501", "permission denied for function create_budget")
	if got := tableCounts(t, testenv.PoolFor(t, url)); got != "budgets=0 history=0 dedup=0 ledger=0 reservations=0" {
		t.Errorf("after a refused call: %s", got)
	}
}

func TestAdminCreatesBudgetsAndWriterReadsThem(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	admin := loginRole(t, url, "spendcap_admin")
	var created bool
	if err := admin.QueryRow(ctx, `SELECT created FROM spendcap.create_budget('b1', '{"tokens": 10}')`).Scan(&created); err != nil || !created {
		t.Fatalf("admin create_budget: created=%v err=%v", created, err)
	}
	writer := loginRole(t, url, "spendcap_writer")
	if st := mustStatus(t, writer, "b1", nil); st.HardLimits["tokens"] != 10 {
		t.Errorf("writer budget_status = %+v", st)
	}
	reader := loginRole(t, url, "spendcap_reader")
	if st := mustStatus(t, reader, "b1", nil); st.BudgetID != "b1" {
		t.Errorf("reader budget_status = %+v", st)
	}
}

func TestRoleWithoutSpendcapRoleCannotCallAnything(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	nobody := loginRole(t, url)
	_, err := nobody.Exec(ctx, `SELECT * FROM spendcap.budget_status('b1')`)
	requireCode(t, err, "42501", "permission denied for schema spendcap")
}

func TestInternalHelpersAreNotCallableEvenByAdmin(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	admin := loginRole(t, url, "spendcap_admin")
	_, err := admin.Exec(ctx, `SELECT spendcap_internal.check_id('a', 'b')`)
	requireCode(t, err, "42501", "permission denied for schema spendcap_internal")
}

func TestAPIFunctionsAreSecurityDefinerWithFixedSearchPath(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	// Internal helpers run inside the API functions, with their search_path, and nobody may call
	// them: no EXECUTE for PUBLIC and no USAGE on their schema (TestInternalHelpersAreNotCallable...).
	rows, err := db.Query(ctx, `SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE (n.nspname = 'spendcap' AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false))
		   OR (n.nspname = 'spendcap' AND NOT p.prosecdef)
		   OR (n.nspname IN ('spendcap', 'spendcap_internal') AND has_function_privilege('public', p.oid, 'EXECUTE'))
		   OR (n.nspname = 'spendcap_internal' AND p.prosecdef)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		t.Errorf("%s: API functions must be SECURITY DEFINER with SET search_path = pg_catalog, pg_temp; no function may be executable by PUBLIC; helpers must not be SECURITY DEFINER", name)
	}
}

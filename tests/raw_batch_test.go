package tests

import (
	"strings"
	"testing"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// A batch that is not 1..1000 JSON objects is refused whole, with SC002 naming items, and writes
// nothing: shapes a Go client never sends, as a raw caller may.
func TestABatchOfNonObjectsIsRefusedWholeOnBothBackends(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	if _, err := db.Exec(ctx, `SELECT spendcap.create_budget('b1')`); err != nil {
		t.Fatal(err)
	}
	for _, items := range []string{`[{"budget_id": "b1", "deltas": {"t": 1}}, 1]`, `{"budget_id": "b1", "deltas": {"t": 1}}`, `[]`, `null`} {
		_, err := db.Exec(ctx, `SELECT * FROM spendcap.report_usage_batch($1::jsonb)`, items)
		requireCode(t, err, "SC002", "items")
	}
	var usage string
	if err := db.QueryRow(ctx, `SELECT usage::text FROM spendcap.budgets WHERE budget_id = 'b1'`).Scan(&usage); err != nil || usage != "{}" {
		t.Fatalf("postgres usage %s %v: a refused batch wrote", usage, err)
	}

	rdb := testenv.Valkey(t)
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b1"}); err != nil {
		t.Fatal(err)
	}
	keys := []string{valkey.Key("b1")}
	for _, argv := range [][]any{
		{`{}`, `{"budget_id": "b1", "deltas": {"t": 1}}`, `1`},
		{`{}`, `[]`},
		{`{}`},
	} {
		err := rdb.FCall(ctx, "sc_report_usage_batch", keys, argv...).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "SC002 items:") {
			t.Fatalf("%v: %v, want SC002 naming items", argv, err)
		}
	}
	st, err := vk.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b1"})
	if err != nil || len(st.Usage) != 0 {
		t.Fatalf("valkey usage %v %v: a refused batch wrote", st.Usage, err)
	}
}

// An item with a field report_usage does not take (at belongs to the batch) fails alone.
func TestABatchItemWithAnUnknownFieldFailsAloneOnBothBackends(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	if _, err := db.Exec(ctx, `SELECT spendcap.create_budget('b1')`); err != nil {
		t.Fatal(err)
	}
	var pgCodes string
	if err := db.QueryRow(ctx, `SELECT string_agg(coalesce(error_code, outcome), ' ' ORDER BY item) FROM spendcap.report_usage_batch(
		'[{"budget_id": "b1", "deltas": {"t": 1}, "at": "2026-01-01T00:00:00Z"}, {"budget_id": "b1", "deltas": {"t": 1}}]')`).Scan(&pgCodes); err != nil {
		t.Fatal(err)
	}
	rdb := testenv.Valkey(t)
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b1"}); err != nil {
		t.Fatal(err)
	}
	reply, err := rdb.FCall(ctx, "sc_report_usage_batch", []string{valkey.Key("b1")}, `{}`,
		`{"budget_id": "b1", "deltas": {"t": 1}, "at_ms": 1}`, `{"budget_id": "b1", "deltas": {"t": 1}}`).Text()
	if err != nil {
		t.Fatal(err)
	}
	if pgCodes != "SC002 ok" || !strings.HasPrefix(reply, `[{"error_code":"SC002","error_message":"items: unknown field \"at_ms\""},{"applied":true`) {
		t.Fatalf("postgres %s, valkey %s: want the first item refused alone", pgCodes, reply)
	}
}

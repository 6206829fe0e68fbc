package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

// A charge to a key counts on its team and organisation, all or nothing, and its rows say so: one
// ledger row and one reservation row per budget of the set.
func TestAChargeToAKeyCountsOnItsChainAllOrNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, q := range []string{
		`SELECT * FROM spendcap.create_budget('org', '{"t": 100}')`,
		`SELECT * FROM spendcap.create_budget('team', '{"t": 50}', parent_id => 'org')`,
		`SELECT * FROM spendcap.create_budget('key', parent_id => 'team')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	usage := func() string {
		var s string
		if err := db.QueryRow(ctx, `SELECT string_agg(budget_id || '=' || usage::text || '/' || breach_count, ' ' ORDER BY budget_id) FROM spendcap.budgets`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var outcome string
	var breach *string
	if err := db.QueryRow(ctx, `SELECT outcome, breach_budget_id FROM spendcap.report_usage('key', '{"t": 40}')`).Scan(&outcome, &breach); err != nil || outcome != "ok" || breach != nil {
		t.Fatalf("report 40: %s %v %v", outcome, breach, err)
	}
	if got := usage(); got != `key={"t": 40}/0 org={"t": 40}/0 team={"t": 40}/0` {
		t.Errorf("after 40: %s", got)
	}
	if err := db.QueryRow(ctx, `SELECT outcome, breach_budget_id FROM spendcap.report_usage('key', '{"t": 20}')`).Scan(&outcome, &breach); err != nil || outcome != "hard_breach" || breach == nil || *breach != "team" {
		t.Fatalf("report 20: %s %v %v; want hard_breach on team", outcome, breach, err)
	}
	if got := usage(); got != `key={"t": 40}/0 org={"t": 40}/0 team={"t": 40}/1` {
		t.Errorf("after the refused 20 (only team's counter moves): %s", got)
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.record_spend('key', 'e1', '{"t": 10}')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.spend_ledger WHERE named_id = 'key' AND execution_id = 'e1'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("ledger rows of e1: %d, %v; want one per budget of the set", n, err)
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.release_spend('key', 'e1')`); err != nil {
		t.Fatal(err)
	}
	if got := usage(); got != `key={"t": 40}/0 org={"t": 40}/0 team={"t": 40}/1` {
		t.Errorf("after releasing e1 from the set: %s", got)
	}
	// A reservation holds its amounts on every budget of the set; settle applies actual on each.
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.reserve('key', 'r1', '{"t": 10}', 60)`); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT outcome, breach_budget_id FROM spendcap.check_usage('key', '{"t": 1}')`).Scan(&outcome, &breach); err != nil || outcome != "hard_breach" || *breach != "team" {
		t.Errorf("check 1 with 10 reserved on the set: %s %v %v; want team's hard breach", outcome, breach, err)
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.settle('key', 'r1', '{"t": 4}')`); err != nil {
		t.Fatal(err)
	}
	if got := usage(); got != `key={"t": 44}/0 org={"t": 44}/0 team={"t": 44}/1` {
		t.Errorf("after settling 4: %s", got)
	}
	var reserved string
	if err := db.QueryRow(ctx, `SELECT string_agg(reserved::text, ' ' ORDER BY budget_id) FROM spendcap.budgets`).Scan(&reserved); err != nil || reserved != "{} {} {}" {
		t.Errorf("reserved after settle: %s, %v", reserved, err)
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.reserve('key', 'r2', '{"t": 5}', 60)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.cancel_reservation('key', 'r2')`); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT string_agg(reserved::text, ' ' ORDER BY budget_id) FROM spendcap.budgets`).Scan(&reserved); err != nil || reserved != "{} {} {}" {
		t.Errorf("reserved after cancel: %s, %v", reserved, err)
	}
}

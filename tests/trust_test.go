package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

// A writer must not move time: a future at would open a full budget's next window early, end
// another holder's lease, or move a window years ahead for every client (docs/semantics.md#time).
func TestAWritersFutureAtIsRefusedAnAdminsAcceptedAndAPastOneAccepted(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	admin := loginRole(t, url, "spendcap_admin")
	writer := loginRole(t, url, "spendcap_writer")
	if _, err := admin.Exec(ctx, `SELECT * FROM spendcap.create_budget('daily', '{"tokens": 100}', reset_every => '1 day')`); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `SELECT * FROM spendcap.report_usage('daily', '{"tokens": 100}')`); err != nil {
		t.Fatal(err)
	}
	// The budget is full: its next window must not open early for a writer.
	_, err := writer.Exec(ctx, `SELECT * FROM spendcap.report_usage('daily', '{"tokens": 100}',
		at => (SELECT next_reset_at FROM spendcap.budget_status('daily')))`)
	requireCode(t, err, "SC002", "at")
	var outcome string
	if err := writer.QueryRow(ctx, `SELECT outcome FROM spendcap.report_usage('daily', '{"tokens": 1}', at => now() - interval '1 hour')`).Scan(&outcome); err != nil || outcome != "hard_breach" {
		t.Errorf("a writer's past at: %q, %v; want hard_breach (accepted, counted in the current window)", outcome, err)
	}
	if err := admin.QueryRow(ctx, `SELECT outcome FROM spendcap.report_usage('daily', '{"tokens": 100}',
		at => (SELECT next_reset_at FROM spendcap.budget_status('daily')))`).Scan(&outcome); err != nil || outcome != "ok" {
		t.Errorf("an admin's future at: %q, %v; want ok in the next window", outcome, err)
	}
}

func TestAWriterCannotEndAnotherHoldersLeaseWithAFutureAt(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	admin := loginRole(t, url, "spendcap_admin")
	writer := loginRole(t, url, "spendcap_writer")
	if _, err := admin.Exec(ctx, `SELECT * FROM spendcap.create_quota_policy('qp1', max_concurrent => 1, lease_seconds => 60)`); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'owner')`); err != nil {
		t.Fatal(err)
	}
	_, err := writer.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'attacker', at => now() + interval '2 minutes')`)
	requireCode(t, err, "SC002", "at")
	var holders []string
	if err := writer.QueryRow(ctx, `SELECT holders FROM spendcap.quota_status('qp1')`).Scan(&holders); err != nil || len(holders) != 1 || holders[0] != "owner" {
		t.Errorf("holders after the refused call: %v, %v; want [owner]", holders, err)
	}
}

// A past at on acquire_quota would record the entry and the lease where no other caller's window
// reaches: ascending past instants a window apart would be admitted without end.
func TestAWritersPastAtOnAcquireQuotaIsRefusedAnAdminsAccepted(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	admin := loginRole(t, url, "spendcap_admin")
	writer := loginRole(t, url, "spendcap_writer")
	if _, err := admin.Exec(ctx, `SELECT * FROM spendcap.create_quota_policy('qp1', window_seconds => 60, max_requests => 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'owner')`); err != nil {
		t.Fatal(err)
	}
	_, err := writer.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'attacker', at => now() - interval '2 minutes')`)
	requireCode(t, err, "SC002", "at")
	var inWindow int
	if err := writer.QueryRow(ctx, `SELECT in_window FROM spendcap.quota_status('qp1')`).Scan(&inWindow); err != nil || inWindow != 1 {
		t.Errorf("in_window after the refused call: %d, %v; want 1", inWindow, err)
	}
	// A clock a little behind is not a replay; an admin may replay the past.
	if _, err := writer.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'late', at => now() - interval '1 second')`); err != nil {
		t.Errorf("a writer's at one second behind: %v", err)
	}
	if _, err := admin.Exec(ctx, `SELECT * FROM spendcap.acquire_quota('qp1', 'replay', at => now() - interval '2 minutes')`); err != nil {
		t.Errorf("an admin's past at: %v; want an answer", err)
	}
}

func TestAnAtOutsideTheYears1970To9999IsRefusedNamingIt(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.create_budget('b', '{"tokens": 100}', reset_every => '1 hour')`); err != nil {
		t.Fatal(err)
	}
	for _, at := range []string{"infinity", "-infinity", "294276-12-31", "4714-11-24 BC", "1969-12-31 23:59:59+00", "10000-01-01 00:00:00+00"} {
		_, err := db.Exec(ctx, `SELECT * FROM spendcap.report_usage('b', '{"tokens": 1}', at => $1::timestamptz)`, at)
		requireCode(t, err, "SC002", "at")
		_, err = db.Exec(ctx, `SELECT * FROM spendcap.create_budget('c', reset_every => '1 day', reset_anchor => $1::timestamptz)`, at)
		requireCode(t, err, "SC002", "reset_anchor")
	}
	if got := tableCounts(t, db); got != "budgets=1 history=0 dedup=0 ledger=0 reservations=0" {
		t.Errorf("after refused calls: %s", got)
	}
	var outcome string
	if err := db.QueryRow(ctx, `SELECT outcome FROM spendcap.report_usage('b', '{"tokens": 1}', at => '9999-12-31 23:59:59+00')`).Scan(&outcome); err != nil || outcome != "ok" {
		t.Errorf("at the last instant: %q, %v", outcome, err)
	}
}

func TestQuantitiesPastTheRangeAndNullDeltasAreSC002(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.create_budget('b', '{"tokens": 100}')`); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{`{"tokens": 1e19}`, `{"tokens": -1e19}`, `{"tokens": 9223372036854775808}`, `{"tokens": 4503599627370496.5}`} {
		_, err := db.Exec(ctx, `SELECT * FROM spendcap.report_usage('b', $1::jsonb)`, d)
		requireCode(t, err, "SC002", "deltas")
		_, err = db.Exec(ctx, `SELECT * FROM spendcap.set_limits('b', hard_limits => $1::jsonb)`, d)
		requireCode(t, err, "SC002", "hard_limits")
	}
	_, err := db.Exec(ctx, `SELECT * FROM spendcap.report_usage('b', NULL)`)
	requireCode(t, err, "SC002", "deltas")
	var usage string
	if err := db.QueryRow(ctx, `SELECT s.usage::text FROM spendcap.report_usage('b', '{"tokens": -0}') r, spendcap.budget_status('b') s`).Scan(&usage); err != nil || usage != "{}" {
		t.Errorf("-0 is the quantity 0: usage %s, %v", usage, err)
	}
}

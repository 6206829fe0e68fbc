package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

// The conformance suite checks that failed calls change nothing observable; these check the rows.

func TestFailedCallsWriteNoRows(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"a": 1}`, "reset_every", "1 hour", "at", day0)
	if _, err := reportUsage(db, "b1", `{"z": 9007199254740991}`, "k", day0); err != nil {
		t.Fatal(err)
	}
	before := tableCounts(t, db)
	later := after(day0, "3h") // every call below would also roll the window
	_, err := reportUsage(db, "b1", `{"a": 5, "z": 1}`, "k2", day0)
	requireCode(t, err, "SC004", "deltas: ")
	_, err = reportUsage(db, "b1", `{"z": 2}`, "k", later)
	requireCode(t, err, "SC003", "dedup_key: ")
	_, err = settle(db, "b1", "nope", `{"a": 1}`, later)
	requireCode(t, err, "SC007", "reservation_id: ")
	_, err = reportUsage(db, "nope", `{"a": 1}`, "k", later)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = reserve(db, "b1", "r", `{"a": 1}`, 0, "k3", later)
	requireCode(t, err, "SC002", "ttl_seconds: ")
	if got := tableCounts(t, db); got != before {
		t.Errorf("failed calls wrote rows: %s, before %s", got, before)
	}
}

func TestDeleteBudgetDeletesEveryRowOfTheBudget(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, id := range []string{"b1", "b2"} {
		mustCreate(t, db, "budget_id", id, "reset_every", "1 day", "at", day0)
		if _, err := recordSpend(db, id, "e", `{"t": 1}`, "k", day0); err != nil {
			t.Fatal(err)
		}
		if _, err := reserve(db, id, "r", `{"t": 1}`, 3600, "k2", day0); err != nil {
			t.Fatal(err)
		}
		if _, err := resetBudget(db, id, after(day0, "1m")); err != nil {
			t.Fatal(err)
		}
	}
	if got := tableCounts(t, db); got != "budgets=2 history=2 dedup=4 ledger=2 reservations=2" {
		t.Fatalf("before delete: %s", got)
	}
	if d, err := deleteBudget(db, "b1"); err != nil || !d {
		t.Fatalf("delete_budget = %v, %v", d, err)
	}
	if got := tableCounts(t, db); got != "budgets=1 history=1 dedup=2 ledger=1 reservations=1" {
		t.Errorf("after delete: %s (b2's rows must stay)", got)
	}
}

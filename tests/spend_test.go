package tests

import (
	"maps"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func requireReleased(t *testing.T, got map[string]int64, err error, want map[string]int64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
}

func TestRecordSpendAdmitsAndReleaseSpendUndoesIt(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "reset_every", "1 day", "at", day0)
	o, err := recordSpend(db, "b1", "e1", `{"t": 4, "usd": 2}`, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = recordSpend(db, "b1", "e1", `{"t": 3}`, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = recordSpend(db, "b1", "e2", `{"t": 2}`, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	// A refused spend is not recorded in the ledger.
	o, err = recordSpend(db, "b1", "e1", `{"t": 5}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	r, err := releaseSpend(db, "b1", "e1", after(day0, "1m"))
	requireReleased(t, r, err, q{"t": 7, "usd": 2})
	st := requireState(t, db, "b1", day0, q{"t": 2}, q{}, 1, 0)
	if !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("updated_at %v", st.UpdatedAt)
	}
	// Releasing twice releases nothing the second time; an unknown execution releases nothing.
	r, err = releaseSpend(db, "b1", "e1", after(day0, "2m"))
	requireReleased(t, r, err, q{})
	r, err = releaseSpend(db, "b1", "never", after(day0, "2m"))
	requireReleased(t, r, err, q{})
	requireState(t, db, "b1", day0, q{"t": 2}, q{}, 1, 0)
}

func TestReleaseSubtractsOnlyItsOwnExecution(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	if _, err := recordSpend(db, "b1", "e1", `{"t": 5, "u": 1}`, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := recordSpend(db, "b1", "e2", `{"u": 3}`, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := reportUsage(db, "b1", `{"u": 10}`, "", day0); err != nil {
		t.Fatal(err)
	}
	r, err := releaseSpend(db, "b1", "e2", day0)
	requireReleased(t, r, err, q{"u": 3})
	requireState(t, db, "b1", day0, q{"t": 5, "u": 11}, q{}, 0, 0)
	r, err = releaseSpend(db, "b1", "e1", day0)
	requireReleased(t, r, err, q{"t": 5, "u": 1})
	requireState(t, db, "b1", day0, q{"u": 10}, q{}, 0, 0)
}

func TestReleaseAfterARollSubtractsNothingFromTheNewWindow(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	if _, err := recordSpend(db, "b1", "e1", `{"t": 5}`, "", day0); err != nil {
		t.Fatal(err)
	}
	next := after(day0, "24h")
	if _, err := reportUsage(db, "b1", `{"t": 3}`, "", next); err != nil {
		t.Fatal(err)
	}
	r, err := releaseSpend(db, "b1", "e1", next)
	requireReleased(t, r, err, q{})
	requireState(t, db, "b1", next, q{"t": 3}, q{}, 0, 0)
	h, err := budgetHistory(db, "b1", 10, next)
	requireHistory(t, h, err, historyRow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: *dayNext, Usage: q{"t": 5}, ClosedBy: "schedule"})
}

func TestReleaseAfterAManualResetSubtractsNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	if _, err := recordSpend(db, "b1", "e1", `{"t": 5}`, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := resetBudget(db, "b1", after(day0, "1h")); err != nil {
		t.Fatal(err)
	}
	// The execution spends again in the new window: only that part is released.
	if _, err := recordSpend(db, "b1", "e1", `{"t": 2}`, "", after(day0, "2h")); err != nil {
		t.Fatal(err)
	}
	if _, err := reportUsage(db, "b1", `{"t": 4}`, "", after(day0, "2h")); err != nil {
		t.Fatal(err)
	}
	r, err := releaseSpend(db, "b1", "e1", after(day0, "3h"))
	requireReleased(t, r, err, q{"t": 2})
	requireState(t, db, "b1", after(day0, "3h"), q{"t": 4}, q{}, 0, 0)
	var ledger int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.spend_ledger`).Scan(&ledger); err != nil || ledger != 0 {
		t.Errorf("ledger rows left: %d (err %v); release forgets every window's entries", ledger, err)
	}
}

func TestRecordSpendInObserveModeRecordsWhatItApplies(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 1}`, "mode", "observe", "at", day0)
	o, err := recordSpend(db, "b1", "e1", `{"t": 3}`, "k", day0)
	requireOutcome(t, o, err, hard(day0, nil, "t", 3, 1, true))
	r, err := releaseSpend(db, "b1", "e1", day0)
	requireReleased(t, r, err, q{"t": 3})
	requireState(t, db, "b1", day0, q{}, q{}, 1, 0)
}

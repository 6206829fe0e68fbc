package tests

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestBudgetStatusOfUnknownBudgetFailsClosed(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	_, err := budgetStatus(db, "nope", nil)
	requireCode(t, err, "SC001", "budget_id: ")
	if got := tableCounts(t, db); got != "budgets=0 history=0 dedup=0 ledger=0 reservations=0" {
		t.Errorf("after SC001: %s", got)
	}
}

func TestBudgetStatusRejectsAnInvalidID(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, id := range []string{"", "a{b}", "a b"} {
		_, err := budgetStatus(db, id, nil)
		requireCode(t, err, "SC002", "budget_id: ")
	}
}

func TestBudgetStatusShowsTheRolledWindowWithoutWriting(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	if _, err := createBudget(db, "budget_id", "b1", "hard_limits", `{"t": 7}`, "reset_every", "1 day", "at", at); err != nil {
		t.Fatal(err)
	}
	later := at.Add(3*24*time.Hour + time.Hour)
	st := mustStatus(t, db, "b1", &later)
	if st.WindowSeq != 2 || !st.WindowStart.Equal(ts(t, "2026-03-13T00:00:00Z")) || !st.NextResetAt.Equal(ts(t, "2026-03-14T00:00:00Z")) {
		t.Errorf("status 3 days later: window_seq %d [%v, %v), want 2 [2026-03-13, 2026-03-14): missed periods collapse into one roll",
			st.WindowSeq, st.WindowStart, st.NextResetAt)
	}
	if st.Remaining["t"] != 7 || len(st.Usage) != 0 {
		t.Errorf("rolled view: usage %v remaining %v", st.Usage, st.Remaining)
	}
	again := mustStatus(t, db, "b1", &at)
	if again.WindowSeq != 1 || !again.WindowStart.Equal(ts(t, "2026-03-10T00:00:00Z")) {
		t.Errorf("status at creation after a later read: window_seq %d from %v; the read must not write", again.WindowSeq, again.WindowStart)
	}
	var history int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.budget_history`).Scan(&history); err != nil || history != 0 {
		t.Errorf("history rows after reads = %d (err %v)", history, err)
	}
}

func TestBudgetStatusBeforeTheWindowStartShowsTheStoredWindow(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	if _, err := createBudget(db, "budget_id", "b1", "reset_every", "1 hour", "at", at); err != nil {
		t.Fatal(err)
	}
	earlier := at.Add(-48 * time.Hour)
	st := mustStatus(t, db, "b1", &earlier)
	if st.WindowSeq != 1 || !st.WindowStart.Equal(at) {
		t.Errorf("status at an instant before the window: seq %d start %v; windows never move backwards", st.WindowSeq, st.WindowStart)
	}
}

func TestBudgetWithoutResetHasOneWindowForever(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := ts(t, "2026-03-10T12:00:00Z")
	if _, err := createBudget(db, "budget_id", "b1", "at", at); err != nil {
		t.Fatal(err)
	}
	far := at.AddDate(30, 0, 0)
	st := mustStatus(t, db, "b1", &far)
	if st.WindowSeq != 1 || !st.WindowStart.Equal(at) || st.NextResetAt != nil || st.ResetAnchor != nil || st.ResetEvery != nil {
		t.Errorf("30 years later: %+v", st)
	}
}

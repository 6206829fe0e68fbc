package conformance

import (
	"testing"

	"github.com/spendcap/spendcap"
)

func init() {
	register("RecordSpendAdmitsAndReleaseSpendUndoesIt", spendAndRelease)
	register("ReleaseSubtractsOnlyItsOwnExecution", releaseOwnExecution)
	register("ReleaseAfterARollSubtractsNothingFromTheNewWindow", releaseAfterRoll)
	register("ReleaseAfterAManualResetSubtractsNothing", releaseAfterReset)
	register("RecordSpendInObserveModeRecordsWhatItApplies", spendObserve)
}

func spendAndRelease(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}})
	o, err := spend(b, "b1", "e1", q{"t": 4, "usd": 2}, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = spend(b, "b1", "e1", q{"t": 3}, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = spend(b, "b1", "e2", q{"t": 2}, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	// A refused spend is not recorded in the ledger.
	o, err = spend(b, "b1", "e1", q{"t": 5}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	r, err := release(b, "b1", "e1", after(day0, "1m"))
	requireReleased(t, r, err, q{"t": 7, "usd": 2})
	if st := requireState(t, b, "b1", day0, q{"t": 2}, q{}, 1, 0); !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("updated_at %v", st.UpdatedAt)
	}
	// Releasing twice releases nothing the second time; an unknown execution releases nothing.
	r, err = release(b, "b1", "e1", after(day0, "2m"))
	requireReleased(t, r, err, q{})
	r, err = release(b, "b1", "never", after(day0, "2m"))
	requireReleased(t, r, err, q{})
	requireState(t, b, "b1", day0, q{"t": 2}, q{}, 1, 0)
}

func releaseOwnExecution(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: day0})
	must(spend(b, "b1", "e1", q{"t": 5, "u": 1}, "", day0))
	must(spend(b, "b1", "e2", q{"u": 3}, "", day0))
	must(report(b, "b1", q{"u": 10}, "", day0))
	r, err := release(b, "b1", "e2", day0)
	requireReleased(t, r, err, q{"u": 3})
	requireState(t, b, "b1", day0, q{"t": 5, "u": 11}, q{}, 0, 0)
	r, err = release(b, "b1", "e1", day0)
	requireReleased(t, r, err, q{"t": 5, "u": 1})
	requireState(t, b, "b1", day0, q{"u": 10}, q{}, 0, 0)
}

func releaseAfterRoll(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	must(spend(b, "b1", "e1", q{"t": 5}, "", day0))
	next := after(day0, "24h")
	must(report(b, "b1", q{"t": 3}, "", next))
	r, err := release(b, "b1", "e1", next)
	requireReleased(t, r, err, q{})
	requireState(t, b, "b1", next, q{"t": 3}, q{}, 0, 0)
	h, err := history(b, "b1", 10, next)
	requireHistory(t, h, err, spendcap.HistoryWindow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: *dayNext, Usage: q{"t": 5}, ClosedBy: spendcap.ClosedBySchedule})
}

func releaseAfterReset(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	must(spend(b, "b1", "e1", q{"t": 5}, "", day0))
	must(reset(b, "b1", after(day0, "1h")))
	// The execution spends again in the new window: only that part is released.
	must(spend(b, "b1", "e1", q{"t": 2}, "", after(day0, "2h")))
	must(report(b, "b1", q{"t": 4}, "", after(day0, "2h")))
	r, err := release(b, "b1", "e1", after(day0, "3h"))
	requireReleased(t, r, err, q{"t": 2})
	requireState(t, b, "b1", after(day0, "3h"), q{"t": 4}, q{}, 0, 0)
	// Its entries of every window are forgotten.
	r, err = release(b, "b1", "e1", after(day0, "3h"))
	requireReleased(t, r, err, q{})
}

func spendObserve(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 1}, Mode: spendcap.ModeObserve, At: day0})
	o, err := spend(b, "b1", "e1", q{"t": 3}, "k", day0)
	requireOutcome(t, o, err, hard(day0, nil, "t", 3, 1, true))
	r, err := release(b, "b1", "e1", day0)
	requireReleased(t, r, err, q{"t": 3})
	requireState(t, b, "b1", day0, q{}, q{}, 1, 0)
}

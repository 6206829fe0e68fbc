package conformance

import (
	"testing"

	"github.com/spendcap/spendcap"
)

func init() {
	register("ReservationsCountInAdmission", reservationsCount)
	register("SettleAppliesActualAmountsAndNeverRefuses", settleNeverRefuses)
	register("SettleWithNothingSpent", settleNothing)
	register("CancelFreesTheReservation", cancelFrees)
	register("FinishedUnknownOrExpiredReservationsRaiseSC007", reservationsSC007)
	register("ExpiredReservationsStopCountingLazily", reservationsExpire)
	register("ReservationsSurviveRolls", reservationsSurviveRolls)
	register("ReserveReplaysWithItsKey", reserveReplays)
}

func reservationsCount(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}, SoftLimits: q{"t": 8}})
	o, err := reserve(b, "b1", "r1", q{"t": 6}, 300, "", day0)
	requireOutcome(t, o, err, expiring(ok(dayStart, dayNext), after(day0, "5m")))
	if st := requireState(t, b, "b1", day0, q{}, q{"t": 6}, 0, 0); st.Remaining["t"] != 4 {
		t.Errorf("remaining %v", st.Remaining)
	}
	// usage 0 + reserved 6 + 3 = 9: above the soft limit.
	o, err = report(b, "b1", q{"t": 3}, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 9, 8))
	// 3 + 6 + 2 = 11: refused; the reported usage is the total of usage and reservations.
	o, err = report(b, "b1", q{"t": 2}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	o, err = reserve(b, "b1", "r2", q{"t": 2}, 300, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	requireState(t, b, "b1", day0, q{"t": 3}, q{"t": 6}, 2, 1)
}

func settleNeverRefuses(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}, SoftLimits: q{"t": 8}})
	must(reserve(b, "b1", "r1", q{"t": 5}, 300, "", day0))
	o, err := reserve(b, "b1", "r2", q{"t": 4}, 300, "", day0)
	requireOutcome(t, o, err, expiring(soft(dayStart, dayNext, "t", 9, 8), after(day0, "5m")))
	// Actual cost under the reservation: ok, the difference is freed.
	o, err = settle(b, "b1", "r1", q{"t": 2, "usd": 1}, after(day0, "1m"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireState(t, b, "b1", day0, q{"t": 2, "usd": 1}, q{"t": 4}, 0, 1)
	// Actual cost far above the reservation: applied anyway, reported as a hard breach.
	o, err = settle(b, "b1", "r2", q{"t": 12}, after(day0, "2m"))
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 14, 10, true))
	st := requireState(t, b, "b1", day0, q{"t": 14, "usd": 1}, q{}, 1, 1)
	if st.Remaining["t"] != 0 || st.LastBreachDim != "t" || !st.UpdatedAt.Equal(after(day0, "2m")) {
		t.Errorf("after settle: %s", StatusString(st))
	}
}

func settleNothing(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: day0})
	must(reserve(b, "b1", "r1", q{"t": 5}, 300, "", day0))
	o, err := settle(b, "b1", "r1", q{}, day0)
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, b, "b1", day0, q{}, q{}, 0, 0)
}

func cancelFrees(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 10}, At: day0})
	must(reserve(b, "b1", "r1", q{"t": 10, "z": 0}, 300, "", day0))
	r, err := cancel(b, "b1", "r1", after(day0, "1m"))
	requireReleased(t, r, err, q{"t": 10})
	if st := requireState(t, b, "b1", day0, q{}, q{}, 0, 0); st.Remaining["t"] != 10 || !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("after cancel: %s", StatusString(st))
	}
}

func reservationsSC007(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: day0})
	for _, rid := range []string{"settled", "cancelled", "expiring"} {
		must(reserve(b, "b1", rid, q{"t": 1}, 60, "", day0))
	}
	must(settle(b, "b1", "settled", q{"t": 1}, day0))
	must(cancel(b, "b1", "cancelled", day0))
	before := snapshot(t, b, "b1", day0)
	for _, rid := range []string{"settled", "cancelled", "unknown"} {
		_, err := settle(b, "b1", rid, q{"t": 1}, day0)
		requireCode(t, err, "SC007", "reservation_id: ")
		_, err = cancel(b, "b1", rid, day0)
		requireCode(t, err, "SC007", "reservation_id: ")
	}
	if after := snapshot(t, b, "b1", day0); after != before {
		t.Errorf("state changed after SC007:\n%s\n%s", after, before)
	}
	// A reservation expires at reserve time + ttl exactly.
	_, err := settle(b, "b1", "expiring", q{"t": 1}, after(day0, "60s"))
	requireCode(t, err, "SC007", "reservation_id: ")
	requireState(t, b, "b1", after(day0, "59s"), q{"t": 1}, q{"t": 1}, 0, 0)
	requireState(t, b, "b1", after(day0, "60s"), q{"t": 1}, q{}, 0, 0)
}

func reservationsExpire(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 10}, At: day0})
	must(reserve(b, "b1", "r1", q{"t": 8}, 60, "", day0))
	must(reserve(b, "b1", "r2", q{"t": 1}, 120, "", day0))
	o, err := report(b, "b1", q{"t": 2}, "", after(day0, "59s"))
	requireOutcome(t, o, err, hard(day0, nil, "t", 9, 10, false))
	o, err = report(b, "b1", q{"t": 2}, "", after(day0, "60s"))
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, b, "b1", after(day0, "60s"), q{"t": 2}, q{"t": 1}, 1, 0)
	// The expired id may be reserved again; the live one may not.
	o, err = reserve(b, "b1", "r1", q{"t": 1}, 60, "", after(day0, "61s"))
	requireOutcome(t, o, err, expiring(ok(day0, nil), after(day0, "121s")))
	_, err = reserve(b, "b1", "r2", q{"t": 1}, 60, "", after(day0, "61s"))
	requireCode(t, err, "SC002", "reservation_id: ")
	requireState(t, b, "b1", after(day0, "61s"), q{"t": 2}, q{"t": 2}, 1, 0)
}

func reservationsSurviveRolls(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: q{"t": 10}, ResetEvery: "1 hour", At: day0})
	must(reserve(b, "b1", "r1", q{"t": 7}, 7200, "", day0))
	next := after(day0, "1h30m")
	o, err := report(b, "b1", q{"t": 4}, "", next)
	requireOutcome(t, o, err, hard(after(day0, "1h"), ptr(after(day0, "2h")), "t", 7, 10, false))
	// In-flight work settles into the window where it finishes.
	o, err = settle(b, "b1", "r1", q{"t": 3}, next)
	requireOutcome(t, o, err, ok(after(day0, "1h"), ptr(after(day0, "2h"))))
	// The first hour held only a reservation: an empty window, which window_seq does not count.
	if st := requireState(t, b, "b1", next, q{"t": 3}, q{}, 1, 0); st.WindowSeq != 1 {
		t.Errorf("window_seq %d", st.WindowSeq)
	}
}

func reserveReplays(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: day0})
	want := expiring(ok(day0, nil), after(day0, "5m"))
	o, err := reserve(b, "b1", "r1", q{"t": 1}, 300, "k", day0)
	requireOutcome(t, o, err, want)
	// The reservation is live, but the same call with the same key replays instead of refusing.
	o, err = reserve(b, "b1", "r1", q{"t": 1}, 300, "k", after(day0, "1m"))
	requireOutcome(t, o, err, replayed(want))
	requireState(t, b, "b1", day0, q{}, q{"t": 1}, 0, 0)
}

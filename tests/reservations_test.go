package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestReservationsCountInAdmission(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 8}`, "reset_every", "1 day", "at", day0)
	o, err := reserve(db, "b1", "r1", `{"t": 6}`, 300, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext).expiring(after(day0, "5m")))
	st := requireState(t, db, "b1", day0, q{}, q{"t": 6}, 0, 0)
	if st.Remaining["t"] != 4 {
		t.Errorf("remaining %v", st.Remaining)
	}
	// usage 0 + reserved 6 + 3 = 9: above the soft limit.
	o, err = reportUsage(db, "b1", `{"t": 3}`, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 9, 8))
	// 3 + 6 + 2 = 11: refused; the reported usage is the total of usage and reservations.
	o, err = reportUsage(db, "b1", `{"t": 2}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	o, err = reserve(db, "b1", "r2", `{"t": 2}`, 300, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 9, 10, false))
	requireState(t, db, "b1", day0, q{"t": 3}, q{"t": 6}, 2, 1)
}

func TestSettleAppliesActualAmountsAndNeverRefuses(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 8}`, "reset_every", "1 day", "at", day0)
	if _, err := reserve(db, "b1", "r1", `{"t": 5}`, 300, "", day0); err != nil {
		t.Fatal(err)
	}
	o, err := reserve(db, "b1", "r2", `{"t": 4}`, 300, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 9, 8).expiring(after(day0, "5m")))
	// Actual cost under the reservation: ok, the difference is freed.
	o, err = settle(db, "b1", "r1", `{"t": 2, "usd": 1}`, after(day0, "1m"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireState(t, db, "b1", day0, q{"t": 2, "usd": 1}, q{"t": 4}, 0, 1)
	// Actual cost far above the reservation: applied anyway, reported as a hard breach.
	o, err = settle(db, "b1", "r2", `{"t": 12}`, after(day0, "2m"))
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 14, 10, true))
	st := requireState(t, db, "b1", day0, q{"t": 14, "usd": 1}, q{}, 1, 1)
	if st.Remaining["t"] != 0 || st.LastBreachDim == nil || *st.LastBreachDim != "t" || !st.UpdatedAt.Equal(after(day0, "2m")) {
		t.Errorf("after settle: %+v", st)
	}
}

func TestSettleWithNothingSpent(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	if _, err := reserve(db, "b1", "r1", `{"t": 5}`, 300, "", day0); err != nil {
		t.Fatal(err)
	}
	o, err := settle(db, "b1", "r1", `{}`, day0)
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, db, "b1", day0, q{}, q{}, 0, 0)
}

func TestCancelFreesTheReservation(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "at", day0)
	if _, err := reserve(db, "b1", "r1", `{"t": 10, "z": 0}`, 300, "", day0); err != nil {
		t.Fatal(err)
	}
	r, err := cancelReservation(db, "b1", "r1", after(day0, "1m"))
	requireReleased(t, r, err, q{"t": 10})
	st := requireState(t, db, "b1", day0, q{}, q{}, 0, 0)
	if st.Remaining["t"] != 10 || !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("after cancel: %+v", st)
	}
}

func TestFinishedUnknownOrExpiredReservationsRaiseSC007(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	for _, rid := range []string{"settled", "cancelled", "expiring"} {
		if _, err := reserve(db, "b1", rid, `{"t": 1}`, 60, "", day0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := settle(db, "b1", "settled", `{"t": 1}`, day0); err != nil {
		t.Fatal(err)
	}
	if _, err := cancelReservation(db, "b1", "cancelled", day0); err != nil {
		t.Fatal(err)
	}
	before := tableCounts(t, db)
	for _, rid := range []string{"settled", "cancelled", "unknown"} {
		_, err := settle(db, "b1", rid, `{"t": 1}`, day0)
		requireCode(t, err, "SC007", "reservation_id: ")
		_, err = cancelReservation(db, "b1", rid, day0)
		requireCode(t, err, "SC007", "reservation_id: ")
	}
	if got := tableCounts(t, db); got != before {
		t.Errorf("after SC007: %s, before %s", got, before)
	}
	// A reservation expires at reserve time + ttl exactly.
	_, err := settle(db, "b1", "expiring", `{"t": 1}`, after(day0, "60s"))
	requireCode(t, err, "SC007", "reservation_id: ")
	requireState(t, db, "b1", after(day0, "59s"), q{"t": 1}, q{"t": 1}, 0, 0)
	requireState(t, db, "b1", after(day0, "60s"), q{"t": 1}, q{}, 0, 0)
}

func TestExpiredReservationsStopCountingLazily(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "at", day0)
	if _, err := reserve(db, "b1", "r1", `{"t": 8}`, 60, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, "b1", "r2", `{"t": 1}`, 120, "", day0); err != nil {
		t.Fatal(err)
	}
	o, err := reportUsage(db, "b1", `{"t": 2}`, "", after(day0, "59s"))
	requireOutcome(t, o, err, hard(day0, nil, "t", 9, 10, false))
	o, err = reportUsage(db, "b1", `{"t": 2}`, "", after(day0, "60s"))
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, db, "b1", after(day0, "60s"), q{"t": 2}, q{"t": 1}, 1, 0)
	// The expired id may be reserved again; the live one may not.
	o, err = reserve(db, "b1", "r1", `{"t": 1}`, 60, "", after(day0, "61s"))
	requireOutcome(t, o, err, ok(day0, nil).expiring(after(day0, "121s")))
	_, err = reserve(db, "b1", "r2", `{"t": 1}`, 60, "", after(day0, "61s"))
	requireCode(t, err, "SC002", "reservation_id: ")
	requireState(t, db, "b1", after(day0, "61s"), q{"t": 2}, q{"t": 2}, 1, 0)
}

func TestReservationsSurviveRolls(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "reset_every", "1 hour", "at", day0)
	if _, err := reserve(db, "b1", "r1", `{"t": 7}`, 7200, "", day0); err != nil {
		t.Fatal(err)
	}
	next := after(day0, "1h30m")
	o, err := reportUsage(db, "b1", `{"t": 4}`, "", next)
	requireOutcome(t, o, err, hard(after(day0, "1h"), ptr(after(day0, "2h")), "t", 7, 10, false))
	// In-flight work settles into the window where it finishes.
	o, err = settle(db, "b1", "r1", `{"t": 3}`, next)
	requireOutcome(t, o, err, ok(after(day0, "1h"), ptr(after(day0, "2h"))))
	st := requireState(t, db, "b1", next, q{"t": 3}, q{}, 1, 0)
	if st.WindowSeq != 2 {
		t.Errorf("window_seq %d", st.WindowSeq)
	}
}

func TestReserveReplaysWithItsKey(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	want := ok(day0, nil).expiring(after(day0, "5m"))
	o, err := reserve(db, "b1", "r1", `{"t": 1}`, 300, "k", day0)
	requireOutcome(t, o, err, want)
	// The reservation is live, but the same call with the same key replays instead of refusing.
	o, err = reserve(db, "b1", "r1", `{"t": 1}`, 300, "k", after(day0, "1m"))
	requireOutcome(t, o, err, want.replayed())
	requireState(t, db, "b1", day0, q{}, q{"t": 1}, 0, 0)
}

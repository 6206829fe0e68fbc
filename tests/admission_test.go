package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/testenv"
)

// A day-window budget created at noon on 2026-03-10 UTC: window [Mar 10, Mar 11).
var (
	day0     = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	dayStart = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	dayNext  = ptr(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))
)

func TestReportUsageWithinLimitsIsOK(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"tokens": 100}`, "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"tokens": 40, "requests": 1}`, "", after(day0, "1m"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	st := requireState(t, db, "b1", after(day0, "1m"), q{"tokens": 40, "requests": 1}, q{}, 0, 0)
	if st.Remaining["tokens"] != 60 || len(st.Remaining) != 1 || !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("remaining %v updated_at %v", st.Remaining, st.UpdatedAt)
	}
}

func TestReachingAHardLimitExactlyIsAllowed(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"tokens": 100}`, "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"tokens": 100}`, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = reportUsage(db, "b1", `{"tokens": 1}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 100, 100, false))
	requireState(t, db, "b1", day0, q{"tokens": 100}, q{}, 1, 0)
}

func TestHardBreachInEnforceModeAppliesNothingAndCounts(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"tokens": 100, "usd": 10}`, "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"tokens": 90, "usd": 1}`, "", day0); err != nil {
		t.Fatal(err)
	}
	at := after(day0, "5m")
	o, err := reportUsage(db, "b1", `{"tokens": 20, "usd": 1, "requests": 1}`, "", at)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 90, 100, false))
	st := requireState(t, db, "b1", at, q{"tokens": 90, "usd": 1}, q{}, 1, 0)
	if st.WindowBreachCount != 1 || st.LastBreachAt == nil || !st.LastBreachAt.Equal(at) || *st.LastBreachDim != "tokens" {
		t.Errorf("window breach %d last %v %v", st.WindowBreachCount, st.LastBreachAt, st.LastBreachDim)
	}
}

func TestHardCheckTakesDimensionsInByteOrder(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	// Byte order puts "Z" before "a" and "a" before "aa"; jsonb's own key order (by length) would not.
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"aa": 1, "a": 1, "Z": 1}`, "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"aa": 2, "a": 2, "Z": 2}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "Z", 0, 1, false))
	o, err = reportUsage(db, "b1", `{"aa": 2, "a": 2}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "a", 0, 1, false))
}

func TestZeroIsARealLimit(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"gpu": 0}`, "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"gpu": 1}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "gpu", 0, 0, false))
	o, err = reportUsage(db, "b1", `{"gpu": 0}`, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	st := requireState(t, db, "b1", day0, q{}, q{}, 1, 0)
	if st.Remaining["gpu"] != 0 {
		t.Errorf("remaining %v", st.Remaining)
	}
}

func TestObserveModeAppliesHardBreachesAndCountsThem(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"tokens": 100}`, "soft_limits", `{"tokens": 50}`,
		"mode", "observe", "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"tokens": 120}`, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 120, 100, true))
	// A hard breach is not also counted as a soft breach.
	st := requireState(t, db, "b1", day0, q{"tokens": 120}, q{}, 1, 0)
	if st.Remaining["tokens"] != 0 {
		t.Errorf("remaining %v", st.Remaining)
	}
}

func TestSoftBreachIsCountedOncePerCall(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "soft_limits", `{"a": 5, "b": 5}`, "hard_limits", `{"a": 100}`,
		"reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"b": 6, "a": 6}`, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "a", 6, 5))
	// Every call that ends above a soft limit counts again.
	o, err = reportUsage(db, "b1", `{"b": 1}`, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "b", 7, 5))
	st := requireState(t, db, "b1", day0, q{"a": 6, "b": 7}, q{}, 0, 2)
	if st.WindowSoftBreachCount != 2 || st.LastBreachAt != nil {
		t.Errorf("window soft %d last breach %v", st.WindowSoftBreachCount, st.LastBreachAt)
	}
}

func TestUsageAboveMaxQuantityRaisesSC004WritingNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"a": 1}`, "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"z": 9007199254740991}`, "", day0); err != nil {
		t.Fatal(err)
	}
	before := mustStatus(t, db, "b1", &day0)
	// SC004 wins over a hard breach of an earlier dimension: step 1 runs over every dimension first.
	_, err := reportUsage(db, "b1", `{"a": 5, "z": 1}`, "k", after(day0, "1m"))
	requireCode(t, err, "SC004", "deltas: ")
	if after := mustStatus(t, db, "b1", &day0); !equalStatus(after, before) {
		t.Errorf("state changed after SC004")
	}
	if got := tableCounts(t, db); got != "budgets=1 history=0 dedup=0 ledger=0 reservations=0" {
		t.Errorf("after SC004: %s", got)
	}
}

func TestUnknownBudgetFailsClosedForEveryCall(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	_, err := reportUsage(db, "nope", `{"t": 1}`, "k", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = checkUsage(db, "nope", `{"t": 1}`, day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = recordSpend(db, "nope", "e", `{"t": 1}`, "k", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = releaseSpend(db, "nope", "e", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = reserve(db, "nope", "r", `{"t": 1}`, 60, "k", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = settle(db, "nope", "r", `{"t": 1}`, day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = cancelReservation(db, "nope", "r", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = resetBudget(db, "nope", day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = budgetHistory(db, "nope", 10, day0)
	requireCode(t, err, "SC001", "budget_id: ")
	_, err = setLimits(db, "nope", ptr(`{}`), nil, nil, day0)
	requireCode(t, err, "SC001", "budget_id: ")
	if got := tableCounts(t, db); got != "budgets=0 history=0 dedup=0 ledger=0 reservations=0" {
		t.Errorf("after SC001s: %s", got)
	}
}

func TestAdmissionRejectsInvalidArgumentsWritingNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	for _, tc := range []struct {
		name, arg string
		call      func() error
	}{
		{"empty deltas", "deltas", func() error { _, err := reportUsage(db, "b1", `{}`, "", day0); return err }},
		{"deltas not an object", "deltas", func() error { _, err := reportUsage(db, "b1", `[1]`, "", day0); return err }},
		{"negative delta", "deltas", func() error { _, err := reportUsage(db, "b1", `{"t": -1}`, "", day0); return err }},
		{"fractional delta", "deltas", func() error { _, err := reportUsage(db, "b1", `{"t": 0.5}`, "", day0); return err }},
		{"delta above MAX_QTY", "deltas", func() error { _, err := reportUsage(db, "b1", `{"t": 9007199254740992}`, "", day0); return err }},
		{"bad dimension", "deltas", func() error { _, err := reportUsage(db, "b1", `{"t t": 1}`, "", day0); return err }},
		{"bad dedup key", "dedup_key", func() error { _, err := reportUsage(db, "b1", `{"t": 1}`, "a{b", day0); return err }},
		{"long dedup key", "dedup_key", func() error { _, err := reportUsage(db, "b1", `{"t": 1}`, strings.Repeat("k", 129), day0); return err }},
		{"check with empty deltas", "deltas", func() error { _, err := checkUsage(db, "b1", `{}`, day0); return err }},
		{"bad execution id", "execution_id", func() error { _, err := recordSpend(db, "b1", "", `{"t": 1}`, "", day0); return err }},
		{"bad idempotency key", "idempotency_key", func() error { _, err := recordSpend(db, "b1", "e", `{"t": 1}`, "k k", day0); return err }},
		{"release bad execution id", "execution_id", func() error { _, err := releaseSpend(db, "b1", "a b", day0); return err }},
		{"bad reservation id", "reservation_id", func() error { _, err := reserve(db, "b1", "r}", `{"t": 1}`, 60, "", day0); return err }},
		{"empty amounts", "amounts", func() error { _, err := reserve(db, "b1", "r", `{}`, 60, "", day0); return err }},
		{"ttl 0", "ttl_seconds", func() error { _, err := reserve(db, "b1", "r", `{"t": 1}`, 0, "", day0); return err }},
		{"ttl above a day", "ttl_seconds", func() error { _, err := reserve(db, "b1", "r", `{"t": 1}`, 86401, "", day0); return err }},
		{"settle bad actual", "actual", func() error { _, err := settle(db, "b1", "r", `{"t": 1.5}`, day0); return err }},
		{"cancel bad reservation id", "reservation_id", func() error { _, err := cancelReservation(db, "b1", "", day0); return err }},
		{"history max_rows 0", "max_rows", func() error { _, err := budgetHistory(db, "b1", 0, day0); return err }},
		{"set_limits bad mode", "mode", func() error { _, err := setLimits(db, "b1", nil, nil, ptr("strict"), day0); return err }},
		{"set_limits bad hard", "hard_limits", func() error { _, err := setLimits(db, "b1", ptr(`{"t": -1}`), nil, nil, day0); return err }},
		{"roll max_rows 0", "max_rows", func() error { _, err := rollDueWindows(db, 0, day0); return err }},
		{"purge max_rows 0", "max_rows", func() error { _, err := purgeExpired(db, 0, day0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireCode(t, tc.call(), "SC002", tc.arg+": ")
			if got := tableCounts(t, db); got != "budgets=1 history=0 dedup=0 ledger=0 reservations=0" {
				t.Errorf("after SC002: %s", got)
			}
			requireState(t, db, "b1", day0, q{}, q{}, 0, 0)
		})
	}
}

func TestCheckUsageReturnsTheOutcomeWithoutWriting(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 5}`, "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 4}`, "", day0); err != nil {
		t.Fatal(err)
	}
	o, err := checkUsage(db, "b1", `{"t": 1}`, day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = checkUsage(db, "b1", `{"t": 2}`, day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 6, 5))
	o, err = checkUsage(db, "b1", `{"t": 7}`, day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 4, 10, false))
	_, err = checkUsage(db, "b1", `{"t": 9007199254740991}`, day0)
	requireCode(t, err, "SC004", "deltas: ")
	// In the next window, the check sees the rolled, empty window.
	o, err = checkUsage(db, "b1", `{"t": 7}`, after(day0, "24h"))
	requireOutcome(t, o, err, soft(*dayNext, ptr(dayNext.Add(24*time.Hour)), "t", 7, 5))
	st := requireState(t, db, "b1", day0, q{"t": 4}, q{}, 0, 0)
	if st.WindowSeq != 1 || !st.UpdatedAt.Equal(day0) {
		t.Errorf("check_usage wrote: seq %d updated_at %v", st.WindowSeq, st.UpdatedAt)
	}
}

func TestSetLimitsReplacesGivenLimitsKeepingUsage(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 5}`, "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 8}`, "", day0); err != nil {
		t.Fatal(err)
	}
	at := after(day0, "1h")
	st, err := setLimits(db, "b1", ptr(`{"t": 20, "u": 1}`), nil, ptr("observe"), at)
	if err != nil {
		t.Fatal(err)
	}
	if st.HardLimits["t"] != 20 || st.HardLimits["u"] != 1 || st.SoftLimits["t"] != 5 || st.Mode != "observe" ||
		st.Usage["t"] != 8 || st.Remaining["t"] != 12 || st.WindowSeq != 1 || !st.UpdatedAt.Equal(at) {
		t.Errorf("set_limits returned %+v", st)
	}
	// The new limits apply from the next call.
	o, err := reportUsage(db, "b1", `{"t": 12}`, "", at)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 20, 5))
	// New hard limits below the soft ones are refused, naming the argument passed.
	_, err = setLimits(db, "b1", ptr(`{"t": 4}`), nil, nil, at)
	requireCode(t, err, "SC002", "hard_limits: ")
	_, err = setLimits(db, "b1", nil, ptr(`{"t": 21}`), nil, at)
	requireCode(t, err, "SC002", "soft_limits: ")
	st, err = setLimits(db, "b1", ptr(`{}`), ptr(`{}`), nil, at)
	if err != nil || len(st.HardLimits) != 0 || len(st.SoftLimits) != 0 || len(st.Remaining) != 0 {
		t.Errorf("clearing limits: %+v %v", st, err)
	}
}

func TestDeleteBudgetRemovesEverythingAndIsFalseWhenAbsent(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	mustCreate(t, db, "budget_id", "b2", "reset_every", "1 day", "at", day0)
	for _, id := range []string{"b1", "b2"} {
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
	if d, err := deleteBudget(db, "b1"); err != nil || d {
		t.Errorf("second delete_budget = %v, %v; want false", d, err)
	}
	_, err := budgetStatus(db, "b1", nil)
	requireCode(t, err, "SC001", "budget_id: ")
	// A budget created again under the same id starts from nothing.
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	o, err := reportUsage(db, "b1", `{"t": 5}`, "k", day0)
	requireOutcome(t, o, err, ok(day0, nil))
}

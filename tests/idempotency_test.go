package tests

import (
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestRepeatedKeyReplaysTheStoredOutcomeAndChangesNothing(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "soft_limits", `{"t": 5}`, "reset_every", "1 day", "at", day0)
	first, err := reportUsage(db, "b1", `{"t": 6}`, "k1", day0)
	requireOutcome(t, first, err, soft(dayStart, dayNext, "t", 6, 5))
	// A retry later in the window, after other usage: the stored outcome, not a new one.
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "", after(day0, "1m")); err != nil {
		t.Fatal(err)
	}
	o, err := reportUsage(db, "b1", `{"t": 6}`, "k1", after(day0, "2m"))
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 6, 5).replayed())
	st := requireState(t, db, "b1", day0, q{"t": 7}, q{}, 0, 2)
	if !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("a replay moved updated_at to %v", st.UpdatedAt)
	}
}

func TestEveryOutcomeReplaysHardBreachToo(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 10}`, "reset_every", "1 day", "at", day0)
	o, err := reportUsage(db, "b1", `{"t": 11}`, "k1", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 0, 10, false))
	// Raising the limit does not turn the replay into a success.
	if _, err := setLimits(db, "b1", ptr(`{"t": 100}`), nil, nil, day0); err != nil {
		t.Fatal(err)
	}
	o, err = reportUsage(db, "b1", `{"t": 11}`, "k1", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 0, 10, false).replayed())
	requireState(t, db, "b1", day0, q{}, q{}, 1, 0)
}

func TestKeyReusedWithOtherArgumentsConflicts(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	if _, err := recordSpend(db, "b1", "e1", `{"t": 1}`, "k1", day0); err != nil {
		t.Fatal(err)
	}
	before := tableCounts(t, db)
	for name, call := range map[string]func() error{
		"other deltas":       func() error { _, err := recordSpend(db, "b1", "e1", `{"t": 2}`, "k1", day0); return err },
		"another dimension":  func() error { _, err := recordSpend(db, "b1", "e1", `{"t": 1, "u": 0}`, "k1", day0); return err },
		"other execution":    func() error { _, err := recordSpend(db, "b1", "e2", `{"t": 1}`, "k1", day0); return err },
		"another operation":  func() error { _, err := reportUsage(db, "b1", `{"t": 1}`, "k1", day0); return err },
		"reserve on the key": func() error { _, err := reserve(db, "b1", "e1", `{"t": 1}`, 60, "k1", day0); return err },
	} {
		err := call()
		if name == "another operation" {
			requireCode(t, err, "SC003", "dedup_key: ")
		} else {
			requireCode(t, err, "SC003", "idempotency_key: ")
		}
	}
	if after := tableCounts(t, db); after != before {
		t.Errorf("after SC003: %s, before %s", after, before)
	}
	requireState(t, db, "b1", day0, q{"t": 1}, q{}, 0, 0)
	// Arguments are compared as values: key order and 1.0 vs 1 do not matter; `at` is not an argument.
	o, err := recordSpend(db, "b1", "e1", `{"t": 1.0}`, "k1", after(day0, "1h"))
	requireOutcome(t, o, err, ok(dayStart, dayNext).replayed())
}

func TestKeysArePerBudget(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	mustCreate(t, db, "budget_id", "b2", "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "k", day0); err != nil {
		t.Fatal(err)
	}
	o, err := reportUsage(db, "b2", `{"t": 2}`, "k", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireState(t, db, "b2", day0, q{"t": 2}, q{}, 0, 0)
}

func TestKeyIsForgottenAfterItsTTL(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "dedup_ttl_seconds", 60, "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "k", day0); err != nil {
		t.Fatal(err)
	}
	o, err := reportUsage(db, "b1", `{"t": 1}`, "k", after(day0, "59s"))
	requireOutcome(t, o, err, ok(day0, nil).replayed())
	// At exactly first use + TTL the key is gone: the call is new, even with other arguments.
	o, err = reportUsage(db, "b1", `{"t": 5}`, "k", after(day0, "60s"))
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, db, "b1", after(day0, "60s"), q{"t": 6}, q{}, 0, 0)
	o, err = reportUsage(db, "b1", `{"t": 5}`, "k", after(day0, "119s"))
	requireOutcome(t, o, err, ok(day0, nil).replayed())
}

func TestKeysSurviveRollsAndManualResets(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 hour", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "k", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := resetBudget(db, "b1", after(day0, "10m")); err != nil {
		t.Fatal(err)
	}
	o, err := reportUsage(db, "b1", `{"t": 1}`, "k", after(day0, "3h"))
	requireOutcome(t, o, err, ok(day0, ptr(after(day0, "1h"))).replayed())
	requireState(t, db, "b1", after(day0, "3h"), q{}, q{}, 0, 0)
}

func TestEmptyKeyMeansNoKey(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	for i := 0; i < 2; i++ {
		o, err := one[outcome](db, `SELECT * FROM spendcap.report_usage('b1', '{"t": 1}', '', at => $1)`, day0)
		requireOutcome(t, o, err, ok(day0, nil))
	}
	requireState(t, db, "b1", day0, q{"t": 2}, q{}, 0, 0)
}

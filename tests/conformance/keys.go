package conformance

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("RepeatedKeyReplaysTheStoredOutcomeAndChangesNothing", keyReplays)
	register("EveryOutcomeReplaysHardBreachToo", keyReplaysHardBreach)
	register("KeyReusedWithOtherArgumentsConflicts", keyConflicts)
	register("KeysArePerBudget", keysPerBudget)
	register("KeyIsForgottenAfterItsTTL", keyTTL)
	register("KeysSurviveRollsAndManualResets", keysSurviveRolls)
	register("AReplayClosesTheWindowsThatEndedAsAnyCallDoes", keyReplayRolls)
}

func keyReplays(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}, SoftLimits: q{"t": 5}})
	first, err := report(b, "b1", q{"t": 6}, "k1", day0)
	requireOutcome(t, first, err, soft(dayStart, dayNext, "t", 6, 5))
	// A retry later in the window, after other usage: the stored outcome, not a new one.
	must(report(b, "b1", q{"t": 1}, "", after(day0, "1m")))
	o, err := report(b, "b1", q{"t": 6}, "k1", after(day0, "2m"))
	requireOutcome(t, o, err, replayed(soft(dayStart, dayNext, "t", 6, 5)))
	if st := requireState(t, b, "b1", day0, q{"t": 7}, q{}, 0, 2); !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("a replay moved updated_at to %v", st.UpdatedAt)
	}
}

func keyReplaysHardBreach(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}})
	o, err := report(b, "b1", q{"t": 11}, "k1", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 0, 10, false))
	// Raising the limit does not turn the replay into a success.
	must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": 100}, At: day0}))
	o, err = report(b, "b1", q{"t": 11}, "k1", day0)
	requireOutcome(t, o, err, replayed(hard(dayStart, dayNext, "t", 0, 10, false)))
	requireState(t, b, "b1", day0, q{}, q{}, 1, 0)
}

func keyConflicts(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	must(spend(b, "b1", "e1", q{"t": 1}, "k1", day0))
	before := snapshot(t, b, "b1", day0)
	for name, call := range map[string]func() error{
		"other deltas":       func() error { _, err := spend(b, "b1", "e1", q{"t": 2}, "k1", day0); return err },
		"another dimension":  func() error { _, err := spend(b, "b1", "e1", q{"t": 1, "u": 0}, "k1", day0); return err },
		"other execution":    func() error { _, err := spend(b, "b1", "e2", q{"t": 1}, "k1", day0); return err },
		"reserve on the key": func() error { _, err := reserve(b, "b1", "e1", q{"t": 1}, 60, "k1", day0); return err },
	} {
		t.Run(name, func(t *testing.T) { requireCode(t, call(), "SC003", "idempotency_key: ") })
	}
	_, err := report(b, "b1", q{"t": 1}, "k1", day0)
	requireCode(t, err, "SC003", "dedup_key: ")
	if after := snapshot(t, b, "b1", day0); after != before {
		t.Errorf("state changed after SC003:\n%s\n%s", after, before)
	}
	// `at` is not an argument.
	o, err := spend(b, "b1", "e1", q{"t": 1}, "k1", after(day0, "1h"))
	requireOutcome(t, o, err, replayed(ok(dayStart, dayNext)))
}

func keysPerBudget(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{BudgetID: "b1"})
	dayBudget(t, b, spendcap.CreateBudgetParams{BudgetID: "b2"})
	must(report(b, "b1", q{"t": 1}, "k", day0))
	o, err := report(b, "b2", q{"t": 2}, "k", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireState(t, b, "b2", day0, q{"t": 2}, q{}, 0, 0)
}

func keyTTL(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", DedupTTL: 60 * time.Second, At: day0})
	must(report(b, "b1", q{"t": 1}, "k", day0))
	o, err := report(b, "b1", q{"t": 1}, "k", after(day0, "59s"))
	requireOutcome(t, o, err, replayed(ok(day0, nil)))
	// At exactly first use + TTL the key is gone: the call is new, even with other arguments.
	o, err = report(b, "b1", q{"t": 5}, "k", after(day0, "60s"))
	requireOutcome(t, o, err, ok(day0, nil))
	requireState(t, b, "b1", after(day0, "60s"), q{"t": 6}, q{}, 0, 0)
	o, err = report(b, "b1", q{"t": 5}, "k", after(day0, "119s"))
	requireOutcome(t, o, err, replayed(ok(day0, nil)))
}

func keysSurviveRolls(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "1 hour", At: day0})
	must(report(b, "b1", q{"t": 1}, "k", day0))
	must(reset(b, "b1", after(day0, "10m")))
	o, err := report(b, "b1", q{"t": 1}, "k", after(day0, "3h"))
	requireOutcome(t, o, err, replayed(ok(day0, ptr(after(day0, "1h")))))
	requireState(t, b, "b1", after(day0, "3h"), q{}, q{}, 0, 0)
}

func keyReplayRolls(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	must(report(b, "b1", q{"t": 3}, "k", day0))
	o, err := report(b, "b1", q{"t": 3}, "k", after(day0, "13h"))
	requireOutcome(t, o, err, replayed(ok(dayStart, dayNext)))
	// The replay, on the next day (within the key's TTL), closed the first day's window: a late
	// report (its at on the first day) lands in the window the budget is in now.
	next := dayNext.Add(24 * time.Hour)
	o, err = report(b, "b1", q{"t": 1}, "", after(day0, "1h"))
	requireOutcome(t, o, err, ok(*dayNext, &next))
	requireState(t, b, "b1", after(day0, "13h"), q{"t": 1}, q{}, 0, 0)
}

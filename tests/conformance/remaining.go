package conformance

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("RemainingIsTheLeastLeftOverTheChargedSetAfterTheCall", remainingOverTheSet)
	register("RemainingOfARefusedCallIsWhatTheBudgetsHaveLeft", remainingRefused)
	register("RemainingCountsReservationsAndSettlesAndCheckChangesNothing", remainingReservations)
	register("RemainingOfRecordSpendAndReleaseFollowsUsage", remainingSpend)
	register("RemainingIsReplayedWithTheOutcomeItWasStoredWith", remainingReplay)
	register("RemainingIsZeroPastAHardLimitInObserveMode", remainingObserve)
	register("RemainingOfEachItemOfABatchIsWhatTheItemsUpToItLeave", remainingBatch)
}

func remainingOverTheSet(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org", "", q{"t": 100, "u": 50})
	daily(t, b, "team", "org", q{"t": 60})
	daily(t, b, "key", "team", q{"t": 30})
	daily(t, b, "tag", "", q{"t": 45, "img": 2})
	// The call's own dimensions only: t is least on key, u only org limits, z nobody.
	o, err := report(b, "key", q{"t": 10, "u": 1, "z": 3}, "", after(day0, "1m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 20, "u": 49}))
	// Through the general path (a key) and with a tag: key's 30 - 20 is still the least (the
	// tag has 35 left).
	o, err = b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "key", Deltas: q{"t": 10}, DedupKey: "k1",
		AlsoCharge: []string{"tag"}, At: after(day0, "2m")})
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 10}))
	// The team's own call: key is not charged, so what team (60 - 25) and org (100 - 25) have.
	o, err = report(b, "team", q{"t": 5}, "", after(day0, "3m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 35}))
	// One dimension that only the organisation limits: its 50 less the 1 used before and this 1.
	o, err = report(b, "team", q{"u": 1}, "", after(day0, "3m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"u": 48}))
	// No limit in the call's dimensions: an empty object.
	o, err = report(b, "tag", q{"zz": 1}, "", after(day0, "4m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{}))
	// A new window starts full.
	o, err = report(b, "key", q{"t": 1}, "", after(day0, "24h"))
	requireOutcome(t, o, err, left(ok(*dayNext, ptr(dayNext.Add(24*time.Hour))), q{"t": 29}))
}

func remainingRefused(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org", "", q{"t": 100})
	daily(t, b, "key", "org", q{"t": 30})
	must(report(b, "key", q{"t": 25}, "", after(day0, "1m")))
	o, err := report(b, "key", q{"t": 10}, "", after(day0, "2m"))
	requireOutcome(t, o, err, left(hard(dayStart, dayNext, "t", 25, 30, false), q{"t": 5}))
	o, err = check(b, "key", q{"t": 10}, after(day0, "2m"))
	requireOutcome(t, o, err, left(hard(dayStart, dayNext, "t", 25, 30, false), q{"t": 5}))
}

func remainingReservations(t *testing.T, b spendcap.Backend) {
	daily(t, b, "a", "", q{"t": 100})
	o, err := reserve(b, "a", "r1", q{"t": 50}, 600, "", after(day0, "1m"))
	if err != nil || !sameQuantities(o.Remaining, q{"t": 50}) {
		t.Fatalf("reserve: %s %v, want 50 left", OutcomeString(o), err)
	}
	// A check applies nothing: what remains is what the budget has left now.
	o, err = check(b, "a", q{"t": 30}, after(day0, "2m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 50}))
	// Settling replaces the 50 reserved with the 20 used.
	o, err = settle(b, "a", "r1", q{"t": 20}, after(day0, "3m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 80}))
	// An expired reservation holds nothing.
	must(reserve(b, "a", "r2", q{"t": 40}, 60, "", after(day0, "4m")))
	o, err = report(b, "a", q{"t": 1}, "", after(day0, "10m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 79}))
}

func remainingSpend(t *testing.T, b spendcap.Backend) {
	daily(t, b, "a", "", q{"t": 100})
	o, err := spend(b, "a", "e1", q{"t": 30}, "", after(day0, "1m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 70}))
	must(release(b, "a", "e1", after(day0, "2m")))
	o, err = report(b, "a", q{"t": 1}, "", after(day0, "3m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 99}))
}

func remainingReplay(t *testing.T, b spendcap.Backend) {
	daily(t, b, "a", "", q{"t": 100})
	o, err := report(b, "a", q{"t": 10}, "k", after(day0, "1m"))
	requireOutcome(t, o, err, left(ok(dayStart, dayNext), q{"t": 90}))
	must(report(b, "a", q{"t": 20}, "", after(day0, "2m")))
	// The replay answers what the first call answered, not what is left now.
	o, err = report(b, "a", q{"t": 10}, "k", after(day0, "3m"))
	requireOutcome(t, o, err, left(replayed(ok(dayStart, dayNext)), q{"t": 90}))
}

func remainingObserve(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "o", HardLimits: q{"t": 10}, Mode: spendcap.ModeObserve, ResetEvery: "1 day", At: day0})
	o, err := report(b, "o", q{"t": 25}, "", after(day0, "1m"))
	requireOutcome(t, o, err, left(hard(dayStart, dayNext, "t", 25, 10, true), q{"t": 0}))
}

func remainingBatch(t *testing.T, b spendcap.Backend) {
	daily(t, b, "a", "", q{"t": 100, "u": 10})
	daily(t, b, "c", "", q{"t": 50})
	// Every item fits and no budget has a parent: the batch answers them all at once, each with
	// what its budget has left after the items up to it.
	items := []spendcap.BatchItem{item("a", q{"t": 10}, ""), item("c", q{"t": 5}, ""), item("a", q{"t": 20, "u": 1}, ""),
		item("a", q{"u": 2}, "k"), item("c", q{"t": 5, "z": 1}, "")}
	res, err := batcher(t, b).ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items, At: after(day0, "1m")})
	if err != nil {
		t.Fatal(err)
	}
	want := []q{{"t": 90}, {"t": 45}, {"t": 70, "u": 9}, {"u": 7}, {"t": 40}}
	for i, r := range res {
		requireOutcome(t, r.Outcome, r.Err, left(ok(dayStart, dayNext), want[i]))
	}
	// The key replays what its item left.
	o, err := report(b, "a", q{"u": 2}, "k", after(day0, "2m"))
	requireOutcome(t, o, err, left(replayed(ok(dayStart, dayNext)), q{"u": 7}))
}

// sameQuantities says whether a is set and holds what b holds.
func sameQuantities(a, b q) bool {
	return quantitiesString(a) == quantitiesString(b) && a != nil
}

package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("EachLevelOfAChainRefusesInTurnAndNothingMovesElsewhere", eachLevelRefuses)
	register("DailyAndMonthlyCapsOnOneKeyRollIndependently", dailyAndMonthly)
	register("ATagBudgetIsChargedThroughAlsoCharge", tagBudget)
	register("ASetPastMaxSetWithItsAncestorsIsRefusedAfterItsUnknownBudgets", setPastMaxSet)
	register("AnObserveParentOverAnEnforceChildAndTheReverse", observeOverEnforce)
	register("ADimensionLimitedOnlyAtTheTopIsCountedOnEveryLevel", limitedAtTheTop)
	register("AKeyReplaysItsSetAndRefusesAnotherSet", keysReplayASet)
	register("SpendIsRecordedAndReleasedAcrossASetEachUnderItsWindow", spendAcrossASet)
	register("ALateReleaseFindsTheAmountsOnASetMemberThatHasNotRolledSince", lateReleaseOnASet)
	register("AReservationHoldsOnEveryBudgetOfItsSet", reservationAcrossASet)
	register("SetParentMovesLaterChargesAndLeavesPastUsage", setParentMovesCharges)
	register("DeletingABudgetFreesWhatItHeldOnItsSetsAndKeepsWhatItCharged", deleteFreesItsSets)
}

// levels renders usage, reserved and breach counters (hard/soft) of budgets, in the order given.
func levels(t *testing.T, b spendcap.Budgets, at time.Time, ids ...string) string {
	t.Helper()
	parts := make([]string, len(ids))
	for i, id := range ids {
		st := status(t, b, id, at)
		parts[i] = fmt.Sprintf("%s %v r%v %d/%d", id, st.Usage, st.Reserved, st.BreachCount, st.SoftBreachCount)
	}
	return strings.Join(parts, "; ")
}

func requireLevels(t *testing.T, b spendcap.Budgets, at time.Time, want string, ids ...string) {
	t.Helper()
	if got := levels(t, b, at, ids...); got != want {
		t.Fatalf("levels\n got %s\nwant %s", got, want)
	}
}

func charge(b spendcap.Budgets, id string, deltas q, at time.Time, also ...string) (spendcap.Outcome, error) {
	return b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: deltas, At: at, AlsoCharge: also})
}

// daily creates a budget that resets every day, under parent ("" for none).
func daily(t *testing.T, b spendcap.Budgets, id, parent string, hard q) {
	t.Helper()
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: id, ParentID: parent, HardLimits: hard, ResetEvery: "1 day", At: day0})
}

func eachLevelRefuses(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org", "", q{"t": 100})
	daily(t, b, "team", "org", q{"t": 60})
	daily(t, b, "key", "team", q{"t": 30})
	daily(t, b, "key2", "team", nil)
	daily(t, b, "team2", "org", nil)
	daily(t, b, "key3", "team2", nil)
	all := []string{"key", "team", "org", "key2", "team2", "key3"}
	o, err := charge(b, "key", q{"t": 20}, day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireLevels(t, b, day0, "key map[t:20] rmap[] 0/0; team map[t:20] rmap[] 0/0; org map[t:20] rmap[] 0/0; key2 map[] rmap[] 0/0; team2 map[] rmap[] 0/0; key3 map[] rmap[] 0/0", all...)

	o, err = charge(b, "key", q{"t": 15}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 20, 30, false), "key"))
	o, err = charge(b, "key2", q{"t": 45}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 20, 60, false), "team"))
	o, err = charge(b, "key3", q{"t": 90}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 20, 100, false), "org"))
	// Only the refusing budget's breach counter moved each time; no usage moved anywhere.
	requireLevels(t, b, day0, "key map[t:20] rmap[] 1/0; team map[t:20] rmap[] 1/0; org map[t:20] rmap[] 1/0; key2 map[] rmap[] 0/0; team2 map[] rmap[] 0/0; key3 map[] rmap[] 0/0", all...)
	o, err = check(b, "key3", q{"t": 80}, day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = check(b, "key3", q{"t": 81}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 20, 100, false), "org"))
}

func dailyAndMonthly(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "k/day", HardLimits: q{"t": 10}, ResetEvery: "1 day", At: day0})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "k/month", HardLimits: q{"t": 25}, ResetEvery: "1 month", At: day0})
	monthStart, monthNext := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), ptr(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	day := func(n int) (time.Time, time.Time, *time.Time) {
		start := dayStart.AddDate(0, 0, n)
		return day0.AddDate(0, 0, n), start, ptr(start.AddDate(0, 0, 1))
	}
	o, err := charge(b, "k/day", q{"t": 8}, day0, "k/month")
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = charge(b, "k/day", q{"t": 3}, day0, "k/month")
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 8, 10, false), "k/day"))
	at, start, next := day(1)
	o, err = charge(b, "k/day", q{"t": 8}, at, "k/month")
	requireOutcome(t, o, err, ok(start, next))
	at, start, next = day(2)
	o, err = charge(b, "k/day", q{"t": 8}, at, "k/month")
	requireOutcome(t, o, err, ok(start, next))
	requireLevels(t, b, at, "k/day map[t:8] rmap[] 1/0; k/month map[t:24] rmap[] 0/0", "k/day", "k/month")
	at, _, _ = day(3)
	o, err = charge(b, "k/day", q{"t": 8}, at, "k/month")
	requireOutcome(t, o, err, in(hard(monthStart, monthNext, "t", 24, 25, false), "k/month"))
	requireLevels(t, b, at, "k/day map[] rmap[] 1/0; k/month map[t:24] rmap[] 1/0", "k/day", "k/month")
	if h := must(history(b, "k/day", 10, at)); len(h) != 3 {
		t.Errorf("k/day closed %d windows, want 3: %s", len(h), HistoryString(h))
	}
	if h := must(history(b, "k/month", 10, at)); len(h) != 0 {
		t.Errorf("k/month closed windows: %s", HistoryString(h))
	}
}

func tagBudget(t *testing.T, b spendcap.Backend) {
	daily(t, b, "team", "", nil)
	daily(t, b, "key", "team", nil)
	daily(t, b, "key2", "team", nil)
	daily(t, b, "model:big", "", q{"t": 50})
	o, err := charge(b, "key", q{"t": 30}, day0, "model:big")
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = charge(b, "key2", q{"t": 30}, day0, "model:big")
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 30, 50, false), "model:big"))
	o, err = charge(b, "key2", q{"t": 30}, day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireLevels(t, b, day0, "key map[t:30] rmap[] 0/0; key2 map[t:30] rmap[] 0/0; team map[t:60] rmap[] 0/0; model:big map[t:30] rmap[] 1/0",
		"key", "key2", "team", "model:big")

	before := levels(t, b, day0, "key", "team", "model:big")
	_, err = charge(b, "key", q{"t": 1}, day0, "model:big", "model:none")
	requireCode(t, err, "SC001", "also_charge: ")
	var many []string
	for i := 0; i < 65; i++ {
		many = append(many, fmt.Sprintf("tag%d", i))
	}
	_, err = charge(b, "key", q{"t": 1}, day0, many...)
	requireCode(t, err, "SC002", "also_charge: ")
	_, err = charge(b, "key", q{"t": 1}, day0, "bad{id}")
	requireCode(t, err, "SC002", "also_charge: ")
	if after := levels(t, b, day0, "key", "team", "model:big"); after != before {
		t.Errorf("a refused set wrote:\n%s\n%s", before, after)
	}
	// The budget itself named again, or twice, is the budget once.
	o, err = charge(b, "key", q{"t": 1}, day0, "key", "team", "team")
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireLevels(t, b, day0, "key map[t:31] rmap[] 0/0; team map[t:61] rmap[] 0/0", "key", "team")
}

// A call names 33 tags, each with a parent: 67 budgets with the named one, past the 64 a call
// charges at most, although also_charge itself names fewer. An unknown budget among the tags is
// named first (SC001), wherever it sorts; nothing is written either way.
func setPastMaxSet(t *testing.T, b spendcap.Backend) {
	daily(t, b, "wide", "", nil)
	var tags []string
	for i := 0; i < 33; i++ {
		daily(t, b, fmt.Sprintf("top%02d", i), "", nil)
		daily(t, b, fmt.Sprintf("tag%02d", i), fmt.Sprintf("top%02d", i), nil)
		tags = append(tags, fmt.Sprintf("tag%02d", i))
	}
	_, err := charge(b, "wide", q{"t": 1}, day0, tags...)
	requireCode(t, err, "SC002", "also_charge: ")
	if !strings.Contains(err.Error(), "ancestors included") {
		t.Fatalf("err = %v, want the set's size named", err)
	}
	_, err = charge(b, "wide", q{"t": 1}, day0, append(tags, "tagzz")...)
	requireCode(t, err, "SC001", "also_charge: ")
	requireLevels(t, b, day0, "wide map[] rmap[] 0/0; tag00 map[] rmap[] 0/0; top32 map[] rmap[] 0/0", "wide", "tag00", "top32")
}

func observeOverEnforce(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: q{"t": 10}, Mode: spendcap.ModeObserve, ResetEvery: "1 day", At: day0})
	daily(t, b, "key", "org", q{"t": 100})
	o, err := charge(b, "key", q{"t": 15}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 15, 10, true), "org"))
	o, err = charge(b, "key", q{"t": 90}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 15, 100, false), "key"))
	requireLevels(t, b, day0, "key map[t:15] rmap[] 1/0; org map[t:15] rmap[] 1/0", "key", "org")

	daily(t, b, "team", "", q{"t": 10})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "key2", ParentID: "team", HardLimits: q{"t": 5}, Mode: spendcap.ModeObserve, ResetEvery: "1 day", At: day0})
	o, err = charge(b, "key2", q{"t": 7}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 7, 5, true), "key2"))
	o, err = charge(b, "key2", q{"t": 5}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 7, 10, false), "team"))
	requireLevels(t, b, day0, "key2 map[t:7] rmap[] 1/0; team map[t:7] rmap[] 1/0", "key2", "team")
}

func limitedAtTheTop(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org", "", q{"usd": 100})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team", ParentID: "org", SoftLimits: q{"usd": 50}, ResetEvery: "1 day", At: day0})
	daily(t, b, "key", "team", q{"tokens": 1000})
	o, err := charge(b, "key", q{"tokens": 500, "usd": 60}, day0)
	requireOutcome(t, o, err, in(soft(dayStart, dayNext, "usd", 60, 50), "team"))
	o, err = charge(b, "key", q{"usd": 50}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "usd", 60, 100, false), "org"))
	o, err = charge(b, "key", q{"tokens": 600}, day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "tokens", 500, 1000, false), "key"))
	requireLevels(t, b, day0, "key map[tokens:500 usd:60] rmap[] 1/0; team map[tokens:500 usd:60] rmap[] 0/1; org map[tokens:500 usd:60] rmap[] 1/0",
		"key", "team", "org")
}

func keysReplayASet(t *testing.T, b spendcap.Backend) {
	daily(t, b, "team", "", nil)
	daily(t, b, "key", "team", nil)
	daily(t, b, "tag1", "", nil)
	daily(t, b, "tag2", "", nil)
	report := func(key string, also ...string) (spendcap.Outcome, error) {
		return b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "key", Deltas: q{"t": 5}, DedupKey: key, At: day0, AlsoCharge: also})
	}
	o, err := report("d1", "tag1", "tag2")
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = report("d1", "tag2", "tag1", "tag2")
	requireOutcome(t, o, err, replayed(ok(dayStart, dayNext)))
	_, err = report("d1", "tag1")
	requireCode(t, err, "SC003", "dedup_key: ")
	_, err = report("d1")
	requireCode(t, err, "SC003", "dedup_key: ")
	o, err = report("d2")
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = report("d2", "key")
	requireOutcome(t, o, err, replayed(ok(dayStart, dayNext)))
	requireLevels(t, b, day0, "key map[t:10] rmap[] 0/0; team map[t:10] rmap[] 0/0; tag1 map[t:5] rmap[] 0/0; tag2 map[t:5] rmap[] 0/0",
		"key", "team", "tag1", "tag2")
	o, err = b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "key", ExecutionID: "e", Deltas: q{"t": 1}, IdempotencyKey: "i1", At: day0, AlsoCharge: []string{"tag1"}})
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	_, err = b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "key", ExecutionID: "e", Deltas: q{"t": 1}, IdempotencyKey: "i1", At: day0, AlsoCharge: []string{"tag2"}})
	requireCode(t, err, "SC003", "idempotency_key: ")
}

func spendAcrossASet(t *testing.T, b spendcap.Backend) {
	// team rolls every hour, key every day; key2 every hour under team2, which rolls every day.
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team", ResetEvery: "1 hour", At: day0})
	daily(t, b, "key", "team", nil)
	daily(t, b, "team2", "", nil)
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "key2", ParentID: "team2", ResetEvery: "1 hour", At: day0})
	daily(t, b, "tag", "", nil)
	must(spend(b, "key", "e1", q{"t": 10}, "", day0))
	must(b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "key", ExecutionID: "e2", Deltas: q{"t": 4}, At: day0, AlsoCharge: []string{"tag"}}))
	must(spend(b, "key2", "e3", q{"t": 7}, "", day0))
	must(spend(b, "key2", "e3", q{"t": 1}, "", day0))
	requireLevels(t, b, day0, "key map[t:14] rmap[] 0/0; team map[t:14] rmap[] 0/0; tag map[t:4] rmap[] 0/0; key2 map[t:8] rmap[] 0/0; team2 map[t:8] rmap[] 0/0",
		"key", "team", "tag", "key2", "team2")
	// Released within every window: from the whole set, what key recorded returned.
	got, err := release(b, "key", "e2", day0)
	requireReleased(t, got, err, q{"t": 4})
	at := after(day0, "90m")
	// team rolled: only key still counts e1.
	got, err = release(b, "key", "e1", at)
	requireReleased(t, got, err, q{"t": 10})
	// key2 rolled, team2 did not: team2 gives e3 back, key2 has nothing to release.
	got, err = release(b, "key2", "e3", at)
	requireReleased(t, got, err, q{})
	requireLevels(t, b, at, "key map[] rmap[] 0/0; team map[] rmap[] 0/0; tag map[] rmap[] 0/0; key2 map[] rmap[] 0/0; team2 map[] rmap[] 0/0",
		"key", "team", "tag", "key2", "team2")
	got, err = release(b, "key2", "e3", at)
	requireReleased(t, got, err, q{})
}

// The named budget rolling (here past every window the execution was recorded in) forgets nothing
// on the other budgets of the set: tag has not rolled since, so a release whose instant falls in
// tag's window still finds the amounts there.
func lateReleaseOnASet(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "key", ResetEvery: "1 minute", At: day0})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "tag", ResetEvery: "1 hour", At: day0})
	must(b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "key", ExecutionID: "e1", Deltas: q{"t": 5},
		At: after(day0, "10m"), AlsoCharge: []string{"tag"}}))
	must(charge(b, "key", q{"t": 1}, after(day0, "2h")))
	// key rolled at 2h: it has nothing left of e1; tag, at 30m, is in the window that holds it.
	got, err := release(b, "key", "e1", after(day0, "30m"))
	requireReleased(t, got, err, q{})
	requireLevels(t, b, after(day0, "30m"), "tag map[] rmap[] 0/0", "tag")
	if st := status(t, b, "tag", after(day0, "30m")); !st.UpdatedAt.Equal(after(day0, "30m")) {
		t.Errorf("tag gave e1 back at 30m: updated_at %s, want 30m", st.UpdatedAt)
	}
	// Released once: a second release finds nothing anywhere.
	got, err = release(b, "key", "e1", after(day0, "40m"))
	requireReleased(t, got, err, q{})
	requireLevels(t, b, after(day0, "40m"), "tag map[] rmap[] 0/0", "tag")
}

func reservationAcrossASet(t *testing.T, b spendcap.Backend) {
	daily(t, b, "team", "", q{"t": 100})
	daily(t, b, "key", "team", nil)
	daily(t, b, "key2", "team", nil)
	daily(t, b, "tag", "", nil)
	o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "key", ReservationID: "r1", Amounts: q{"t": 40}, TTL: 300 * time.Second, At: day0, AlsoCharge: []string{"tag"}})
	requireOutcome(t, o, err, expiring(ok(dayStart, dayNext), after(day0, "5m")))
	requireLevels(t, b, day0, "key map[] rmap[t:40] 0/0; team map[] rmap[t:40] 0/0; tag map[] rmap[t:40] 0/0", "key", "team", "tag")
	o, err = reserve(b, "key2", "r1", q{"t": 61}, 300, "", day0)
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 40, 100, false), "team"))
	o, err = settle(b, "key", "r1", q{"t": 30}, after(day0, "1m"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireLevels(t, b, day0, "key map[t:30] rmap[] 0/0; team map[t:30] rmap[] 1/0; tag map[t:30] rmap[] 0/0", "key", "team", "tag")
	_, err = settle(b, "key", "r1", q{"t": 30}, after(day0, "1m"))
	requireCode(t, err, "SC007", "reservation_id: ")
	// The reservation id belongs to the budget the call named: key2 knows no r2 of key's.
	must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "key", ReservationID: "r2", Amounts: q{"t": 20}, TTL: 300 * time.Second, At: day0, AlsoCharge: []string{"tag"}}))
	_, err = cancel(b, "key2", "r2", day0)
	requireCode(t, err, "SC007", "reservation_id: ")
	_, err = cancel(b, "team", "r2", day0)
	requireCode(t, err, "SC007", "reservation_id: ")
	got, err := cancel(b, "key", "r2", day0)
	requireReleased(t, got, err, q{"t": 20})
	requireLevels(t, b, day0, "key map[t:30] rmap[] 0/0; team map[t:30] rmap[] 1/0; tag map[t:30] rmap[] 0/0; key2 map[] rmap[] 0/0", "key", "team", "tag", "key2")
	// A set reservation expires on every budget at once.
	must(reserve(b, "key2", "r3", q{"t": 70}, 60, "", day0))
	o, err = charge(b, "key", q{"t": 1}, after(day0, "30s"))
	requireOutcome(t, o, err, in(hard(dayStart, dayNext, "t", 100, 100, false), "team"))
	o, err = charge(b, "key", q{"t": 1}, after(day0, "61s"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
}

func setParentMovesCharges(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org", "", nil)
	daily(t, b, "team-a", "org", nil)
	daily(t, b, "team-b", "", nil)
	daily(t, b, "key", "team-a", nil)
	must(charge(b, "key", q{"t": 10}, day0))
	must(b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key", ParentID: "team-b", At: day0}))
	must(charge(b, "key", q{"t": 5}, day0))
	requireLevels(t, b, day0, "key map[t:15] rmap[] 0/0; team-a map[t:10] rmap[] 0/0; org map[t:10] rmap[] 0/0; team-b map[t:5] rmap[] 0/0",
		"key", "team-a", "org", "team-b")
	must(b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "key", At: day0}))
	must(charge(b, "key", q{"t": 1}, day0))
	requireLevels(t, b, day0, "key map[t:16] rmap[] 0/0; team-b map[t:5] rmap[] 0/0", "key", "team-b")
}

func deleteFreesItsSets(t *testing.T, b spendcap.Backend) {
	daily(t, b, "team", "", q{"t": 100})
	daily(t, b, "key", "team", nil)
	daily(t, b, "key2", "team", nil)
	daily(t, b, "tag", "", nil)
	must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "key", ReservationID: "r1", Amounts: q{"t": 40}, TTL: 300 * time.Second, At: day0, AlsoCharge: []string{"tag"}}))
	must(b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "key", ExecutionID: "e1", Deltas: q{"t": 10}, At: day0, AlsoCharge: []string{"tag"}}))
	must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "key2", ReservationID: "r2", Amounts: q{"t": 5}, TTL: 300 * time.Second, At: day0, AlsoCharge: []string{"tag"}}))
	requireLevels(t, b, day0, "team map[t:10] rmap[t:45] 0/0; tag map[t:10] rmap[t:45] 0/0", "team", "tag")
	if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "key", At: day0}); err != nil || !d {
		t.Fatalf("delete key: %v, %v", d, err)
	}
	// Its reservation no longer holds anywhere; what it charged stays counted.
	requireLevels(t, b, day0, "team map[t:10] rmap[t:5] 0/0; tag map[t:10] rmap[t:5] 0/0", "team", "tag")
	o, err := reserve(b, "key2", "r3", q{"t": 85}, 300, "", day0)
	requireOutcome(t, o, err, expiring(ok(dayStart, dayNext), after(day0, "5m")))
	// A budget created again under the id starts with nothing of the old one's.
	daily(t, b, "key", "team", nil)
	got, err := release(b, "key", "e1", day0)
	requireReleased(t, got, err, q{})
	_, err = cancel(b, "key", "r1", day0)
	requireCode(t, err, "SC007", "reservation_id: ")
	// A deleted member of a set: the others end the reservation without it.
	if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "tag", At: day0}); err != nil || !d {
		t.Fatalf("delete tag: %v, %v", d, err)
	}
	got, err = cancel(b, "key2", "r2", day0)
	requireReleased(t, got, err, q{"t": 5})
	requireLevels(t, b, day0, "team map[t:10] rmap[t:85] 0/0; key2 map[] rmap[t:85] 0/0", "team", "key2")
}

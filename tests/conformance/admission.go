package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("ReportUsageWithinLimitsIsOK", reportWithinLimits)
	register("ReachingAHardLimitExactlyIsAllowed", reachingLimitExactly)
	register("HardBreachInEnforceModeAppliesNothingAndCounts", hardBreachEnforce)
	register("HardCheckTakesDimensionsInByteOrder", byteOrder)
	register("ZeroIsARealLimit", zeroLimit)
	register("ObserveModeAppliesHardBreachesAndCountsThem", observeMode)
	register("SoftBreachIsCountedOncePerCall", softOncePerCall)
	register("UsageAboveMaxQuantityRaisesSC004WritingNothing", maxQuantity)
	register("UnknownBudgetFailsClosedForEveryCall", unknownBudget)
	register("AdmissionRejectsInvalidArgumentsWritingNothing", admissionInvalid)
	register("CheckUsageReturnsTheOutcomeWithoutWriting", checkUsageReadOnly)
	register("SetLimitsReplacesGivenLimitsKeepingUsage", setLimits)
	register("DeleteBudgetRemovesEverythingAndIsFalseWhenAbsent", deleteBudget)
}

func dayBudget(t *testing.T, b spendcap.Budgets, p spendcap.CreateBudgetParams) {
	t.Helper()
	if p.BudgetID == "" {
		p.BudgetID = "b1"
	}
	p.ResetEvery, p.At = "1 day", day0
	mustCreate(t, b, p)
}

func reportWithinLimits(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"tokens": 100}})
	o, err := report(b, "b1", q{"tokens": 40, "requests": 1}, "", after(day0, "1m"))
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	st := requireState(t, b, "b1", after(day0, "1m"), q{"tokens": 40, "requests": 1}, q{}, 0, 0)
	if st.Remaining["tokens"] != 60 || len(st.Remaining) != 1 || !st.UpdatedAt.Equal(after(day0, "1m")) {
		t.Errorf("remaining %v updated_at %v", st.Remaining, st.UpdatedAt)
	}
}

func reachingLimitExactly(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"tokens": 100}})
	o, err := report(b, "b1", q{"tokens": 100}, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = report(b, "b1", q{"tokens": 1}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 100, 100, false))
	requireState(t, b, "b1", day0, q{"tokens": 100}, q{}, 1, 0)
}

func hardBreachEnforce(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"tokens": 100, "usd": 10}})
	must(report(b, "b1", q{"tokens": 90, "usd": 1}, "", day0))
	at := after(day0, "5m")
	o, err := report(b, "b1", q{"tokens": 20, "usd": 1, "requests": 1}, "", at)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 90, 100, false))
	st := requireState(t, b, "b1", at, q{"tokens": 90, "usd": 1}, q{}, 1, 0)
	if st.WindowBreachCount != 1 || st.LastBreachAt == nil || !st.LastBreachAt.Equal(at) || st.LastBreachDim != "tokens" {
		t.Errorf("window breach %d last %v %q", st.WindowBreachCount, st.LastBreachAt, st.LastBreachDim)
	}
}

func byteOrder(t *testing.T, b spendcap.Backend) {
	// Byte order puts "Z" before "a" and "a" before "aa"; jsonb's own key order (by length) would not.
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"aa": 1, "a": 1, "Z": 1}})
	o, err := report(b, "b1", q{"aa": 2, "a": 2, "Z": 2}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "Z", 0, 1, false))
	o, err = report(b, "b1", q{"aa": 2, "a": 2}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "a", 0, 1, false))
}

func zeroLimit(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"gpu": 0}})
	o, err := report(b, "b1", q{"gpu": 1}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "gpu", 0, 0, false))
	o, err = report(b, "b1", q{"gpu": 0}, "", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	if st := requireState(t, b, "b1", day0, q{}, q{}, 1, 0); st.Remaining["gpu"] != 0 || len(st.Remaining) != 1 {
		t.Errorf("remaining %v", st.Remaining)
	}
}

func observeMode(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"tokens": 100}, SoftLimits: q{"tokens": 50}, Mode: spendcap.ModeObserve})
	o, err := report(b, "b1", q{"tokens": 120}, "", day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "tokens", 120, 100, true))
	// A hard breach is not also counted as a soft breach.
	if st := requireState(t, b, "b1", day0, q{"tokens": 120}, q{}, 1, 0); st.Remaining["tokens"] != 0 {
		t.Errorf("remaining %v", st.Remaining)
	}
}

func softOncePerCall(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{SoftLimits: q{"a": 5, "b": 5}, HardLimits: q{"a": 100}})
	o, err := report(b, "b1", q{"b": 6, "a": 6}, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "a", 6, 5))
	// Every call that ends above a soft limit counts again.
	o, err = report(b, "b1", q{"b": 1}, "", day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "b", 7, 5))
	st := requireState(t, b, "b1", day0, q{"a": 6, "b": 7}, q{}, 0, 2)
	if st.WindowSoftBreachCount != 2 || st.LastBreachAt != nil {
		t.Errorf("window soft %d last breach %v", st.WindowSoftBreachCount, st.LastBreachAt)
	}
}

func maxQuantity(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"a": 1}})
	must(report(b, "b1", q{"z": spendcap.MaxQuantity}, "", day0))
	before := snapshot(t, b, "b1", day0)
	// SC004 wins over a hard breach of an earlier dimension: step 1 runs over every dimension first.
	_, err := report(b, "b1", q{"a": 5, "z": 1}, "k", after(day0, "1m"))
	requireCode(t, err, "SC004", "deltas: ")
	_, err = reserve(b, "b1", "r", q{"z": 1}, 60, "k2", day0)
	requireCode(t, err, "SC004", "amounts: ")
	if after := snapshot(t, b, "b1", day0); after != before {
		t.Errorf("state changed after SC004:\n%s\n%s", after, before)
	}
	// The key of the failed call was not stored.
	o, err := report(b, "b1", q{"a": 1}, "k", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
}

func unknownBudget(t *testing.T, b spendcap.Backend) {
	for name, call := range map[string]func() error{
		"report_usage":       func() error { _, err := report(b, "nope", q{"t": 1}, "k", day0); return err },
		"check_usage":        func() error { _, err := check(b, "nope", q{"t": 1}, day0); return err },
		"record_spend":       func() error { _, err := spend(b, "nope", "e", q{"t": 1}, "k", day0); return err },
		"release_spend":      func() error { _, err := release(b, "nope", "e", day0); return err },
		"reserve":            func() error { _, err := reserve(b, "nope", "r", q{"t": 1}, 60, "k", day0); return err },
		"settle":             func() error { _, err := settle(b, "nope", "r", q{"t": 1}, day0); return err },
		"cancel_reservation": func() error { _, err := cancel(b, "nope", "r", day0); return err },
		"reset_budget":       func() error { _, err := reset(b, "nope", day0); return err },
		"budget_history":     func() error { _, err := history(b, "nope", 10, day0); return err },
		"set_limits": func() error {
			_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "nope", HardLimits: q{}, At: day0})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { requireCode(t, call(), "SC001", "budget_id: ") })
	}
	_, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "nope", At: day0})
	requireCode(t, err, "SC001", "budget_id: ")
}

func admissionInvalid(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	before := snapshot(t, b, "b1", day0)
	for _, tc := range []struct {
		name, arg string
		call      func() error
	}{
		{"empty deltas", "deltas", func() error { _, err := report(b, "b1", q{}, "", day0); return err }},
		{"negative delta", "deltas", func() error { _, err := report(b, "b1", q{"t": -1}, "", day0); return err }},
		{"delta above MAX_QTY", "deltas", func() error { _, err := report(b, "b1", q{"t": spendcap.MaxQuantity + 1}, "", day0); return err }},
		{"bad dimension", "deltas", func() error { _, err := report(b, "b1", q{"t t": 1}, "", day0); return err }},
		{"bad dedup key", "dedup_key", func() error { _, err := report(b, "b1", q{"t": 1}, "a{b", day0); return err }},
		{"long dedup key", "dedup_key", func() error { _, err := report(b, "b1", q{"t": 1}, strings.Repeat("k", 129), day0); return err }},
		{"check with empty deltas", "deltas", func() error { _, err := check(b, "b1", q{}, day0); return err }},
		{"bad execution id", "execution_id", func() error { _, err := spend(b, "b1", "", q{"t": 1}, "", day0); return err }},
		{"bad idempotency key", "idempotency_key", func() error { _, err := spend(b, "b1", "e", q{"t": 1}, "k k", day0); return err }},
		{"release bad execution id", "execution_id", func() error { _, err := release(b, "b1", "a b", day0); return err }},
		{"bad reservation id", "reservation_id", func() error { _, err := reserve(b, "b1", "r}", q{"t": 1}, 60, "", day0); return err }},
		{"empty amounts", "amounts", func() error { _, err := reserve(b, "b1", "r", q{}, 60, "", day0); return err }},
		{"negative ttl", "ttl_seconds", func() error { _, err := reserve(b, "b1", "r", q{"t": 1}, -5, "", day0); return err }},
		{"ttl above a day", "ttl_seconds", func() error { _, err := reserve(b, "b1", "r", q{"t": 1}, 86401, "", day0); return err }},
		{"ttl not whole seconds", "ttl_seconds", func() error {
			_, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "b1", ReservationID: "r", Amounts: q{"t": 1}, TTL: 1500 * time.Millisecond, At: day0})
			return err
		}},
		{"settle bad actual", "actual", func() error { _, err := settle(b, "b1", "r", q{"t": -2}, day0); return err }},
		{"cancel bad reservation id", "reservation_id", func() error { _, err := cancel(b, "b1", "", day0); return err }},
		{"history max_rows", "max_rows", func() error { _, err := history(b, "b1", -1, day0); return err }},
		{"history max_rows above 10000", "max_rows", func() error { _, err := history(b, "b1", 10001, day0); return err }},
		{"history max_rows beyond an integer", "max_rows", func() error { _, err := history(b, "b1", 1<<31, day0); return err }},
		{"set_limits hard set and cleared", "hard_limits", func() error {
			_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": 5}, ClearHardLimits: true, At: day0})
			return err
		}},
		{"set_limits bad mode", "mode", func() error {
			_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", Mode: "strict", At: day0})
			return err
		}},
		{"set_limits bad hard", "hard_limits", func() error {
			_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": -1}, At: day0})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireCode(t, tc.call(), "SC002", tc.arg+": ")
			if after := snapshot(t, b, "b1", day0); after != before {
				t.Errorf("state changed after SC002:\n%s\n%s", after, before)
			}
		})
	}
}

func checkUsageReadOnly(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}, SoftLimits: q{"t": 5}})
	must(report(b, "b1", q{"t": 4}, "", day0))
	o, err := check(b, "b1", q{"t": 1}, day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	o, err = check(b, "b1", q{"t": 2}, day0)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 6, 5))
	o, err = check(b, "b1", q{"t": 7}, day0)
	requireOutcome(t, o, err, hard(dayStart, dayNext, "t", 4, 10, false))
	_, err = check(b, "b1", q{"t": spendcap.MaxQuantity}, day0)
	requireCode(t, err, "SC004", "deltas: ")
	// In the next window, the check sees the rolled, empty window.
	o, err = check(b, "b1", q{"t": 7}, after(day0, "24h"))
	requireOutcome(t, o, err, soft(*dayNext, ptr(dayNext.Add(24*time.Hour)), "t", 7, 5))
	st := requireState(t, b, "b1", day0, q{"t": 4}, q{}, 0, 0)
	if st.WindowSeq != 1 || !st.UpdatedAt.Equal(day0) {
		t.Errorf("check_usage wrote: seq %d updated_at %v", st.WindowSeq, st.UpdatedAt)
	}
}

func setLimits(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 10}, SoftLimits: q{"t": 5}})
	must(report(b, "b1", q{"t": 8}, "", day0))
	at := after(day0, "1h")
	st, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": 20, "u": 1}, Mode: spendcap.ModeObserve, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if st.HardLimits["t"] != 20 || st.HardLimits["u"] != 1 || st.SoftLimits["t"] != 5 || st.Mode != spendcap.ModeObserve ||
		st.Usage["t"] != 8 || st.Remaining["t"] != 12 || st.WindowSeq != 1 || !st.UpdatedAt.Equal(at) {
		t.Errorf("set_limits returned %s", StatusString(st))
	}
	if got := status(t, b, "b1", at); StatusString(got) != StatusString(st) {
		t.Errorf("set_limits returned\n%s\nbudget_status says\n%s", StatusString(st), StatusString(got))
	}
	// The new limits apply from the next call.
	o, err := report(b, "b1", q{"t": 12}, "", at)
	requireOutcome(t, o, err, soft(dayStart, dayNext, "t", 20, 5))
	// New hard limits below the soft ones are refused, naming the argument passed.
	_, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": 4}, At: at})
	requireCode(t, err, "SC002", "hard_limits: ")
	_, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", SoftLimits: q{"t": 21}, At: at})
	requireCode(t, err, "SC002", "soft_limits: ")
	// Empty maps leave the limits as they are; the Clear fields remove them, and a field both set
	// and cleared is refused before anything is sent.
	st, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{}, SoftLimits: q{}, At: at})
	if err != nil || st.HardLimits["t"] != 20 || st.SoftLimits["t"] != 5 {
		t.Errorf("empty limits changed them: %s %v", StatusString(st), err)
	}
	_, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", HardLimits: q{"t": 30}, ClearHardLimits: true, At: at})
	requireCode(t, err, "SC002", "hard_limits: set and cleared")
	st, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", ClearHardLimits: true, ClearSoftLimits: true, At: at})
	if err != nil || len(st.HardLimits) != 0 || len(st.SoftLimits) != 0 || len(st.Remaining) != 0 || st.Mode != spendcap.ModeObserve {
		t.Errorf("clearing limits: %s %v", StatusString(st), err)
	}
}

func deleteBudget(t *testing.T, b spendcap.Backend) {
	for _, id := range []string{"b1", "b2"} {
		dayBudget(t, b, spendcap.CreateBudgetParams{BudgetID: id})
		must(spend(b, id, "e", q{"t": 1}, "k", day0))
		must(reserve(b, id, "r", q{"t": 1}, 3600, "k2", day0))
		must(reset(b, id, after(day0, "1m")))
	}
	b2 := snapshot(t, b, "b2", after(day0, "1m"))
	if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "b1"}); err != nil || !d {
		t.Fatalf("delete_budget = %v, %v", d, err)
	}
	if after := snapshot(t, b, "b2", after(day0, "1m")); after != b2 {
		t.Errorf("deleting b1 changed b2:\n%s\n%s", after, b2)
	}
	if d, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "b1"}); err != nil || d {
		t.Errorf("second delete_budget = %v, %v; want false", d, err)
	}
	_, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b1"})
	requireCode(t, err, "SC001", "budget_id: ")
	// A budget created again under the same id starts from nothing: no usage, reservations,
	// ledger, history or keys of the deleted one.
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	o, err := spend(b, "b1", "e", q{"t": 5}, "k", day0)
	requireOutcome(t, o, err, ok(dayStart, dayNext))
	requireReleased(t, must(release(b, "b1", "e", day0)), nil, q{"t": 5})
	_, err = cancel(b, "b1", "r", day0)
	requireCode(t, err, "SC007", "reservation_id: ")
	h, err := history(b, "b1", 10, day0)
	requireHistory(t, h, err)
	requireState(t, b, "b1", day0, q{}, q{}, 0, 0)
}

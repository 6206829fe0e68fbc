package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("EachAlertPercentFiresOncePerWindowAndOneCallCanCrossSeveral", eventsOncePerWindow)
	register("ARefusedCallThatCrossesNothingFiresOnlyHardBreach", eventsRefusedOnly)
	register("EveryBudgetOfASetGetsItsOwnEvents", eventsOfSets)
	register("ABatchRaisesTheEventsOfTheSameCallsOneByOne", eventsInBatches)
	register("ARollAndAManualResetCloseTheirWindowsWithAnEvent", eventsOfClosedWindows)
	register("AReplayedReportFiresNothingNew", eventsOfReplays)
	register("AlertPercentsAreAtMostTenAscendingPercents", eventsAlertPercents)
	register("ABudgetDeletedAndCreatedAgainRaisesItsEventsAgain", eventsOfARecreatedBudget)
	register("ASettleThatReachesAPercentAndAnObservedBreachRaiseEvents", eventsOfSettlesAndObserve)
}

// eventString renders an event without its id: "kind budget seq=N dim percent usage/limit @time",
// or for window_closed its window's usage, breaches and closer.
func eventString(prefix string, e spendcap.Event) string {
	id := strings.TrimPrefix(e.BudgetID, prefix)
	at := e.OccurredAt.UTC().Format("01-02T15:04")
	switch e.Kind {
	case spendcap.EventThreshold:
		return fmt.Sprintf("threshold %s seq=%d %s %d%% %d/%d @%s", id, e.WindowSeq, e.Dimension, e.Percent, e.Usage, e.LimitValue, at)
	case spendcap.EventHardBreach:
		return fmt.Sprintf("hard_breach %s seq=%d %s %d/%d @%s", id, e.WindowSeq, e.Dimension, e.Usage, e.LimitValue, at)
	default:
		return fmt.Sprintf("window_closed %s seq=%d start=%s %v breaches=%d/%d by=%s @%s", id, e.WindowSeq,
			e.WindowStart.UTC().Format("01-02T15:04"), e.WindowUsage, e.BreachCount, e.SoftBreachCount, e.ClosedBy, at)
	}
}

// eventsOf is every event of slot group group (the first id segment), rendered, in id order.
func eventsOf(t *testing.T, b spendcap.Backend, group, prefix string) []string {
	t.Helper()
	src, ok := b.(spendcap.EventSource)
	if !ok {
		t.Fatalf("%T is no spendcap.EventSource", b)
	}
	es, err := src.EventsSince(ctx, spendcap.EventsSinceParams{Group: group})
	if err != nil {
		t.Fatalf("events since 0: %v", err)
	}
	var got []string
	var last int64
	for _, e := range es {
		if e.EventID <= last {
			t.Fatalf("event ids not increasing: %d after %d", e.EventID, last)
		}
		last = e.EventID
		if e.BudgetID == group || strings.HasPrefix(e.BudgetID, group+"/") {
			got = append(got, eventString(prefix, e))
		}
	}
	return got
}

func requireEvents(t *testing.T, b spendcap.Backend, group string, want ...string) {
	t.Helper()
	if got := eventsOf(t, b, group, ""); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events of %s\n got:\n  %s\n want:\n  %s", group, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func eventsOncePerWindow(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100, "u": 10}, AlertPercents: []int32{50, 80, 100},
		ResetEvery: "1 day", At: day0})
	at := after(day0, "1h")
	for _, d := range []q{{"t": 40}, {"t": 45}, {"t": 5}, {"t": 10, "u": 5}, {"t": 1}} {
		must(report(b, "a", d, "", at))
	}
	st := status(t, b, "a", at)
	if fmt.Sprint(st.AlertPercents) != "[50 80 100]" {
		t.Errorf("status alert_percents %v", st.AlertPercents)
	}
	// The next window fires again; the call that rolls it closes the first one.
	must(report(b, "a", q{"t": 60}, "", after(day0, "25h")))
	requireEvents(t, b, "a",
		"threshold a seq=1 t 50% 85/100 @03-10T13:00",
		"threshold a seq=1 t 80% 85/100 @03-10T13:00",
		"threshold a seq=1 t 100% 100/100 @03-10T13:00",
		"threshold a seq=1 u 50% 5/10 @03-10T13:00",
		"hard_breach a seq=1 t 100/100 @03-10T13:00",
		"window_closed a seq=1 start=03-10T00:00 map[t:100 u:5] breaches=1/0 by=schedule @03-11T13:00",
		"threshold a seq=2 t 50% 60/100 @03-11T13:00")
}

func eventsRefusedOnly(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{90}, At: day0})
	at := after(day0, "1h")
	for _, d := range []q{{"t": 50}, {"t": 60}, {"t": 70}} {
		must(report(b, "a", d, "", at))
	}
	requireEvents(t, b, "a", "hard_breach a seq=1 t 50/100 @03-10T13:00")
}

func eventsOfSets(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: q{"t": 100}, AlertPercents: []int32{50}, At: day0})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org/key", HardLimits: q{"t": 40}, AlertPercents: []int32{50, 100},
		ParentID: "org", At: day0})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org/tag", HardLimits: q{"t": 1000}, AlertPercents: []int32{1}, At: day0})
	at := after(day0, "1h")
	must(b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "org/key", Deltas: q{"t": 20}, AlsoCharge: []string{"org/tag"}, At: at}))
	must(report(b, "org/key", q{"t": 30}, "", at))
	// A charge to a chain (the fast path's) that takes the parent to a percent.
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "org/key2", ParentID: "org", At: day0})
	must(report(b, "org/key2", q{"t": 30}, "", at))
	requireEvents(t, b, "org",
		"threshold org/key seq=1 t 50% 20/40 @03-10T13:00",
		"threshold org/tag seq=1 t 1% 20/1000 @03-10T13:00",
		"hard_breach org/key seq=1 t 20/40 @03-10T13:00",
		"threshold org seq=1 t 50% 50/100 @03-10T13:00")
}

// eventsInBatches: a batch raises the events of its items as calls one by one would: a batch with
// a breach and a replay in it, and one whose items all fit.
func eventsInBatches(t *testing.T, b spendcap.Backend) {
	for n, tc := range []struct {
		items []spendcap.BatchItem
		want  []string
	}{
		{[]spendcap.BatchItem{item("a", q{"t": 30}, ""), item("a/b", q{"t": 5}, ""), item("a", q{"t": 30}, ""), item("a", q{"t": 50}, ""),
			item("a", q{"t": 40}, "k"), item("a", q{"t": 40}, "k")},
			[]string{"threshold a seq=1 t 50% 60/100 @03-10T13:00", "hard_breach a seq=1 t 60/100 @03-10T13:00",
				"threshold a seq=1 t 100% 100/100 @03-10T13:00"}},
		{[]spendcap.BatchItem{item("a", q{"t": 30}, ""), item("a/b", q{"t": 5}, ""), item("a", q{"t": 30}, "")},
			[]string{"threshold a seq=1 t 50% 60/100 @03-10T13:00"}},
	} {
		items := tc.items
		seqP, batchP := fmt.Sprintf("s%d", n), fmt.Sprintf("b%d", n)
		setup := func(p string) {
			mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100}, AlertPercents: []int32{50, 100}, At: day0})
			mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a/b", HardLimits: q{"t": 10}, At: day0})
		}
		setup(seqP)
		setup(batchP)
		at := after(day0, "1h")
		for _, it := range items {
			must(b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: seqP + it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey, At: at}))
		}
		bitems := make([]spendcap.BatchItem, len(items))
		for i, it := range items {
			it.BudgetID = batchP + it.BudgetID
			bitems[i] = it
		}
		must(batcher(t, b).ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: bitems, At: at}))
		calls := eventsOf(t, b, seqP+"a", seqP)
		got := eventsOf(t, b, batchP+"a", batchP)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") || strings.Join(calls, "\n") != strings.Join(tc.want, "\n") {
			t.Fatalf("batch %d events\n  %s\ncall events\n  %s", n, strings.Join(got, "\n  "), strings.Join(calls, "\n  "))
		}
	}
}

func eventsOfClosedWindows(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, ResetEvery: "1 day", At: day0})
	must(report(b, "a", q{"t": 7}, "", after(day0, "1h")))
	must(report(b, "a", q{"t": 3}, "", after(day0, "25h")))
	must(b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "a", At: after(day0, "26h")}))
	// An empty window closes without an event.
	must(b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "a", At: after(day0, "27h")}))
	requireEvents(t, b, "a",
		"window_closed a seq=1 start=03-10T00:00 map[t:7] breaches=0/0 by=schedule @03-11T13:00",
		"window_closed a seq=2 start=03-11T00:00 map[t:3] breaches=0/0 by=manual @03-11T14:00")
}

func eventsOfReplays(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{50}, At: day0})
	for range 3 {
		must(report(b, "a", q{"t": 60}, "k1", after(day0, "1h")))
	}
	requireEvents(t, b, "a", "threshold a seq=1 t 50% 60/100 @03-10T13:00")
}

func eventsAlertPercents(t *testing.T, b spendcap.Backend) {
	for _, ps := range [][]int32{{0}, {1001}, {50, 50}, {80, 50}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}} {
		_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: ps, At: day0})
		requireCode(t, err, "SC002", "alert_percents")
	}
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{10, 1000}, At: day0})
	_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{10}, At: day0})
	requireCode(t, err, "SC005", "budget_id")
	if c := mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{10, 1000}, At: day0}); c.Created {
		t.Error("the same definition created a budget again")
	}
	_, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "a", AlertPercents: []int32{5, 1}, At: day0})
	requireCode(t, err, "SC002", "alert_percents")
	// nil or empty keeps them; ClearAlertPercents removes them.
	if st := must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "a", Mode: spendcap.ModeObserve, At: day0})); fmt.Sprint(st.AlertPercents) != "[10 1000]" {
		t.Errorf("after set_limits without alert_percents: %v", st.AlertPercents)
	}
	if st := must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "a", AlertPercents: []int32{}, At: day0})); fmt.Sprint(st.AlertPercents) != "[10 1000]" {
		t.Errorf("after set_limits with []: %v", st.AlertPercents)
	}
	if st := must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "a", ClearAlertPercents: true, At: day0})); st.AlertPercents != nil {
		t.Errorf("after set_limits with ClearAlertPercents: %v", st.AlertPercents)
	}
}

func eventsOfARecreatedBudget(t *testing.T, b spendcap.Backend) {
	create := func(at time.Time) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{50}, At: at})
	}
	create(day0)
	must(report(b, "a", q{"t": 60}, "", after(day0, "1h")))
	must(b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "a", At: after(day0, "2h")}))
	create(after(day0, "3h"))
	must(report(b, "a", q{"t": 60}, "", after(day0, "4h")))
	requireEvents(t, b, "a", "threshold a seq=1 t 50% 60/100 @03-10T13:00", "threshold a seq=1 t 50% 60/100 @03-10T16:00")
}

// A settle raises the thresholds its usage reaches; a breach applied in observe mode is the
// window's hard_breach.
func eventsOfSettlesAndObserve(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", HardLimits: q{"t": 100}, AlertPercents: []int32{50}, At: day0})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "o", HardLimits: q{"t": 10}, Mode: spendcap.ModeObserve, At: day0})
	at := after(day0, "1h")
	must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "a", ReservationID: "r", Amounts: q{"t": 70}, TTL: 300 * time.Second, At: at}))
	must(settle(b, "a", "r", q{"t": 55}, at))
	if o := must(report(b, "o", q{"t": 15}, "", at)); !o.Applied {
		t.Fatalf("observe breach not applied: %+v", o)
	}
	requireEvents(t, b, "a", "threshold a seq=1 t 50% 55/100 @03-10T13:00")
	requireEvents(t, b, "o", "hard_breach o seq=1 t 15/10 @03-10T13:00")
}

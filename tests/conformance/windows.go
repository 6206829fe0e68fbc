package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("MonthlyFromJan31FollowsTheAnchorNotTheLastBoundary", monthlyFromJan31)
	register("MonthlyFromJan31InNewYorkCrossesBothDSTChanges", monthlyNewYork)
	register("YearlyFromFeb29", yearlyFromFeb29)
	register("DailyInNewYorkAcrossSpringForwardAndFallBack", dailyNewYork)
	register("HourlyInNewYorkIsElapsedTimeThroughDST", hourlyNewYork)
	register("WallClockInDSTGapAndOverlapResolvesLikePostgres", gapAndOverlap)
	register("WeeklyInKolkata", weeklyKolkata)
	register("MonthlyInKolkataAndFixedOffset", monthlyKolkataAndOffset)
	register("FutureAnchorWindowRunsFromCreationToTheAnchor", futureAnchorTimeline)
	register("ManyMissedPeriodsCollapseIntoOneRoll", manyMissedPeriods)
	register("EmptyWindowsDoNotCountInWindowSeq", emptyWindowsDoNotCount)
	register("EmptyWindowsLeaveNoHistory", emptyWindows)
	register("UsageBeforeTheWindowStartLandsInTheCurrentWindow", usageBeforeWindow)
	register("ManualResetKeepsTheSchedule", manualReset)
	register("ManualResetOfABudgetWithoutSchedule", manualResetNoSchedule)
	register("HistoryIsNewestFirstAndLimitedByMaxRows", historyOrder)
}

// step is one call in a window timeline: report usage at an instant, expect the window it lands in.
type step struct {
	at          string
	start, next string
}

// timeline reports 1 unit at each step and checks the outcome's window and the window_seq.
func timeline(t *testing.T, b spendcap.Budgets, id, every, zone, anchor, created string, steps []step) {
	t.Helper()
	p := spendcap.CreateBudgetParams{BudgetID: id, ResetEvery: every, ResetTimezone: zone, At: ts(t, created)}
	if anchor != "" {
		p.ResetAnchor = ptr(ts(t, anchor))
	}
	c := mustCreate(t, b, p)
	seq := int64(1)
	prev := c.WindowStart.UTC().Format(time.RFC3339)
	used := false // window_seq counts closed windows with usage: the creation window has none
	for _, s := range steps {
		o, err := report(b, id, q{"n": 1}, "", ts(t, s.at))
		requireOutcome(t, o, err, ok(ts(t, s.start), ptr(ts(t, s.next))))
		if start := ts(t, s.start).UTC().Format(time.RFC3339); start != prev {
			if used {
				seq++
			}
			prev = start
		}
		used = true
		if st := status(t, b, id, ts(t, s.at)); st.WindowSeq != seq {
			t.Fatalf("at %s: window_seq %d, want %d", s.at, st.WindowSeq, seq)
		}
	}
}

func monthlyFromJan31(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "b1", "1 month", "UTC", "2026-01-31T00:00:00Z", "2026-01-31T10:00:00Z", []step{
		{"2026-02-27T23:59:59Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"2026-03-30T12:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"2026-03-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"2026-05-01T00:00:00Z", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
	})
}

func monthlyNewYork(t *testing.T, b spendcap.Backend) {
	// Local midnight on the 31st/last day: EST (-5) in winter, EDT (-4) in summer.
	timeline(t, b, "b1", "1 month", "America/New_York", "2026-01-31T05:00:00Z", "2026-02-01T00:00:00Z", []step{
		{"2026-02-10T00:00:00Z", "2026-01-31T05:00:00Z", "2026-02-28T05:00:00Z"},
		{"2026-03-30T00:00:00Z", "2026-02-28T05:00:00Z", "2026-03-31T04:00:00Z"},
		{"2026-10-31T04:00:00Z", "2026-10-31T04:00:00Z", "2026-11-30T05:00:00Z"},
	})
}

func yearlyFromFeb29(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "b1", "1 year", "UTC", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", []step{
		{"2025-02-27T00:00:00Z", "2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z"},
		{"2025-02-28T00:00:00Z", "2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"},
	})
}

func dailyNewYork(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "b1", "1 day", "America/New_York", "", "2026-03-07T12:00:00Z", []step{
		{"2026-03-07T12:00:00Z", "2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z"},
		// The 23-hour day.
		{"2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"},
		{"2026-03-09T03:59:59Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"},
		{"2026-03-09T04:00:00Z", "2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"},
		// The 25-hour day.
		{"2026-11-01T12:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
		{"2026-11-02T04:30:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"},
	})
}

func hourlyNewYork(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "b1", "1 hour", "America/New_York", "", "2026-11-01T04:10:00Z", []step{
		{"2026-11-01T05:10:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
		{"2026-11-01T06:10:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"},
	})
}

func gapAndOverlap(t *testing.T, b spendcap.Backend) {
	// Daily at local 02:30 in New York: on 2026-03-08 02:30 does not exist (offset before: EST),
	// on 2026-11-01 01:30 happens twice (offset after: EST).
	timeline(t, b, "gap", "1 day", "America/New_York", "2026-03-06T07:30:00Z", "2026-03-06T08:00:00Z", []step{
		{"2026-03-08T07:29:59Z", "2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z"},
		{"2026-03-08T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"},
	})
	timeline(t, b, "overlap", "1 day", "America/New_York", "2026-10-30T05:30:00Z", "2026-10-30T06:00:00Z", []step{
		{"2026-11-01T05:30:00Z", "2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"},
		{"2026-11-01T06:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"},
	})
}

func weeklyKolkata(t *testing.T, b spendcap.Backend) {
	// Monday 00:00 IST is Sunday 18:30 UTC.
	timeline(t, b, "b1", "2 weeks", "Asia/Kolkata", "", "2026-03-11T00:00:00Z", []step{
		{"2026-03-11T00:00:00Z", "2026-03-08T18:30:00Z", "2026-03-22T18:30:00Z"},
		{"2026-03-22T18:30:00Z", "2026-03-22T18:30:00Z", "2026-04-05T18:30:00Z"},
	})
}

func monthlyKolkataAndOffset(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "kolkata", "1 month", "Asia/Kolkata", "", "2026-03-31T20:00:00Z", []step{
		{"2026-03-31T20:00:00Z", "2026-03-31T18:30:00Z", "2026-04-30T18:30:00Z"},
	})
	timeline(t, b, "offset", "1 month", "-03:30", "", "2026-03-31T20:00:00Z", []step{
		{"2026-03-31T20:00:00Z", "2026-03-01T03:30:00Z", "2026-04-01T03:30:00Z"},
		{"2026-04-01T03:30:00Z", "2026-04-01T03:30:00Z", "2026-05-01T03:30:00Z"},
	})
}

func futureAnchorTimeline(t *testing.T, b spendcap.Backend) {
	timeline(t, b, "b1", "1 day", "UTC", "2026-03-20T06:00:00Z", "2026-03-10T12:00:00Z", []step{
		{"2026-03-15T00:00:00Z", "2026-03-10T12:00:00Z", "2026-03-20T06:00:00Z"},
		{"2026-03-20T06:00:00Z", "2026-03-20T06:00:00Z", "2026-03-21T06:00:00Z"},
	})
}

func emptyWindowsDoNotCount(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "1 hour", At: day0})
	// Idle for three hours: the creation window closes empty, window_seq stays 1.
	must(report(b, "b1", q{"t": 1}, "", after(day0, "3h")))
	if st := status(t, b, "b1", after(day0, "3h")); st.WindowSeq != 1 {
		t.Fatalf("window_seq %d after an empty window, want 1", st.WindowSeq)
	}
	// Looking at it again and again in later hours (as the roll job would roll it) changes nothing.
	for h := 4; h < 7; h++ {
		must(check(b, "b1", q{"t": 1}, after(day0, fmt.Sprintf("%dh", h))))
	}
	if st := status(t, b, "b1", after(day0, "6h30m")); st.WindowSeq != 2 {
		t.Fatalf("window_seq %d once the used window closed, want 2", st.WindowSeq)
	}
	h, err := history(b, "b1", 10, after(day0, "6h30m"))
	requireHistory(t, h, err, spendcap.HistoryWindow{WindowSeq: 1, WindowStart: after(day0, "3h"), WindowEnd: after(day0, "4h"), Usage: q{"t": 1}, ClosedBy: spendcap.ClosedBySchedule})
}

func manyMissedPeriods(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "15 minutes", At: day0})
	must(report(b, "b1", q{"t": 3}, "", day0))
	later := after(day0, "1000h 7m")
	o, err := report(b, "b1", q{"t": 1}, "", later)
	requireOutcome(t, o, err, ok(after(day0, "1000h"), ptr(after(day0, "1000h 15m"))))
	if st := requireState(t, b, "b1", later, q{"t": 1}, q{}, 0, 0); st.WindowSeq != 2 {
		t.Errorf("window_seq %d, want 2", st.WindowSeq)
	}
	h, err := history(b, "b1", 100, later)
	requireHistory(t, h, err, spendcap.HistoryWindow{WindowSeq: 1, WindowStart: day0, WindowEnd: after(day0, "15m"), Usage: q{"t": 3}, ClosedBy: spendcap.ClosedBySchedule})
}

func emptyWindows(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{SoftLimits: q{"t": 0}, HardLimits: q{"h": 0}})
	// Day 1: a hard breach only (no usage) is recorded. Day 2: nothing. Day 3: a soft breach.
	if o, err := report(b, "b1", q{"h": 1}, "", day0); err != nil || o.Kind != spendcap.OutcomeHardBreach {
		t.Fatal(o, err)
	}
	must(check(b, "b1", q{"t": 1}, after(day0, "24h")))
	must(report(b, "b1", q{"h": 0}, "", after(day0, "25h")))
	if o, err := report(b, "b1", q{"t": 1}, "", after(day0, "49h")); err != nil || o.Kind != spendcap.OutcomeSoftBreach {
		t.Fatal(o, err)
	}
	// The empty window 2 left no row and no gap: window_seq counts windows with activity.
	h, err := history(b, "b1", 100, after(day0, "73h"))
	requireHistory(t, h, err,
		spendcap.HistoryWindow{WindowSeq: 2, WindowStart: after(dayStart, "48h"), WindowEnd: after(dayStart, "72h"), Usage: q{"t": 1}, SoftBreachCount: 1, ClosedBy: spendcap.ClosedBySchedule},
		spendcap.HistoryWindow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: *dayNext, Usage: q{}, BreachCount: 1, ClosedBy: spendcap.ClosedBySchedule},
	)
}

func usageBeforeWindow(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{})
	must(report(b, "b1", q{"t": 1}, "", after(day0, "24h")))
	// An instant from the closed window counts in the current one: windows never move backwards.
	o, err := report(b, "b1", q{"t": 2}, "", day0)
	requireOutcome(t, o, err, ok(*dayNext, ptr(dayNext.Add(24*time.Hour))))
	requireState(t, b, "b1", after(day0, "24h"), q{"t": 3}, q{}, 0, 0)
}

func manualReset(t *testing.T, b spendcap.Backend) {
	dayBudget(t, b, spendcap.CreateBudgetParams{HardLimits: q{"t": 5}})
	must(report(b, "b1", q{"t": 5}, "", day0))
	must(report(b, "b1", q{"t": 1}, "", day0))
	resetAt := after(day0, "3h")
	w, err := reset(b, "b1", resetAt)
	if err != nil || w.WindowSeq != 2 || !w.WindowStart.Equal(resetAt) || !w.NextResetAt.Equal(*dayNext) {
		t.Fatalf("reset_budget = %+v, %v; want seq 2 from %v until %v", w, err, resetAt, *dayNext)
	}
	st := requireState(t, b, "b1", resetAt, q{}, q{}, 1, 0)
	if st.WindowBreachCount != 0 || st.LastBreachAt != nil || !st.UpdatedAt.Equal(resetAt) {
		t.Errorf("after reset: %s", StatusString(st))
	}
	o, err := report(b, "b1", q{"t": 5}, "", after(day0, "4h"))
	requireOutcome(t, o, err, ok(resetAt, dayNext))
	// The scheduled boundary still comes at midnight.
	o, err = report(b, "b1", q{"t": 1}, "", after(day0, "12h"))
	requireOutcome(t, o, err, ok(*dayNext, ptr(dayNext.Add(24*time.Hour))))
	h, err := history(b, "b1", 100, after(day0, "12h"))
	requireHistory(t, h, err,
		spendcap.HistoryWindow{WindowSeq: 2, WindowStart: resetAt, WindowEnd: *dayNext, Usage: q{"t": 5}, ClosedBy: spendcap.ClosedBySchedule},
		spendcap.HistoryWindow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: resetAt, Usage: q{"t": 5}, BreachCount: 1, ClosedBy: spendcap.ClosedByManual},
	)
}

func manualResetNoSchedule(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", At: day0})
	must(report(b, "b1", q{"t": 5}, "", day0))
	w, err := reset(b, "b1", after(day0, "1h"))
	if err != nil || w.WindowSeq != 2 || !w.WindowStart.Equal(after(day0, "1h")) || w.NextResetAt != nil {
		t.Fatalf("reset_budget = %+v, %v", w, err)
	}
	// An empty window is not recorded by a manual reset either.
	must(reset(b, "b1", after(day0, "2h")))
	h, err := history(b, "b1", 100, after(day0, "2h"))
	requireHistory(t, h, err, spendcap.HistoryWindow{WindowSeq: 1, WindowStart: day0, WindowEnd: after(day0, "1h"), Usage: q{"t": 5}, ClosedBy: spendcap.ClosedByManual})
}

func historyOrder(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "b1", ResetEvery: "1 hour", At: day0})
	for i := 0; i < 5; i++ {
		must(report(b, "b1", q{"t": 1}, "", day0.Add(time.Duration(i)*time.Hour)))
	}
	// Window 5 is due at 5h but not rolled yet: history shows it as the schedule will close it.
	h, err := history(b, "b1", 2, after(day0, "5h"))
	requireHistory(t, h, err,
		spendcap.HistoryWindow{WindowSeq: 5, WindowStart: after(day0, "4h"), WindowEnd: after(day0, "5h"), Usage: q{"t": 1}, ClosedBy: spendcap.ClosedBySchedule},
		spendcap.HistoryWindow{WindowSeq: 4, WindowStart: after(day0, "3h"), WindowEnd: after(day0, "4h"), Usage: q{"t": 1}, ClosedBy: spendcap.ClosedBySchedule},
	)
	h, err = history(b, "b1", 0, after(day0, "4h30m"))
	if err != nil || len(h) != 4 || h[0].WindowSeq != 4 || h[3].WindowSeq != 1 {
		t.Errorf("history = %s, %v", HistoryString(h), err)
	}
}

package tests

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/testenv"
)

// step is one call in a window timeline: report usage at an instant, expect the window it lands in.
type step struct {
	at          string
	start, next string
}

// runTimeline reports 1 unit at each step and checks the outcome's window and the window_seq.
func runTimeline(t *testing.T, every, zone, anchor, created string, steps []step) {
	t.Helper()
	db := testenv.Pool(t)
	args := []any{"budget_id", "b1", "reset_every", every, "reset_timezone", zone, "at", ts(t, created)}
	if anchor != "" {
		args = append(args, "reset_anchor", ts(t, anchor))
	}
	c := mustCreate(t, db, args...)
	seq := int64(1)
	prevStart := c.WindowStart.UTC().Format(time.RFC3339)
	for _, s := range steps {
		o, err := reportUsage(db, "b1", `{"n": 1}`, "", ts(t, s.at))
		requireOutcome(t, o, err, ok(ts(t, s.start), ptr(ts(t, s.next))))
		if start := ts(t, s.start).UTC().Format(time.RFC3339); start != prevStart {
			seq++
			prevStart = start
		}
		st := mustStatus(t, db, "b1", ptr(ts(t, s.at)))
		if st.WindowSeq != seq {
			t.Fatalf("at %s: window_seq %d, want %d", s.at, st.WindowSeq, seq)
		}
	}
}

func TestMonthlyFromJan31FollowsTheAnchorNotTheLastBoundary(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 month", "UTC", "2026-01-31T00:00:00Z", "2026-01-31T10:00:00Z", []step{
		{"2026-02-27T23:59:59Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"2026-03-30T12:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"2026-03-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"2026-05-01T00:00:00Z", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
	})
}

func TestMonthlyFromJan31InNewYorkCrossesBothDSTChanges(t *testing.T) {
	t.Parallel()
	// Local midnight on the 31st/last day: EST (-5) in winter, EDT (-4) in summer.
	runTimeline(t, "1 month", "America/New_York", "2026-01-31T05:00:00Z", "2026-02-01T00:00:00Z", []step{
		{"2026-02-10T00:00:00Z", "2026-01-31T05:00:00Z", "2026-02-28T05:00:00Z"},
		{"2026-03-30T00:00:00Z", "2026-02-28T05:00:00Z", "2026-03-31T04:00:00Z"},
		{"2026-10-31T04:00:00Z", "2026-10-31T04:00:00Z", "2026-11-30T05:00:00Z"},
	})
}

func TestYearlyFromFeb29(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 year", "UTC", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", []step{
		{"2025-02-27T00:00:00Z", "2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z"},
		{"2025-02-28T00:00:00Z", "2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"},
	})
}

func TestDailyInNewYorkAcrossSpringForwardAndFallBack(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 day", "America/New_York", "", "2026-03-07T12:00:00Z", []step{
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

func TestHourlyInNewYorkIsElapsedTimeThroughDST(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 hour", "America/New_York", "", "2026-11-01T04:10:00Z", []step{
		{"2026-11-01T05:10:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
		{"2026-11-01T06:10:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"},
	})
}

func TestWallClockInDSTGapAndOverlapResolvesLikePostgres(t *testing.T) {
	t.Parallel()
	// Daily at local 02:30 in New York: on 2026-03-08 02:30 does not exist (offset before: EST),
	// on 2026-11-01 01:30 happens twice (offset after: EST).
	runTimeline(t, "1 day", "America/New_York", "2026-03-06T07:30:00Z", "2026-03-06T08:00:00Z", []step{
		{"2026-03-08T07:29:59Z", "2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z"},
		{"2026-03-08T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"},
	})
	runTimeline(t, "1 day", "America/New_York", "2026-10-30T05:30:00Z", "2026-10-30T06:00:00Z", []step{
		{"2026-11-01T05:30:00Z", "2026-10-31T05:30:00Z", "2026-11-01T06:30:00Z"},
		{"2026-11-01T06:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"},
	})
}

func TestWeeklyInKolkata(t *testing.T) {
	t.Parallel()
	// Monday 00:00 IST is Sunday 18:30 UTC.
	runTimeline(t, "2 weeks", "Asia/Kolkata", "", "2026-03-11T00:00:00Z", []step{
		{"2026-03-11T00:00:00Z", "2026-03-08T18:30:00Z", "2026-03-22T18:30:00Z"},
		{"2026-03-22T18:30:00Z", "2026-03-22T18:30:00Z", "2026-04-05T18:30:00Z"},
	})
}

func TestMonthlyInKolkataAndFixedOffset(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 month", "Asia/Kolkata", "", "2026-03-31T20:00:00Z", []step{
		{"2026-03-31T20:00:00Z", "2026-03-31T18:30:00Z", "2026-04-30T18:30:00Z"},
	})
	runTimeline(t, "1 month", "-03:30", "", "2026-03-31T20:00:00Z", []step{
		{"2026-03-31T20:00:00Z", "2026-03-01T03:30:00Z", "2026-04-01T03:30:00Z"},
		{"2026-04-01T03:30:00Z", "2026-04-01T03:30:00Z", "2026-05-01T03:30:00Z"},
	})
}

func TestFutureAnchorWindowRunsFromCreationToTheAnchor(t *testing.T) {
	t.Parallel()
	runTimeline(t, "1 day", "UTC", "2026-03-20T06:00:00Z", "2026-03-10T12:00:00Z", []step{
		{"2026-03-15T00:00:00Z", "2026-03-10T12:00:00Z", "2026-03-20T06:00:00Z"},
		{"2026-03-20T06:00:00Z", "2026-03-20T06:00:00Z", "2026-03-21T06:00:00Z"},
	})
}

func TestManyMissedPeriodsCollapseIntoOneRoll(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "15 minutes", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 3}`, "", day0); err != nil {
		t.Fatal(err)
	}
	later := after(day0, "1000h 7m")
	o, err := reportUsage(db, "b1", `{"t": 1}`, "", later)
	requireOutcome(t, o, err, ok(after(day0, "1000h"), ptr(after(day0, "1000h 15m"))))
	st := requireState(t, db, "b1", later, q{"t": 1}, q{}, 0, 0)
	if st.WindowSeq != 2 {
		t.Errorf("window_seq %d, want 2", st.WindowSeq)
	}
	h, err := budgetHistory(db, "b1", 100, later)
	requireHistory(t, h, err, historyRow{WindowSeq: 1, WindowStart: day0, WindowEnd: after(day0, "15m"), Usage: q{"t": 3}, ClosedBy: "schedule"})
}

func TestEmptyWindowsLeaveNoHistory(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "soft_limits", `{"t": 0}`, "hard_limits", `{"h": 0}`, "reset_every", "1 day", "at", day0)
	// Window 1: a hard breach only (no usage) is recorded. Window 2: nothing. Window 3: a soft breach.
	if o, err := reportUsage(db, "b1", `{"h": 1}`, "", day0); err != nil || o.Outcome != "hard_breach" {
		t.Fatal(o, err)
	}
	if _, err := checkUsage(db, "b1", `{"t": 1}`, after(day0, "24h")); err != nil {
		t.Fatal(err)
	}
	if _, err := reportUsage(db, "b1", `{"h": 0}`, "", after(day0, "25h")); err != nil {
		t.Fatal(err)
	}
	if o, err := reportUsage(db, "b1", `{"t": 1}`, "", after(day0, "49h")); err != nil || o.Outcome != "soft_breach" {
		t.Fatal(o, err)
	}
	h, err := budgetHistory(db, "b1", 100, after(day0, "73h"))
	requireHistory(t, h, err,
		historyRow{WindowSeq: 3, WindowStart: after(dayStart, "48h"), WindowEnd: after(dayStart, "72h"), Usage: q{"t": 1}, SoftBreachCount: 1, ClosedBy: "schedule"},
		historyRow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: *dayNext, Usage: q{}, BreachCount: 1, ClosedBy: "schedule"},
	)
}

func TestUsageBeforeTheWindowStartLandsInTheCurrentWindow(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "", after(day0, "24h")); err != nil {
		t.Fatal(err)
	}
	// An instant from the closed window counts in the current one: windows never move backwards.
	o, err := reportUsage(db, "b1", `{"t": 2}`, "", day0)
	requireOutcome(t, o, err, ok(*dayNext, ptr(dayNext.Add(24*time.Hour))))
	requireState(t, db, "b1", after(day0, "24h"), q{"t": 3}, q{}, 0, 0)
}

func TestManualResetKeepsTheSchedule(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "hard_limits", `{"t": 5}`, "reset_every", "1 day", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 5}`, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := reportUsage(db, "b1", `{"t": 1}`, "", day0); err != nil {
		t.Fatal(err)
	}
	resetAt := after(day0, "3h")
	r, err := resetBudget(db, "b1", resetAt)
	if err != nil || r.WindowSeq != 2 || !r.WindowStart.Equal(resetAt) || !r.NextResetAt.Equal(*dayNext) {
		t.Fatalf("reset_budget = %+v, %v; want seq 2 from %v until %v", r, err, resetAt, *dayNext)
	}
	st := requireState(t, db, "b1", resetAt, q{}, q{}, 1, 0)
	if st.WindowBreachCount != 0 || st.LastBreachAt != nil || !st.UpdatedAt.Equal(resetAt) {
		t.Errorf("after reset: %+v", st)
	}
	o, err := reportUsage(db, "b1", `{"t": 5}`, "", after(day0, "4h"))
	requireOutcome(t, o, err, ok(resetAt, dayNext))
	// The scheduled boundary still comes at midnight.
	o, err = reportUsage(db, "b1", `{"t": 1}`, "", after(day0, "12h"))
	requireOutcome(t, o, err, ok(*dayNext, ptr(dayNext.Add(24*time.Hour))))
	h, err := budgetHistory(db, "b1", 100, after(day0, "12h"))
	requireHistory(t, h, err,
		historyRow{WindowSeq: 2, WindowStart: resetAt, WindowEnd: *dayNext, Usage: q{"t": 5}, ClosedBy: "schedule"},
		historyRow{WindowSeq: 1, WindowStart: dayStart, WindowEnd: resetAt, Usage: q{"t": 5}, BreachCount: 1, ClosedBy: "manual"},
	)
}

func TestManualResetOfABudgetWithoutSchedule(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "at", day0)
	if _, err := reportUsage(db, "b1", `{"t": 5}`, "", day0); err != nil {
		t.Fatal(err)
	}
	r, err := resetBudget(db, "b1", after(day0, "1h"))
	if err != nil || r.WindowSeq != 2 || !r.WindowStart.Equal(after(day0, "1h")) || r.NextResetAt != nil {
		t.Fatalf("reset_budget = %+v, %v", r, err)
	}
	// An empty window is not recorded by a manual reset either.
	if _, err := resetBudget(db, "b1", after(day0, "2h")); err != nil {
		t.Fatal(err)
	}
	h, err := budgetHistory(db, "b1", 100, after(day0, "2h"))
	requireHistory(t, h, err, historyRow{WindowSeq: 1, WindowStart: day0, WindowEnd: after(day0, "1h"), Usage: q{"t": 5}, ClosedBy: "manual"})
}

func TestHistoryIsNewestFirstAndLimitedByMaxRows(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 hour", "at", day0)
	for i := 0; i < 5; i++ {
		if _, err := reportUsage(db, "b1", `{"t": 1}`, "", day0.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Window 5 is due at 5h but not rolled yet: history shows it as the schedule will close it.
	h, err := budgetHistory(db, "b1", 2, after(day0, "5h"))
	requireHistory(t, h, err,
		historyRow{WindowSeq: 5, WindowStart: after(day0, "4h"), WindowEnd: after(day0, "5h"), Usage: q{"t": 1}, ClosedBy: "schedule"},
		historyRow{WindowSeq: 4, WindowStart: after(day0, "3h"), WindowEnd: after(day0, "4h"), Usage: q{"t": 1}, ClosedBy: "schedule"},
	)
	h, err = budgetHistory(db, "b1", 100, after(day0, "4h30m"))
	if err != nil || len(h) != 4 || h[0].WindowSeq != 4 || h[3].WindowSeq != 1 {
		t.Errorf("history = %v, %v", h, err)
	}
}

package conformance

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("UsageSeriesCountsEachHourAndTheFirstCallAfterAnHourClosesIt", seriesHourly)
	register("UsageSeriesShowsAnEndedBucketClosedBeforeAnyCallClosesIt", seriesEndedNotClosed)
	register("UsageSeriesOfAChainCountsEveryBudgetThatHasOne", seriesChain)
	register("UsageSeriesOfABatchPastAnHourClosesTheBucketFirst", seriesBatch)
	register("UsageSeriesBucketKeepsCountingAcrossWindowRollsAndResets", seriesAcrossWindows)
	register("UsageSeriesBucketIsNetOfReleasesAndCountsSettlesNotReservations", seriesNet)
	register("UsageSeriesHoursAndDaysFollowTheBudgetsTimeZone", seriesZones)
	register("UsageSeriesKeepsSevenDaysOfHoursAndNinetyDaysOfDays", seriesRetention)
	register("UsageSeriesIsLimitedByMaxRows", seriesMaxRows)
	register("SetLimitsSwitchesTheSeriesWidthOrTurnsItOff", seriesSwitch)
	register("UsageSeriesArgumentsAreValidatedAndNothingIsWritten", seriesArguments)
	register("CreateBudgetWithAnotherUsageSeriesIsAConflict", seriesConflict)
	register("DeleteBudgetDeletesItsUsageSeries", seriesDelete)
}

// seriesReader is the backend's usage series reader; every backend has one.
func seriesReader(t *testing.T, b spendcap.Backend) spendcap.SeriesReader {
	t.Helper()
	r, ok := b.(spendcap.SeriesReader)
	if !ok {
		t.Fatalf("%T does not implement spendcap.SeriesReader", b)
	}
	return r
}

// SeriesString renders usage buckets: "[start, end) {dim:n ...}" each, newest first.
func SeriesString(bs []spendcap.UsageBucket) string {
	parts := make([]string, 0, len(bs))
	for _, x := range bs {
		keys := make([]string, 0, len(x.Usage))
		for k := range x.Usage {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		u := make([]string, 0, len(keys))
		for _, k := range keys {
			u = append(u, fmt.Sprintf("%s:%d", k, x.Usage[k]))
		}
		parts = append(parts, fmt.Sprintf("[%s, %s) {%s}", fmtTime(&x.Start), fmtTime(&x.End), strings.Join(u, " ")))
	}
	return strings.Join(parts, " ")
}

func series(t *testing.T, b spendcap.Backend, id string, maxRows int, at time.Time) []spendcap.UsageBucket {
	t.Helper()
	bs, err := seriesReader(t, b).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: id, MaxRows: maxRows, At: at})
	if err != nil {
		t.Fatalf("usage_series(%s): %v", id, err)
	}
	return bs
}

// requireSeries checks budget id's usage series at instant at against buckets written
// "start end {dim:n ...}" (RFC 3339 instants), newest first.
func requireSeries(t *testing.T, b spendcap.Backend, id string, at time.Time, want ...string) {
	t.Helper()
	requireSeriesRows(t, b, id, 0, at, want...)
}

func requireSeriesRows(t *testing.T, b spendcap.Backend, id string, maxRows int, at time.Time, want ...string) {
	t.Helper()
	wb := make([]spendcap.UsageBucket, len(want))
	for i, w := range want {
		var start, end, usage string
		if _, err := fmt.Sscanf(w, "%s %s %s", &start, &end, &usage); err != nil {
			t.Fatalf("bucket %q: %v", w, err)
		}
		u := q{}
		for _, kv := range strings.Fields(strings.Trim(w[strings.Index(w, "{"):], "{}")) {
			var k string
			var n int64
			if _, err := fmt.Sscanf(strings.Replace(kv, ":", " ", 1), "%s %d", &k, &n); err != nil {
				t.Fatalf("bucket %q: %v", w, err)
			}
			u[k] = n
		}
		wb[i] = spendcap.UsageBucket{Start: ts(t, start), End: ts(t, end), Usage: u}
	}
	if got := series(t, b, id, maxRows, at); SeriesString(got) != SeriesString(wb) {
		t.Fatalf("usage_series(%s) at %s\n got %s\nwant %s", id, at.Format(time.RFC3339), SeriesString(got), SeriesString(wb))
	}
}

func hourlyBudget(t *testing.T, b spendcap.Backend, id string, p spendcap.CreateBudgetParams) {
	t.Helper()
	p.BudgetID = id
	if p.UsageSeries == "" {
		p.UsageSeries = spendcap.UsageSeriesHour
	}
	if p.At.IsZero() {
		p.At = day0
	}
	mustCreate(t, b, p)
}

func seriesHourly(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "h", spendcap.CreateBudgetParams{ResetEvery: "1 day", HardLimits: q{"t": 1000}})
	if st := status(t, b, "h", day0); st.UsageSeries != spendcap.UsageSeriesHour {
		t.Fatalf("status usage_series %q", st.UsageSeries)
	}
	// A new series has its running bucket, empty.
	requireSeries(t, b, "h", day0, "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {}")
	for _, r := range []struct {
		at string
		n  int64
	}{{"10m", 5}, {"50m", 3}, {"80m", 4}, {"185m", 2}} {
		o, err := report(b, "h", q{"t": r.n, "u": 1}, "", after(day0, r.at))
		requireOutcome(t, o, err, ok(dayStart, dayNext))
	}
	// The report at 13:20 closed 12:00-13:00 (5 + 3) before it counted; the one at 15:05 closed
	// 13:00-14:00. No call fell in 14:00-15:00, which has no bucket.
	requireSeries(t, b, "h", after(day0, "210m"),
		"2026-03-10T15:00:00Z 2026-03-10T16:00:00Z {t:2 u:1}",
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:4 u:1}",
		"2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:8 u:2}")
	// The buckets add up to the window's usage.
	if st := status(t, b, "h", after(day0, "210m")); st.Usage["t"] != 14 || st.Usage["u"] != 4 {
		t.Fatalf("usage %v", st.Usage)
	}
	// A budget without a series has none.
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "plain", At: day0})
	must(report(b, "plain", q{"t": 1}, "", day0))
	if got := series(t, b, "plain", 0, day0); len(got) != 0 {
		t.Fatalf("a budget without a series: %s", SeriesString(got))
	}
	if st := status(t, b, "plain", day0); st.UsageSeries != "" {
		t.Fatalf("status usage_series %q", st.UsageSeries)
	}
	_, err := seriesReader(t, b).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: "nobody", At: day0})
	requireCode(t, err, "SC001", "budget_id: ")
}

func seriesEndedNotClosed(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "h", spendcap.CreateBudgetParams{})
	must(report(b, "h", q{"t": 7}, "", after(day0, "30m")))
	// Hours later, no call has closed 12:00-13:00: it reads as closed, and the running bucket is
	// the one holding the instant read, empty.
	want := []string{"2026-03-10T17:00:00Z 2026-03-10T18:00:00Z {}", "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:7}"}
	requireSeries(t, b, "h", after(day0, "5h10m"), want...)
	// A check does not close it; the next report does, with the same result.
	must(check(b, "h", q{"t": 1}, after(day0, "5h10m")))
	must(report(b, "h", q{"t": 1}, "", after(day0, "5h20m")))
	requireSeries(t, b, "h", after(day0, "5h30m"), "2026-03-10T17:00:00Z 2026-03-10T18:00:00Z {t:1}", want[1])
}

func seriesChain(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "org", spendcap.CreateBudgetParams{HardLimits: q{"t": 100}})
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "team", ParentID: "org", At: day0})
	hourlyBudget(t, b, "key", spendcap.CreateBudgetParams{ParentID: "team", UsageSeries: spendcap.UsageSeriesDay})
	must(report(b, "key", q{"t": 3}, "", after(day0, "10m")))
	must(report(b, "key", q{"t": 4}, "", after(day0, "70m")))
	must(report(b, "team", q{"t": 5}, "k1", after(day0, "80m")))
	requireSeries(t, b, "org", after(day0, "90m"),
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:9}",
		"2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:3}")
	requireSeries(t, b, "key", after(day0, "90m"), "2026-03-10T00:00:00Z 2026-03-11T00:00:00Z {t:7}")
	if got := series(t, b, "team", 0, after(day0, "90m")); len(got) != 0 {
		t.Fatalf("team has no series: %s", SeriesString(got))
	}
}

func seriesBatch(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "a", spendcap.CreateBudgetParams{})
	hourlyBudget(t, b, "c", spendcap.CreateBudgetParams{})
	must(report(b, "a", q{"t": 2}, "", after(day0, "10m")))
	must(report(b, "c", q{"t": 3}, "", after(day0, "20m")))
	items := []spendcap.BatchItem{{BudgetID: "a", Deltas: q{"t": 1}}, {BudgetID: "c", Deltas: q{"t": 10}}, {BudgetID: "a", Deltas: q{"t": 4}}}
	res, err := batcher(t, b).ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items, At: after(day0, "65m")})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Outcome.Kind != spendcap.OutcomeOK {
			t.Fatalf("item %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	requireSeries(t, b, "a", after(day0, "70m"),
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:5}", "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:2}")
	requireSeries(t, b, "c", after(day0, "70m"),
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:10}", "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:3}")
}

func seriesAcrossWindows(t *testing.T, b spendcap.Backend) {
	// Windows of 10 minutes inside hourly buckets; a daily series over hourly windows.
	hourlyBudget(t, b, "w", spendcap.CreateBudgetParams{ResetEvery: "10 minutes", HardLimits: q{"t": 10}})
	must(report(b, "w", q{"t": 6}, "", after(day0, "1m")))
	must(report(b, "w", q{"t": 7}, "", after(day0, "12m"))) // a new window: 7 fits
	must(report(b, "w", q{"t": 9}, "", after(day0, "45m"))) // rolled again, several periods at once
	must(reset(b, "w", after(day0, "46m")))                 // a manual reset inside the bucket
	must(report(b, "w", q{"t": 1}, "", after(day0, "47m"))) // counted after the reset
	must(report(b, "w", q{"t": 2}, "", after(day0, "61m"))) // closes 12:00-13:00 and rolls the window
	requireSeries(t, b, "w", after(day0, "62m"),
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:2}", "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:23}")
	hourlyBudget(t, b, "d", spendcap.CreateBudgetParams{ResetEvery: "1 hour", UsageSeries: spendcap.UsageSeriesDay})
	for i := range 5 {
		must(report(b, "d", q{"t": int64(i + 1)}, "", after(day0, fmt.Sprintf("%dh", 2*i))))
	}
	requireSeries(t, b, "d", after(day0, "14h"),
		"2026-03-11T00:00:00Z 2026-03-12T00:00:00Z {}", "2026-03-10T00:00:00Z 2026-03-11T00:00:00Z {t:15}")
	h := must(history(b, "d", 0, after(day0, "14h")))
	if len(h) != 5 {
		t.Fatalf("history: %s", HistoryString(h))
	}
}

func seriesNet(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "n", spendcap.CreateBudgetParams{ResetEvery: "1 day", HardLimits: q{"t": 100}})
	must(spend(b, "n", "e1", q{"t": 10}, "", after(day0, "10m")))
	must(reserve(b, "n", "r1", q{"t": 30}, 7200, "", after(day0, "20m")))
	must(release(b, "n", "e1", after(day0, "70m")))
	must(settle(b, "n", "r1", q{"t": 12}, after(day0, "80m")))
	must(reserve(b, "n", "r2", q{"t": 40}, 60, "", after(day0, "85m"))) // expires unsettled
	// Reservations are not usage; a release is a negative change in the bucket it happens in.
	requireSeries(t, b, "n", after(day0, "150m"),
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {}",
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:2}",
		"2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:10}")
	must(spend(b, "n", "e2", q{"t": 5}, "", after(day0, "160m")))
	must(release(b, "n", "e2", after(day0, "190m")))
	requireSeries(t, b, "n", after(day0, "190m"),
		"2026-03-10T15:00:00Z 2026-03-10T16:00:00Z {t:-5}",
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {t:5}",
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:2}",
		"2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:10}")
}

func seriesZones(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "kol-h", spendcap.CreateBudgetParams{ResetTimezone: "Asia/Kolkata"})
	hourlyBudget(t, b, "kol-d", spendcap.CreateBudgetParams{ResetTimezone: "Asia/Kolkata", UsageSeries: spendcap.UsageSeriesDay})
	hourlyBudget(t, b, "off-d", spendcap.CreateBudgetParams{ResetTimezone: "-03:00", UsageSeries: spendcap.UsageSeriesDay})
	for _, id := range []string{"kol-h", "kol-d", "off-d"} {
		must(report(b, id, q{"t": 1}, "", after(day0, "10m")))
		must(report(b, id, q{"t": 2}, "", after(day0, "40m")))
	}
	// Kolkata is UTC+05:30: its hours start at :30 UTC, its days at 18:30 UTC.
	requireSeries(t, b, "kol-h", after(day0, "40m"),
		"2026-03-10T12:30:00Z 2026-03-10T13:30:00Z {t:2}", "2026-03-10T11:30:00Z 2026-03-10T12:30:00Z {t:1}")
	requireSeries(t, b, "kol-d", after(day0, "40m"), "2026-03-09T18:30:00Z 2026-03-10T18:30:00Z {t:3}")
	requireSeries(t, b, "off-d", after(day0, "40m"), "2026-03-10T03:00:00Z 2026-03-11T03:00:00Z {t:3}")
	// New York's spring-forward day (2026-03-08) has 23 hours.
	ny0 := time.Date(2026, 3, 7, 20, 0, 0, 0, time.UTC)
	hourlyBudget(t, b, "ny-d", spendcap.CreateBudgetParams{ResetTimezone: "America/New_York", UsageSeries: spendcap.UsageSeriesDay, At: ny0})
	must(report(b, "ny-d", q{"t": 1}, "", ny0))
	must(report(b, "ny-d", q{"t": 2}, "", after(ny0, "24h")))
	requireSeries(t, b, "ny-d", after(ny0, "48h"),
		"2026-03-09T04:00:00Z 2026-03-10T04:00:00Z {}",
		"2026-03-08T05:00:00Z 2026-03-09T04:00:00Z {t:2}",
		"2026-03-07T05:00:00Z 2026-03-08T05:00:00Z {t:1}")
}

func seriesRetention(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "h", spendcap.CreateBudgetParams{})
	must(report(b, "h", q{"t": 1}, "", after(day0, "10m")))
	must(report(b, "h", q{"t": 2}, "", after(day0, "2h")))
	must(report(b, "h", q{"t": 3}, "", after(day0, "100h")))
	old := "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:1}"
	// 7 days after 12:00 the first bucket is still kept; once past them it is not.
	requireSeries(t, b, "h", after(day0, "168h"),
		"2026-03-17T12:00:00Z 2026-03-17T13:00:00Z {}",
		"2026-03-14T16:00:00Z 2026-03-14T17:00:00Z {t:3}",
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {t:2}", old)
	must(report(b, "h", q{"t": 4}, "", after(day0, "168h1m")))
	requireSeries(t, b, "h", after(day0, "169h"),
		"2026-03-17T13:00:00Z 2026-03-17T14:00:00Z {}",
		"2026-03-17T12:00:00Z 2026-03-17T13:00:00Z {t:4}",
		"2026-03-14T16:00:00Z 2026-03-14T17:00:00Z {t:3}",
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {t:2}")
	hourlyBudget(t, b, "d", spendcap.CreateBudgetParams{UsageSeries: spendcap.UsageSeriesDay})
	must(report(b, "d", q{"t": 1}, "", day0))
	must(report(b, "d", q{"t": 2}, "", after(day0, "48h")))
	requireSeries(t, b, "d", after(day0, "2148h"), // 2026-06-08T00:00Z: 2026-03-10 is 90 days before
		"2026-06-08T00:00:00Z 2026-06-09T00:00:00Z {}",
		"2026-03-12T00:00:00Z 2026-03-13T00:00:00Z {t:2}",
		"2026-03-10T00:00:00Z 2026-03-11T00:00:00Z {t:1}")
	requireSeries(t, b, "d", after(day0, "2161h"),
		"2026-06-08T00:00:00Z 2026-06-09T00:00:00Z {}",
		"2026-03-12T00:00:00Z 2026-03-13T00:00:00Z {t:2}")
}

func seriesMaxRows(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "h", spendcap.CreateBudgetParams{})
	for i := range 4 {
		must(report(b, "h", q{"t": int64(i + 1)}, "", after(day0, fmt.Sprintf("%dh", i))))
	}
	at := after(day0, "5h")
	requireSeriesRows(t, b, "h", 1, at, "2026-03-10T17:00:00Z 2026-03-10T18:00:00Z {}")
	requireSeriesRows(t, b, "h", 2, at,
		"2026-03-10T17:00:00Z 2026-03-10T18:00:00Z {}", "2026-03-10T15:00:00Z 2026-03-10T16:00:00Z {t:4}")
	requireSeriesRows(t, b, "h", 3, at,
		"2026-03-10T17:00:00Z 2026-03-10T18:00:00Z {}", "2026-03-10T15:00:00Z 2026-03-10T16:00:00Z {t:4}",
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {t:3}")
	for _, n := range []int{-1, 1001} {
		_, err := seriesReader(t, b).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: "h", MaxRows: n, At: at})
		requireCode(t, err, "SC002", "max_rows: ")
	}
}

func seriesSwitch(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "s", spendcap.CreateBudgetParams{ResetEvery: "1 month"})
	must(report(b, "s", q{"t": 1}, "", after(day0, "10m")))
	must(report(b, "s", q{"t": 2}, "", after(day0, "70m")))
	// The same width changes nothing.
	st, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "s", UsageSeries: "1 hours", At: after(day0, "80m")})
	if err != nil || st.UsageSeries != spendcap.UsageSeriesHour {
		t.Fatalf("set_limits: %s %v", st.UsageSeries, err)
	}
	requireSeries(t, b, "s", after(day0, "80m"),
		"2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:2}", "2026-03-10T12:00:00Z 2026-03-10T13:00:00Z {t:1}")
	// Another width starts a new series, counting from now, without the old buckets.
	st, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "s", UsageSeries: spendcap.UsageSeriesDay, At: after(day0, "90m")})
	if err != nil || st.UsageSeries != spendcap.UsageSeriesDay {
		t.Fatalf("set_limits: %s %v", st.UsageSeries, err)
	}
	must(report(b, "s", q{"t": 4}, "", after(day0, "100m")))
	requireSeries(t, b, "s", after(day0, "100m"), "2026-03-10T00:00:00Z 2026-03-11T00:00:00Z {t:4}")
	// Off: no series, and a new one starts empty.
	st, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "s", ClearUsageSeries: true, At: after(day0, "110m")})
	if err != nil || st.UsageSeries != "" {
		t.Fatalf("set_limits off: %q %v", st.UsageSeries, err)
	}
	must(report(b, "s", q{"t": 8}, "", after(day0, "115m")))
	if got := series(t, b, "s", 0, after(day0, "115m")); len(got) != 0 {
		t.Fatalf("off: %s", SeriesString(got))
	}
	must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "s", UsageSeries: spendcap.UsageSeriesHour, At: after(day0, "118m")}))
	must(report(b, "s", q{"t": 16}, "", after(day0, "119m")))
	must(report(b, "s", q{"t": 32}, "", after(day0, "121m")))
	requireSeries(t, b, "s", after(day0, "121m"),
		"2026-03-10T14:00:00Z 2026-03-10T15:00:00Z {t:32}", "2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {t:16}")
	if st := status(t, b, "s", after(day0, "121m")); st.Usage["t"] != 63 {
		t.Fatalf("usage %v", st.Usage)
	}
	// Set and cleared in one call is refused before anything is sent.
	_, err = b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "s", UsageSeries: spendcap.UsageSeriesDay, ClearUsageSeries: true})
	requireCode(t, err, "SC002", "usage_series: set and cleared")
}

func seriesArguments(t *testing.T, b spendcap.Backend) {
	for _, bad := range []string{"2 hours", "1 week", "1 minute", "hourly", "off", "01 hour"} {
		_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "x", UsageSeries: bad, At: day0})
		requireCode(t, err, "SC002", "usage_series: ")
		if _, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "x", At: day0}); err == nil {
			t.Fatalf("create_budget with usage_series %q created the budget", bad)
		}
	}
	hourlyBudget(t, b, "ok", spendcap.CreateBudgetParams{UsageSeries: " 1 DAYS "})
	if st := status(t, b, "ok", day0); st.UsageSeries != spendcap.UsageSeriesDay {
		t.Fatalf("usage_series %q", st.UsageSeries)
	}
	must(report(b, "ok", q{"t": 1}, "", day0))
	before := snapshot(t, b, "ok", day0) + SeriesString(series(t, b, "ok", 0, day0))
	for _, bad := range []string{"2 days", "none", ""} {
		if bad == "" {
			continue // empty leaves the series as it is
		}
		_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "ok", UsageSeries: bad, HardLimits: q{"t": 5}, At: day0})
		requireCode(t, err, "SC002", "usage_series: ")
	}
	if after := snapshot(t, b, "ok", day0) + SeriesString(series(t, b, "ok", 0, day0)); after != before {
		t.Fatalf("a refused set_limits wrote:\n%s\n%s", before, after)
	}
}

func seriesConflict(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "c", spendcap.CreateBudgetParams{})
	c, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "c", UsageSeries: "1 hour", At: day0})
	if err != nil || c.Created {
		t.Fatalf("the same definition: %+v %v", c, err)
	}
	for _, other := range []string{"", spendcap.UsageSeriesDay} {
		_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "c", UsageSeries: other, At: day0})
		requireCode(t, err, "SC005", "budget_id: ")
	}
}

func seriesDelete(t *testing.T, b spendcap.Backend) {
	hourlyBudget(t, b, "del", spendcap.CreateBudgetParams{})
	must(report(b, "del", q{"t": 1}, "", day0))
	must(report(b, "del", q{"t": 2}, "", after(day0, "1h")))
	must(b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "del", At: after(day0, "1h")}))
	hourlyBudget(t, b, "del", spendcap.CreateBudgetParams{At: after(day0, "1h")})
	requireSeries(t, b, "del", after(day0, "1h"), "2026-03-10T13:00:00Z 2026-03-10T14:00:00Z {}")
}

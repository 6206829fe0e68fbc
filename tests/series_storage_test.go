package tests

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// seriesRetentionSteps reports once every 20 hours for 11 steps on an hourly series: 220 hours,
// past the 168 that an hourly series keeps. It returns the instant of the last report, how many
// closed buckets started within the retention before it (what storage may hold), and how many
// buckets usage_series then reads (those and the running one).
func seriesRetentionSteps(t *testing.T, b spendcap.Backend, id string) (last time.Time, kept int, read int) {
	t.Helper()
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, UsageSeries: spendcap.UsageSeriesHour, At: day0}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		last = day0.Add(time.Duration(20*i) * time.Hour)
		if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1}, At: last}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 11 { // the closed buckets: every report's but the last
		if start := day0.Add(time.Duration(20*i) * time.Hour); !start.Before(last.Add(-168 * time.Hour)) {
			kept++
		}
	}
	got, err := b.(spendcap.SeriesReader).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: id, At: last})
	if err != nil {
		t.Fatal(err)
	}
	return last, kept, len(got)
}

func TestUsageSeriesStorageHoldsOnlyTheRetentionOnPostgres(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	_, kept, read := seriesRetentionSteps(t, gobinding.NewClient(db, gobinding.Options{}), "h")
	var stored int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.usage_series WHERE budget_id = 'h'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if kept != 8 || stored != kept || read != kept+1 {
		t.Fatalf("stored %d buckets, read %d; want %d within 168 hours, and the running one", stored, read, kept)
	}
}

func TestUsageSeriesStorageHoldsOnlyTheRetentionOnValkey(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	_, kept, read := seriesRetentionSteps(t, c, "h")
	stored, err := rdb.LLen(ctx, valkey.Key("h")+":us").Result()
	if err != nil {
		t.Fatal(err)
	}
	if kept != 8 || int(stored) != kept || read != kept+1 {
		t.Fatalf("stored %d buckets, read %d; want %d within 168 hours, and the running one", stored, read, kept)
	}
}

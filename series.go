package spendcap

import (
	"context"
	"time"
)

// The widths of a usage series (CreateBudgetParams.UsageSeries, SetLimitsParams.UsageSeries).
const (
	// UsageSeriesHour records usage per hour of the budget's time zone, kept for 7 days.
	UsageSeriesHour = "1 hour"
	// UsageSeriesDay records usage per day of the budget's time zone, kept for 90 days.
	UsageSeriesDay = "1 day"
)

// SeriesReader reads a budget's usage series: what it used per hour or per day
// (docs/semantics.md#usage-series). Both clients implement it.
type SeriesReader interface {
	// UsageSeries returns the running bucket (the one holding p.At, whatever it counted so far),
	// then the closed buckets that counted usage within the series' retention, newest first. A
	// budget without a series has none.
	UsageSeries(ctx context.Context, p UsageSeriesParams) ([]UsageBucket, error)
}

// UsageSeriesParams are the arguments of UsageSeries.
type UsageSeriesParams struct {
	BudgetID string
	// MaxRows (1..1000) defaults to 200: every bucket a series keeps.
	MaxRows int
	At      time.Time
}

// UsageBucket is one hour or one day of a budget's usage series.
type UsageBucket struct {
	Start time.Time
	End   time.Time
	// Usage is what the budget's usage changed by in the bucket, per dimension: charges less
	// releases, so a dimension may be negative. Dimensions that did not change are absent.
	Usage map[string]int64
}

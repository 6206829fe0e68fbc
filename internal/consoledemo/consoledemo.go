// Package consoledemo creates the budgets the console's browser tests read, and its screenshot in
// the README shows (make screenshot): a tree acme → acme/team → acme/team/key with usage, a
// reservation, closed daily windows and a daily usage series, a budget whose id is markup (with a
// threshold event), and one with closed hourly windows and an hourly usage series.
package consoledemo

import (
	"context"
	"time"

	"github.com/spendcap/spendcap"
)

// MarkupID is a budget id made of markup: the console must show it as text.
const MarkupID = `acme/<b>bold</b>&"q"'`

// Create creates the budgets on b, the hourly one's windows closed before now, and two quota
// policies with requests and leases: acme/rpm (2 of 60 a minute) and acme/streams (2 of 4 leases,
// held by worker-1 and worker-2).
func Create(ctx context.Context, b spendcap.Backend, now time.Time) error {
	start := now.UTC().Add(-4 * time.Hour).Truncate(time.Hour)
	day := now.UTC().Truncate(24 * time.Hour)
	steps := []func() error{
		create(ctx, b, spendcap.CreateBudgetParams{BudgetID: "acme", HardLimits: map[string]int64{"usd": 1_000_000}, ResetEvery: "1 month"}),
		create(ctx, b, spendcap.CreateBudgetParams{BudgetID: "acme/team", ParentID: "acme", HardLimits: map[string]int64{"usd": 600_000},
			SoftLimits: map[string]int64{"usd": 500_000}, AlertPercents: []int32{50, 90}, ResetEvery: "1 month", ResetTimezone: "Europe/Paris"}),
		// Daily windows: three closed ones (one over today's limit, which was raised since), then today's.
		create(ctx, b, spendcap.CreateBudgetParams{BudgetID: "acme/team/key", ParentID: "acme/team", ResetEvery: "1 day", At: day.Add(-3 * 24 * time.Hour),
			HardLimits: map[string]int64{"usd": 150_000, "tokens": 5_000_000}, UsageSeries: spendcap.UsageSeriesDay}),
		report(ctx, b, "acme/team/key", map[string]int64{"usd": 60_000, "tokens": 2_000_000}, day.Add(-3*24*time.Hour+time.Hour)),
		report(ctx, b, "acme/team/key", map[string]int64{"usd": 140_000, "tokens": 3_500_000}, day.Add(-2*24*time.Hour+time.Hour)),
		report(ctx, b, "acme/team/key", map[string]int64{"usd": 85_000, "tokens": 1_000_000}, day.Add(-24*time.Hour+time.Hour)),
		func() error {
			_, err := b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "acme/team/key", HardLimits: map[string]int64{"usd": 120_000, "tokens": 5_000_000},
				SoftLimits: map[string]int64{"tokens": 4_000_000}})
			return err
		},
		report(ctx, b, "acme/team/key", map[string]int64{"usd": 98_765, "tokens": 1_234_567}, time.Time{}),
		func() error {
			_, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "acme/team/key", ReservationID: "r1", Amounts: map[string]int64{"usd": 1_000}, TTL: time.Hour})
			return err
		},
		create(ctx, b, spendcap.CreateBudgetParams{BudgetID: MarkupID, ParentID: "acme", HardLimits: map[string]int64{"calls": 10}, AlertPercents: []int32{50}}),
		report(ctx, b, MarkupID, map[string]int64{"calls": 7}, time.Time{}),
		create(ctx, b, spendcap.CreateBudgetParams{BudgetID: "hourly", HardLimits: map[string]int64{"req": 100}, ResetEvery: "1 hour", At: start,
			UsageSeries: spendcap.UsageSeriesHour}),
	}
	for i, n := range []int64{40, 100, 70} {
		steps = append(steps, report(ctx, b, "hourly", map[string]int64{"req": n}, start.Add(time.Duration(i)*time.Hour+time.Minute)))
	}
	steps = append(steps, report(ctx, b, "hourly", map[string]int64{"req": 5}, time.Time{}))
	steps = append(steps, func() error {
		for _, p := range []spendcap.CreateQuotaPolicyParams{
			{PolicyID: "acme/rpm", Window: time.Minute, MaxRequests: 60, LeaseTTL: time.Hour},
			{PolicyID: "acme/streams", MaxConcurrent: 4, LeaseTTL: time.Hour},
		} {
			if _, err := b.CreateQuotaPolicy(ctx, p); err != nil {
				return err
			}
		}
		for _, a := range [][2]string{{"acme/rpm", "req-1"}, {"acme/rpm", "req-2"}, {"acme/streams", "worker-1"}, {"acme/streams", "worker-2"}} {
			if _, err := b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: a[0], HolderID: a[1]}); err != nil {
				return err
			}
		}
		return nil
	})
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func create(ctx context.Context, b spendcap.Budgets, p spendcap.CreateBudgetParams) func() error {
	return func() error { _, err := b.CreateBudget(ctx, p); return err }
}

func report(ctx context.Context, b spendcap.Budgets, id string, d map[string]int64, at time.Time) func() error {
	return func() error {
		_, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: d, At: at})
		return err
	}
}

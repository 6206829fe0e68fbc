package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendcap/spendcap/internal/pgfn"
)

// budgetGauges exports, at scrape time, the usage, hard limit and remaining of every dimension of
// the budgets that opted in by id and of the top N by share of a hard limit used, as
// budget_gauges reads them. Cardinality is bounded by (ids + N) × dimensions × 3 series.
type budgetGauges struct {
	q   *pgfn.Queries
	ids []string
	top int32
	log *slog.Logger

	usage, limit, remaining *prometheus.Desc
}

func newBudgetGauges(q *pgfn.Queries, ids []string, top int32, log *slog.Logger) *budgetGauges {
	labels := []string{"budget_id", "dimension"}
	return &budgetGauges{q: q, ids: ids, top: top, log: log,
		usage:     prometheus.NewDesc("spendcap_budget_usage", "Usage of a budget's dimension in its current window.", labels, nil),
		limit:     prometheus.NewDesc("spendcap_budget_hard_limit", "Hard limit of a budget's dimension.", labels, nil),
		remaining: prometheus.NewDesc("spendcap_budget_remaining", "What a budget's dimension may still admit: hard limit − usage − reserved.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *budgetGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.usage
	ch <- g.limit
	ch <- g.remaining
}

// Collect implements prometheus.Collector: one call of budget_gauges per scrape. A failed read
// exports no budget series (and is logged) rather than failing the scrape.
func (g *budgetGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := g.q.BudgetGauges(ctx, pgfn.BudgetGaugesParams{BudgetIds: g.ids, TopN: &g.top})
	if err != nil {
		g.log.Warn("budget_gauges failed: no budget gauges in this scrape", "err", err)
		return
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(g.usage, prometheus.GaugeValue, float64(r.Usage), r.BudgetID, r.Dimension)
		if r.LimitValue != nil {
			ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(*r.LimitValue), r.BudgetID, r.Dimension)
		}
		if r.Remaining != nil {
			ch <- prometheus.MustNewConstMetric(g.remaining, prometheus.GaugeValue, float64(*r.Remaining), r.BudgetID, r.Dimension)
		}
	}
}

package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendcap/spendcap"
)

// budgetGauges exports, at scrape time, the usage, hard limit and remaining of every dimension of
// the budgets that opted in by id and of the top N by share of a hard limit used, on each
// backend (label backend: postgres or valkey). Cardinality is bounded by (ids + N) × dimensions
// × 3 series per backend.
//
// PostgreSQL ranks at every scrape (budget_gauges' top_n scans the budgets table). Valkey's
// ranking is a SCAN of the keyspace and a budget_status per budget, so it is made again at most
// every rankEvery, in the background after the first, and each scrape reads the budgets of the
// last ranking (and the named ones) as they are then.
type budgetGauges struct {
	pg        spendcap.Operator
	vk        spendcap.Operator // nil: PostgreSQL only
	ids       []string
	top       int
	rankEvery time.Duration
	log       *slog.Logger

	mu       sync.Mutex
	ranked   []string // the ids of Valkey's last ranking
	rankedAt time.Time
	ranking  bool // a ranking runs in the background

	usage, limit, remaining *prometheus.Desc
}

func newBudgetGauges(pg, vk spendcap.Operator, ids []string, top int, rankEvery time.Duration, log *slog.Logger) *budgetGauges {
	labels := []string{"backend", "budget_id", "dimension"}
	return &budgetGauges{pg: pg, vk: vk, ids: ids, top: top, rankEvery: rankEvery, log: log,
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

// Collect implements prometheus.Collector. A backend whose read fails exports no budget series
// in this scrape (and is logged) rather than failing the scrape.
func (g *budgetGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := g.pg.BudgetGauges(ctx, spendcap.BudgetGaugesParams{BudgetIDs: g.ids, TopN: g.top})
	if err != nil {
		g.log.Warn("budget_gauges failed: no PostgreSQL budget gauges in this scrape", "err", err)
	}
	g.export(ch, "postgres", rows)
	if g.vk == nil {
		return
	}
	// The named ids (up to 1000) and the ranked ones (up to 100) may pass what one call reads.
	ids := g.valkeyIDs()
	for len(ids) > 0 {
		part := ids[:min(len(ids), 1000)]
		ids = ids[len(part):]
		rows, err = g.vk.BudgetGauges(ctx, spendcap.BudgetGaugesParams{BudgetIDs: part})
		if err != nil {
			g.log.Warn("budget_status failed: no Valkey budget gauges in this scrape", "err", err)
			return
		}
		g.export(ch, "valkey", rows)
	}
}

func (g *budgetGauges) export(ch chan<- prometheus.Metric, backend string, rows []spendcap.BudgetGauge) {
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(g.usage, prometheus.GaugeValue, float64(r.Usage), backend, r.BudgetID, r.Dimension)
		if r.HardLimit != nil {
			ch <- prometheus.MustNewConstMetric(g.limit, prometheus.GaugeValue, float64(*r.HardLimit), backend, r.BudgetID, r.Dimension)
		}
		if r.Remaining != nil {
			ch <- prometheus.MustNewConstMetric(g.remaining, prometheus.GaugeValue, float64(*r.Remaining), backend, r.BudgetID, r.Dimension)
		}
	}
}

// valkeyIDs returns the named ids and those of Valkey's last ranking, ranking first when there
// is none yet and starting a new ranking in the background when the last is rankEvery old.
func (g *budgetGauges) valkeyIDs() []string {
	if g.top == 0 {
		return g.ids
	}
	g.mu.Lock()
	first := g.rankedAt.IsZero()
	stale := !g.ranking && time.Since(g.rankedAt) >= g.rankEvery
	if stale {
		g.ranking = true
	}
	g.mu.Unlock()
	switch {
	case first && stale:
		g.rank()
	case stale:
		go g.rank()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]bool{}
	var ids []string
	for _, list := range [][]string{g.ids, g.ranked} {
		for _, id := range list {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// rank ranks the Valkey budgets and keeps the ids of the top ones; a failed ranking keeps the
// last and is tried again after rankEvery.
func (g *budgetGauges) rank() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := g.vk.BudgetGauges(ctx, spendcap.BudgetGaugesParams{TopN: g.top})
	if err != nil {
		g.log.Warn("ranking the Valkey budgets for their gauges failed; keeping the last ranking", "err", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ranking, g.rankedAt = false, time.Now()
	if err != nil {
		return
	}
	g.ranked = g.ranked[:0]
	for _, r := range rows {
		if n := len(g.ranked); n == 0 || g.ranked[n-1] != r.BudgetID {
			g.ranked = append(g.ranked, r.BudgetID)
		}
	}
}

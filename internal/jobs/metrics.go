package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/pgfn"
)

type metrics struct {
	rolled   prometheus.Counter
	purged   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	// dispatched counts events handed to the delivery queue, by source; deliveries counts
	// delivery attempts, by result.
	dispatched *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	// findings are the open (unrepaired) findings of the last audit, by check; repaired counts
	// the findings audits repaired; audited is when the last audit ended.
	findings *prometheus.GaugeVec
	repaired *prometheus.CounterVec
	audited  prometheus.Gauge
	// listening is 1 while the dispatcher is subscribed to the announcements of new Valkey event
	// streams.
	listening prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, pool *pgxpool.Pool) *metrics {
	m := &metrics{
		rolled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spendcap_windows_rolled_total", Help: "Budget windows rolled by the roll_due_windows job."}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spendcap_purged_rows_total", Help: "Rows deleted by the purge_expired job, by kind."}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "spendcap_job_duration_seconds", Help: "Duration of successful spendcap jobs.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"job"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spendcap_job_failures_total", Help: "Failed spendcap job attempts (River retries them)."}, []string{"job"}),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spendcap_events_dispatched_total", Help: "Events handed to the webhook delivery queue, by source (postgres or valkey)."}, []string{"source"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spendcap_webhook_deliveries_total", Help: "Webhook delivery attempts, by result (delivered, failed, cancelled)."}, []string{"result"}),
		findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spendcap_audit_findings", Help: "Findings of the last audit that were not repaired, by backend and check (no series: clean)."}, []string{"backend", "check"}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spendcap_audit_repaired_total", Help: "Audit findings repaired, by backend and check."}, []string{"backend", "check"}),
		audited: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spendcap_audit_last_success_timestamp_seconds", Help: "When the last audit ended (Unix seconds)."}),
		listening: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spendcap_valkey_streams_listening", Help: "1 while the dispatcher hears of new Valkey event streams as they are created (else the scan finds them)."}),
	}
	q := pgfn.New(pool, gobinding.DefaultExecMode)
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spendcap_due_windows", Help: "Budgets whose window is due but not rolled yet (read at scrape time)."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := q.DueWindows(ctx, pgfn.DueWindowsParams{})
			if err != nil {
				return -1
			}
			return float64(r.Due)
		})
	reg.MustRegister(m.rolled, m.purged, m.duration, m.failures, m.dispatched, m.deliveries, m.findings, m.repaired, m.audited, m.listening, backlog)
	for _, job := range []string{"roll_due_windows", "purge_expired", "dispatch", "audit", "valkey_settings"} {
		m.failures.WithLabelValues(job)
	}
	for _, kind := range []string{"dedup_keys", "ledger_rows", "reservations", "leases", "events", "valkey_events"} {
		m.purged.WithLabelValues(kind)
	}
	for _, s := range []string{"postgres", "valkey"} {
		m.dispatched.WithLabelValues(s)
	}
	for _, r := range []string{"delivered", "failed", "cancelled"} {
		m.deliveries.WithLabelValues(r)
	}
	return m
}

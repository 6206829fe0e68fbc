package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/valkey"
)

// AuditArgs is the audit job.
type AuditArgs struct {
	BatchSize int32 `json:"batch_size"`
	Repair    bool  `json:"repair"`
}

// Kind implements river.JobArgs.
func (AuditArgs) Kind() string { return "spendcap_audit" }

type auditWorker struct {
	river.WorkerDefaults[AuditArgs]
	pg  *gobinding.Client
	vk  *valkey.Client // nil: PostgreSQL only
	m   *metrics
	log *slog.Logger
}

// Work audits the database and replaces the findings gauges with what it found.
func (w *auditWorker) Work(ctx context.Context, job *river.Job[AuditArgs]) error {
	start := time.Now()
	rs, err := w.pg.Audit(ctx, spendcap.AuditParams{Repair: job.Args.Repair, BatchSize: int(job.Args.BatchSize)})
	if err != nil {
		w.m.failures.WithLabelValues("audit").Inc()
		w.log.Error("audit failed; River retries it", "err", err, "attempt", job.Attempt)
		return err
	}
	var vs []spendcap.AuditFinding
	if w.vk != nil {
		if vs, err = w.vk.Audit(ctx, spendcap.AuditParams{Repair: job.Args.Repair}); err != nil {
			w.m.failures.WithLabelValues("audit").Inc()
			w.log.Error("Valkey audit failed; River retries it", "err", err, "attempt", job.Attempt)
			return err
		}
	}
	open := map[[2]string]float64{}
	count := func(backend string, c spendcap.AuditCheck, repaired bool) {
		check := string(c)
		if repaired {
			w.m.repaired.WithLabelValues(backend, check).Inc()
		} else {
			open[[2]string{backend, check}]++
		}
	}
	for _, f := range rs {
		count("postgres", f.Check, f.Repaired)
	}
	for _, f := range vs {
		count("valkey", f.Check, f.Repaired)
	}
	w.m.findings.Reset()
	for k, n := range open {
		w.m.findings.WithLabelValues(k[0], k[1]).Set(n)
	}
	w.m.audited.SetToCurrentTime()
	w.m.duration.WithLabelValues("audit").Observe(time.Since(start).Seconds())
	for backend, fs := range map[string][]spendcap.AuditFinding{"postgres": rs, "valkey": vs} {
		for _, f := range fs {
			w.log.Warn("audit finding", "backend", backend, "budget_id", f.BudgetID, "policy_id", f.PolicyID, "check", f.Check,
				"dimension", f.Dimension, "expected", string(f.Expected), "found", string(f.Found), "repaired", f.Repaired)
		}
	}
	w.log.Info("audited", "findings", len(rs)+len(vs), "repair", job.Args.Repair, "duration", time.Since(start))
	// Kept on the job's row for whoever reads the worker's jobs (the console's overview).
	out := AuditOutput{Findings: map[string]map[string]int{}, Repaired: map[string]map[string]int{}}
	for backend, fs := range map[string][]spendcap.AuditFinding{"postgres": rs, "valkey": vs} {
		for _, f := range fs {
			m := out.Findings
			if f.Repaired {
				m = out.Repaired
			}
			if m[backend] == nil {
				m[backend] = map[string]int{}
			}
			m[backend][string(f.Check)]++
		}
	}
	if err := river.RecordOutput(ctx, out); err != nil {
		w.log.Warn("audit: recording its output", "err", err)
	}
	return nil
}

// AuditOutput is what an audit job records as its output: the findings left open and those
// repaired, counted by backend and check.
type AuditOutput struct {
	Findings map[string]map[string]int `json:"findings"`
	Repaired map[string]map[string]int `json:"repaired"`
}

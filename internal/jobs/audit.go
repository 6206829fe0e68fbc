package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/valkey"
)

// maxAuditRounds bounds the repairing calls of one Audit: each repairs up to a batch of findings,
// so this is how many batches of corruption one run mends before it reports the rest.
const maxAuditRounds = 100

// Audit runs spendcap.audit over the whole database. Report only, it is one call that returns at
// most batch findings. With repair, it calls again while a call comes back full (each call is its
// own transaction and fixes what it returns), up to maxAuditRounds calls, and returns every
// finding it repaired followed by the last call's.
func Audit(ctx context.Context, q *pgfn.Queries, batch int32, repair bool) ([]pgfn.AuditRow, error) {
	var all []pgfn.AuditRow
	for round := 0; ; round++ {
		rs, err := q.Audit(ctx, pgfn.AuditParams{MaxRows: &batch, Repair: &repair})
		if err != nil {
			return all, fmt.Errorf("audit: %w", err)
		}
		all = append(all, rs...)
		if !repair || len(rs) < int(batch) || round+1 == maxAuditRounds {
			return all, nil
		}
	}
}

// AuditArgs is the audit job.
type AuditArgs struct {
	BatchSize int32 `json:"batch_size"`
	Repair    bool  `json:"repair"`
}

// Kind implements river.JobArgs.
func (AuditArgs) Kind() string { return "spendcap_audit" }

type auditWorker struct {
	river.WorkerDefaults[AuditArgs]
	q   *pgfn.Queries
	vk  *valkey.Client // nil: PostgreSQL only
	m   *metrics
	log *slog.Logger
}

// Work audits the database and replaces the findings gauges with what it found.
func (w *auditWorker) Work(ctx context.Context, job *river.Job[AuditArgs]) error {
	start := time.Now()
	rs, err := Audit(ctx, w.q, job.Args.BatchSize, job.Args.Repair)
	if err != nil {
		w.m.failures.WithLabelValues("audit").Inc()
		w.log.Error("audit failed; River retries it", "err", err, "attempt", job.Attempt)
		return err
	}
	var vs []spendcap.AuditFinding
	if w.vk != nil {
		if vs, err = w.vk.Audit(ctx, job.Args.Repair); err != nil {
			w.m.failures.WithLabelValues("audit").Inc()
			w.log.Error("Valkey audit failed; River retries it", "err", err, "attempt", job.Attempt)
			return err
		}
	}
	open := map[[2]string]float64{}
	count := func(backend, check string, repaired bool) {
		if repaired {
			w.m.repaired.WithLabelValues(backend, check).Inc()
		} else {
			open[[2]string{backend, check}]++
		}
	}
	for _, r := range rs {
		count("postgres", r.CheckName, r.Repaired)
	}
	for _, f := range vs {
		count("valkey", f.Check, f.Repaired)
		w.log.Warn("audit finding", "backend", "valkey", "budget_id", f.BudgetID, "policy_id", f.PolicyID, "check", f.Check,
			"dimension", f.Dimension, "expected", string(f.Expected), "found", string(f.Found), "repaired", f.Repaired)
	}
	w.m.findings.Reset()
	for k, n := range open {
		w.m.findings.WithLabelValues(k[0], k[1]).Set(n)
	}
	w.m.audited.SetToCurrentTime()
	w.m.duration.WithLabelValues("audit").Observe(time.Since(start).Seconds())
	for _, r := range rs {
		w.log.Warn("audit finding", "backend", "postgres", "budget_id", deref(r.BudgetID), "policy_id", deref(r.PolicyID), "check", r.CheckName,
			"dimension", deref(r.Dimension), "expected", deref(r.Expected), "found", deref(r.Found), "repaired", r.Repaired)
	}
	w.log.Info("audited", "findings", len(rs)+len(vs), "repair", job.Args.Repair, "duration", time.Since(start))
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

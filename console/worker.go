package console

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/jobs"
)

// Worker is what the console shows of the jobs worker: when it last rolled windows, purged and
// audited, what the last audit found, and the webhook deliveries by state. RiverWorker reads it
// from River's jobs.
type Worker interface {
	WorkerStatus(ctx context.Context) (WorkerStatus, error)
}

// WebhookLister lists the webhooks registered (never their secrets): the gobinding client.
type WebhookLister interface {
	Webhooks(ctx context.Context) ([]gobinding.Webhook, error)
}

// WorkerStatus is the state of the jobs worker as its jobs record it.
type WorkerStatus struct {
	Roll, Purge, Audit JobRun
	// AuditFindings and AuditRepaired count the last audit's findings left open and repaired,
	// by backend then check.
	AuditFindings, AuditRepaired map[string]map[string]int
	// Deliveries are the webhook deliveries by endpoint, and Total all of them.
	Deliveries map[string]Deliveries
	Total      Deliveries
}

// JobRun is the last run of one periodic job.
type JobRun struct {
	// At is when it last completed (nil: not in the jobs River keeps).
	At *time.Time
	// Error is its latest failed attempt after At ("" for none), at ErrorAt.
	Error   string
	ErrorAt *time.Time
}

// Deliveries counts the webhook deliveries of an endpoint by state.
type Deliveries struct {
	// Pending are waiting for their first attempt or running, Retrying failed an attempt and
	// wait for the next, Failed gave up (kept as long as River keeps discarded jobs).
	Pending, Retrying, Failed int
	// AtLeast: a state held more deliveries than were counted (deliveryCap).
	AtLeast bool
	// LastError is the error of the latest failed attempt, at LastErrorAt.
	LastError   string
	LastErrorAt *time.Time
}

// deliveryCap bounds the deliveries of one state that the console counts.
const deliveryCap = 1000

type riverWorker struct {
	client *river.Client[pgx.Tx]
}

// RiverWorker reads the jobs worker's state from River's tables in pool's database (where `migrate
// up` put River's schema and the worker runs): the console's overview and webhooks screen show
// it. Its role needs to read River's tables.
func RiverWorker(pool *pgxpool.Pool) (Worker, error) {
	// A client without queues or workers only reads and inserts.
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, err
	}
	return &riverWorker{client: c}, nil
}

func (w *riverWorker) WorkerStatus(ctx context.Context) (WorkerStatus, error) {
	var st WorkerStatus
	var audit *rivertype.JobRow
	for _, j := range []struct {
		kind string
		run  *JobRun
		last **rivertype.JobRow
	}{
		{jobs.RollArgs{}.Kind(), &st.Roll, nil},
		{jobs.PurgeArgs{}.Kind(), &st.Purge, nil},
		{jobs.AuditArgs{}.Kind(), &st.Audit, &audit},
	} {
		done, err := w.client.JobList(ctx, river.NewJobListParams().Kinds(j.kind).States(rivertype.JobStateCompleted).
			OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).First(1))
		if err != nil {
			return st, err
		}
		if len(done.Jobs) == 1 {
			j.run.At = done.Jobs[0].FinalizedAt
			if j.last != nil {
				*j.last = done.Jobs[0]
			}
		}
		failed, err := w.client.JobList(ctx, river.NewJobListParams().Kinds(j.kind).
			States(rivertype.JobStateRetryable, rivertype.JobStateDiscarded, rivertype.JobStateRunning, rivertype.JobStateAvailable).
			OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(1))
		if err != nil {
			return st, err
		}
		if len(failed.Jobs) == 1 && len(failed.Jobs[0].Errors) > 0 {
			e := failed.Jobs[0].Errors[len(failed.Jobs[0].Errors)-1]
			if j.run.At == nil || e.At.After(*j.run.At) {
				j.run.Error, j.run.ErrorAt = e.Error, &e.At
			}
		}
	}
	if audit != nil {
		var out jobs.AuditOutput
		if raw := audit.Output(); len(raw) > 0 {
			if err := json.Unmarshal(raw, &out); err != nil {
				return st, errors.New("console: the last audit's output: " + err.Error())
			}
		}
		st.AuditFindings, st.AuditRepaired = out.Findings, out.Repaired
	}
	st.Deliveries = map[string]Deliveries{}
	for _, s := range []struct {
		states []rivertype.JobState
		count  func(*Deliveries) *int
	}{
		{[]rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStatePending, rivertype.JobStateRunning},
			func(d *Deliveries) *int { return &d.Pending }},
		{[]rivertype.JobState{rivertype.JobStateRetryable}, func(d *Deliveries) *int { return &d.Retrying }},
		{[]rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}, func(d *Deliveries) *int { return &d.Failed }},
	} {
		res, err := w.client.JobList(ctx, river.NewJobListParams().Kinds(jobs.DeliverArgs{}.Kind()).States(s.states...).
			OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(deliveryCap))
		if err != nil {
			return st, err
		}
		if len(res.Jobs) == deliveryCap {
			st.Total.AtLeast = true
		}
		for _, job := range res.Jobs {
			var args jobs.DeliverArgs
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				continue
			}
			d := st.Deliveries[args.URL]
			*s.count(&d)++
			*s.count(&st.Total)++
			if n := len(job.Errors); n > 0 && (d.LastErrorAt == nil || job.Errors[n-1].At.After(*d.LastErrorAt)) {
				e := job.Errors[n-1]
				d.LastError, d.LastErrorAt = e.Error, &e.At
			}
			st.Deliveries[args.URL] = d
		}
	}
	return st, nil
}

// workerStatus is the worker's state, or nil when the console cannot read it (no Options.Worker).
func (h *Handler) workerStatus(ctx context.Context) (*WorkerStatus, error) {
	if h.opts.Worker == nil {
		return nil, nil
	}
	st, err := h.opts.Worker.WorkerStatus(ctx)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// Package jobs is spendcap's River worker: periodic jobs that materialise due windows
// (roll_due_windows) and delete what can no longer matter (purge_expired), in batches until
// nothing is left, with Prometheus metrics. Neither job is needed for correctness — every call
// rolls lazily and ignores expired rows — they keep history, idle budgets and table sizes tidy.
// It also delivers events to webhooks: a dispatcher hands each event of PostgreSQL (and of
// Valkey, when configured) to a River delivery job exactly once, and the delivery jobs post it
// until a 2xx.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/eventstreams"
	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/internal/valkeynodes"
	"github.com/spendcap/spendcap/valkey"
)

// Defaults of Config.
const (
	DefaultRollInterval  = time.Minute
	DefaultPurgeInterval = 5 * time.Minute
	DefaultRollBatch     = 1000
	DefaultPurgeBatch    = 10000
	// DefaultDispatchInterval is how often the dispatcher looks for events when no notification
	// wakes it, and how often it looks at the Valkey streams.
	DefaultDispatchInterval = time.Second
	// DefaultValkeyScanInterval is how often the dispatcher scans Valkey for new event streams.
	DefaultValkeyScanInterval = 30 * time.Second
	// DefaultValkeySettingsInterval is how often the Valkey settings are read again.
	DefaultValkeySettingsInterval = time.Minute
	DefaultDeliveryWorkers        = 10
	DefaultDeliveryTimeout        = 10 * time.Second
	// DefaultRescueAfter is how long a job may run before River takes it for the job of a worker
	// that died (kill -9, a lost machine) and runs it again.
	DefaultRescueAfter = 15 * time.Minute
	// DefaultAuditInterval is how often the audit runs; DefaultAuditBatch bounds the findings of
	// one audit call.
	DefaultAuditInterval = time.Hour
	DefaultAuditBatch    = 10000
)

// RollArgs is the roll_due_windows job.
type RollArgs struct {
	BatchSize int32 `json:"batch_size"`
}

// Kind implements river.JobArgs.
func (RollArgs) Kind() string { return "spendcap_roll_due_windows" }

// PurgeArgs is the purge_expired job.
type PurgeArgs struct {
	BatchSize int32 `json:"batch_size"`
}

// Kind implements river.JobArgs.
func (PurgeArgs) Kind() string { return "spendcap_purge_expired" }

// Config configures a worker.
type Config struct {
	// RollInterval is how often roll_due_windows runs. Defaults to DefaultRollInterval.
	RollInterval time.Duration
	// PurgeInterval is how often purge_expired runs. Defaults to DefaultPurgeInterval.
	PurgeInterval time.Duration
	// RollBatch and PurgeBatch bound the rows one call handles. Default to DefaultRollBatch and
	// DefaultPurgeBatch.
	RollBatch  int32
	PurgeBatch int32
	// Valkey, when set, is the deployment whose event streams are delivered too.
	Valkey *valkey.Client
	// DispatchInterval defaults to DefaultDispatchInterval; ValkeyScanInterval to
	// DefaultValkeyScanInterval.
	DispatchInterval   time.Duration
	ValkeyScanInterval time.Duration
	// ValkeySettingsInterval (default DefaultValkeySettingsInterval) is how often the settings
	// valkey.NewClient checks at start are read again, exported and, when wrong, logged.
	ValkeySettingsInterval time.Duration
	// DeliveryWorkers is how many deliveries run at once; DeliveryTimeout bounds one attempt.
	DeliveryWorkers int
	DeliveryTimeout time.Duration
	// HTTPClient posts the deliveries; nil means a client of its own.
	HTTPClient *http.Client
	// RescueAfter defaults to DefaultRescueAfter. Jobs are given two thirds of it to finish.
	RescueAfter time.Duration
	// GaugeBudgets (at most 1000 ids) and GaugeTop (at most 100) choose the budgets whose usage,
	// hard limit and remaining are exported per dimension: those ids, and the GaugeTop budgets
	// that have used the largest share of a hard limit, on PostgreSQL and on Valkey (when set;
	// its ranking is made again every ValkeyScanInterval). Neither: no budget gauges.
	GaugeBudgets []string
	GaugeTop     int
	// AuditInterval (default DefaultAuditInterval; negative: never) is how often the audit runs,
	// AuditBatch (default DefaultAuditBatch) bounds the findings of one call, and AuditRepair
	// makes it repair what it finds instead of only reporting it.
	AuditInterval time.Duration
	AuditBatch    int32
	AuditRepair   bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Defaults to a new registry (see Worker.Registry).
	Registry *prometheus.Registry
}

// Worker runs the jobs on a River client.
type Worker struct {
	client     *river.Client[pgx.Tx]
	dispatcher *dispatcher
	settings   *settingsWatcher // nil without Valkey
	stop       context.CancelFunc
	stopped    chan struct{}
	started    atomic.Bool
	pool       *pgxpool.Pool
	metrics    *metrics
	log        *slog.Logger
	// Registry holds the worker's metrics.
	Registry *prometheus.Registry
}

// New builds a worker on pool; Start runs it.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	if cfg.RollInterval <= 0 {
		cfg.RollInterval = DefaultRollInterval
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
	}
	if cfg.RollInterval < time.Second || cfg.PurgeInterval < time.Second {
		return nil, errors.New("jobs: intervals must be at least 1s")
	}
	if cfg.RollBatch <= 0 {
		cfg.RollBatch = DefaultRollBatch
	}
	if cfg.PurgeBatch <= 0 {
		cfg.PurgeBatch = DefaultPurgeBatch
	}
	cfg.DispatchInterval = cmp.Or(cfg.DispatchInterval, DefaultDispatchInterval)
	cfg.ValkeyScanInterval = cmp.Or(cfg.ValkeyScanInterval, DefaultValkeyScanInterval)
	cfg.ValkeySettingsInterval = cmp.Or(cfg.ValkeySettingsInterval, DefaultValkeySettingsInterval)
	cfg.DeliveryWorkers = cmp.Or(cfg.DeliveryWorkers, DefaultDeliveryWorkers)
	cfg.DeliveryTimeout = cmp.Or(cfg.DeliveryTimeout, DefaultDeliveryTimeout)
	cfg.RescueAfter = cmp.Or(cfg.RescueAfter, DefaultRescueAfter)
	cfg.AuditInterval = cmp.Or(cfg.AuditInterval, DefaultAuditInterval)
	cfg.AuditBatch = cmp.Or(cfg.AuditBatch, DefaultAuditBatch)
	if cfg.AuditInterval > 0 && cfg.AuditInterval < time.Second || cfg.AuditBatch < 1 || cfg.AuditBatch > 1000000 {
		return nil, errors.New("jobs: the audit interval must be at least 1s (or negative: never) and its batch 1..1000000")
	}
	if cfg.DispatchInterval < 10*time.Millisecond || cfg.DeliveryWorkers < 1 || cfg.DeliveryTimeout < time.Second {
		return nil, errors.New("jobs: the dispatch interval must be at least 10ms, delivery workers at least 1, the delivery timeout at least 1s")
	}
	jobTimeout := cfg.RescueAfter * 2 / 3
	if jobTimeout < cfg.DeliveryTimeout+5*time.Second {
		return nil, fmt.Errorf("jobs: the rescue delay must be at least 1.5 × (delivery timeout + 5s) = %s", (cfg.DeliveryTimeout+5*time.Second)*3/2)
	}
	if len(cfg.GaugeBudgets) > 1000 || cfg.GaugeTop < 0 || cfg.GaugeTop > 100 {
		return nil, errors.New("jobs: at most 1000 gauge budgets and a gauge top of 0..100")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	w := &Worker{pool: pool, log: cfg.Logger, Registry: cfg.Registry}
	w.metrics = newMetrics(cfg.Registry, pool)

	q := pgfn.New(pool, gobinding.DefaultExecMode)
	if len(cfg.GaugeBudgets) > 0 || cfg.GaugeTop > 0 {
		var vk spendcap.Operator
		if cfg.Valkey != nil {
			vk = cfg.Valkey
		}
		g := newBudgetGauges(gobinding.NewClient(pool, gobinding.Options{}), vk, cfg.GaugeBudgets, cfg.GaugeTop, cfg.ValkeyScanInterval, cfg.Logger)
		if err := cfg.Registry.Register(g); err != nil {
			return nil, err
		}
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &rollWorker{q: q, m: w.metrics, log: cfg.Logger}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &purgeWorker{q: q, vk: cfg.Valkey, m: w.metrics, log: cfg.Logger}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &auditWorker{pg: gobinding.NewClient(pool, gobinding.Options{}), vk: cfg.Valkey, m: w.metrics, log: cfg.Logger}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &deliverWorker{q: q, http: cfg.HTTPClient, timeout: cfg.DeliveryTimeout,
		m: w.metrics, log: cfg.Logger}); err != nil {
		return nil, err
	}
	// Unique per period: however many workers run, and whichever is leader, one job per interval.
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(cfg.RollInterval), func() (river.JobArgs, *river.InsertOpts) {
			return RollArgs{BatchSize: cfg.RollBatch}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: cfg.RollInterval}}
		}, &river.PeriodicJobOpts{ID: "spendcap_roll_due_windows", RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(cfg.PurgeInterval), func() (river.JobArgs, *river.InsertOpts) {
			return PurgeArgs{BatchSize: cfg.PurgeBatch}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: cfg.PurgeInterval}}
		}, &river.PeriodicJobOpts{ID: "spendcap_purge_expired", RunOnStart: true}),
	}
	if cfg.AuditInterval > 0 {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(cfg.AuditInterval), func() (river.JobArgs, *river.InsertOpts) {
			return AuditArgs{BatchSize: cfg.AuditBatch, Repair: cfg.AuditRepair},
				&river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: cfg.AuditInterval}}
		}, &river.PeriodicJobOpts{ID: "spendcap_audit", RunOnStart: true}))
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2},
			DeliveryQueue: {MaxWorkers: cfg.DeliveryWorkers}},
		Workers:      workers,
		PeriodicJobs: periodic,
		Logger:       cfg.Logger.With("component", "river"),
		// Short jobs: a batch loop that runs this long is stuck, and River retries it. A job still
		// running after RescueAfter was a dead worker's: River runs it again.
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	w.client = client
	if cfg.Valkey != nil {
		w.settings = newSettingsWatcher(cfg.Registry, cfg.Valkey, cfg.ValkeySettingsInterval, w.metrics.failures, cfg.Logger)
	}
	w.dispatcher = &dispatcher{pool: pool, river: client, vk: cfg.Valkey, interval: cfg.DispatchInterval,
		scanInterval: cfg.ValkeyScanInterval, m: w.metrics, log: cfg.Logger.With("component", "dispatch"),
		cursors: map[string]int64{}, warned: map[string]bool{}}
	return w, nil
}

// Start starts fetching and, on the elected leader, enqueueing the periodic jobs, and starts the
// dispatcher. When the database cannot be reached it returns the error and leaves the worker
// stopped: Start may be called again (cmd/jobs does, with backoff, until it succeeds).
func (w *Worker) Start(ctx context.Context) error {
	if err := w.client.Start(ctx); err != nil {
		return err
	}
	w.started.Store(true)
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w.stop, w.stopped = stop, make(chan struct{})
	var running sync.WaitGroup
	running.Add(1)
	go func() {
		defer running.Done()
		w.dispatcher.run(dctx)
	}()
	if w.settings != nil {
		running.Add(1)
		go func() {
			defer running.Done()
			w.settings.run(dctx)
		}()
	}
	go func() {
		running.Wait()
		close(w.stopped)
	}()
	return nil
}

// Stop stops the dispatcher and the settings watcher (a dispatch in progress rolls back and is
// done again by the next worker), stops fetching and waits for running jobs until ctx ends, then
// cancels them and waits for them to return.
func (w *Worker) Stop(ctx context.Context) error {
	if w.stop != nil {
		w.stop()
		<-w.stopped
	}
	err := w.client.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		w.log.Warn("jobs did not finish in time: cancelling them")
		return w.client.StopAndCancel(context.Background())
	}
	return err
}

// Started reports whether Start has succeeded.
func (w *Worker) Started() bool { return w.started.Load() }

// Healthy reports whether the worker can reach the database.
func (w *Worker) Healthy(ctx context.Context) error { return w.pool.Ping(ctx) }

type rollWorker struct {
	river.WorkerDefaults[RollArgs]
	q   *pgfn.Queries
	m   *metrics
	log *slog.Logger
}

// Work rolls batches until a batch comes back short: nothing is left.
func (w *rollWorker) Work(ctx context.Context, job *river.Job[RollArgs]) error {
	start := time.Now()
	batch := job.Args.BatchSize
	var total int64
	for {
		r, err := w.q.RollDueWindows(ctx, pgfn.RollDueWindowsParams{MaxRows: &batch})
		if err != nil {
			w.m.failures.WithLabelValues("roll_due_windows").Inc()
			w.log.Error("roll_due_windows failed; River retries it", "err", err, "attempt", job.Attempt)
			return err
		}
		total += r.Rolled
		w.m.rolled.Add(float64(r.Rolled))
		if r.Rolled < int64(batch) {
			break
		}
	}
	w.m.duration.WithLabelValues("roll_due_windows").Observe(time.Since(start).Seconds())
	w.log.Info("windows rolled", "rolled", total, "duration", time.Since(start))
	return nil
}

type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	q   *pgfn.Queries
	vk  *valkey.Client // nil: PostgreSQL only
	m   *metrics
	log *slog.Logger
}

// Work purges batches until every kind comes back short.
func (w *purgeWorker) Work(ctx context.Context, job *river.Job[PurgeArgs]) error {
	start := time.Now()
	batch := job.Args.BatchSize
	var total pgfn.PurgeResult
	for {
		r, err := w.q.PurgeExpired(ctx, pgfn.PurgeExpiredParams{MaxRows: &batch})
		if err != nil {
			w.m.failures.WithLabelValues("purge_expired").Inc()
			w.log.Error("purge_expired failed; River retries it", "err", err, "attempt", job.Attempt)
			return err
		}
		total.DedupKeys += r.DedupKeys
		total.LedgerRows += r.LedgerRows
		total.Reservations += r.Reservations
		total.Leases += r.Leases
		total.Events += r.Events
		w.m.purged.WithLabelValues("dedup_keys").Add(float64(r.DedupKeys))
		w.m.purged.WithLabelValues("ledger_rows").Add(float64(r.LedgerRows))
		w.m.purged.WithLabelValues("reservations").Add(float64(r.Reservations))
		w.m.purged.WithLabelValues("leases").Add(float64(r.Leases))
		w.m.purged.WithLabelValues("events").Add(float64(r.Events))
		b := int64(batch)
		if r.DedupKeys < b && r.LedgerRows < b && r.Reservations < b && r.Leases < b && r.Events < b {
			break
		}
	}
	var streamEvents int64
	if w.vk != nil {
		n, err := w.purgeValkey(ctx, batch)
		streamEvents = n
		if err != nil {
			w.m.failures.WithLabelValues("purge_expired").Inc()
			w.log.Error("purging Valkey event streams failed; River retries it", "err", err, "attempt", job.Attempt)
			return err
		}
	}
	w.m.duration.WithLabelValues("purge_expired").Observe(time.Since(start).Seconds())
	w.log.Info("expired rows purged", "dedup_keys", total.DedupKeys, "ledger_rows", total.LedgerRows,
		"reservations", total.Reservations, "leases", total.Leases, "events", total.Events,
		"valkey_events", streamEvents, "duration", time.Since(start))
	return nil
}

// purgeValkey trims every Valkey event stream of the events past their retention that the
// dispatcher has handed to the delivery queue (up to the stream's cursor), as purge_expired does
// for PostgreSQL's events, so that no stream grows without bound.
func (w *purgeWorker) purgeValkey(ctx context.Context, batch int32) (int64, error) {
	groups, err := eventstreams.Groups(ctx, valkeynodes.ConnOf(w.vk))
	if err != nil {
		return 0, err
	}
	var total int64
	for _, g := range groups {
		c, err := w.q.StreamCursor(ctx, pgfn.StreamCursorParams{Stream: valkey.EventsKey(g)})
		if err != nil {
			return total, err
		}
		for {
			n, err := w.vk.PurgeEvents(ctx, valkey.PurgeEventsParams{Group: g, ThroughID: c.LastID, MaxRows: int(min(batch, 100000))})
			if err != nil {
				return total, err
			}
			total += n
			w.m.purged.WithLabelValues("valkey_events").Add(float64(n))
			if n < int64(min(batch, 100000)) {
				break
			}
		}
	}
	return total, nil
}

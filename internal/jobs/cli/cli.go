// Package cli is the command line of spendcap's jobs worker (cmd/jobs), shared with the dev
// launcher (internal/cmd/dev), which starts local servers first and then runs the same worker.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/valkey"
)

type options struct {
	databaseURL     string
	rollInterval    time.Duration
	purgeInterval   time.Duration
	rollBatch       int
	purgeBatch      int
	metricsAddr     string
	shutdownTimeout time.Duration
	logFormat       string
	valkeyURL       string
	valkeyCluster   bool
	dispatchEvery   time.Duration
	valkeyScanEvery time.Duration
	valkeySettings  time.Duration
	deliveryWorkers int
	deliveryTimeout time.Duration
	rescueAfter     time.Duration
	gaugeBudgets    string
	gaugeTop        int
	auditInterval   time.Duration
	auditBatch      int
	auditRepair     bool
	consoleAddr     string
	consoleBackend  string
	consoleAdmin    bool
}

// Run runs the worker with the command-line arguments args until SIGTERM or SIGINT and returns
// the exit code: 0 after a clean stop, 1 on failure, 2 on bad usage.
func Run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.databaseURL, "database-url", "", "Postgres URL or keyword DSN (default $DATABASE_URL, else PG* variables)")
	fs.DurationVar(&o.rollInterval, "roll-interval", jobs.DefaultRollInterval, "how often roll_due_windows runs")
	fs.DurationVar(&o.purgeInterval, "purge-interval", jobs.DefaultPurgeInterval, "how often purge_expired runs")
	fs.IntVar(&o.rollBatch, "roll-batch", jobs.DefaultRollBatch, "budgets rolled per call")
	fs.IntVar(&o.purgeBatch, "purge-batch", jobs.DefaultPurgeBatch, "rows of each kind purged per call")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "localhost:9464", "address serving /metrics and /healthz (empty: none)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long running jobs may take to finish on SIGTERM")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.valkeyURL, "valkey-url", "", "Valkey whose event streams are delivered to the webhooks too (default $VALKEY_URL; empty: Postgres events only)")
	fs.BoolVar(&o.valkeyCluster, "valkey-cluster", false, "--valkey-url is a node of a Valkey cluster")
	fs.DurationVar(&o.dispatchEvery, "dispatch-interval", jobs.DefaultDispatchInterval, "how often events are looked for when no notification arrives, and Valkey streams read")
	fs.DurationVar(&o.valkeyScanEvery, "valkey-scan-interval", jobs.DefaultValkeyScanInterval, "how often Valkey is scanned for new event streams")
	fs.DurationVar(&o.valkeySettings, "valkey-settings-interval", jobs.DefaultValkeySettingsInterval, "how often the Valkey settings (eviction, append-only file, fsync, version) are read again and exported")
	fs.IntVar(&o.deliveryWorkers, "delivery-workers", jobs.DefaultDeliveryWorkers, "webhook deliveries run at once")
	fs.DurationVar(&o.deliveryTimeout, "delivery-timeout", jobs.DefaultDeliveryTimeout, "how long one webhook request may take")
	fs.StringVar(&o.gaugeBudgets, "gauge-budgets", "", "comma-separated budget ids whose usage, limit and remaining /metrics exports")
	fs.IntVar(&o.gaugeTop, "gauge-top", 0, "also export the N budgets (0..100) that used the largest share of a hard limit")
	fs.DurationVar(&o.auditInterval, "audit-interval", jobs.DefaultAuditInterval, "how often the audit runs (negative: never)")
	fs.IntVar(&o.auditBatch, "audit-batch", jobs.DefaultAuditBatch, "findings per audit call")
	fs.BoolVar(&o.auditRepair, "audit-repair", false, "repair what the audit finds instead of only reporting it")
	fs.StringVar(&o.consoleAddr, "console-addr", "", "address serving the console (docs/operations.md#the-console); a port alone (:8090) listens on loopback only (empty: none)")
	fs.StringVar(&o.consoleBackend, "console-backend", "postgres", "what the console shows: postgres (--database-url) or valkey (--valkey-url)")
	fs.BoolVar(&o.consoleAdmin, "console-admin", false, "let the console change budgets (limits, mode, reset, cancel a reservation) through the same connection, whose role must allow it; off a loopback address it needs SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD")
	fs.DurationVar(&o.rescueAfter, "rescue-after", jobs.DefaultRescueAfter, "how long a job may run before it counts as a dead worker's and runs again")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jobs: unexpected argument %q (see jobs -h)\n", fs.Arg(0))
		return 2
	}
	var logger *slog.Logger
	switch o.logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		fmt.Fprintln(stderr, "jobs: --log-format must be text or json")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	url := o.databaseURL
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		fmt.Fprintf(stderr, "jobs: database url: %v\n", err)
		return 1
	}
	defer pool.Close()
	// /metrics and /healthz answer from the start: 503 until the worker runs (the database or
	// Valkey may be down), then the worker's.
	var running atomic.Pointer[jobs.Worker]
	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "jobs: metrics: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(rw http.ResponseWriter, r *http.Request) {
			w := running.Load()
			if w == nil {
				http.Error(rw, "starting", http.StatusServiceUnavailable)
				return
			}
			promhttp.HandlerFor(w.Registry, promhttp.HandlerOpts{}).ServeHTTP(rw, r)
		})
		mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
			w := running.Load()
			if w == nil || !w.Started() {
				http.Error(rw, "starting: waiting for the database and Valkey", http.StatusServiceUnavailable)
				return
			}
			if err := w.Healthy(r.Context()); err != nil {
				http.Error(rw, "database unreachable: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ok")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer func() { _ = srv.Close() }()
		logger.Info("serving /metrics and /healthz", "addr", ln.Addr().String())
	}
	// A database or Valkey that is down (restarting, failing over, not up yet) is waited for:
	// the worker keeps trying with backoff, /healthz unhealthy meanwhile, and never exits for it.
	rdb, err := valkeyRedis(o)
	if err != nil {
		fmt.Fprintf(stderr, "jobs: %v\n", err)
		return 2
	}
	var vk *valkey.Client
	if rdb != nil {
		defer rdb.Close()
		// The worker only reads event streams and audits: the checks that protect budgets
		// (eviction, an append-only file) are for the clients that write usage, and `migrate
		// valkey-load` loads the library.
		if !retry(ctx, logger, "connect to valkey", func() (err error) {
			vk, err = valkey.NewClient(ctx, rdb, valkey.Options{SkipLoad: true, AllowEviction: true, AllowVolatile: true, Logger: logger})
			return err
		}) {
			return 0
		}
	}
	if o.consoleAddr != "" {
		stopConsole, err := serveConsole(o, pool, vk, logger)
		if err != nil {
			fmt.Fprintf(stderr, "jobs: console: %v\n", err)
			return 2
		}
		defer stopConsole()
	}
	w, err := jobs.New(pool, jobs.Config{RollInterval: o.rollInterval, PurgeInterval: o.purgeInterval,
		RollBatch: int32(o.rollBatch), PurgeBatch: int32(o.purgeBatch), Logger: logger,
		Valkey: vk, DispatchInterval: o.dispatchEvery, ValkeyScanInterval: o.valkeyScanEvery, ValkeySettingsInterval: o.valkeySettings,
		DeliveryWorkers: o.deliveryWorkers, DeliveryTimeout: o.deliveryTimeout, RescueAfter: o.rescueAfter,
		GaugeBudgets: splitList(o.gaugeBudgets), GaugeTop: o.gaugeTop,
		AuditInterval: o.auditInterval, AuditBatch: int32(o.auditBatch), AuditRepair: o.auditRepair})
	if err != nil {
		fmt.Fprintf(stderr, "jobs: %v\n", err)
		return 1
	}
	running.Store(w)
	// River's own context is not the signal context: a signal must not cancel running jobs, only
	// start the soft stop below.
	if !retry(ctx, logger, "start the worker", func() error { return w.Start(context.WithoutCancel(ctx)) }) {
		return 0
	}
	logger.Info("jobs worker running", "roll_interval", o.rollInterval, "purge_interval", o.purgeInterval,
		"valkey_events", vk != nil)
	<-ctx.Done()
	logger.Info("stopping: no new jobs; waiting for running ones", "timeout", o.shutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		logger.Error("stop", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// Backoff between attempts of retry: doubling from the first to the last.
const (
	firstBackoff = 100 * time.Millisecond
	lastBackoff  = 5 * time.Second
)

// retry runs f until it succeeds, waiting with backoff between attempts and logging each
// failure, and returns true; or false when ctx ends first (a signal: stop quietly).
func retry(ctx context.Context, logger *slog.Logger, what string, f func() error) bool {
	wait := firstBackoff
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			if attempt > 1 {
				logger.Info("succeeded after retries", "what", what, "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		logger.Warn("cannot "+what+"; retrying", "err", oneLine(err), "attempt", attempt, "in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, lastBackoff)
	}
}

// valkeyRedis is the client of --valkey-url (else $VALKEY_URL), or nil when there is none.
func valkeyRedis(o options) (redis.UniversalClient, error) {
	url := o.valkeyURL
	if url == "" {
		url = os.Getenv("VALKEY_URL")
	}
	if url == "" {
		return nil, nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("valkey url: %w", err)
	}
	if o.valkeyCluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{opts.Addr}, Username: opts.Username,
			Password: opts.Password, TLSConfig: opts.TLSConfig}), nil
	}
	return redis.NewClient(opts), nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

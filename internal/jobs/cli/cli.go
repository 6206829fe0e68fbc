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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spendcap/spendcap/internal/jobs"
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
	if err := pool.Ping(ctx); err != nil {
		fmt.Fprintf(stderr, "jobs: connect: %v\n", oneLine(err))
		return 1
	}
	w, err := jobs.New(pool, jobs.Config{RollInterval: o.rollInterval, PurgeInterval: o.purgeInterval,
		RollBatch: int32(o.rollBatch), PurgeBatch: int32(o.purgeBatch), Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "jobs: %v\n", err)
		return 1
	}

	if o.metricsAddr != "" {
		ln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "jobs: metrics: %v\n", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(w.Registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
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

	// River's own context is not the signal context: a signal must not cancel running jobs, only
	// start the soft stop below.
	if err := w.Start(context.WithoutCancel(ctx)); err != nil {
		fmt.Fprintf(stderr, "jobs: start: %v\n", oneLine(err))
		return 1
	}
	logger.Info("jobs worker running", "roll_interval", o.rollInterval, "purge_interval", o.purgeInterval)
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

func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

// Command migrate deploys spendcap's database: the schema migrations, the SQL functions and River's
// schema, under one advisory lock so that concurrent deploys are safe.
//
// Usage:
//
//	migrate [flags] <command> [args]
//
// Commands:
//
//	up         apply pending schema migrations and changed function files in one transaction,
//	           then River's migrations, and record the release deployed
//	down N     revert the newest N schema migrations
//	version    print the schema version and the database's release
//	status     list applied and pending migrations and function files (--exit-code: exit 5 if
//	           anything is pending)
//	force V    set the schema version to V without running anything (dirty recovery; -1 = none)
//	sql        print the complete install script (for `migrate sql | psql`)
//	valkey-load  load the Valkey Functions library (FUNCTION LOAD REPLACE) on every primary
//	audit      check every aggregate against its rows (--repair: fix what it finds)
//
// Exit codes: 0 success, 1 failure, 2 usage error, 3 dirty schema, 4 timed out waiting for the
// deploy lock, 5 `status --exit-code` found something pending, 6 the audit found something.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spendcap/spendcap/internal/migrator"
)

// Exit codes, documented in the usage text and docs/operations.md.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitDirty       = 3
	exitLockTimeout = 4
	exitPending     = 5
	exitFindings    = 6
)

const usage = `usage: migrate [flags] <command> [args]

Commands:
  up         apply pending schema migrations and changed function files in one transaction,
             then River's migrations, and record the release deployed
  down N     revert the newest N schema migrations
  version    print the schema version and the database's release
  status     list applied and pending migrations and function files;
             with --exit-code it exits 5 when ` + "`migrate up`" + ` would change something
  force V    set the schema version to V without running anything (dirty recovery; -1 = none)
  sql        print the complete install script: migrate sql | psql -v ON_ERROR_STOP=1 "$DATABASE_URL"
  valkey-load  load the Valkey Functions library on every primary of --valkey-url (else $VALKEY_URL);
             with --valkey-cluster the URL is a seed node of a Valkey Cluster; with
             --allow-replay callers may pass an at_ms later than the server clock
             (and acquire a quota at an earlier one): log replays and tests
  audit      check every budget's and quota policy's aggregates against their rows and print the
             findings; with --repair, fix them (each batch of --audit-batch in one transaction);
             exits 6 when it found anything, repaired or not; with --valkey-url, that Valkey too

The database is --database-url, else $DATABASE_URL, else the standard PG* variables.
Results go to stdout, logs to stderr.

Exit codes: 0 success, 1 failure, 2 usage error, 3 dirty schema, 4 timed out waiting for the deploy lock,
5 pending (status --exit-code), 6 audit findings.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	valkeyURL     string
	valkeyCluster bool
	allowReplay   bool
	databaseURL   string
	lockTimeout   time.Duration
	gateTimeout   time.Duration
	format        string
	logFormat     string
	logLevel      string
	exitCode      bool
	repair        bool
	auditBatch    int
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.valkeyURL, "valkey-url", "", "Valkey URL for valkey-load (default $VALKEY_URL) and audit, redis://[user:password@]host:port")
	fs.BoolVar(&o.valkeyCluster, "valkey-cluster", false, "valkey-load: --valkey-url is a seed node of a Valkey Cluster")
	fs.BoolVar(&o.allowReplay, "allow-replay", false, "valkey-load: let callers pass an at_ms later than the server clock, or acquire a quota at an earlier one (log replays, tests)")
	fs.StringVar(&o.databaseURL, "database-url", "", "Postgres URL or keyword DSN (default $DATABASE_URL, else PG* variables)")
	fs.DurationVar(&o.lockTimeout, "lock-timeout", migrator.DefaultLockTimeout, "how long to wait for another deploy to release the lock")
	fs.DurationVar(&o.gateTimeout, "gate-timeout", migrator.DefaultGateTimeout, "up: how long one attempt waits for a lock (calls wait at the deploy gate meanwhile) before it lets them through and tries again")
	fs.StringVar(&o.format, "format", "text", "result format on stdout: text or json")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.exitCode, "exit-code", false, "status: exit 5 when migrations, function files or River versions are pending")
	fs.BoolVar(&o.repair, "repair", false, "audit: repair what it finds")
	fs.IntVar(&o.auditBatch, "audit-batch", 10000, "audit: findings per call, 1..1000000")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	// Flags may come before or after the command and its arguments.
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var positional []string
	for rest := fs.Args(); len(rest) > 0; rest = fs.Args() {
		positional = append(positional, rest[0])
		if err := fs.Parse(rest[1:]); err != nil {
			return exitUsage
		}
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "migrate: "+format+" (see migrate -h)\n", a...)
		return exitUsage
	}
	if len(positional) == 0 {
		return usageErr("missing command")
	}
	if o.format != "text" && o.format != "json" {
		return usageErr("--format must be text or json")
	}
	logger, err := newLogger(stderr, o.logFormat, o.logLevel)
	if err != nil {
		return usageErr("%v", err)
	}
	cmd, cmdArgs := positional[0], positional[1:]
	wantArgs := map[string]int{"up": 0, "down": 1, "version": 0, "status": 0, "force": 1, "sql": 0, "valkey-load": 0, "audit": 0}
	n, known := wantArgs[cmd]
	if !known {
		return usageErr("unknown command %q", cmd)
	}
	if len(cmdArgs) != n {
		return usageErr("%s takes %d argument(s), got %d", cmd, n, len(cmdArgs))
	}
	if o.exitCode && cmd != "status" {
		return usageErr("--exit-code applies to status only")
	}
	if o.repair && cmd != "audit" {
		return usageErr("--repair applies to audit only")
	}
	if o.auditBatch < 1 || o.auditBatch > 1000000 {
		return usageErr("--audit-batch must be 1..1000000")
	}

	if cmd == "sql" {
		script, err := migrator.Script(nil)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprint(stdout, script)
		return exitOK
	}

	if cmd == "valkey-load" {
		return valkeyLoad(o, stdout, stderr, logger)
	}

	url := o.databaseURL
	if url == "" {
		url = os.Getenv("DATABASE_URL")
	}
	if cmd == "audit" {
		return audit(o, url, stdout, stderr, logger)
	}
	m, err := migrator.New(url, migrator.Options{LockTimeout: o.lockTimeout, GateTimeout: o.gateTimeout, Logger: logger})
	if err != nil {
		return fail(stderr, err)
	}

	// The first SIGINT/SIGTERM lets the running step finish; a second one kills the process.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs) // the next signal terminates the process
			logger.Warn("signal received: finishing the running step", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()

	out := output{w: stdout, json: o.format == "json"}
	switch cmd {
	case "up":
		logger.Info("migrating", "target", m.Target())
		res, err := m.Up(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		text := fmt.Sprintf("release: %s\nschema: version %d -> %d, applied %v\nfunctions: applied %d %v, unchanged %d\n",
			res.Release, res.Schema.From, res.Schema.To, res.Schema.Applied, len(res.Functions.Applied), res.Functions.Applied,
			res.Functions.Unchanged)
		if len(res.Functions.Removed) > 0 || len(res.Functions.Dropped) > 0 {
			text += fmt.Sprintf("functions: files removed %v, functions dropped %v\n", res.Functions.Removed, res.Functions.Dropped)
		}
		out.print(res, text+fmt.Sprintf("river: applied %v\n", res.River.Applied))
	case "down":
		steps, err := strconv.Atoi(cmdArgs[0])
		if err != nil || steps < 1 {
			return usageErr("down N: N must be a positive integer, got %q", cmdArgs[0])
		}
		res, err := m.Down(ctx, steps)
		if err != nil {
			return fail(stderr, err)
		}
		out.print(res, fmt.Sprintf("schema: version %d -> %d, reverted %v\n", res.Schema.From, res.Schema.To, res.Schema.Applied))
	case "version":
		v, err := m.VersionInfo(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		out.print(v, v.Text())
		if v.Dirty {
			return exitDirty
		}
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		out.print(st, st.Text())
		if st.Schema.Dirty {
			return exitDirty
		}
		if o.exitCode && st.Pending {
			return exitPending
		}
	case "force":
		v, err := strconv.Atoi(cmdArgs[0])
		if err != nil || v < -1 {
			return usageErr("force V: V must be an integer >= -1, got %q", cmdArgs[0])
		}
		if err := m.Force(ctx, v); err != nil {
			return fail(stderr, err)
		}
		out.print(map[string]any{"version": v, "dirty": false}, fmt.Sprintf("forced version %d\n", v))
	}
	return exitOK
}

type output struct {
	w    io.Writer
	json bool
}

func (o output) print(v any, text string) {
	if o.json {
		enc := json.NewEncoder(o.w)
		_ = enc.Encode(v)
		return
	}
	fmt.Fprint(o.w, text)
}

// fail prints one line for err and returns its exit code.
func fail(stderr io.Writer, err error) int {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(stderr, "migrate: %s\n", msg)
	var dirty *migrator.DirtyError
	switch {
	case errors.As(err, &dirty):
		return exitDirty
	case errors.Is(err, migrator.ErrLockTimeout):
		return exitLockTimeout
	default:
		return exitFailure
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error")
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format must be text or json")
	}
}

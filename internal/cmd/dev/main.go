// Command dev is `make dev`: it starts a local PostgreSQL and Valkey with their data in --dev-dir
// (migrated, the Valkey library loaded), prints their connection strings on stdout, then runs the
// jobs worker on that database until Ctrl-C. It is a development tool: the production worker,
// cmd/jobs, links none of the code that starts servers.
//
// Usage:
//
//	dev [--dev-dir .spendcap] [--postgres-port 54329] [--valkey-port 63799] [--console-port 8089] [jobs flags...]
//
// Arguments it does not know go to the worker (see `bin/jobs -h`); the worker exports the
// gauges of the 10 budgets nearest a hard limit unless a --gauge-* flag says otherwise.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spendcap/spendcap/internal/devenv"
	"github.com/spendcap/spendcap/internal/jobs/cli"
)

const usage = `usage: dev [--dev-dir DIR] [--postgres-port N] [--valkey-port N] [--console-port N] [jobs flags...]

Starts a local PostgreSQL and Valkey with their data in DIR, migrates the database, loads the
Valkey library, prints DATABASE_URL, VALKEY_URL and CONSOLE_URL on stdout, then runs the jobs
worker on them, serving the console on loopback, until Ctrl-C.

  --dev-dir DIR        where both servers keep their data (default .spendcap); as root, Postgres'
                       own files live under /var/lib/spendcap/pg-<hash>, linked from
                       DIR/postgres/server, since the postgres user may not enter DIR
  --postgres-port N    Postgres' port, tried first (default 54329; 0: any free port)
  --valkey-port N      Valkey's port, tried first (default 63799; 0: any free port)
  --console-port N     the console's port on 127.0.0.1, tried first (default 8089; 0: any free
                       port); it shows the PostgreSQL budgets (--console-backend valkey: Valkey's)

Every other argument goes to the worker (bin/jobs -h lists them). Unless one of them is a
--gauge-* flag, the worker exports the gauges of the 10 budgets nearest a hard limit
(--gauge-top 10).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "dev: %v\n\n%s", err, usage)
		return 2
	}
	if o.help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env, err := devenv.Start(ctx, devenv.Options{Dir: o.dir, PostgresPort: o.pgPort, ValkeyPort: o.valkeyPort, Logger: logger})
	stop()
	if err != nil {
		fmt.Fprintf(stderr, "dev: %v\n", err)
		return 1
	}
	defer env.Stop()
	fmt.Fprintf(stdout, "spendcap is running (data in %s; Ctrl-C stops it)\n", o.dir)
	fmt.Fprintf(stdout, "DATABASE_URL=%s\n", env.DatabaseURL)
	fmt.Fprintf(stdout, "VALKEY_URL=%s\n", env.ValkeyURL)
	worker := []string{"--database-url", env.DatabaseURL, "--valkey-url", env.ValkeyURL}
	if !o.console {
		addr, err := consoleAddr(o.consolePort)
		if err != nil {
			fmt.Fprintf(stderr, "dev: console: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "CONSOLE_URL=http://%s/\n", addr)
		worker = append(worker, "--console-addr", addr)
	}
	fmt.Fprintf(stdout, "try: psql %q -c \"select * from spendcap.create_budget('demo', '{\\\"tokens\\\": 1000}', reset_every => '1 day')\"\n", env.DatabaseURL)
	if !o.gauges {
		worker = append(worker, "--gauge-top", "10")
	}
	return cli.Run(append(worker, o.rest...), stdout, stderr)
}

type options struct {
	dir                string
	pgPort, valkeyPort int
	help               bool
	gauges             bool // the worker's arguments choose the budget gauges
	console            bool // the worker's arguments say where the console goes
	consolePort        int
	rest               []string
}

// consoleAddr is 127.0.0.1:port when that port is free, else a free port of 127.0.0.1 (port 0:
// any free port at once).
func consoleAddr(port int) (string, error) {
	for _, p := range []int{port, 0} {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", err
		}
		return addr, nil
	}
	return "", fmt.Errorf("no free port on 127.0.0.1")
}

// parse takes dev's own flags out of args; the rest are the worker's.
func parse(args []string) (options, error) {
	o := options{dir: ".spendcap", pgPort: devenv.DefaultPostgresPort, valkeyPort: devenv.DefaultValkeyPort, consolePort: 8089}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "---") {
			o.rest = append(o.rest, a)
			continue
		}
		switch name {
		case "h", "help":
			o.help = true
			continue
		case "dev-dir", "postgres-port", "valkey-port", "console-port":
		default:
			if strings.HasPrefix(name, "gauge-") {
				o.gauges = true
			}
			if name == "console-addr" {
				o.console = true
			}
			o.rest = append(o.rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return o, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if name == "dev-dir" {
			o.dir = value
			continue
		}
		port, err := strconv.Atoi(value)
		if err != nil || port < 0 || port > 65535 {
			return o, fmt.Errorf("--%s must be a port number (0: any free port), got %q", name, value)
		}
		switch name {
		case "postgres-port":
			o.pgPort = port
		case "valkey-port":
			o.valkeyPort = port
		default:
			o.consolePort = port
		}
	}
	return o, nil
}

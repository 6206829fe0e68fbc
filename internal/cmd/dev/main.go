// Command dev is `make dev`: it starts a local PostgreSQL and Valkey with their data in --dev-dir
// (migrated, the Valkey library loaded), prints their connection strings on stdout, then runs the
// jobs worker on that database until Ctrl-C. It is a development tool: the production worker,
// cmd/jobs, links none of the code that starts servers.
//
// Usage:
//
//	dev [--dev-dir .spendcap] [jobs flags...]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spendcap/spendcap/internal/devenv"
	"github.com/spendcap/spendcap/internal/jobs/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	dir, rest, err := devDir(args)
	if err != nil {
		fmt.Fprintf(stderr, "dev: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env, err := devenv.Start(ctx, dir, logger)
	stop()
	if err != nil {
		fmt.Fprintf(stderr, "dev: %v\n", err)
		return 1
	}
	defer env.Stop()
	fmt.Fprintf(stdout, "spendcap is running (data in %s; Ctrl-C stops it)\n", dir)
	fmt.Fprintf(stdout, "DATABASE_URL=%s\n", env.DatabaseURL)
	fmt.Fprintf(stdout, "VALKEY_URL=%s\n", env.ValkeyURL)
	fmt.Fprintf(stdout, "try: psql %q -c \"select * from spendcap.create_budget('demo', '{\\\"tokens\\\": 1000}', reset_every => '1 day')\"\n", env.DatabaseURL)
	return cli.Run(append([]string{"--database-url", env.DatabaseURL, "--valkey-url", env.ValkeyURL}, rest...), stdout, stderr)
}

// devDir takes --dev-dir (default .spendcap) out of args; the rest are the worker's flags.
func devDir(args []string) (dir string, rest []string, err error) {
	dir = ".spendcap"
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--dev-dir" || a == "-dev-dir":
			if i+1 == len(args) {
				return "", nil, errors.New("--dev-dir needs a directory")
			}
			dir = args[i+1]
			i++
		case strings.HasPrefix(a, "--dev-dir=") || strings.HasPrefix(a, "-dev-dir="):
			dir = a[strings.IndexByte(a, '=')+1:]
		default:
			rest = append(rest, a)
		}
	}
	return dir, rest, nil
}

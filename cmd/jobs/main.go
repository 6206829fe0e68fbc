// Command jobs is spendcap's worker: a River client that runs roll_due_windows and purge_expired
// periodically, in batches until nothing is left, delivers events to webhooks (those of Postgres,
// and those of Valkey with --valkey-url), and serves Prometheus metrics and /healthz.
// Run one or several next to Postgres: only River's elected leader enqueues, and the jobs are
// unique per period. `make dev` runs the same worker from internal/cmd/dev, which starts local
// servers first; this binary starts none and links no code that could.
//
// Usage:
//
//	jobs [--database-url URL] [--valkey-url URL [--valkey-cluster]] [--roll-interval 1m]
//	     [--purge-interval 5m] [--delivery-workers 10] [--rescue-after 15m] [--metrics-addr localhost:9464]
//
// SIGTERM or SIGINT stops fetching, lets running jobs finish within --shutdown-timeout, and exits 0.
package main

import (
	"os"

	"github.com/spendcap/spendcap/internal/jobs/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}

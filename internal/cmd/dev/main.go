// Command dev runs spendcap's embedded default (`make dev`): local PostgreSQL and Valkey with their
// data in ./.spendcap, the database migrated, connection strings on stdout, until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spendcap/spendcap/internal/devenv"
)

func main() {
	dir := flag.String("dir", ".spendcap", "directory holding the dev servers' data")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := devenv.Start(ctx, *dir, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dev: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("spendcap is running (data in %s; Ctrl-C stops it)\n", *dir)
	fmt.Printf("DATABASE_URL=%s\n", env.DatabaseURL)
	fmt.Printf("VALKEY_URL=%s\n", env.ValkeyURL)
	fmt.Printf("try: psql %q -c \"select * from spendcap.create_budget('demo', '{\\\"tokens\\\": 1000}', reset_every => '1 day')\"\n", env.DatabaseURL)
	<-ctx.Done()
	logger.Info("stopping")
	env.Stop()
}

package devenv_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/redis/go-redis/v9"
	"github.com/spendcap/spendcap/internal/devenv"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestDevEnvironmentComesUpMigratedAndKeepsDataBetweenRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Cleanup(func() {
		// Relocated server data (when the postgres user cannot enter dir) lives outside it.
		if target, err := os.Readlink(filepath.Join(dir, "postgres", "server")); err == nil {
			_ = os.RemoveAll(target)
		}
	})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	env, err := devenv.Start(ctx, devenv.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		env.Stop()
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `SELECT * FROM spendcap.create_budget('demo', '{"tokens": 1000}', reset_every => '1 day')`)
	_ = conn.Close(ctx)
	if err != nil {
		env.Stop()
		t.Fatalf("create_budget on the dev database: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.ValkeyAddr})
	err = rdb.FCall(ctx, "sc_create_budget", []string{"sc:{demo}"}, `{"budget_id":"demo"}`).Err()
	if err != nil {
		t.Errorf("dev valkey has no spendcap library: %v", err)
	}
	// make dev on an older valkey-server than production needs says so.
	version, old := testenv.ValkeyVersion(t, rdb)
	_ = rdb.Close()
	if warned := strings.Contains(logs.String(), "valkey-server "+version+" is older than"); warned != old {
		t.Errorf("dev on valkey-server %s: older than the minimum = %v, but warned = %v; logs:\n%s", version, old, warned, logs.String())
	}
	env.Stop()

	env, err = devenv.Start(ctx, devenv.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatalf("second start on the same data: %v", err)
	}
	defer env.Stop()
	conn, err = pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var hard string
	if err := conn.QueryRow(ctx, `SELECT hard_limits::text FROM spendcap.budget_status('demo')`).Scan(&hard); err != nil || hard != `{"tokens": 1000}` {
		t.Errorf("after a restart: hard_limits %q, err %v; want the budget kept", hard, err)
	}
}

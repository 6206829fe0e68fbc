package tests

import (
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestHarnessRunsARealPostgres(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	var version string
	if err := db.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "PostgreSQL ") {
		t.Errorf("version() = %q", version)
	}
	t.Logf("postgres from %s: %s", testenv.PostgresSource(t), version)
}

func TestHarnessRunsARealValkey(t *testing.T) {
	t.Parallel()
	c := testenv.Valkey(t)
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "valkey_version:") {
		t.Errorf("INFO server is not a Valkey server's:\n%s", info)
	}
	key := "harness:{" + t.Name() + "}"
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Errorf("GET = %q, %v", got, err)
	}
	t.Logf("valkey from %s", testenv.ValkeySource(t))
}

func TestEachTestGetsAFreshMigratedDatabase(t *testing.T) {
	t.Parallel()
	first := testenv.Pool(t)
	if _, err := first.Exec(ctx, `SELECT * FROM spendcap.create_budget('only-in-first')`); err != nil {
		t.Fatal(err)
	}
	second := testenv.Pool(t)
	var n int
	if err := second.QueryRow(ctx, `SELECT count(*) FROM spendcap.budgets`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a new database sees %d budgets (err %v), want 0", n, err)
	}
}

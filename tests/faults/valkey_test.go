package faults

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/valkey"
)

// killableValkey starts a server of its own with the append-only file on and fsync policy fsync,
// and a client for it.
func killableValkey(t *testing.T, fsync string) target {
	t.Helper()
	ctx := context.Background()
	v, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, AppendFsync: fsync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: v.Addr, PoolSize: 40})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return target{
		b:       c,
		kill:    func(int) { v.Kill() },
		restart: v.Restart,
		total: func(ctx context.Context, id string) (int64, error) {
			st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
			return st.Usage["t"], err
		},
		audit: func(ctx context.Context) ([]string, error) {
			fs, err := c.Audit(ctx, spendcap.AuditParams{})
			var out []string
			for _, f := range fs {
				out = append(out, fmt.Sprintf("%+v", f))
			}
			return out, err
		},
	}
}

// With appendfsync always, the server writes and fsyncs each call's effects before it replies.
func TestValkeyWithAppendfsyncAlwaysKilledUnderLoadLosesNoAcknowledgedReport(t *testing.T) {
	t.Parallel()
	tg := killableValkey(t, "always")
	createBudgets(t, tg.b, "")
	survive(t, tg)
}

// With appendfsync everysec, the server normally writes each call's effects to the file before it
// replies and fsyncs once a second, but while a slow fsync runs it replies first and writes up to
// two seconds later: a killed process usually loses nothing, sometimes up to that much, and a
// machine that stops loses up to the last second or two (docs/operations.md). Whatever it loses,
// it never counts more than was sent, and retries with their keys count once.
func TestValkeyWithAppendfsyncEverysecKilledUnderLoadNeverCountsMoreThanWasSent(t *testing.T) {
	t.Parallel()
	tg := killableValkey(t, "everysec")
	tg.mayLose = true
	createBudgets(t, tg.b, "")
	survive(t, tg)
}

package faults

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/migrator"
	"github.com/spendcap/spendcap/internal/testenv"
)

// killablePostgres starts a durable server of its own (fsync and synchronous_commit on), migrated.
func killablePostgres(t *testing.T) (*localserver.Postgres, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pg, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Durable: true, MaxConnections: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	m, err := migrator.New(pg.URL, migrator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, pg.URL+"&pool_max_conns=40")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pg, pool
}

func postgresTarget(pg *localserver.Postgres, pool *pgxpool.Pool) target {
	return target{
		b: gobinding.NewClient(pool, gobinding.Options{}),
		// Even rounds kill the postmaster alone, odd rounds every server process at once.
		kill: func(n int) {
			if n%2 == 0 {
				pg.Kill()
			} else {
				pg.KillAll()
			}
		},
		restart: pg.Restart,
		total: func(ctx context.Context, id string) (int64, error) {
			// Every window's usage: the closed ones in the history and the current one, in one snapshot.
			var n int64
			err := pool.QueryRow(ctx, `
				select coalesce((select sum((usage->>'t')::bigint) from spendcap.budget_history where budget_id = $1), 0)
				     + coalesce((select (usage->>'t')::bigint from spendcap.budgets where budget_id = $1), 0)`, id).Scan(&n)
			return n, err
		},
		audit: func(ctx context.Context) ([]string, error) {
			rows, err := pool.Query(ctx, `select format('%s %s %s %s: expected %s, found %s', budget_id, policy_id, check_name, dimension, expected, found)
				from spendcap.audit(1000000, false)`)
			if err != nil {
				return nil, err
			}
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					return nil, err
				}
				out = append(out, s)
			}
			return out, rows.Err()
		},
	}
}

func TestPostgresKilledUnderLoadLosesNoAcknowledgedReportAndCountsRetriesOnce(t *testing.T) {
	t.Parallel()
	pg, pool := killablePostgres(t)
	tg := postgresTarget(pg, pool)
	createBudgets(t, tg.b, "")
	survive(t, tg)
}

// The same with windows rolling every second, the jobs worker rolling and purging next to the
// load, and a churn of reservations, spends and short-lived keys for it to purge: the worker
// comes back after each restart, and what it rolled and purged counts nothing twice.
func TestPostgresKilledWhileTheWorkerRollsAndPurgesLosesNothing(t *testing.T) {
	t.Parallel()
	pg, pool := killablePostgres(t)
	tg := postgresTarget(pg, pool)
	createBudgets(t, tg.b, "1 second")
	if _, err := tg.b.CreateBudget(context.Background(), spendcap.CreateBudgetParams{
		BudgetID: "churn", ResetEvery: "1 second", DedupTTL: 1 * time.Second}); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	worker := exec.Command(testenv.Binary(t, "../../cmd/jobs"), "--database-url", pg.URL, "--metrics-addr", addr,
		"--roll-interval", "1s", "--purge-interval", "1s")
	var stderr testenv.SyncBuffer
	worker.Stderr = &stderr
	// The first kill comes before the worker starts, on purpose: it starts while the database is
	// down, keeps retrying (unhealthy meanwhile) instead of exiting, and runs once it is back.
	pg.KillAll()
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = worker.Wait(); close(exited) }()
	t.Cleanup(func() { _ = worker.Process.Kill(); <-exited })
	startsWhileDown(t, pg, addr, &stderr, exited)

	stop := make(chan struct{})
	var churning sync.WaitGroup
	churning.Add(1)
	go func() {
		defer churning.Done()
		churn(tg.b, stop)
	}()
	survive(t, tg)
	close(stop)
	churning.Wait()

	select {
	case <-exited:
		t.Fatalf("the worker exited during the rounds:\n%s", stderr.String())
	default:
	}
	// After the last restart the worker still rolls and purges.
	rolled, purged := workerCounts(t, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, p := workerCounts(t, addr)
		if r > rolled && p > purged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker rolled %v→%v and purged %v→%v in 30 s after the last restart:\n%s", rolled, r, purged, p, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if findings, err := tg.audit(context.Background()); err != nil || len(findings) > 0 {
		t.Errorf("audit after the worker's last rolls and purges: %v %v", findings, err)
	}
}

// startsWhileDown keeps the database down for a second while the worker starts (it must not
// exit, and its /healthz answers 503), then restarts it and waits for the worker to run.
func startsWhileDown(t *testing.T, pg *localserver.Postgres, addr string, stderr *testenv.SyncBuffer, exited <-chan struct{}) {
	t.Helper()
	testenv.UnhealthyFor(t, addr, time.Second, stderr, exited)
	if err := pg.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForOutput(t, stderr, "jobs worker running", 30*time.Second, exited)
	if code, body := testenv.HTTPGet("http://" + addr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz once running: %d %s", code, body)
	}
}

// churn keeps reservations (some settled, some left to expire), spends and keys of one second on
// budget "churn" until stop, ignoring errors: it gives the purge rows to delete during the rounds.
func churn(b backend, stop <-chan struct{}) {
	ctx := context.Background()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		id := fmt.Sprintf("churn-%d", n)
		one := map[string]int64{"t": 1}
		_, _ = b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "churn", ReservationID: id, Amounts: one, TTL: 1 * time.Second})
		if n%2 == 0 {
			_, _ = b.Settle(ctx, spendcap.SettleParams{BudgetID: "churn", ReservationID: id, Actual: one})
		}
		_, _ = b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "churn", ExecutionID: id, Deltas: one})
		_, _ = b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "churn", Deltas: one, DedupKey: id})
	}
}

var metricLine = regexp.MustCompile(`(?m)^(spendcap_windows_rolled_total|spendcap_purged_rows_total)(\{[^}]*\})? (\S+)$`)

// workerCounts reads the windows rolled and the rows purged from the worker's metrics.
func workerCounts(t *testing.T, addr string) (rolled, purged float64) {
	t.Helper()
	code, body := testenv.HTTPGet("http://" + addr + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[3], 64)
		if strings.HasSuffix(m[1], "rolled_total") {
			rolled += v
		} else {
			purged += v
		}
	}
	return rolled, purged
}

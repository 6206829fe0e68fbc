package jobs_test

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The worker's audit reports a corrupted aggregate as a gauge, and leaves it alone.
func TestAuditJobExportsFindings(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	if _, err := pool.Exec(ctx, `SELECT spendcap.create_budget('b', '{"t": 100}');
		SELECT spendcap.create_budget('c', '{"t": 100}');
		UPDATE spendcap.budgets SET reserved = '{"t": 5}'`); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, pool, jobs.Config{AuditInterval: time.Second})
	eventually(t, "two reserved findings exported", 20*time.Second, func() bool {
		return metric(t, w, `spendcap_audit_findings{backend="postgres",check="reserved"}`) == 2 && metric(t, w, "spendcap_audit_last_success_timestamp_seconds") > 0
	})
	var reserved string
	if err := pool.QueryRow(ctx, `SELECT reserved::text FROM spendcap.budgets WHERE budget_id = 'b'`).Scan(&reserved); err != nil || reserved != `{"t": 5}` {
		t.Errorf("a report-only audit changed reserved: %s, %v", reserved, err)
	}
}

// With AuditRepair, the worker fixes what it finds, in batches, and counts it; the next audit
// exports no finding.
func TestAuditJobRepairsInBatches(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	if _, err := pool.Exec(ctx, `SELECT spendcap.create_budget('b' || i, '{"t": 100}') FROM generate_series(1, 5) AS i;
		UPDATE spendcap.budgets SET reserved = '{"t": 5}'`); err != nil {
		t.Fatal(err)
	}
	// One run, on start: it must repair all five in batches of two.
	w := startWorker(t, pool, jobs.Config{AuditInterval: time.Hour, AuditBatch: 2, AuditRepair: true})
	eventually(t, "five findings repaired", 20*time.Second, func() bool {
		return metric(t, w, `spendcap_audit_repaired_total{backend="postgres",check="reserved"}`) == 5
	})
	var bad int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM spendcap.budgets WHERE reserved <> '{}'`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d budgets still corrupt, %v", bad, err)
	}
	if got := metric(t, w, `spendcap_audit_findings`); got != 0 {
		t.Errorf("open findings after the repair: %v", got)
	}
}

// With a Valkey, the worker audits it too and exports its findings under backend="valkey".
func TestAuditJobAuditsValkeyToo(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	rdb := testenv.Valkey(t)
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "acme/team", HardLimits: map[string]int64{"t": 10}}); err != nil {
		t.Fatal(err)
	}
	// A reservation left by a budget that is gone.
	if err := rdb.HSet(ctx, "sc:{acme}:r/gone", "r1", `{"a":{"t":1},"exp":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, pool, jobs.Config{Valkey: vk, AuditInterval: time.Hour})
	eventually(t, "the orphan exported", 20*time.Second, func() bool {
		return metric(t, w, `spendcap_audit_findings{backend="valkey",check="orphan_reservations"}`) == 1
	})
}

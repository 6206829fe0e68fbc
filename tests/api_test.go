package tests

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/pgfn"
)

// outcome is the admission outcome row of docs/semantics.md#admission (expires_at for reserve only).
type outcome = pgfn.ReserveOutcome

func nullTimes(args []any) []any {
	for i, a := range args {
		if v, ok := a.(time.Time); ok && v.IsZero() {
			args[i] = nil
		}
	}
	return args
}

func one[T any](db *pgxpool.Pool, sql string, args ...any) (T, error) {
	rows, err := db.Query(ctx, sql, nullTimes(args)...)
	if err != nil {
		var zero T
		return zero, err
	}
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByNameLax[T])
}

// nullKey turns "" into SQL null so tests can say "no key".
func nullKey(k string) *string {
	if k == "" {
		return nil
	}
	return &k
}

func reportUsage(db *pgxpool.Pool, id, deltas, key string, at time.Time) (outcome, error) {
	return one[outcome](db, `SELECT * FROM spendcap.report_usage(budget_id => $1, deltas => $2, dedup_key => $3, at => $4)`,
		id, deltas, nullKey(key), at)
}

func recordSpend(db *pgxpool.Pool, id, exec, deltas, key string, at time.Time) (outcome, error) {
	return one[outcome](db, `SELECT * FROM spendcap.record_spend(budget_id => $1, execution_id => $2, deltas => $3, idempotency_key => $4, at => $5)`,
		id, exec, deltas, nullKey(key), at)
}

func reserve(db *pgxpool.Pool, id, rid, amounts string, ttl int, key string, at time.Time) (outcome, error) {
	return one[outcome](db, `SELECT * FROM spendcap.reserve(budget_id => $1, reservation_id => $2, amounts => $3, ttl_seconds => $4, idempotency_key => $5, at => $6)`,
		id, rid, amounts, ttl, nullKey(key), at)
}

func settle(db *pgxpool.Pool, id, rid, actual string, at time.Time) (outcome, error) {
	return one[outcome](db, `SELECT * FROM spendcap.settle(budget_id => $1, reservation_id => $2, actual => $3, at => $4)`, id, rid, actual, at)
}

type resetRow struct {
	WindowSeq   int64      `db:"window_seq"`
	WindowStart time.Time  `db:"window_start"`
	NextResetAt *time.Time `db:"next_reset_at"`
}

func resetBudget(db *pgxpool.Pool, id string, at time.Time) (resetRow, error) {
	return one[resetRow](db, `SELECT * FROM spendcap.reset_budget(budget_id => $1, at => $2)`, id, at)
}

type historyRow struct {
	WindowSeq       int64            `db:"window_seq"`
	WindowStart     time.Time        `db:"window_start"`
	WindowEnd       time.Time        `db:"window_end"`
	Usage           map[string]int64 `db:"usage"`
	BreachCount     int64            `db:"breach_count"`
	SoftBreachCount int64            `db:"soft_breach_count"`
	ClosedBy        string           `db:"closed_by"`
}

func (h historyRow) String() string {
	return fmt.Sprintf("{seq %d [%s, %s) usage %v breaches %d/%d %s}", h.WindowSeq, h.WindowStart.UTC().Format(time.RFC3339),
		h.WindowEnd.UTC().Format(time.RFC3339), h.Usage, h.BreachCount, h.SoftBreachCount, h.ClosedBy)
}

func budgetHistory(db *pgxpool.Pool, id string, maxRows int, at time.Time) ([]historyRow, error) {
	rows, err := db.Query(ctx, `SELECT * FROM spendcap.budget_history(budget_id => $1, max_rows => $2, at => $3)`, id, maxRows, at)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[historyRow])
}

func requireHistory(t *testing.T, got []historyRow, err error, want ...historyRow) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history\n got %v\nwant %v", got, want)
	}
}

func rollDueWindows(db *pgxpool.Pool, maxRows int, at time.Time) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT rolled FROM spendcap.roll_due_windows(max_rows => $1, at => $2)`, maxRows, at).Scan(&n)
	return n, err
}

type purged struct {
	DedupKeys    int64 `db:"dedup_keys"`
	LedgerRows   int64 `db:"ledger_rows"`
	Reservations int64 `db:"reservations"`
	Leases       int64 `db:"leases"`
	Events       int64 `db:"events"`
}

func purgeExpired(db *pgxpool.Pool, maxRows int, at time.Time) (purged, error) {
	return one[purged](db, `SELECT * FROM spendcap.purge_expired(max_rows => $1, at => $2)`, maxRows, at)
}

func deleteBudget(db *pgxpool.Pool, id string) (bool, error) {
	var d bool
	err := db.QueryRow(ctx, `SELECT deleted FROM spendcap.delete_budget(budget_id => $1)`, id).Scan(&d)
	return d, err
}

// mustCreate creates a budget with the named arguments (see createBudget) or fails the test.
func mustCreate(t *testing.T, db *pgxpool.Pool, args ...any) created {
	t.Helper()
	c, err := createBudget(db, args...)
	if err != nil {
		t.Fatalf("create_budget: %v", err)
	}
	return c
}

// requireState checks the budget_status fields that admission changes.
func requireState(t *testing.T, db *pgxpool.Pool, id string, at time.Time, usage, reserved map[string]int64, breaches, softBreaches int64) status {
	t.Helper()
	st := mustStatus(t, db, id, &at)
	if !maps.Equal(st.Usage, usage) || !maps.Equal(st.Reserved, reserved) || st.BreachCount != breaches || st.SoftBreachCount != softBreaches {
		t.Fatalf("state: usage %v reserved %v breaches %d soft %d; want usage %v reserved %v breaches %d soft %d",
			st.Usage, st.Reserved, st.BreachCount, st.SoftBreachCount, usage, reserved, breaches, softBreaches)
	}
	return st
}

type q = map[string]int64

// at returns base + d, for readable timelines.
func after(base time.Time, d string) time.Time {
	dur, err := time.ParseDuration(strings.ReplaceAll(d, " ", ""))
	if err != nil {
		panic(err)
	}
	return base.Add(dur)
}

type created struct {
	BudgetID    string     `db:"budget_id"`
	Created     bool       `db:"created"`
	WindowStart time.Time  `db:"window_start"`
	NextResetAt *time.Time `db:"next_reset_at"`
}

// createBudget calls create_budget with the named arguments given as name, value pairs.
func createBudget(db *pgxpool.Pool, args ...any) (created, error) {
	var names []string
	var values []any
	for i := 0; i < len(args); i += 2 {
		values = append(values, args[i+1])
		names = append(names, fmt.Sprintf("%s => $%d", args[i], len(values)))
	}
	return one[created](db, `SELECT * FROM spendcap.create_budget(`+strings.Join(names, ", ")+`)`, values...)
}

func itoa(i int) string { return fmt.Sprint(i) }

// A budget created at noon on 2026-03-10 UTC.
var day0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

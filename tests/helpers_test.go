// Package tests holds spendcap's integration tests against real PostgreSQL and Valkey servers
// started by internal/testenv. Test names read like docs/semantics.md: one scenario each.
package tests

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// TestMain runs 2,000 differential sequences unless -rapid.checks says otherwise.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		_ = flag.Set("rapid.checks", "2000")
	}
	testenv.Main(m)
}

var ctx = context.Background()

// requireCode asserts that err is a Postgres error with SQLSTATE code whose message starts with arg.
func requireCode(t *testing.T, err error, code, arg string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("err = %v, want SQLSTATE %s", err, code)
	}
	if pgErr.Code != code || !strings.HasPrefix(pgErr.Message, arg) {
		t.Fatalf("err = %s %q, want %s with a message starting %q", pgErr.Code, pgErr.Message, code, arg)
	}
}

// hasCode says whether err is a Postgres error with SQLSTATE code.
func hasCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// tableCounts counts the rows of every spendcap table, to check that a failed call wrote nothing.
func tableCounts(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := db.QueryRow(ctx, `SELECT format('budgets=%s history=%s dedup=%s ledger=%s reservations=%s',
		(SELECT count(*) FROM spendcap.budgets), (SELECT count(*) FROM spendcap.budget_history),
		(SELECT count(*) FROM spendcap.dedup_keys), (SELECT count(*) FROM spendcap.spend_ledger),
		(SELECT count(*) FROM spendcap.reservations))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// status is a budget_status row, as the generated bindings read it.
type status = pgfn.BudgetStatusResult

func budgetStatus(db *pgxpool.Pool, id string, at *time.Time) (status, error) {
	rows, err := db.Query(ctx, `SELECT * FROM spendcap.budget_status(budget_id => $1, at => $2)`, id, at)
	if err != nil {
		return status{}, err
	}
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[status])
}

func mustStatus(t *testing.T, db *pgxpool.Pool, id string, at *time.Time) status {
	t.Helper()
	st, err := budgetStatus(db, id, at)
	if err != nil {
		t.Fatalf("budget_status(%s): %v", id, err)
	}
	return st
}

var roleSeq atomic.Int64

// loginRole creates a login role that is a member of the given roles (none: no spendcap role),
// dropped at the end of the test, and returns a pool on db connected as it.
func loginRole(t *testing.T, dbURL string, memberOf ...string) *pgxpool.Pool {
	t.Helper()
	name := fmt.Sprintf("login_%d_%d", time.Now().UnixNano()%1e9, roleSeq.Add(1))
	admin := testenv.PoolFor(t, dbURL)
	sql := `CREATE ROLE ` + name + ` LOGIN`
	if len(memberOf) > 0 {
		sql += ` IN ROLE ` + strings.Join(memberOf, ", ")
	}
	if _, err := admin.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	// Registered before the pool below, so it runs after the pool is closed.
	t.Cleanup(func() {
		if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return testenv.PoolFor(t, testenv.WithUser(dbURL, name))
}

func ptr[T any](v T) *T { return &v }

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

func openPostgres(t *testing.T) spendcap.Backend {
	return gobinding.NewClient(testenv.Pool(t), gobinding.Options{})
}

func openValkey(t *testing.T) spendcap.Backend {
	c, err := valkey.NewClient(context.Background(), testenv.Valkey(t), valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func codeOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	var rErr redis.Error
	if errors.As(err, &rErr) {
		code, _, _ := strings.Cut(rErr.Error(), " ")
		return code
	}
	if err != nil {
		return "error: " + err.Error()
	}
	return ""
}

// runRaw makes a raw call through SQL (pgRawQuery) and returns its rows as JSON text; arguments SQL
// cannot express are errUnsayable.
func runRaw(ctx context.Context, q querier, types map[string]map[string]string, fn, args string) (string, error) {
	query, values, err := pgRawQuery(types, fn, args)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errUnsayable, err)
	}
	rows, err := q.Query(ctx, query, values...)
	if err != nil {
		return "", err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(out, ","), err
}

// vkKey is the base key a Go client would pass for raw arguments: the policy's, else the budget's
// (b1's when the arguments name neither as a string).
// vkKeyFor is the key of fn's call: the event stream of the budget's slot group for the functions
// that read one (b1's without a budget), the policy listing index for list_quota_policies, else
// vkKey's.
func vkKeyFor(fn, args string) string {
	if fn == "list_quota_policies" {
		return "sc:ix:q" // the server's policy listing index
	}
	if fn != "events_since" && fn != "recent_events" {
		return vkKey(args)
	}
	var id struct {
		BudgetID any `json:"budget_id"`
	}
	_ = json.Unmarshal([]byte(args), &id)
	if s, ok := id.BudgetID.(string); ok && s != "" {
		return valkey.EventsKey(valkey.GroupOf(s))
	}
	return valkey.EventsKey("b1")
}

func vkKey(args string) string {
	var id struct {
		BudgetID any `json:"budget_id"`
		PolicyID any `json:"policy_id"`
	}
	_ = json.Unmarshal([]byte(args), &id)
	if s, ok := id.PolicyID.(string); ok {
		return valkey.PolicyKey(s)
	}
	if s, ok := id.BudgetID.(string); ok {
		return valkey.Key(s)
	}
	return valkey.Key("b1")
}

func sqlExec(t *testing.T, db *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// gaugesString renders gauges as the SQL tests above do: "<id> <dim> <usage>/<limit> rem=<remaining>".
func gaugesString(gs []spendcap.BudgetGauge) string {
	var out []string
	for _, g := range gs {
		out = append(out, fmt.Sprintf("%s %s %d/%s rem=%s", g.BudgetID, g.Dimension, g.Usage, orDash(g.HardLimit), orDash(g.Remaining)))
	}
	return strings.Join(out, "; ")
}

// eachBackendAs runs f on a backend of each kind, in parallel, as T: an interface of the API
// that both clients implement beyond spendcap.Backend (Lister, EventLog, ...).
func eachBackendAs[T any](t *testing.T, f func(t *testing.T, b T)) {
	for name, open := range map[string]func(*testing.T) spendcap.Backend{"postgres": openPostgres, "valkey": openValkey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, open(t).(T))
		})
	}
}

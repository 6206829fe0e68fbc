// Package tests holds spendcap's integration tests against real PostgreSQL and Valkey servers
// started by internal/testenv. Test names read like docs/semantics.md: one scenario each.
package tests

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/internal/testenv"
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

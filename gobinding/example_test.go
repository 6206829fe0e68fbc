package gobinding_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

// connect opens a pool on a fresh database migrated with `migrate up`; in a service this is
// pgxpool.New(ctx, os.Getenv("DATABASE_URL")).
func connect() *pgxpool.Pool {
	pool, err := pgxpool.New(context.Background(), testenv.ExampleDatabase())
	if err != nil {
		panic(err)
	}
	return pool
}

// A monthly budget of tokens and dollars on the calendar of New York, with a soft warning.
func ExampleClient_CreateBudget() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})

	created, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{
		BudgetID:      "team-a",
		HardLimits:    map[string]int64{"tokens": 1_000_000, "usd_micros": 50_000_000},
		SoftLimits:    map[string]int64{"tokens": 800_000},
		ResetEvery:    "1 month",
		ResetTimezone: "America/New_York",
		At:            time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(created.Created, created.WindowStart.UTC(), created.NextResetAt.UTC())
	// Output: true 2026-03-01 05:00:00 +0000 UTC 2026-04-01 04:00:00 +0000 UTC
}

// Usage reported inside the caller's transaction disappears with it when it rolls back.
func ExampleClient_WithTx() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})
	if _, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "team-a"}); err != nil {
		panic(err)
	}

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		o, err := budgets.WithTx(tx).ReportUsage(ctx, spendcap.ReportUsageParams{
			BudgetID: "team-a", Deltas: map[string]int64{"tokens": 500}})
		if err != nil {
			return err
		}
		fmt.Println("inside:", o.Kind)
		return errors.New("the business write failed") // rolls back the usage too
	})
	fmt.Println("transaction:", err)

	st, err := budgets.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "team-a"})
	if err != nil {
		panic(err)
	}
	fmt.Println("usage after rollback:", st.Usage)
	// Output:
	// inside: ok
	// transaction: the business write failed
	// usage after rollback: map[]
}

// A refused or failed call inside a transaction aborts it (Postgres answers 25P02 to every later
// statement). InSavepoint runs each call in its own savepoint, so the caller's transaction goes on:
// here an order is written even though the budget it names does not exist, and the fail-closed
// branch decides what to do within the same transaction.
func ExampleClient_InSavepoint() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (id int PRIMARY KEY, state text)`); err != nil {
		panic(err)
	}

	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders VALUES (1, 'new')`); err != nil {
			return err
		}
		_, err := budgets.InSavepoint(tx).ReportUsage(ctx, spendcap.ReportUsageParams{
			BudgetID: "no-such-team", Deltas: map[string]int64{"tokens": 500}})
		if errors.Is(err, spendcap.ErrBudgetNotFound) { // fail closed, and keep the transaction
			_, err = tx.Exec(ctx, `UPDATE orders SET state = 'refused: no budget' WHERE id = 1`)
		}
		return err
	})
	fmt.Println("transaction:", err)

	var state string
	if err := pool.QueryRow(ctx, `SELECT state FROM orders WHERE id = 1`).Scan(&state); err != nil {
		panic(err)
	}
	fmt.Println("order:", state)
	// Output:
	// transaction: <nil>
	// order: refused: no budget
}

// Two-phase spending: reserve the most a call can cost, then settle what it cost.
func ExampleClient_Reserve() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})
	if _, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{
		BudgetID: "team-a", HardLimits: map[string]int64{"tokens": 10_000}}); err != nil {
		panic(err)
	}

	held, err := budgets.Reserve(ctx, spendcap.ReserveParams{
		BudgetID: "team-a", ReservationID: "call-42", Amounts: map[string]int64{"tokens": 4_000}, TTL: 2 * time.Minute})
	if err != nil {
		panic(err)
	}
	fmt.Println("reserved:", held.Kind, held.Applied)

	st, _ := budgets.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "team-a"})
	fmt.Println("remaining while held:", st.Remaining["tokens"])

	done, err := budgets.Settle(ctx, spendcap.SettleParams{
		BudgetID: "team-a", ReservationID: "call-42", Actual: map[string]int64{"tokens": 2_750}})
	if err != nil {
		panic(err)
	}
	st, _ = budgets.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "team-a"})
	fmt.Println("settled:", done.Kind, "usage:", st.Usage["tokens"], "remaining:", st.Remaining["tokens"])
	// Output:
	// reserved: ok true
	// remaining while held: 6000
	// settled: ok usage: 2750 remaining: 7250
}

// Unknown budgets fail closed: no usage is ever created for them.
func ExampleClient_ReportUsage_budgetNotFound() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})

	_, err := budgets.ReportUsage(ctx, spendcap.ReportUsageParams{
		BudgetID: "no-such-budget", Deltas: map[string]int64{"tokens": 1}})
	if errors.Is(err, spendcap.ErrBudgetNotFound) {
		var e *spendcap.Error
		errors.As(err, &e)
		fmt.Println("refused:", e.Code, e.Message)
	}
	// Output: refused: SC001 budget_id: budget "no-such-budget" not found
}

// Limits change in place: a field that is set replaces the budget's, an empty one is left as it
// is, and the Clear fields remove one.
func ExampleClient_SetLimits() {
	ctx := context.Background()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})
	if _, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "team-a",
		HardLimits: map[string]int64{"tokens": 10_000}, SoftLimits: map[string]int64{"tokens": 8_000},
		AlertPercents: []int32{50, 90}}); err != nil {
		panic(err)
	}

	st, err := budgets.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "team-a",
		HardLimits: map[string]int64{"tokens": 20_000}, ClearSoftLimits: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(st.HardLimits, st.SoftLimits, st.AlertPercents)

	st, err = budgets.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "team-a", Mode: spendcap.ModeObserve, ClearAlertPercents: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(st.HardLimits, st.Mode, st.AlertPercents)
	// Output:
	// map[tokens:20000] map[] [50 90]
	// map[tokens:20000] observe []
}

// A Client made on a pool watches events as they are written: here the threshold event of a
// report that reaches 80% of the limit.
func ExampleClient_WatchEvents() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := connect()
	defer pool.Close()
	budgets := gobinding.NewClient(pool, gobinding.Options{})
	if _, err := budgets.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "team-a",
		HardLimits: map[string]int64{"tokens": 10_000}, AlertPercents: []int32{80}}); err != nil {
		panic(err)
	}
	go func() {
		_, _ = budgets.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "team-a", Deltas: map[string]int64{"tokens": 8_500}})
	}()

	errSeen := errors.New("seen")
	err := budgets.WatchEvents(ctx, spendcap.WatchParams{}, func(e spendcap.Event) error {
		fmt.Println(e.Kind, e.BudgetID, e.Dimension, e.Percent, e.Usage)
		return errSeen
	})
	fmt.Println(errors.Is(err, errSeen))
	// Output:
	// threshold team-a tokens 80 8500
	// true
}

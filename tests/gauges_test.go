package tests

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func gauges(t *testing.T, db *pgxpool.Pool, args string) string {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT budget_id, dimension, usage, coalesce(limit_value::text, '-'), coalesce(remaining::text, '-')
		FROM spendcap.budget_gauges(`+args+`)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, dim, limit, remaining string
		var usage int64
		if err := rows.Scan(&id, &dim, &usage, &limit, &remaining); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d/%s rem=%s", id, dim, usage, limit, remaining))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}

func TestBudgetGaugesReadTheNamedBudgetsAndTheMostUsed(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	at := `timestamptz ` + eventsDay
	for _, c := range []struct{ id, limits, usage string }{
		{"a", `{"usd": 100}`, `{"usd": 10}`},
		{"b", `{"usd": 100, "tok": 1000}`, `{"usd": 20, "tok": 900, "req": 3}`},
		{"c", `{"usd": 10}`, `{"usd": 5}`},
		{"none", `{}`, `{"usd": 99}`},
	} {
		sqlExec(t, db, `SELECT spendcap.create_budget('`+c.id+`', '`+c.limits+`', reset_every => '1 day', at => `+at+`)`)
		sqlExec(t, db, `SELECT spendcap.report_usage('`+c.id+`', '`+c.usage+`', at => `+at+`)`)
	}
	sqlExec(t, db, `SELECT spendcap.reserve('a', 'r1', '{"usd": 30}', at => `+at+`)`)
	if got, want := gauges(t, db, `'{a,none,missing}', at => `+at), "a usd 10/100 rem=60; none usd 99/- rem=-"; got != want {
		t.Errorf("named budgets:\n got %s\nwant %s", got, want)
	}
	// b used 90% of tok, c 50% of usd, a 10%: the top two are b and c, by id.
	if got, want := gauges(t, db, `top_n => 2, at => `+at), "b req 3/- rem=-; b tok 900/1000 rem=100; b usd 20/100 rem=80; c usd 5/10 rem=5"; got != want {
		t.Errorf("top 2:\n got %s\nwant %s", got, want)
	}
	// A day later every window rolled: usage 0, and nothing ranks.
	later := `timestamptz ` + eventsDay + ` + interval '1 day 1 hour'`
	if got, want := gauges(t, db, `'{c}', 2, at => `+later), "c usd 0/10 rem=10"; got != want {
		t.Errorf("after the roll:\n got %s\nwant %s", got, want)
	}
	for _, c := range []struct{ args, arg string }{
		{`NULL`, "budget_ids"},
		{`'{"bad id"}'`, "budget_ids"},
		{`(SELECT array_agg('b' || i) FROM generate_series(1, 1001) AS i)`, "budget_ids"},
		{`'{}', 101`, "top_n"},
		{`'{}', -1`, "top_n"},
	} {
		_, err := db.Exec(ctx, `SELECT * FROM spendcap.budget_gauges(`+c.args+`)`)
		requireCode(t, err, "SC002", c.arg)
	}
}

// The Go clients of both backends read the same gauges of the same budgets: the named ones
// (unknown ids skipped) and the top N by share of a hard limit, by id then dimension.
func TestBudgetGaugesAreTheSameOnBothBackends(t *testing.T) {
	t.Parallel()
	vk, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, op := range map[string]interface {
		spendcap.Budgets
		spendcap.Operator
	}{"postgres": gobinding.NewClient(testenv.Pool(t), gobinding.Options{}), "valkey": vk} {
		for _, c := range []struct {
			id            string
			limits, usage map[string]int64
		}{
			{"a", map[string]int64{"usd": 100}, map[string]int64{"usd": 10}},
			{"acme/b", map[string]int64{"usd": 100, "tok": 1000}, map[string]int64{"usd": 20, "tok": 900, "req": 3}},
			{"c", map[string]int64{"usd": 10}, map[string]int64{"usd": 5}},
			{"zero", map[string]int64{"usd": 0}, nil},
			{"none", nil, map[string]int64{"usd": 99}},
		} {
			if _, err := op.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: c.id, HardLimits: c.limits,
				ResetEvery: "1 day", At: at}); err != nil {
				t.Fatal(err)
			}
			if c.usage != nil {
				if _, err := op.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: c.id, Deltas: c.usage, At: at}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := op.Reserve(ctx, spendcap.ReserveParams{BudgetID: "a", ReservationID: "r1", Amounts: map[string]int64{"usd": 30}, At: at}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			p    spendcap.BudgetGaugesParams
			want string
		}{
			{spendcap.BudgetGaugesParams{BudgetIDs: []string{"a", "none", "missing"}, At: at}, "a usd 10/100 rem=60; none usd 99/- rem=-"},
			// acme/b used 90% of tok, c 50% of usd, a 10%: the top two are acme/b and c, by id.
			{spendcap.BudgetGaugesParams{TopN: 2, At: at}, "acme/b req 3/- rem=-; acme/b tok 900/1000 rem=100; acme/b usd 20/100 rem=80; c usd 5/10 rem=5"},
			// A hard limit of 0 ranks last.
			{spendcap.BudgetGaugesParams{TopN: 4, At: at}, "a usd 10/100 rem=60; acme/b req 3/- rem=-; acme/b tok 900/1000 rem=100; acme/b usd 20/100 rem=80; c usd 5/10 rem=5; zero usd 0/0 rem=0"},
			{spendcap.BudgetGaugesParams{BudgetIDs: []string{"c"}, TopN: 1, At: at.Add(25 * time.Hour)}, "c usd 0/10 rem=10"},
		} {
			gs, err := op.BudgetGauges(ctx, c.p)
			if err != nil {
				t.Fatalf("%s: %+v: %v", name, c.p, err)
			}
			if s := gaugesString(gs); s != c.want {
				t.Errorf("%s: %+v:\n got %s\nwant %s", name, c.p, s, c.want)
			}
		}
		for arg, p := range map[string]spendcap.BudgetGaugesParams{
			"top_n": {TopN: 101}, "budget_ids": {BudgetIDs: make([]string, 1001)}} {
			if _, err := op.BudgetGauges(ctx, p); !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), arg) {
				t.Errorf("%s: %s out of range: %v, want SC002 naming it", name, arg, err)
			}
		}
	}
}

func orDash(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

package tests

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/testenv"
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

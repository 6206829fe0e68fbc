package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/testenv"
)

// eventsOf renders every event events_since answers, one per line, without ids and times:
// "kind budget seq=N dim percent usage/limit" or, for window_closed, its window's usage and counters.
func eventsOf(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT kind, budget_id, window_seq, coalesce(dimension, '-'), coalesce(percent, 0),
		coalesce(usage, -1), coalesce(limit_value, -1), coalesce(window_usage::text, '-'), coalesce(breach_count, -1),
		coalesce(closed_by, '-') FROM spendcap.events_since(0, 10000)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind, budget, dim, wu, closedBy string
		var seq, usage, limit, breaches int64
		var percent int32
		if err := rows.Scan(&kind, &budget, &seq, &dim, &percent, &usage, &limit, &wu, &breaches, &closedBy); err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "threshold":
			out = append(out, fmt.Sprintf("threshold %s seq=%d %s %d%% %d/%d", budget, seq, dim, percent, usage, limit))
		case "hard_breach":
			out = append(out, fmt.Sprintf("hard_breach %s seq=%d %s %d/%d", budget, seq, dim, usage, limit))
		default:
			out = append(out, fmt.Sprintf("window_closed %s seq=%d %s breaches=%d by=%s", budget, seq, wu, breaches, closedBy))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func requireEvents(t *testing.T, db *pgxpool.Pool, want ...string) {
	t.Helper()
	got := eventsOf(t, db)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const eventsDay = `'2026-01-01'`

func TestARolledBackTransactionLeavesNoEvent(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	sqlExec(t, db, `SELECT spendcap.create_budget('a', '{"t": 100}', alert_percents => '{50}', at => `+eventsDay+`)`)
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT spendcap.report_usage('a', '{"t": 60}', at => '2026-01-01 01:00')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	requireEvents(t, db)
	sqlExec(t, db, `SELECT spendcap.report_usage('a', '{"t": 60}', at => '2026-01-01 01:00')`)
	requireEvents(t, db, "threshold a seq=1 t 50% 60/100")
}

// Ids are taken as events are written: an event whose transaction commits late becomes readable
// after one with a larger id, which is why readers go back over the last ids they read
// (docs/semantics.md#events).
func TestAnEventCommittedLateIsReadableAfterALargerID(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	sqlExec(t, db, `SELECT spendcap.create_budget('a', '{"t": 100}', alert_percents => '{50}', at => `+eventsDay+`)`)
	sqlExec(t, db, `SELECT spendcap.create_budget('b', '{"t": 100}', alert_percents => '{50}', at => `+eventsDay+`)`)
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT spendcap.report_usage('a', '{"t": 60}', at => '2026-01-01 01:00')`); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, db, `SELECT spendcap.report_usage('b', '{"t": 60}', at => '2026-01-01 01:00')`)
	requireEvents(t, db, "threshold b seq=1 t 50% 60/100")
	var last int64
	if err := db.QueryRow(ctx, `SELECT max(event_id) FROM spendcap.events_since()`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	requireEvents(t, db, "threshold a seq=1 t 50% 60/100", "threshold b seq=1 t 50% 60/100")
	var after int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.events_since($1)`, last).Scan(&after); err != nil || after != 0 {
		t.Fatalf("events after %d: %d %v; the late event has the smaller id", last, after, err)
	}
}

func TestEachEventIsNotifiedOnSpendcapEvents(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN spendcap_events`); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, db, `SELECT spendcap.create_budget('a', '{"t": 100}', alert_percents => '{50,100}', at => `+eventsDay+`)`)
	sqlExec(t, db, `SELECT spendcap.report_usage('a', '{"t": 100}', at => '2026-01-01 01:00')`)
	var ids []string
	for range 2 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, n.Payload)
	}
	var want []string
	if err := db.QueryRow(ctx, `SELECT array_agg(event_id::text ORDER BY event_id) FROM spendcap.events_since()`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("notified %v, events %v", ids, want)
	}
}

// The rest of the rule is conformance's (AlertPercentsAreAtMostTenAscendingPercents): these are
// arrays only SQL can pass.
func TestAlertPercentsWithANullOrInTwoDimensionsAreRefused(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, ps := range []string{`{50,NULL}`, `{{50},{80}}`} {
		_, err := db.Exec(ctx, `SELECT spendcap.create_budget('a', '{"t": 100}', alert_percents => $1::integer[])`, ps)
		requireCode(t, err, "SC002", "alert_percents")
	}
}

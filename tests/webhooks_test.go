package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/testenv"
)

func webhookRows(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	var s string
	if err := db.QueryRow(ctx, `SELECT coalesce(string_agg(url || ' ' || coalesce(kinds::text, 'all'), '; '), '')
		FROM spendcap.webhooks()`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateWebhookChecksEveryArgumentAndWritesNothingOnError(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, c := range []struct{ args, arg string }{
		{`NULL, 'secret-of-16-bytes'`, "url"},
		{`'ftp://hooks.example', 'secret-of-16-bytes'`, "url"},
		{`'https://', 'secret-of-16-bytes'`, "url"},
		{`'https://hooks example', 'secret-of-16-bytes'`, "url"},
		{`'https://hooks.example/' || repeat('a', 2048), 'secret-of-16-bytes'`, "url"},
		{`'https://hooks.example', NULL`, "secret"},
		{`'https://hooks.example', 'fifteen-bytes!!'`, "secret"},
		{`'https://hooks.example', repeat('s', 1025)`, "secret"},
		{`'https://hooks.example', 'secret-of-16-bytes', '{}'`, "kinds"},
		{`'https://hooks.example', 'secret-of-16-bytes', '{threshold,spam}'`, "kinds"},
		{`'https://hooks.example', 'secret-of-16-bytes', ARRAY['threshold', NULL]`, "kinds"},
		{`'https://hooks.example', 'secret-of-16-bytes', '{{threshold},{hard_breach}}'`, "kinds"},
	} {
		_, err := db.Exec(ctx, `SELECT spendcap.create_webhook(`+c.args+`)`)
		requireCode(t, err, "SC002", c.arg)
	}
	if got := webhookRows(t, db); got != "" {
		t.Fatalf("refused webhooks were written: %s", got)
	}
}

func TestCreatingAWebhookAgainRotatesItsSecretAndKeepsItsCreationTime(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	var first, second time.Time
	var kinds string
	if err := db.QueryRow(ctx, `SELECT created_at, coalesce(kinds::text, 'all') FROM spendcap.create_webhook('https://hooks.example/a',
		'old-secret-0123456789', '{window_closed,threshold,threshold}')`).Scan(&first, &kinds); err != nil {
		t.Fatal(err)
	}
	if kinds != "{threshold,window_closed}" {
		t.Errorf("kinds stored as %s, want sorted and without duplicates", kinds)
	}
	if err := db.QueryRow(ctx, `SELECT created_at FROM spendcap.create_webhook('https://hooks.example/a', 'new-secret-0123456789')`).Scan(&second); err != nil {
		t.Fatal(err)
	}
	if !second.Equal(first) {
		t.Errorf("created_at moved from %v to %v", first, second)
	}
	sqlExec(t, db, `SELECT spendcap.create_webhook('https://hooks.example/B', 'b-secret-0123456789', '{hard_breach}')`)
	if got := webhookRows(t, db); got != "https://hooks.example/B {hard_breach}; https://hooks.example/a all" {
		t.Errorf("webhooks() = %s", got)
	}
	var secret string
	if err := db.QueryRow(ctx, `SELECT secret FROM spendcap.webhook_secret('https://hooks.example/a')`).Scan(&secret); err != nil || secret != "new-secret-0123456789" {
		t.Errorf("secret after rotation %q, %v", secret, err)
	}
	var deleted bool
	for _, want := range []bool{true, false} {
		if err := db.QueryRow(ctx, `SELECT deleted FROM spendcap.delete_webhook('https://hooks.example/a')`).Scan(&deleted); err != nil || deleted != want {
			t.Errorf("delete_webhook = %v, %v; want %v", deleted, err, want)
		}
	}
	var gone *string
	if err := db.QueryRow(ctx, `SELECT secret FROM spendcap.webhook_secret('https://hooks.example/a')`).Scan(&gone); err != nil || gone != nil {
		t.Errorf("secret of a deleted webhook %v, %v; want null", gone, err)
	}
	_, err := db.Exec(ctx, `SELECT spendcap.delete_webhook(NULL)`)
	requireCode(t, err, "SC002", "url")
}

// fiveEvents raises five threshold events at eventsDay, one per budget.
func fiveEvents(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		sqlExec(t, db, `SELECT spendcap.create_budget('`+id+`', '{"t": 100}', alert_percents => '{50}', at => `+eventsDay+`)`)
		sqlExec(t, db, `SELECT spendcap.report_usage('`+id+`', '{"t": 50}', at => `+eventsDay+`)`)
	}
}

func dispatched(t *testing.T, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, max int) string {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT budget_id FROM spendcap.dispatch_events($1)`, max)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(ids, ",")
}

func TestDispatchEventsHandsOutEachEventOnceAcrossConcurrentTransactions(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	fiveEvents(t, db)
	tx1, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx1.Rollback(ctx) }()
	if got := dispatched(t, tx1, 2); got != "a,b" {
		t.Fatalf("first dispatch %q, want a,b", got)
	}
	// A second dispatcher skips the events the first one holds, without waiting for it.
	tx2, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dispatched(t, tx2, 10); got != "c,d,e" {
		t.Fatalf("concurrent dispatch %q, want c,d,e", got)
	}
	if err := tx2.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A dispatch that rolls back leaves its events to the next one.
	_ = tx1.Rollback(ctx)
	if got := dispatched(t, db, 10); got != "a,b" {
		t.Fatalf("after a rollback %q, want a,b", got)
	}
	if got := dispatched(t, db, 10); got != "" {
		t.Fatalf("events dispatched twice: %q", got)
	}
	// events_since still reads every event, dispatched or not.
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.events_since()`).Scan(&n); err != nil || n != 5 {
		t.Errorf("events_since after dispatch: %d, %v", n, err)
	}
	for _, max := range []string{"0", "10001", "NULL"} {
		_, err := db.Exec(ctx, `SELECT spendcap.dispatch_events(`+max+`)`)
		requireCode(t, err, "SC002", "max_rows")
	}
}

func TestPurgeExpiredDeletesDispatchedEventsAfterAWeekAndKeepsTheOthers(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	fiveEvents(t, db)
	if got := dispatched(t, db, 3); got != "a,b,c" {
		t.Fatalf("dispatch %q", got)
	}
	purge := func(at string) (events int64) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT events FROM spendcap.purge_expired(at => `+at+`)`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		return events
	}
	if n := purge(`timestamptz ` + eventsDay + ` + interval '6 days 23 hours'`); n != 0 {
		t.Errorf("purged %d events younger than a week", n)
	}
	if n := purge(`timestamptz ` + eventsDay + ` + interval '7 days'`); n != 3 {
		t.Errorf("purged %d events after a week, want the 3 dispatched", n)
	}
	var left string
	if err := db.QueryRow(ctx, `SELECT string_agg(budget_id, ',' ORDER BY event_id) FROM spendcap.events_since()`).Scan(&left); err != nil || left != "d,e" {
		t.Errorf("left %q, %v; want the undispatched d,e", left, err)
	}
}

func TestAStreamCursorOnlyMovesForward(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	var last int64
	if err := db.QueryRow(ctx, `SELECT last_id FROM spendcap.stream_cursor('sc:{acme}:events')`).Scan(&last); err != nil || last != 0 {
		t.Fatalf("a new cursor: %d, %v", last, err)
	}
	if err := db.QueryRow(ctx, `SELECT last_id FROM spendcap.advance_stream_cursor('sc:{acme}:events', 7)`).Scan(&last); err != nil || last != 7 {
		t.Fatalf("advanced to %d, %v", last, err)
	}
	_, err := db.Exec(ctx, `SELECT spendcap.advance_stream_cursor('sc:{acme}:events', 6)`)
	requireCode(t, err, "SC002", "last_id")
	_, err = db.Exec(ctx, `SELECT spendcap.stream_cursor('')`)
	requireCode(t, err, "SC002", "stream")
	if err := db.QueryRow(ctx, `SELECT last_id FROM spendcap.stream_cursor('sc:{acme}:events')`).Scan(&last); err != nil || last != 7 {
		t.Fatalf("cursor after a refused move: %d, %v", last, err)
	}
	// The cursor's lock makes a second reader wait until the first one's transaction ends.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT spendcap.stream_cursor('sc:{acme}:events')`); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(ctx, `SET lock_timeout = '200ms'; SELECT spendcap.stream_cursor('sc:{acme}:events')`)
	requireCode(t, err, "55P03", "")
}

package tests

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/internal/testenv"
)

// apiCalls calls every API function once, by the role that must be enough for it.
var apiCalls = []struct {
	role, fn, sql string
}{
	{"spendcap_reader", "budget_status", `SELECT * FROM spendcap.budget_status('b1')`},
	{"spendcap_reader", "check_usage", `SELECT * FROM spendcap.check_usage('b1', '{"t": 1}')`},
	{"spendcap_reader", "budget_history", `SELECT * FROM spendcap.budget_history('b1')`},
	{"spendcap_reader", "usage_series", `SELECT * FROM spendcap.usage_series('b1')`},
	{"spendcap_reader", "events_since", `SELECT * FROM spendcap.events_since()`},
	{"spendcap_reader", "recent_events", `SELECT * FROM spendcap.recent_events()`},
	{"spendcap_reader", "budget_reservations", `SELECT * FROM spendcap.budget_reservations('b1')`},
	{"spendcap_reader", "list_quota_policies", `SELECT * FROM spendcap.list_quota_policies()`},
	{"spendcap_reader", "budget_gauges", `SELECT * FROM spendcap.budget_gauges('{b1}', 5)`},
	{"spendcap_reader", "list_budgets", `SELECT * FROM spendcap.list_budgets(order_by => 'utilisation')`},
	{"spendcap_writer", "report_usage", `SELECT * FROM spendcap.report_usage('b1', '{"t": 1}', 'k1')`},
	{"spendcap_writer", "report_usage_batch", `SELECT * FROM spendcap.report_usage_batch('[{"budget_id": "b1", "deltas": {"t": 1}}]')`},
	{"spendcap_writer", "record_spend", `SELECT * FROM spendcap.record_spend('b1', 'e1', '{"t": 1}')`},
	{"spendcap_writer", "release_spend", `SELECT * FROM spendcap.release_spend('b1', 'e1')`},
	{"spendcap_writer", "reserve", `SELECT * FROM spendcap.reserve('b1', 'r1', '{"t": 1}')`},
	{"spendcap_writer", "settle", `SELECT * FROM spendcap.settle('b1', 'r1', '{"t": 1}')`},
	{"spendcap_writer", "cancel_reservation", `SELECT * FROM spendcap.cancel_reservation('b1', 'r2')`},
	{"spendcap_admin", "create_budget", `SELECT * FROM spendcap.create_budget('b2')`},
	{"spendcap_admin", "set_limits", `SELECT * FROM spendcap.set_limits('b1', mode => 'observe')`},
	{"spendcap_admin", "set_parent", `SELECT * FROM spendcap.set_parent('b1')`},
	{"spendcap_admin", "reset_budget", `SELECT * FROM spendcap.reset_budget('b1')`},
	{"spendcap_admin", "roll_due_windows", `SELECT * FROM spendcap.roll_due_windows()`},
	{"spendcap_admin", "purge_expired", `SELECT * FROM spendcap.purge_expired()`},
	{"spendcap_admin", "delete_budget", `SELECT * FROM spendcap.delete_budget('b2')`},
	{"spendcap_admin", "due_windows", `SELECT * FROM spendcap.due_windows()`},
	{"spendcap_admin", "create_quota_policy", `SELECT * FROM spendcap.create_quota_policy('q2', max_concurrent => 1)`},
	{"spendcap_writer", "acquire_quota", `SELECT * FROM spendcap.acquire_quota('q1', 'h1')`},
	{"spendcap_writer", "renew_quota", `SELECT * FROM spendcap.renew_quota('q1', 'h1')`},
	{"spendcap_writer", "release_quota", `SELECT * FROM spendcap.release_quota('q1', 'h1')`},
	{"spendcap_reader", "quota_status", `SELECT * FROM spendcap.quota_status('q1')`},
	{"spendcap_admin", "delete_quota_policy", `SELECT * FROM spendcap.delete_quota_policy('q2')`},
	{"spendcap_admin", "create_webhook", `SELECT * FROM spendcap.create_webhook('https://hooks.example/a', 'secret-of-16-bytes')`},
	{"spendcap_admin", "webhooks", `SELECT * FROM spendcap.webhooks()`},
	{"spendcap_admin", "webhook_secret", `SELECT * FROM spendcap.webhook_secret('https://hooks.example/a')`},
	{"spendcap_admin", "delete_webhook", `SELECT * FROM spendcap.delete_webhook('https://hooks.example/a')`},
	{"spendcap_admin", "dispatch_events", `SELECT * FROM spendcap.dispatch_events()`},
	{"spendcap_admin", "stream_cursor", `SELECT * FROM spendcap.stream_cursor('sc:{a}:events')`},
	{"spendcap_admin", "advance_stream_cursor", `SELECT * FROM spendcap.advance_stream_cursor('sc:{a}:events', 1)`},
	{"spendcap_admin", "audit", `SELECT * FROM spendcap.audit()`},
}

var below = map[string]string{"spendcap_reader": "", "spendcap_writer": "spendcap_reader", "spendcap_admin": "spendcap_writer"}

func TestEveryFunctionWorksForItsRoleAndIsDeniedBelowIt(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t)
	if _, err := testenv.PoolFor(t, url).Exec(ctx, `SELECT * FROM spendcap.create_budget('b1', '{"t": 100}', reset_every => '1 day');
		SELECT * FROM spendcap.reserve('b1', 'r2', '{"t": 1}');
		SELECT * FROM spendcap.create_quota_policy('q1', max_concurrent => 5)`); err != nil {
		t.Fatal(err)
	}
	pools := map[string]*pgxpool.Pool{"": loginRole(t, url)}
	for _, r := range []string{"spendcap_reader", "spendcap_writer", "spendcap_admin"} {
		pools[r] = loginRole(t, url, r)
	}
	var fns []string
	for _, c := range apiCalls {
		fns = append(fns, c.fn)
		if _, err := pools[c.role].Exec(ctx, c.sql); err != nil {
			t.Errorf("%s as a login role granted only %s: %v", c.fn, c.role, err)
		}
		_, err := pools[below[c.role]].Exec(ctx, c.sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as a role granted %q: err %v, want permission denied", c.fn, below[c.role], err)
		}
	}
	// Every function of the schema is in the list above.
	var all string
	if err := testenv.PoolFor(t, url).QueryRow(ctx, `SELECT string_agg(p.proname, ',' ORDER BY p.proname) FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'spendcap'`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	for _, fn := range strings.Split(all, ",") {
		found := false
		for _, f := range fns {
			found = found || f == fn
		}
		if !found {
			t.Errorf("spendcap.%s has no permission test", fn)
		}
	}
}

package jobs_test

import (
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// The purge job trims each Valkey event stream as purge_expired trims PostgreSQL's events: once
// dispatched and 7 days old, an event goes; a recent one stays.
func TestThePurgeJobTrimsValkeyEventStreams(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	vk, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-8 * 24 * time.Hour)
	for _, b := range []struct {
		id string
		at time.Time
	}{{"acme/old", old}, {"acme/new", time.Time{}}} {
		if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: b.id, HardLimits: map[string]int64{"t": 100},
			AlertPercents: []int32{50}, At: b.at}); err != nil {
			t.Fatal(err)
		}
		if _, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: b.id, Deltas: map[string]int64{"t": 60}, At: b.at}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWorker(t, pool, jobs.Config{Valkey: vk, PurgeInterval: time.Second, DispatchInterval: 50 * time.Millisecond})
	eventually(t, "the old event purged", 20*time.Second, func() bool {
		return metric(t, w, `spendcap_purged_rows_total{kind="valkey_events"}`) == 1
	})
	es, err := vk.EventsSince(ctx, spendcap.EventsSinceParams{Group: "acme"})
	if err != nil || len(es) != 1 || es[0].BudgetID != "acme/new" {
		t.Errorf("events left: %+v %v, want acme/new's alone", es, err)
	}
}

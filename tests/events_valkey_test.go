package tests

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// sc_events_since reads one slot group's stream: its key must be sc:{<group>}:events, and its
// arguments are checked as events_since checks them.
func TestValkeyEventsSinceChecksItsKeyAndArguments(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, args, want string }{
		{"sc:{a}", `{}`, "SC002 keys: "},
		{"sc:{a}:events", `{"max_rows": 0}`, "SC002 max_rows: "},
		{"sc:{a}:events", `{"after_id": -1}`, "SC002 after_id: "},
		{"sc:{a}:events", `{"after_id": 1.5}`, "SC002 after_id: "},
	} {
		err := rdb.FCallRO(ctx, "sc_events_since", []string{c.key}, c.args).Err()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %s...", c.key, c.args, err, c.want)
		}
	}
	if got, err := rdb.FCallRO(ctx, "sc_events_since", []string{"sc:{a}:events"}, `{}`).Text(); err != nil || got != "[]" {
		t.Errorf("an empty stream: %q %v", got, err)
	}
}

// sc_purge_events trims a stream from its start: the events up to the cursor it is given (those
// the worker has dispatched) that occurred 7 days or more ago go; the later ones, and any event
// past the cursor however old (not dispatched yet), stay.
func TestValkeyPurgeEventsTrimsDispatchedEventsPastTheRetention(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "acme/k", HardLimits: map[string]int64{"t": 100},
		AlertPercents: []int32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, At: day0}); err != nil {
		t.Fatal(err)
	}
	// Events 1-5 on day 0, 6-10 on day 6.
	for i, at := range []time.Time{day0, day0, day0, day0, day0, day0.Add(6 * 24 * time.Hour), day0.Add(6 * 24 * time.Hour),
		day0.Add(6 * 24 * time.Hour), day0.Add(6 * 24 * time.Hour), day0.Add(6 * 24 * time.Hour)} {
		if _, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/k", Deltas: map[string]int64{"t": 10}, At: at}); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	ids := func() string {
		es, err := vk.EventsSince(ctx, spendcap.EventsSinceParams{Group: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, strconv.FormatInt(e.EventID, 10))
		}
		return strings.Join(out, ",")
	}
	if got := ids(); got != "1,2,3,4,5,6,7,8,9,10" {
		t.Fatalf("events written: %s", got)
	}
	day8 := day0.Add(8 * 24 * time.Hour)
	for _, c := range []struct {
		through int64
		max     int
		at      time.Time
		deleted int64
		left    string
	}{
		{0, 0, day8, 0, "1,2,3,4,5,6,7,8,9,10"},                // nothing dispatched: everything stays
		{3, 0, day8, 3, "4,5,6,7,8,9,10"},                      // dispatched through 3
		{10, 1, day8, 1, "5,6,7,8,9,10"},                       // at most max_rows
		{10, 0, day0.Add(7 * 24 * time.Hour), 1, "6,7,8,9,10"}, // 7 days to the millisecond go
		{10, 0, day8, 0, "6,7,8,9,10"},                         // day 6 is within the retention
		{10, 0, day8.Add(7 * 24 * time.Hour), 5, ""},
	} {
		n, err := vk.PurgeEvents(ctx, valkey.PurgeEventsParams{Group: "acme", ThroughID: c.through, MaxRows: c.max, At: c.at})
		if err != nil || n != c.deleted {
			t.Errorf("through %d at %s: deleted %d, %v; want %d", c.through, c.at, n, err, c.deleted)
		}
		if got := ids(); got != c.left {
			t.Errorf("through %d at %s: left %q, want %q", c.through, c.at, got, c.left)
		}
	}
	// New events go on from the last id: the stream's sequence survives its trimming.
	if _, err := vk.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "acme/k2", HardLimits: map[string]int64{"t": 100},
		AlertPercents: []int32{10}, At: day8}); err != nil {
		t.Fatal(err)
	}
	if _, err := vk.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/k2", Deltas: map[string]int64{"t": 10}, At: day8}); err != nil {
		t.Fatal(err)
	}
	if got := ids(); got != "11" {
		t.Errorf("after the stream was emptied, a new event: %q, want id 11", got)
	}
	for _, c := range []struct{ args, want string }{
		{`{}`, "SC002 through_id: "},
		{`{"through_id": -1}`, "SC002 through_id: "},
		{`{"through_id": 1, "max_rows": 0}`, "SC002 max_rows: "},
		{`{"through_id": 1, "max_rows": 100001}`, "SC002 max_rows: "},
	} {
		err := rdb.FCall(ctx, "sc_purge_events", []string{"sc:{acme}:events"}, c.args).Err()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s...", c.args, err, c.want)
		}
	}
	if err := rdb.FCall(ctx, "sc_purge_events", []string{"sc:{acme}"}, `{"through_id": 1}`).Err(); err == nil || !strings.HasPrefix(err.Error(), "SC002 keys: ") {
		t.Errorf("a budget's key: %v", err)
	}
}

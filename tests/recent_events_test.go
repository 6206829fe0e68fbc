package tests

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

type eventLogBackend interface {
	spendcap.Backend
	spendcap.EventLog
}

var recentT0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// recentFixture writes, in this order, in slot group "acme": a threshold of acme/a at 50%, a
// threshold of acme/b at 50%, acme/a's hard breach, and acme/a's window closed by a reset.
func recentFixture(t *testing.T, b eventLogBackend) {
	t.Helper()
	for _, id := range []string{"acme/a", "acme/b"} {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"usd": 100},
			AlertPercents: []int32{50}, ResetEvery: "1 day", At: recentT0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		id string
		n  int64
	}{{"acme/a", 60}, {"acme/b", 50}, {"acme/a", 60}} {
		if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: r.id, Deltas: map[string]int64{"usd": r.n}, At: recentT0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "acme/a", At: recentT0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

// recent renders a page of events: "budget kind" each, newest first.
func recent(t *testing.T, b spendcap.EventLog, p spendcap.RecentEventsParams) (string, []spendcap.Event) {
	t.Helper()
	es, err := b.RecentEvents(ctx, p)
	if err != nil {
		t.Fatalf("RecentEvents(%+v): %v", p, err)
	}
	var s []string
	for _, e := range es {
		s = append(s, e.BudgetID+" "+string(e.Kind))
	}
	return strings.Join(s, ", "), es
}

func TestRecentEventsAreNewestFirstFilteredByBudgetAndKind(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b eventLogBackend) {
		recentFixture(t, b)
		for _, c := range []struct {
			p    spendcap.RecentEventsParams
			want string
		}{
			{spendcap.RecentEventsParams{Group: "acme"},
				"acme/a window_closed, acme/a hard_breach, acme/b threshold, acme/a threshold"},
			{spendcap.RecentEventsParams{BudgetID: "acme/a"}, "acme/a window_closed, acme/a hard_breach, acme/a threshold"},
			{spendcap.RecentEventsParams{Group: "acme", Kind: spendcap.EventThreshold}, "acme/b threshold, acme/a threshold"},
			{spendcap.RecentEventsParams{BudgetID: "acme/b", Kind: spendcap.EventHardBreach}, ""},
			{spendcap.RecentEventsParams{BudgetID: "acme/none"}, ""},
		} {
			if got, _ := recent(t, b, c.p); got != c.want {
				t.Errorf("%+v:\n got %s\nwant %s", c.p, got, c.want)
			}
		}
		// The events are those EventsSince reads, field for field.
		_, es := recent(t, b, spendcap.RecentEventsParams{Group: "acme"})
		src := b.(spendcap.EventSource)
		in, err := src.EventsSince(ctx, spendcap.EventsSinceParams{Group: "acme"})
		if err != nil || len(in) != len(es) {
			t.Fatalf("EventsSince: %d events, %v", len(in), err)
		}
		for i := range es {
			if a, b := fmt.Sprintf("%+v", es[i]), fmt.Sprintf("%+v", in[len(in)-1-i]); a != b {
				t.Errorf("recent event %d:\n got %s\nwant %s", i, a, b)
			}
		}
	})
}

func TestRecentEventsPageBeforeTheLastIDRead(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b eventLogBackend) {
		recentFixture(t, b)
		var pages []string
		before := int64(0)
		for range 3 {
			got, es := recent(t, b, spendcap.RecentEventsParams{Group: "acme", BeforeID: before, MaxRows: 2})
			pages = append(pages, got)
			if len(es) == 0 {
				break
			}
			before = es[len(es)-1].EventID
		}
		want := "acme/a window_closed, acme/a hard_breach | acme/b threshold, acme/a threshold | "
		if got := strings.Join(pages, " | "); got != want {
			t.Errorf("pages:\n got %s\nwant %s", got, want)
		}
	})
}

// A filter that keeps few events reads far back: Valkey examines 1000 entries per call, and the
// client calls again until the page is full or the stream read.
func TestRecentEventsFindOldEventsBehindManyOthers(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b eventLogBackend) {
		recentFixture(t, b)
		for i := range 1200 {
			// A window closes with an event when it had usage.
			at := recentT0.Add(time.Duration(i+2) * time.Minute)
			if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/a", Deltas: map[string]int64{"usd": 1}, At: at}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "acme/a", At: at}); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := recent(t, b, spendcap.RecentEventsParams{BudgetID: "acme/b"}); got != "acme/b threshold" {
			t.Errorf("acme/b's events: %q", got)
		}
		if got, es := recent(t, b, spendcap.RecentEventsParams{Group: "acme", Kind: spendcap.EventThreshold, MaxRows: 1000}); got != "acme/b threshold, acme/a threshold" {
			t.Errorf("thresholds: %q (%d)", got, len(es))
		}
		if _, es := recent(t, b, spendcap.RecentEventsParams{Group: "acme", MaxRows: 1000}); len(es) != 1000 {
			t.Errorf("a page of 1000 holds %d events", len(es))
		}
		if _, es := recent(t, b, spendcap.RecentEventsParams{Group: "acme"}); len(es) != 50 {
			t.Errorf("a default page holds %d events, want 50", len(es))
		}
	})
}

func TestRecentEventsRefuseBadArgumentsNamingThem(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b eventLogBackend) {
		for _, c := range []struct {
			p   spendcap.RecentEventsParams
			arg string
		}{
			{spendcap.RecentEventsParams{Group: "acme", Kind: "spent"}, "kind"},
			{spendcap.RecentEventsParams{Group: "acme", BeforeID: -1}, "before_id"},
			{spendcap.RecentEventsParams{Group: "acme", MaxRows: 1001}, "max_rows"},
			{spendcap.RecentEventsParams{Group: "acme", MaxRows: -1}, "max_rows"},
		} {
			_, err := b.RecentEvents(ctx, c.p)
			if !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), c.arg) {
				t.Errorf("%+v: %v, want SC002 naming %s", c.p, err, c.arg)
			}
		}
	})
}

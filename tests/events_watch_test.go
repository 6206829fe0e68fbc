package tests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// watched runs w.WatchEvents in the background and collects "budget percent" per event handled.
type watched struct {
	mu     sync.Mutex
	got    []string
	ids    []int64
	cancel context.CancelFunc
	done   chan error
}

func watch(t *testing.T, w spendcap.EventWatcher, p spendcap.WatchParams) *watched {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	r := &watched{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- w.WatchEvents(wctx, p, func(e spendcap.Event) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.got = append(r.got, fmt.Sprintf("%s %d", e.BudgetID, e.Percent))
			r.ids = append(r.ids, e.EventID)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchEvents after its context ended: %v, want context.Canceled", err)
		}
	})
	return r
}

// await waits until the events handled are want, in that order, and then a moment more to see
// that nothing else comes.
func (r *watched) await(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := strings.Join(r.got, ", ")
		r.mu.Unlock()
		if got == strings.Join(want, ", ") {
			time.Sleep(300 * time.Millisecond)
			r.mu.Lock()
			again := strings.Join(r.got, ", ")
			r.mu.Unlock()
			if again != got {
				t.Fatalf("handled more than expected: %s", again)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled\n got: %s\nwant: %s", got, strings.Join(want, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func crossHalf(t *testing.T, b spendcap.Budgets, id string) {
	t.Helper()
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"t": 100},
		AlertPercents: []int32{50}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 50}}); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresWatcherHandsOutLateCommitsAndSkipsRollbacks(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	c := gobinding.NewClient(db, gobinding.Options{})
	crossHalf(t, c, "before")
	// A poll interval far longer than the test: only notifications wake the watcher.
	w := watch(t, gobinding.NewClient(db, gobinding.Options{}), spendcap.WatchParams{PollInterval: time.Hour})
	w.await(t, "before 50")
	for _, id := range []string{"late", "early", "undone"} {
		if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"t": 100},
			AlertPercents: []int32{50}}); err != nil {
			t.Fatal(err)
		}
	}
	late, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = late.Rollback(ctx) }()
	undone, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		b  *gobinding.Client
		id string
	}{{c.WithTx(late), "late"}, {c.WithTx(undone), "undone"}, {c, "early"}} {
		if _, err := x.b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: x.id, Deltas: map[string]int64{"t": 60}}); err != nil {
			t.Fatal(err)
		}
	}
	// "early" commits with the largest id; "late" commits after it with a smaller one.
	w.await(t, "before 50", "early 50")
	_ = undone.Rollback(ctx)
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.await(t, "before 50", "early 50", "late 50")
	// A watcher that starts from the last id it handled gets nothing again.
	w.mu.Lock()
	last := w.ids[1]
	w.mu.Unlock()
	again := watch(t, gobinding.NewClient(db, gobinding.Options{}), spendcap.WatchParams{AfterID: last, PollInterval: 50 * time.Millisecond})
	crossHalf(t, c, "next")
	again.await(t, "next 50")
}

func TestValkeyWatcherHandsOutItsGroupsEventsInOrder(t *testing.T) {
	t.Parallel()
	vk, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := vk.WatchEvents(ctx, spendcap.WatchParams{}, nil); err == nil {
		t.Error("WatchEvents without a group: no error")
	}
	crossHalf(t, vk, "acme/before")
	w := watch(t, vk, spendcap.WatchParams{Group: "acme", PollInterval: time.Hour})
	w.await(t, "acme/before 50")
	crossHalf(t, vk, "other/key")
	crossHalf(t, vk, "acme/a")
	crossHalf(t, vk, "acme/b")
	w.await(t, "acme/before 50", "acme/a 50", "acme/b 50")
	again := watch(t, vk, spendcap.WatchParams{Group: "acme", AfterID: 2, PollInterval: time.Hour})
	again.await(t, "acme/b 50")
}

package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
)

// Live feeds share one watcher: however many events pages are open, the console holds one
// connection of the pool for them (LISTEN), and none once they are closed. Each feed gets every
// new event once, and a feed that asks from an earlier id first gets what it missed.
func TestConsoleLiveFeedsShareOneConnection(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	b := gobinding.NewClient(pool, gobinding.Options{})
	h, err := console.NewHandler(console.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "k", HardLimits: map[string]int64{"usd": 100}, AlertPercents: []int32{10, 20, 30}}); err != nil {
		t.Fatal(err)
	}
	report := func() {
		t.Helper()
		// Bounded: feeds that held a connection each would leave none for the call.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := b.ReportUsage(rctx, spendcap.ReportUsageParams{BudgetID: "k", Deltas: map[string]int64{"usd": 10}}); err != nil {
			t.Fatal(err)
		}
	}
	report() // event 1
	const feeds = 5
	var closers []io.Closer
	defer func() { // before the server closes, which waits for the feeds to end
		for _, c := range closers {
			c.Close()
		}
	}()
	lines := make([]chan string, feeds)
	for i := range feeds {
		// The first four start after event 1; the last from the start, so it first gets event 1.
		after := "%3A1"
		if i == feeds-1 {
			after = "%3A0"
		}
		res, err := http.Get(srv.URL + "/events/stream?after=" + after)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("feed %d: %v %v", i, res, err)
		}
		lines[i] = make(chan string, 100)
		go func() {
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
					lines[i] <- id
				}
			}
			close(lines[i])
		}()
		closers = append(closers, res.Body)
	}
	report() // event 2
	report() // event 3
	for i := range feeds {
		want := ":2 :3"
		if i == feeds-1 {
			want = ":1 :2 :3"
		}
		var got []string
		for len(got) < len(strings.Fields(want)) {
			select {
			case id := <-lines[i]:
				got = append(got, id)
			case <-time.After(10 * time.Second):
				t.Fatalf("feed %d got %q, want %q", i, got, want)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("feed %d got %q, want %q", i, got, want)
		}
	}
	// Every feed waits: only the watcher's LISTEN connection is held (once a read it made after a
	// notification is done).
	for deadline := time.Now().Add(3 * time.Second); pool.Stat().AcquiredConns() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d feeds hold %d connections, want 1", feeds, pool.Stat().AcquiredConns())
			break
		}
	}
	for _, c := range closers {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for pool.Stat().AcquiredConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the feeds closed, %d connections are still held", pool.Stat().AcquiredConns())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A filtered events page's live feed starts after the newest event of all, not the newest that
// matches: the watcher never reads back through events the page had no reason to show.
func TestConsoleLiveFeedStartsAfterTheNewestEventOfAll(t *testing.T) {
	t.Parallel()
	b := gobinding.NewClient(testenv.Pool(t), gobinding.Options{})
	h, err := console.NewHandler(console.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "z"} {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"usd": 10}, AlertPercents: []int32{50}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"usd": 6}}); err != nil {
			t.Fatal(err)
		}
	}
	newest, err := b.RecentEvents(ctx, spendcap.RecentEventsParams{MaxRows: 1})
	if err != nil || len(newest) != 1 || newest[0].BudgetID != "z" {
		t.Fatalf("the newest event: %v, %v", newest, err)
	}
	want := fmt.Sprintf("after=%%3A%d", newest[0].EventID)
	for _, path := range []string{"/events", "/events?budget=a", "/events?kind=threshold"} {
		if _, body := get(t, h, path); !strings.Contains(body, want) {
			t.Errorf("%s: the feed does not start %s:\n%s", path, want, body)
		}
	}
}

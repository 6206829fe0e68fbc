package jobs_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

const secret = "whsec-0123456789abcdef"

// receiver is a webhook endpoint that verifies every request as docs/operations.md#webhooks tells
// receivers to, answers with answer(attempt) (attempt counts the posts of one event, from 1), and
// records the events it acknowledged.
type receiver struct {
	*httptest.Server
	t      *testing.T
	answer func(attempt int) int

	mu       sync.Mutex
	attempts map[string]int // Spendcap-Event -> posts
	acked    map[string]int // Spendcap-Event -> 2xx answers
	events   map[string]spendcap.Event
}

func newReceiver(t *testing.T, answer func(attempt int) int) *receiver {
	r := &receiver{t: t, answer: answer, attempts: map[string]int{}, acked: map[string]int{}, events: map[string]spendcap.Event{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if !spendcap.VerifyWebhook(secret, body, req.Header.Get(spendcap.SignatureHeader)) {
		r.t.Errorf("a delivery with a bad signature %q: %s", req.Header.Get(spendcap.SignatureHeader), body)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e spendcap.Event
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("a delivery that is not an event: %v: %s", err, body)
		return
	}
	id := req.Header.Get("Spendcap-Event")
	if want := fmt.Sprintf("%s/%d", e.Source, e.EventID); id != want {
		r.t.Errorf("Spendcap-Event %q, want %q", id, want)
	}
	r.mu.Lock()
	r.attempts[id]++
	code := r.answer(r.attempts[id])
	if code/100 == 2 {
		r.acked[id]++
		r.events[id] = e
	}
	r.mu.Unlock()
	w.WriteHeader(code)
}

// got renders the acknowledged events, sorted: "kind budget dimension percent ×acks".
func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, e := range r.events {
		out = append(out, fmt.Sprintf("%s %s %s %d ×%d", e.Kind, e.BudgetID, e.Dimension, e.Percent, r.acked[id]))
	}
	sort.Strings(out)
	return out
}

func (r *receiver) waitFor(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(timeout)
	for strings.Join(r.got(), "\n") != strings.Join(want, "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged events\n got:\n  %s\n want:\n  %s", strings.Join(r.got(), "\n  "), strings.Join(want, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func always(code int) func(int) int { return func(int) int { return code } }

// alertingBudget creates a budget of 100 tokens that alerts at 50 and 80 percent.
func alertingBudget(t *testing.T, b spendcap.Budgets, id string) {
	t.Helper()
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"tokens": 100},
		AlertPercents: []int32{50, 80}}); err != nil {
		t.Fatal(err)
	}
}

func report(t *testing.T, b spendcap.Budgets, id string, tokens int64) spendcap.Outcome {
	t.Helper()
	o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"tokens": tokens}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestWebhookGetsEverySignedEventOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	r := newReceiver(t, always(http.StatusNoContent))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL + "/hook", Secret: secret}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, pool, jobs.Config{})
	alertingBudget(t, c, "team")
	report(t, c, "team", 60)
	report(t, c, "team", 30)
	if o := report(t, c, "team", 20); o.Applied {
		t.Fatal("110 of 100 tokens admitted")
	}
	r.waitFor(t, 20*time.Second, "threshold team tokens 50 ×1", "threshold team tokens 80 ×1", "hard_breach team tokens 0 ×1")
	// Nothing more comes: each event was handed to the queue once.
	time.Sleep(1500 * time.Millisecond)
	r.waitFor(t, 0, "threshold team tokens 50 ×1", "threshold team tokens 80 ×1", "hard_breach team tokens 0 ×1")
}

func TestAReceiverThatFailsTwiceGetsTheEventOnceAcknowledged(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	r := newReceiver(t, func(attempt int) int {
		if attempt <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, pool, jobs.Config{})
	alertingBudget(t, c, "key")
	report(t, c, "key", 50)
	// Retries back off 1s then 2s.
	r.waitFor(t, 30*time.Second, "threshold key tokens 50 ×1")
	r.mu.Lock()
	attempts := r.attempts
	r.mu.Unlock()
	for id, n := range attempts {
		if n != 3 {
			t.Errorf("%s posted %d times, want 3 (two failures, one success)", id, n)
		}
	}
	eventually(t, "deliveries counted", 5*time.Second, func() bool {
		return metric(t, w, `spendcap_webhook_deliveries_total{result="failed"}`) == 2 &&
			metric(t, w, `spendcap_webhook_deliveries_total{result="delivered"}`) == 1
	})
}

func TestAWebhookGetsOnlyTheKindsItAskedFor(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	breaches := newReceiver(t, always(http.StatusOK))
	all := newReceiver(t, always(http.StatusOK))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: breaches.URL, Secret: secret, Kinds: []spendcap.EventKind{spendcap.EventHardBreach}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: all.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, pool, jobs.Config{})
	alertingBudget(t, c, "org")
	report(t, c, "org", 90)
	report(t, c, "org", 20)
	all.waitFor(t, 20*time.Second, "threshold org tokens 50 ×1", "threshold org tokens 80 ×1", "hard_breach org tokens 0 ×1")
	breaches.waitFor(t, 5*time.Second, "hard_breach org tokens 0 ×1")
}

func TestDeletingAWebhookCancelsItsQueuedDeliveries(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	r := newReceiver(t, always(http.StatusInternalServerError))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, pool, jobs.Config{})
	alertingBudget(t, c, "gone")
	report(t, c, "gone", 50)
	eventually(t, "a first failed post", 20*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.attempts) == 1
	})
	if deleted, err := c.DeleteWebhook(ctx, gobinding.DeleteWebhookParams{URL: r.URL}); err != nil || !deleted {
		t.Fatalf("delete_webhook: %v, %v", deleted, err)
	}
	eventually(t, "the delivery cancelled", 20*time.Second, func() bool {
		var state string
		_ = pool.QueryRow(ctx, `SELECT state FROM river_job WHERE kind = 'spendcap_deliver_event'`).Scan(&state)
		return state == "cancelled"
	})
}

func TestEventsBeforeAnyWebhookAreNotPosted(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	startWorker(t, pool, jobs.Config{})
	alertingBudget(t, c, "early")
	report(t, c, "early", 50)
	eventually(t, "the event dispatched", 20*time.Second, func() bool {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM spendcap.events WHERE dispatched_at IS NULL`).Scan(&n)
		return n == 0
	})
	r := newReceiver(t, always(http.StatusOK))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	report(t, c, "early", 30)
	r.waitFor(t, 20*time.Second, "threshold early tokens 80 ×1")
}

func TestTwoWorkersPostEachEventOnce(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	r := newReceiver(t, always(http.StatusOK))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret, Kinds: []spendcap.EventKind{spendcap.EventThreshold}}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, pool, jobs.Config{DispatchInterval: 20 * time.Millisecond})
	startWorker(t, pool, jobs.Config{DispatchInterval: 20 * time.Millisecond})
	var want []string
	var wg sync.WaitGroup
	for i := range 40 {
		id := fmt.Sprintf("k%02d", i)
		want = append(want, "threshold "+id+" tokens 50 ×1")
		wg.Go(func() {
			alertingBudget(t, c, id)
			report(t, c, id, 50)
		})
	}
	wg.Wait()
	r.waitFor(t, 30*time.Second, want...)
	time.Sleep(time.Second)
	r.waitFor(t, 0, want...)
}

func TestValkeyEventsArePostedToo(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	c := gobinding.NewClient(pool, gobinding.Options{})
	rdb := testenv.Valkey(t)
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, always(http.StatusOK))
	if _, err := c.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	startWorker(t, pool, jobs.Config{Valkey: vk, DispatchInterval: 50 * time.Millisecond, ValkeyScanInterval: 100 * time.Millisecond})
	alertingBudget(t, vk, "acme/team")
	report(t, vk, "acme/team", 80)
	alertingBudget(t, c, "pg")
	report(t, c, "pg", 50)
	r.waitFor(t, 20*time.Second, "threshold pg tokens 50 ×1", "threshold acme/team tokens 50 ×1", "threshold acme/team tokens 80 ×1")
	r.mu.Lock()
	for id, e := range r.events {
		want := spendcap.SourcePostgres
		if e.BudgetID != "pg" {
			want = "valkey:" + valkey.EventsKey("acme")
		}
		if e.Source != want {
			t.Errorf("%s: source %q, want %q", id, e.Source, want)
		}
	}
	r.mu.Unlock()
	// A stream that appears later is found at the next scan.
	alertingBudget(t, vk, "beta/key")
	report(t, vk, "beta/key", 100)
	r.waitFor(t, 20*time.Second, "threshold pg tokens 50 ×1", "threshold acme/team tokens 50 ×1", "threshold acme/team tokens 80 ×1",
		"threshold beta/key tokens 50 ×1", "threshold beta/key tokens 80 ×1")
}

// A Valkey slot group that had no event stream when the worker last scanned is delivered within
// seconds, not at the next scan: the library announces each new stream and the worker listens.
func TestANewValkeyEventStreamIsDeliveredBeforeTheNextScan(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	vk, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, always(http.StatusOK))
	if _, err := gobinding.NewClient(pool, gobinding.Options{}).CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: r.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, pool, jobs.Config{Valkey: vk, DispatchInterval: 50 * time.Millisecond, ValkeyScanInterval: time.Hour})
	eventually(t, "the worker listening", 10*time.Second, func() bool {
		return metric(t, w, "spendcap_valkey_streams_listening") == 1
	})
	start := time.Now()
	alertingBudget(t, vk, "fresh/key")
	report(t, vk, "fresh/key", 60)
	r.waitFor(t, 10*time.Second, "threshold fresh/key tokens 50 ×1")
	t.Logf("delivered %v after the event", time.Since(start))
}

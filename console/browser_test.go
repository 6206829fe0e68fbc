package console_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/consoledemo"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const markupID = consoledemo.MarkupID

// browser is a headless Chromium (Debian's chromium, which `make deps` installs) for one test.
func browser(t *testing.T) tab {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium on this machine: run `make deps` (it installs Debian's chromium)")
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("headless", "new"), chromedp.WindowSize(1280, 900))...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return tab{t: t, ctx: ctx}
}

// serve creates consoledemo's budgets on b and serves the console of b for the test.
func serve(t *testing.T, b console.Backend) *httptest.Server {
	t.Helper()
	return serveWith(t, console.Options{Backend: b})
}

// serveWith creates consoledemo's budgets on opts.Backend and serves the console of opts.
func serveWith(t *testing.T, opts console.Options) *httptest.Server {
	t.Helper()
	if err := consoledemo.Create(ctx, opts.Backend, time.Now()); err != nil {
		t.Fatal(err)
	}
	h, err := console.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// eachBackend runs f on a backend of each kind, in parallel (name: "postgres" or "valkey").
func eachBackend(t *testing.T, f func(t *testing.T, name string, b console.Backend)) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, name, open(t))
		})
	}
}

func backends(t *testing.T) map[string]func(t *testing.T) console.Backend {
	return map[string]func(t *testing.T) console.Backend{
		"postgres": func(t *testing.T) console.Backend { return gobinding.NewClient(testenv.Pool(t), gobinding.Options{}) },
		"valkey": func(t *testing.T) console.Backend {
			c, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true, AllowReplay: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}
}

var ctx = context.Background()

// tab drives one browser tab in a test: each step fails the test on an error.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("%s: %v", sel, err)
	}
	return s
}

func evaluate[T any](b tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// Every screen loads in a real browser on both backends and shows the figures the API returns,
// reached by following links from the overview.
func TestConsoleScreensShowTheFiguresTheAPIReturns(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		tb := browser(t)

		// The overview: the counts, and the highest utilisation first.
		tb.do(chromedp.Navigate(srv.URL + "/"))
		budgets, near, breached := tb.text("#count-budgets"), tb.text("#count-near"), tb.text("#count-breached")
		first := tb.text("table.budgets tbody tr:first-child a.id")
		all, _ := b.ListBudgets(ctx, spendcap.ListBudgetsParams{MaxRows: 1000})
		nearAPI, _ := b.ListBudgets(ctx, spendcap.ListBudgetsParams{NearLimit: true, MaxRows: 1000})
		top, _ := b.ListBudgets(ctx, spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, MaxRows: 1})
		if budgets != strconv.Itoa(len(all.Budgets)) || near != strconv.Itoa(len(nearAPI.Budgets)) || breached != "0" || first != top.Budgets[0].BudgetID {
			t.Errorf("overview: budgets %q near %q breached %q first %q; the API: %d, %d, 0, %s", budgets, near, breached, first,
				len(all.Budgets), len(nearAPI.Budgets), top.Budgets[0].BudgetID)
		}

		// Overview → Budgets (the nav link) → acme's children.
		idsJS := `[...document.querySelectorAll("table.budgets a.id")].map(a => a.textContent)`
		tb.do(click(`nav a[href="/budgets"]`), visible("form.search"))
		if got, want := strings.Join(evaluate[[]string](tb, idsJS), " "), listingIDs(all.Budgets); got != want {
			t.Errorf("budgets page: %q, want %q", got, want)
		}
		tb.do(click(`tr[data-budget="acme"] td:last-child a`), visible("p.crumbs"))
		if got, want := strings.Join(evaluate[[]string](tb, idsJS), " "), "acme/<b>bold</b>&\"q\"' acme/team"; got != want {
			t.Errorf("acme's children: %q, want %q", got, want)
		}

		// A budget page: exact figures per dimension, the window in the budget's zone, the
		// parent chain, as links.
		tb.do(chromedp.Navigate(srv.URL+"/budgets?q=acme%2Fteam%2Fkey"), click(`tr[data-budget="acme/team/key"] a.id`), visible("table.dims"))
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "acme/team/key"})
		if err != nil {
			t.Fatal(err)
		}
		usd, tokens := tb.text(`tr[data-dimension="usd"] td.usage`), tb.text(`tr[data-dimension="tokens"] td.usage`)
		reserved, crumbs := tb.text(`tr[data-dimension="usd"] td.reserved`), tb.text("p.crumbs")
		if usd != "98,765 (98.8k)" || tokens != "1,234,567 (1.2M)" || reserved != "1,000" || st.Usage["usd"] != 98_765 || st.Reserved["usd"] != 1_000 {
			t.Errorf("key's figures: usd %q tokens %q reserved %q; the API: %v %v", usd, tokens, reserved, st.Usage, st.Reserved)
		}
		if crumbs != "Parents: acme → acme/team → acme/team/key" {
			t.Errorf("parent chain: %q", crumbs)
		}
		tb.do(click(`p.crumbs a[href="/budget?id=acme%2Fteam"]`), visible("#next-reset"))
		if zone := tb.text("#next-reset"); !strings.Contains(zone, ":00:00 CE") || !strings.Contains(zone, "UTC)") {
			t.Errorf("acme/team's next reset in Europe/Paris: %q", zone)
		}
		// Its children, as links; a budget without children lists none.
		if got := strings.Join(evaluate[[]string](tb, idsJS), " "); got != "acme/team/key" {
			t.Errorf("acme/team's children: %q", got)
		}
	})
}

// The history chart has one bar per past window the API returns, each as tall as its usage.
func TestConsoleChartsOneBarPerPastWindow(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		hist, err := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: "hourly", MaxRows: 30})
		if err != nil || len(hist) < 3 {
			t.Fatalf("history: %d windows, %v", len(hist), err)
		}
		tb := browser(t)
		tb.do(chromedp.Navigate(srv.URL+"/budget?id=hourly"), visible("figure.chart"))
		usages := evaluate[[]string](tb, `[...document.querySelectorAll('figure.chart[data-dimension="req"] rect.window')].map(r => r.dataset.usage)`)
		var want []string
		for i := len(hist) - 1; i >= 0; i-- {
			want = append(want, fmt.Sprint(hist[i].Usage["req"]))
		}
		if strings.Join(usages, " ") != strings.Join(want, " ") {
			t.Errorf("bars %q, want the windows' usage oldest first %q", usages, want)
		}
	})
}

// The usage series chart has one bar per hour from the oldest bucket the API returns to the
// running one, each as tall as the hour's usage (an hour without usage is an empty bar).
func TestConsoleChartsOneBarPerHourOfTheUsageSeries(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		tb := browser(t)
		// The page and the API read the clock apart: at an hour's end they may see different
		// running hours, and then the page is read again.
		var bars, want []string
		for range 2 {
			tb.do(chromedp.Navigate(srv.URL+"/budget?id=hourly"), visible("figure.series"))
			bars = evaluate[[]string](tb, `[...document.querySelectorAll('figure.series[data-dimension="req"] rect.bucket')].map(r => r.dataset.start + "=" + r.dataset.usage)`)
			buckets, err := b.UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: "hourly"})
			if err != nil || len(buckets) < 4 {
				t.Fatalf("usage series: %d buckets, %v", len(buckets), err)
			}
			want = nil
			for s := buckets[len(buckets)-1].Start; !s.After(buckets[0].Start); s = s.Add(time.Hour) {
				var u int64
				for _, x := range buckets {
					if x.Start.Equal(s) {
						u = x.Usage["req"]
					}
				}
				want = append(want, fmt.Sprintf("%s=%d", s.UTC().Format(time.RFC3339), u))
			}
			if strings.Join(bars, " ") == strings.Join(want, " ") {
				break
			}
		}
		if strings.Join(bars, " ") != strings.Join(want, " ") {
			t.Errorf("bars %q, want every hour's usage oldest first %q", bars, want)
		}
		// The demo's hours: 40, 100 and 70 in the first three, none in the fourth, 5 in this one.
		if len(want) != 5 || !strings.HasSuffix(want[0], "=40") || !strings.HasSuffix(want[3], "=0") || !strings.HasSuffix(want[4], "=5") {
			t.Errorf("the demo's series: %q", want)
		}
		// A budget without a series says how to start one.
		tb.do(chromedp.Navigate(srv.URL+"/budget?id=acme"), visible("table.dims"))
		if got := evaluate[int](tb, `document.querySelectorAll("figure.series").length`); got != 0 || !strings.Contains(tb.text("main"), "records no usage series") {
			t.Errorf("acme has no series: %d charts", got)
		}
	})
}

// Ids are user data and may hold <, >, & and quotes (dimension names cannot): markup in them is
// shown as text and never becomes markup, in a heading, a link or a table.
func TestConsoleShowsMarkupInIdsAsText(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		tb := browser(t)
		tb.do(chromedp.Navigate(srv.URL+"/budgets?parent=acme"), click(`a.id[href^="/budget?id=acme%2F%3Cb"]`), visible("table.dims"))
		heading, dim := tb.text("h1"), tb.text("table.dims td.id")
		injected := evaluate[int](tb, `document.querySelectorAll("main b, main i").length`)
		if heading != markupID || dim != "calls" || injected != 0 {
			t.Errorf("heading %q, dimension %q, %d elements made of the id's markup", heading, dim, injected)
		}
		// Its events, on its page and on the events page (from its link).
		tb.do(click(`a[href^="/events?budget="]`), visible("#events"))
		linked := evaluate[[]string](tb, `[...document.querySelectorAll("#events tbody a.id")].map(a => a.textContent)`)
		injected = evaluate[int](tb, `document.querySelectorAll("main b, main i").length`)
		if strings.Join(linked, " ") != markupID || injected != 0 {
			t.Errorf("events of the markup id: %q, %d elements made of its markup", linked, injected)
		}
	})
}

func listingIDs(ls []spendcap.BudgetListing) string {
	ids := make([]string, len(ls))
	for i, l := range ls {
		ids[i] = l.BudgetID
	}
	return strings.Join(ids, " ")
}

// The events page shows the events the API returns, newest first, and an event written while it
// is open appears in it without a reload; the budget page shows its own.
func TestConsoleEventsAppearLiveWithoutReload(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		tb := browser(t)
		tb.do(chromedp.Navigate(srv.URL+"/"), click(`nav a[href="/events"]`), visible("#live"))
		want, err := b.RecentEvents(ctx, spendcap.RecentEventsParams{Group: "acme", MaxRows: 50})
		if err != nil || len(want) < 4 {
			t.Fatalf("acme's events: %d, %v", len(want), err)
		}
		tb.do(chromedp.Navigate(srv.URL+"/events?group=acme"), visible("#live"))
		if name == "postgres" {
			// One sequence: the group is not asked (the hourly budget's events are listed too).
			tb.do(chromedp.Navigate(srv.URL+"/events?budget=acme%2Fteam%2Fkey"), visible("#live"))
			want, err = b.RecentEvents(ctx, spendcap.RecentEventsParams{BudgetID: "acme/team/key"})
			if err != nil {
				t.Fatal(err)
			}
		}
		rowsJS := `[...document.querySelectorAll("#events tbody tr[data-event-id]")].map(r => r.dataset.eventId + " " + r.querySelector("a.id").textContent + " " + r.dataset.kind)`
		var wantRows []string
		for _, e := range want {
			wantRows = append(wantRows, fmt.Sprintf("%d %s %s", e.EventID, e.BudgetID, e.Kind))
		}
		if got := evaluate[[]string](tb, rowsJS); strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
			t.Errorf("events page:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
		}
		// Written while the page is open: it appears at the top, and the page was not loaded again.
		tb.do(chromedp.Navigate(srv.URL+"/events"), visible("#live"))
		tb.do(chromedp.Poll[chromedp.Void](`document.getElementById("live").dataset.state === "open"`))
		evaluate[bool](tb, `window.loadedOnce = true`)
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "acme/live", HardLimits: map[string]int64{"usd": 100}, AlertPercents: []int32{50}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme/live", Deltas: map[string]int64{"usd": 60}}); err != nil {
			t.Fatal(err)
		}
		tb.do(visible(`#events tbody tr:first-child a.id[href="/budget?id=acme%2Flive"]`))
		if detail, again := tb.text("#events tbody tr:first-child td:last-child"), evaluate[bool](tb, `window.loadedOnce === true`); detail != "usd reached 50% of its hard limit: 60 of 100" || !again {
			t.Errorf("live row %q, same page %v", detail, again)
		}
		// The budget's page lists its events.
		tb.do(chromedp.Navigate(srv.URL+"/budget?id=acme%2Flive"), visible("#events"))
		if got := evaluate[[]string](tb, `[...document.querySelectorAll("#events tbody tr[data-event-id]")].map(r => r.dataset.kind)`); strings.Join(got, " ") != "threshold" {
			t.Errorf("acme/live's page lists events %q", got)
		}
	})
}

// With the admin actions on, each one is confirmed on a second page and then changes the budget;
// a form without its token is refused, and with the actions off there is no form at all.
func TestConsoleAdminActionsChangeTheBudgetOnceConfirmed(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serveWith(t, console.Options{Backend: b, Admin: b.(console.Admin)})
		tb := browser(t)
		status := func() spendcap.Status {
			t.Helper()
			st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "acme/team/key"})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		page := srv.URL + "/budget?id=acme%2Fteam%2Fkey"

		// Set limits: usd's hard limit 120,000 → 130,000, and a new dimension.
		tb.do(chromedp.Navigate(page), visible("#limits-form"),
			chromedp.SetValue(chromedp.CSS(`#limits-form input[aria-label="hard limit of usd"]`), "130000"),
			chromedp.SetValue(chromedp.CSS(`#limits-form input[aria-label="new dimension"]`), "calls"),
			chromedp.SetValue(chromedp.CSS(`#limits-form input[aria-label="hard limit of the new dimension"]`), "500"),
			click(`#limits-form button`), visible("#confirm-form"))
		if after := tb.text(`#confirm-limits tr[data-dimension="usd"] td.after-hard`); after != "130,000" || status().HardLimits["usd"] != 120_000 {
			t.Errorf("confirmation shows usd after %q; the limit before confirming: %d", after, status().HardLimits["usd"])
		}
		tb.do(click(`#confirm-form button`), visible("#done"))
		if st := status(); st.HardLimits["usd"] != 130_000 || st.HardLimits["calls"] != 500 || st.HardLimits["tokens"] != 5_000_000 || st.SoftLimits["tokens"] != 4_000_000 {
			t.Errorf("after set limits: hard %v soft %v", st.HardLimits, st.SoftLimits)
		}

		// Cancel the live reservation the page lists.
		if got := tb.text(`#reservations tr[data-reservation="r1"] td:nth-child(3)`); got != "1,000 usd" {
			t.Errorf("reservation r1: %q", got)
		}
		tb.do(click(`#reservations tr[data-reservation="r1"] button`), visible("#confirm-form"), click(`#confirm-form button`), visible("#done"))
		if st := status(); st.Reserved["usd"] != 0 || tb.text("#reservations tbody") != "None." {
			t.Errorf("after cancelling r1: reserved %v, page %q", st.Reserved, tb.text("#reservations tbody"))
		}

		// Switch to observe, then reset the window.
		seq := status().WindowSeq
		tb.do(chromedp.SetValue(chromedp.CSS(`#mode-form select`), "observe"), click(`#mode-form button`), visible("#confirm-form"),
			click(`#confirm-form button`), visible("#done"))
		tb.do(click(`#reset-form button`), visible("#confirm-form"), click(`#confirm-form button`), visible("#done"))
		if st := status(); st.Mode != spendcap.ModeObserve || st.WindowSeq != seq+1 || len(st.Usage) != 0 {
			t.Errorf("after mode and reset: mode %s, window %d (was %d), usage %v", st.Mode, st.WindowSeq, seq, st.Usage)
		}

		// The form without its token: refused, nothing changed.
		tb.do(chromedp.SetValue(chromedp.CSS(`#limits-form input[aria-label="hard limit of usd"]`), "1"))
		evaluate[bool](tb, `document.querySelector('#limits-form input[name="csrf"]').remove() || true`)
		tb.do(click(`#limits-form button`), visible("p.error"))
		if msg := tb.text("p.error"); !strings.Contains(msg, "token") || status().HardLimits["usd"] != 130_000 {
			t.Errorf("without the token: %q, usd limit %d", msg, status().HardLimits["usd"])
		}

		// With the admin actions off: no form to send.
		ro := httptest.NewServer(mustHandler(t, console.Options{Backend: b}))
		t.Cleanup(ro.Close)
		tb.do(chromedp.Navigate(ro.URL+"/budget?id=acme%2Fteam%2Fkey"), visible("table.dims"))
		if n := evaluate[int](tb, `document.querySelectorAll("form.admin, form[action$='/admin/confirm']").length`); n != 0 {
			t.Errorf("a read-only console shows %d admin forms", n)
		}
	})
}

func mustHandler(t *testing.T, opts console.Options) *console.Handler {
	t.Helper()
	h, err := console.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The overview counts the events of the last 24 hours and shows the worker's jobs; the webhooks
// screen lists the endpoints (kept in PostgreSQL whichever backend the console shows), without
// their secrets or passwords.
func TestConsoleOverviewAndWebhooksShowTheWorkersSide(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		pool := testenv.Pool(t)
		pg := gobinding.NewClient(pool, gobinding.Options{})
		if _, err := pg.CreateWebhook(ctx, gobinding.CreateWebhookParams{URL: "https://ops:pa55@hooks.example/spendcap", Secret: "s3cret-s3cret-s3cret-s3cret-s3cret",
			Kinds: []spendcap.EventKind{spendcap.EventHardBreach}}); err != nil {
			t.Fatal(err)
		}
		worker, err := console.RiverWorker(pool)
		if err != nil {
			t.Fatal(err)
		}
		srv := serveWith(t, console.Options{Backend: b, Worker: worker, Webhooks: pg})
		want := 0
		groups := []string{""}
		if name == "valkey" {
			groups = []string{"acme", "hourly"}
		}
		for _, g := range groups {
			es, err := b.RecentEvents(ctx, spendcap.RecentEventsParams{Group: g, MaxRows: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if time.Since(e.OccurredAt) < 24*time.Hour {
					want++
				}
			}
		}
		tb := browser(t)
		tb.do(chromedp.Navigate(srv.URL+"/"), visible("#count-events"))
		if got, last := tb.text("#count-events"), tb.text("#last-roll"); got != strconv.Itoa(want) || last != "never" {
			t.Errorf("overview: %q events (the API: %d), last roll %q", got, want, last)
		}
		tb.do(click(`nav a[href="/webhooks"]`), visible("#hooks"))
		row := tb.text("#hooks tbody tr")
		if !strings.Contains(row, "https://ops:xxxxx@hooks.example/spendcap") || !strings.Contains(row, "hard_breach") ||
			strings.Contains(row, "pa55") || strings.Contains(evaluate[string](tb, "document.documentElement.outerHTML"), "s3cret") {
			t.Errorf("webhook row: %q", row)
		}
	})
}

// The quotas screen lists each policy's window count against its maximum and its live leases
// against its cap, as the API counts them; a policy's page names the holders.
func TestConsoleQuotasShowTheWindowTheLeasesAndTheHolders(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, name string, b console.Backend) {
		srv := serve(t, b)
		tb := browser(t)
		tb.do(chromedp.Navigate(srv.URL+"/"), click(`nav a[href="/quotas"]`), visible("#quotas"))
		page, err := b.ListQuotaPolicies(ctx, spendcap.ListQuotaPoliciesParams{})
		if err != nil || len(page.Policies) != 2 {
			t.Fatalf("the API lists %d policies, %v", len(page.Policies), err)
		}
		rpm, streams := strings.TrimSpace(tb.text(`tr[data-policy="acme/rpm"] td.window`)), strings.TrimSpace(tb.text(`tr[data-policy="acme/streams"] td.active`))
		if want := fmt.Sprintf("%d of 60 per 1m0s", page.Policies[0].InWindow); rpm != want || streams != "2 of 4" {
			t.Errorf("acme/rpm %q (want %q), acme/streams %q", rpm, want, streams)
		}
		tb.do(click(`tr[data-policy="acme/streams"] a.id`), visible("#holders"))
		if got := strings.Join(evaluate[[]string](tb, `[...document.querySelectorAll("#holders li")].map(l => l.textContent)`), " "); got != "worker-1 worker-2" {
			t.Errorf("holders: %q", got)
		}
	})
}

// Every screen is usable on a phone: at 390 pixels wide nothing makes the page scroll sideways
// (wide tables scroll within themselves), and the navigation stays on screen.
func TestConsoleScreensFitAPhone(t *testing.T) {
	t.Parallel()
	b := backends(t)["postgres"](t)
	srv := serve(t, b)
	tb := browser(t)
	tb.do(chromedp.EmulateViewport(390, 844))
	for _, path := range []string{"/", "/budgets", "/budgets?roots=1", "/budget?id=acme%2Fteam%2Fkey", "/events", "/quotas",
		"/quota?id=acme%2Fstreams", "/webhooks"} {
		tb.do(chromedp.Navigate(srv.URL+path), visible("main"))
		if wide := evaluate[int](tb, `document.documentElement.scrollWidth - window.innerWidth`); wide > 0 {
			t.Errorf("%s is %d pixels wider than a phone", path, wide)
		}
		if right := evaluate[float64](tb, `Math.max(...[...document.querySelectorAll("nav a")].map(a => a.getBoundingClientRect().right))`); right > 390 {
			t.Errorf("%s: the navigation ends at %.0f pixels", path, right)
		}
	}
}

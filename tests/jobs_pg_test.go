package tests

import (
	"sync"
	"testing"
	"time"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestRollDueWindowsRollsOnlyDueBudgetsInBatches(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		mustCreate(t, db, "budget_id", id, "reset_every", "1 hour", "at", day0)
		if _, err := reportUsage(db, id, `{"t": 1}`, "", day0); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, db, "budget_id", "later", "reset_every", "1 day", "at", day0)
	mustCreate(t, db, "budget_id", "never", "at", day0)
	at := after(day0, "5h30m")
	if n, err := rollDueWindows(db, 2, at); err != nil || n != 2 {
		t.Fatalf("first batch rolled %d, %v; want 2", n, err)
	}
	if n, err := rollDueWindows(db, 2, at); err != nil || n != 1 {
		t.Fatalf("second batch rolled %d, %v; want 1", n, err)
	}
	if n, err := rollDueWindows(db, 2, at); err != nil || n != 0 {
		t.Fatalf("third batch rolled %d, %v; want 0 (idempotent)", n, err)
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		h, err := budgetHistory(db, id, 10, at)
		requireHistory(t, h, err, historyRow{WindowSeq: 1, WindowStart: day0, WindowEnd: after(day0, "1h"), Usage: q{"t": 1}, ClosedBy: "schedule"})
		st := mustStatus(t, db, id, &at)
		if st.WindowSeq != 2 || !st.WindowStart.Equal(after(day0, "5h")) || !st.UpdatedAt.Equal(day0) {
			t.Errorf("%s after the job: seq %d start %v updated %v", id, st.WindowSeq, st.WindowStart, st.UpdatedAt)
		}
	}
	var stored int64
	if err := db.QueryRow(ctx, `SELECT window_seq FROM spendcap.budgets WHERE budget_id = 'd1'`).Scan(&stored); err != nil || stored != 2 {
		t.Errorf("stored window_seq %d (err %v): the job must write the roll", stored, err)
	}
	if st := mustStatus(t, db, "later", &at); st.WindowSeq != 1 {
		t.Errorf("a budget not due was rolled")
	}
}

func TestConcurrentRollJobsRollEachWindowOnce(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for i := 0; i < 50; i++ {
		id := "b" + itoa(i)
		mustCreate(t, db, "budget_id", id, "reset_every", "1 minute", "at", day0)
		if _, err := reportUsage(db, id, `{"t": 1}`, "", day0); err != nil {
			t.Fatal(err)
		}
	}
	at := after(day0, "10m")
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := int64(0)
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for {
				n, err := rollDueWindows(db, 7, at)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total += n
				mu.Unlock()
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	var history int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.budget_history`).Scan(&history); err != nil {
		t.Fatal(err)
	}
	if total != 50 || history != 50 {
		t.Errorf("4 workers rolled %d windows and wrote %d history rows; want 50 and 50", total, history)
	}
}

func TestRollRacingReportsLosesNoUsageAndResetsNothingTwice(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	for i := 0; i < 20; i++ {
		id := "b" + itoa(i)
		mustCreate(t, db, "budget_id", id, "reset_every", "1 hour", "at", day0)
		if _, err := reportUsage(db, id, `{"t": 1}`, "", after(day0, "59m")); err != nil {
			t.Fatal(err)
		}
	}
	at := after(day0, "1h")
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Go(func() {
			for i := 0; i < 20; i++ {
				if _, err := reportUsage(db, "b"+itoa(i), `{"t": 2}`, "", at.Add(time.Duration(r)*time.Second)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < 10; i++ {
			if _, err := rollDueWindows(db, 3, at); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if _, err := rollDueWindows(db, 100, at); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		id := "b" + itoa(i)
		st := mustStatus(t, db, id, &at)
		h, err := budgetHistory(db, id, 10, at)
		if err != nil {
			t.Fatal(err)
		}
		// Whoever rolled, window 1 holds the report before the boundary and window 2 the three after.
		if st.WindowSeq != 2 || st.Usage["t"] != 6 || len(h) != 1 || h[0].Usage["t"] != 1 {
			t.Errorf("%s: seq %d usage %v history %v; want seq 2 usage 6, window 1 with 1", id, st.WindowSeq, st.Usage, h)
		}
	}
}

func TestPurgeExpiredDeletesOnlyWhatCanNoLongerMatter(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "reset_every", "1 hour", "dedup_ttl_seconds", 60, "at", day0)
	for i, at := range []time.Time{day0, after(day0, "30s"), after(day0, "2m")} {
		if _, err := reportUsage(db, "b1", `{"t": 1}`, "k"+itoa(i), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := recordSpend(db, "b1", "old", `{"t": 1}`, "", day0); err != nil {
		t.Fatal(err)
	}
	// Expired reservations of b1 go lazily when b1 is next used; b2's stay until the purge.
	mustCreate(t, db, "budget_id", "b2", "at", day0)
	if _, err := reserve(db, "b2", "r-short", `{"t": 1}`, 60, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, "b1", "r-lazy", `{"t": 1}`, 60, "", day0); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, "b1", "r-long", `{"t": 1}`, 86400, "", day0); err != nil {
		t.Fatal(err)
	}
	at := after(day0, "1h1m")
	if _, err := recordSpend(db, "b1", "new", `{"t": 1}`, "", at); err != nil {
		t.Fatal(err)
	}
	// Quota leases that expired, and window entries older than their window; one of each stays.
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.create_quota_policy('q1', window_seconds => 600, lease_seconds => 60);
		SELECT * FROM spendcap.create_quota_policy('q2', window_seconds => 600, lease_seconds => 60);
		SELECT * FROM spendcap.acquire_quota('q1', 'old1', at => '2026-03-10 12:00Z');
		SELECT * FROM spendcap.acquire_quota('q2', 'old2', at => '2026-03-10 12:30Z');
		SELECT * FROM spendcap.acquire_quota('q2', 'live', at => '2026-03-10 13:00:30Z')`); err != nil {
		t.Fatal(err)
	}
	p, err := purgeExpired(db, 1000, at)
	if err != nil {
		t.Fatal(err)
	}
	if p != (purged{DedupKeys: 3, LedgerRows: 1, Reservations: 1, Leases: 1}) {
		t.Errorf("purged %+v, want 3 dedup keys, 1 ledger row (window 1), 1 reservation, 1 lease (old2 went lazily)", p)
	}
	var entries int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM spendcap.quota_window`).Scan(&entries); err != nil || entries != 1 {
		t.Errorf("quota window entries after purge: %d (err %v); want only the one inside its window", entries, err)
	}
	if got := tableCounts(t, db); got != "budgets=2 history=1 dedup=0 ledger=1 reservations=1" {
		t.Errorf("after purge: %s", got)
	}
	requireState(t, db, "b1", at, q{"t": 1}, q{"t": 1}, 0, 0)
	requireState(t, db, "b2", at, q{}, q{}, 0, 0)
	if p, err := purgeExpired(db, 1000, at); err != nil || p != (purged{}) {
		t.Errorf("second purge %+v, %v; want nothing", p, err)
	}
}

func TestPurgeExpiredWorksInBatches(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	mustCreate(t, db, "budget_id", "b1", "dedup_ttl_seconds", 1, "at", day0)
	for i := 0; i < 5; i++ {
		if _, err := reportUsage(db, "b1", `{"t": 1}`, "k"+itoa(i), day0); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int64{2, 2, 1, 0} {
		if p, err := purgeExpired(db, 2, after(day0, "1s")); err != nil || p.DedupKeys != want {
			t.Fatalf("purge batch: %+v, %v; want %d keys", p, err, want)
		}
	}
}

// Policies count their leases and window entries on their own row (migration 5); the purge deletes
// the rows that are over without touching those counts, and later calls still count right.
func TestQuotaCountsStayRightWhenThePurgeDeletesLeasesAndEntries(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	type acquired struct {
		Admitted bool   `db:"admitted"`
		Reason   string `db:"reason"`
		InWindow int64  `db:"in_window"`
		Active   int64  `db:"active"`
	}
	acquire := func(holder, at string) acquired {
		t.Helper()
		a, err := one[acquired](db, `SELECT admitted, reason, in_window, active FROM spendcap.acquire_quota('q', $1, at => $2::timestamptz)`, holder, at)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if _, err := db.Exec(ctx, `SELECT * FROM spendcap.create_quota_policy('q', window_seconds => 60, max_requests => 3, max_concurrent => 2, lease_seconds => 30)`); err != nil {
		t.Fatal(err)
	}
	acquire("h1", "2026-03-10 12:00:00Z")
	acquire("h2", "2026-03-10 12:00:10Z")
	if a := acquire("h3", "2026-03-10 12:00:20Z"); a != (acquired{false, "concurrency_limited", 2, 2}) {
		t.Errorf("third holder with two live leases: %+v", a)
	}
	// Both leases expire (12:00:30, 12:00:40) and both entries leave the window (12:01:00, 12:01:10).
	if _, err := purgeExpired(db, 1000, after(day0, "1m15s")); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM spendcap.quota_leases) + (SELECT count(*) FROM spendcap.quota_window)`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("rows left after the purge: %d, %v", left, err)
	}
	var released bool
	if err := db.QueryRow(ctx, `SELECT released FROM spendcap.release_quota('q', 'h1', at => '2026-03-10 12:01:16Z')`).Scan(&released); err != nil || released {
		t.Errorf("release of a purged lease: released=%v err=%v", released, err)
	}
	if a := acquire("h3", "2026-03-10 12:01:20Z"); a != (acquired{true, "ok", 1, 1}) {
		t.Errorf("first acquire after the purge: %+v, want admitted with 1 in the window and 1 active", a)
	}
	acquire("h4", "2026-03-10 12:01:21Z")
	if a := acquire("h5", "2026-03-10 12:01:22Z"); a != (acquired{false, "concurrency_limited", 2, 2}) {
		t.Errorf("third holder after the purge: %+v", a)
	}
}

package conformance

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	register("ABatchEqualsTheSameCallsOneByOne", batchEqualsSequence)
	register("ABatchWithErrorsInTheMiddleLeavesTheOtherItemsAlone", batchErrorsInTheMiddle)
	register("TheSameKeyTwiceInOneBatchReplaysAndAnotherDeltaConflicts", batchSameKeyTwice)
	register("ABudgetThatBreachesHalfwayThroughABatchRefusesTheRest", batchBreachHalfway)
	register("ALiveReservationCountsAgainstTheLimitInsideABatch", batchReservations)
	register("AnExpiredReservationIsReleasedByABatchAsByACall", batchExpiredReservation)
	register("ABatchChargesSetsAsCallsDo", batchSets)
	register("ABatchPastAWindowEndRollsAsCallsWould", batchRolls)
	register("ABatchThatIsNotOneToAThousandItemsIsRefusedWhole", batchRefusedWhole)
}

// batcher is the backend's batch call; every backend has one.
func batcher(t *testing.T, b spendcap.Backend) spendcap.BatchReporter {
	t.Helper()
	br, ok := b.(spendcap.BatchReporter)
	if !ok {
		t.Fatalf("%T does not implement spendcap.BatchReporter", b)
	}
	return br
}

// Budgets of the batch scenarios exist twice: under "s." charged one call at a time, under "b."
// charged by one batch; both must end alike.
const seqPrefix, batchPrefix = "s.", "b."

// prefixed returns item with its ids under prefix.
func prefixed(prefix string, it spendcap.BatchItem) spendcap.BatchItem {
	if it.BudgetID != "" {
		it.BudgetID = prefix + it.BudgetID
	}
	var also []string
	for _, x := range it.AlsoCharge {
		also = append(also, prefix+x)
	}
	it.AlsoCharge = also
	return it
}

// resultString renders an item's result with the prefix taken out of ids.
func resultString(prefix string, o spendcap.Outcome, err error) string {
	if err != nil {
		var e *spendcap.Error
		if !errors.As(err, &e) {
			return "not a spendcap error: " + err.Error()
		}
		code := e.Code
		for c, s := range sentinels {
			if c == code && !errors.Is(err, s) {
				return "error " + code + " that is not its sentinel"
			}
		}
		// The argument the message names (the text before its first ':'), without the backend's wording.
		arg, _, _ := strings.Cut(e.Message, ":")
		return "error " + code + " " + arg
	}
	o.BreachBudgetID = strings.TrimPrefix(o.BreachBudgetID, prefix)
	return OutcomeString(o)
}

// requireBatchIsSequence creates the budgets of setup under both prefixes, admits items one call
// at a time under one and as one batch under the other, all at at, and requires the same result
// for every item and the same final state (status and history at check) of every budget of ids.
// It returns the batch's results as resultString renders them.
func requireBatchIsSequence(t *testing.T, b spendcap.Backend, setup func(prefix string), items []spendcap.BatchItem,
	at, check time.Time, ids ...string) []string {
	t.Helper()
	setup(seqPrefix)
	setup(batchPrefix)
	seq := make([]string, len(items))
	for i, it := range items {
		it = prefixed(seqPrefix, it)
		o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey,
			AlsoCharge: it.AlsoCharge, At: at})
		seq[i] = resultString(seqPrefix, o, err)
	}
	bitems := make([]spendcap.BatchItem, len(items))
	for i, it := range items {
		bitems[i] = prefixed(batchPrefix, it)
	}
	res, err := batcher(t, b).ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: bitems, At: at})
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	if len(res) != len(items) {
		t.Fatalf("batch: %d results for %d items", len(res), len(items))
	}
	got := make([]string, len(items))
	for i, r := range res {
		got[i] = resultString(batchPrefix, r.Outcome, r.Err)
		if got[i] != seq[i] {
			t.Errorf("item %d\n batch %s\n calls %s", i, got[i], seq[i])
		}
	}
	for _, id := range ids {
		s := strings.ReplaceAll(snapshot(t, b, seqPrefix+id, check), seqPrefix, "")
		g := strings.ReplaceAll(snapshot(t, b, batchPrefix+id, check), batchPrefix, "")
		if s != g {
			t.Errorf("budget %s after the batch\n %s\nafter the calls\n %s", id, g, s)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return got
}

func item(id string, deltas q, key string, also ...string) spendcap.BatchItem {
	return spendcap.BatchItem{BudgetID: id, Deltas: deltas, DedupKey: key, AlsoCharge: also}
}

func batchEqualsSequence(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100}, SoftLimits: q{"t": 50}, ResetEvery: "1 day", At: day0})
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "o", HardLimits: q{"t": 10}, Mode: spendcap.ModeObserve, ResetEvery: "1 day", At: day0})
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "n", At: day0})
	}
	at := after(day0, "1h")
	got := requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{
		item("a", q{"t": 40}, ""),
		item("n", q{"t": 1, "u": 2}, "k"),
		item("a", q{"t": 20}, ""),
		item("o", q{"t": 25}, ""),
		item("a", q{"t": 50}, ""),
		item("n", q{"t": 1, "u": 2}, "k"),
		item("a", q{"t": 40}, ""),
	}, at, at, "a", "o", "n")
	// What remains after each item: a refused one leaves the budget as it stands, a replay says
	// what its first call said, and a budget without limits has nothing to say.
	want := []string{
		OutcomeString(left(ok(dayStart, dayNext), q{"t": 60})),
		OutcomeString(left(ok(day0, nil), q{})),
		OutcomeString(left(soft(dayStart, dayNext, "t", 60, 50), q{"t": 40})),
		OutcomeString(left(hard(dayStart, dayNext, "t", 25, 10, true), q{"t": 0})),
		OutcomeString(left(hard(dayStart, dayNext, "t", 60, 100, false), q{"t": 40})),
		OutcomeString(left(replayed(ok(day0, nil)), q{})),
		OutcomeString(ok(dayStart, dayNext)),
	}
	// Alone on their budget, the breaches name it.
	want[3] = strings.Replace(want[3], `breach=""`, `breach="o"`, 1)
	want[4] = strings.Replace(want[4], `breach=""`, `breach="a"`, 1)
	want[6] = OutcomeString(left(soft(dayStart, dayNext, "t", 100, 50), q{"t": 0}))
	want[6] = strings.Replace(want[6], `breach=""`, `breach="a"`, 1)
	want[2] = strings.Replace(want[2], `breach=""`, `breach="a"`, 1)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 100}, nil, 1, 2)
	requireState(t, b, batchPrefix+"o", at, q{"t": 25}, nil, 1, 0)
}

func batchErrorsInTheMiddle(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100}, At: day0})
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "big", At: day0})
	}
	at := after(day0, "1h")
	got := requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{
		item("a", q{"t": 1}, ""),
		item("missing", q{"t": 1}, ""),                // SC001
		item("a", q{"t": -1}, ""),                     // SC002 deltas
		item("a", q{}, ""),                            // SC002 deltas
		item("a", q{"t": 1}, "bad{key}"),              // SC002 dedup_key
		item("", q{"t": 1}, ""),                       // SC002 budget_id
		item("a", q{"t": 1}, "", "missing"),           // SC001 also_charge
		item("big", q{"t": spendcap.MaxQuantity}, ""), // ok: exactly MAX
		item("big", q{"t": 1}, ""),                    // SC004
		item("a", q{"t": 2}, ""),
	}, at, at, "a", "big")
	for i, want := range map[int]string{1: "error SC001 budget_id", 2: "error SC002 deltas", 3: "error SC002 deltas",
		4: "error SC002 dedup_key", 5: "error SC002 budget_id", 6: "error SC001 also_charge", 8: "error SC004 deltas"} {
		if got[i] != want {
			t.Errorf("item %d: got %s, want %s", i, got[i], want)
		}
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 3}, nil, 0, 0)
	requireState(t, b, batchPrefix+"big", at, q{"t": spendcap.MaxQuantity}, nil, 0, 0)
}

func batchSameKeyTwice(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 10}, At: day0})
	}
	at := after(day0, "1h")
	got := requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{
		// Items that fail first do not shift the ones after them.
		item("a", q{}, "k1"),
		item("a", q{"t": -1}, "k2"),
		item("a", q{"t": 4}, "k1"),
		item("a", q{"t": 4}, "k1"), // replay
		item("a", q{"t": 5}, "k1"), // SC003
		item("a", q{"t": 9}, "k2"), // refused, and the refusal is what k2 replays
		item("a", q{"t": 9}, "k2"),
		item("a", q{"t": 4}, "k1"),
	}, at, at, "a")
	want := []string{"error SC002 deltas", "error SC002 deltas", OutcomeString(left(ok(day0, nil), q{"t": 6})),
		OutcomeString(left(replayed(ok(day0, nil)), q{"t": 6})), "error SC003 dedup_key"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d: got %s, want %s", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[6], "replayed=true") || !strings.Contains(got[6], "hard_breach applied=false") {
		t.Errorf("item 6: got %s, want the replayed refusal", got[6])
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 4}, nil, 1, 0)
}

func batchBreachHalfway(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100, "r": 3}, ResetEvery: "1 day", At: day0})
	}
	var items []spendcap.BatchItem
	for range 10 {
		items = append(items, item("a", q{"t": 30, "r": 0}, ""))
	}
	items = append(items, item("a", q{"r": 1}, ""))
	at := after(day0, "2h")
	got := requireBatchIsSequence(t, b, setup, items, at, at, "a")
	for i := 0; i < 3; i++ {
		if want := OutcomeString(left(ok(dayStart, dayNext), q{"t": 70 - 30*int64(i), "r": 3})); got[i] != want {
			t.Errorf("item %d: got %s, want %s", i, got[i], want)
		}
	}
	for i := 3; i < 10; i++ {
		if !strings.Contains(got[i], "hard_breach applied=false") {
			t.Errorf("item %d: got %s, want refused", i, got[i])
		}
	}
	if got[10] != OutcomeString(left(ok(dayStart, dayNext), q{"r": 2})) {
		t.Errorf("item 10 (another dimension): got %s, want ok", got[10])
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 90, "r": 1}, nil, 7, 0)
}

func batchReservations(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100}, ResetEvery: "1 day", At: day0})
		must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: p + "a", ReservationID: "r", Amounts: q{"t": 50}, TTL: 7200 * time.Second, At: day0}))
	}
	at := after(day0, "1h")
	// 30 fits beside the 50 reserved; 30 more would not (110 > 100), though 60 of usage alone would.
	got := requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{item("a", q{"t": 30}, ""), item("a", q{"t": 30}, "")}, at, at, "a")
	if got[0] != OutcomeString(left(ok(dayStart, dayNext), q{"t": 20})) || !strings.Contains(got[1], "hard_breach applied=false") {
		t.Errorf("got %v, want ok then a refusal", got)
	}
}

func batchExpiredReservation(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: p + "a", HardLimits: q{"t": 100}, ResetEvery: "1 day", At: day0})
		must(b.Reserve(ctx, spendcap.ReserveParams{BudgetID: p + "a", ReservationID: "r", Amounts: q{"t": 50}, TTL: 7200 * time.Second, At: day0}))
	}
	// Past its expiry (2h) the reservation holds nothing: the batch releases it as the first call
	// would, and all three items fit.
	at := after(day0, "3h")
	items := []spendcap.BatchItem{item("a", q{"t": 30}, ""), item("a", q{"t": 30}, ""), item("a", q{"t": 30}, "")}
	got := requireBatchIsSequence(t, b, setup, items, at, at, "a")
	for i, g := range got {
		if want := OutcomeString(left(ok(dayStart, dayNext), q{"t": 70 - 30*int64(i)})); g != want {
			t.Errorf("item %d: got %s, want %s", i, g, want)
		}
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 90}, q{}, 0, 0)
}

func batchSets(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		daily(t, b, p+"org", "", q{"t": 100})
		daily(t, b, p+"team", p+"org", q{"t": 60})
		daily(t, b, p+"key", p+"team", q{"t": 30})
		daily(t, b, p+"key2", p+"team", nil)
		daily(t, b, p+"tag", "", q{"t": 45})
	}
	at := after(day0, "1h")
	got := requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{
		item("key", q{"t": 20}, ""),
		item("key2", q{"t": 20}, "k"),
		item("key", q{"t": 20}, ""),           // refused by key
		item("key2", q{"t": 20}, "", "tag"),   // ok on key2, team (at its 60), org, tag
		item("key2", q{"t": 10}, "", "tag"),   // refused by team
		item("key2", q{"t": 20}, "k"),         // replays
		item("org", q{"t": 50}, ""),           // refused by org
		item("tag", q{"t": 30}, ""),           // refused by tag
		item("key", q{"t": 5}, "", "missing"), // SC001 also_charge
	}, at, at, "org", "team", "key", "key2", "tag")
	for i, want := range map[int]string{2: `breach="key"`, 3: `{ok applied=true`, 4: `breach="team"`, 6: `breach="org"`, 7: `breach="tag"`} {
		if !strings.Contains(got[i], want) {
			t.Errorf("item %d: got %s, want %s", i, got[i], want)
		}
	}
	requireLevels(t, b, at, "b.org map[t:60] rmap[] 1/0; b.team map[t:60] rmap[] 1/0; b.key map[t:20] rmap[] 1/0; b.key2 map[t:40] rmap[] 0/0; b.tag map[t:20] rmap[] 1/0",
		batchPrefix+"org", batchPrefix+"team", batchPrefix+"key", batchPrefix+"key2", batchPrefix+"tag")
}

func batchRolls(t *testing.T, b spendcap.Backend) {
	setup := func(p string) {
		daily(t, b, p+"a", "", q{"t": 100})
		daily(t, b, p+"c", "", nil)
		daily(t, b, p+"big", "", nil)
		for _, id := range []string{"a", "c", "big"} {
			must(b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: p + id, Deltas: q{"t": 7}, DedupKey: "k", At: after(day0, "1h")}))
		}
	}
	// The next day: a and c are admitted (rolled and charged); big only fails (its key is still
	// live, with other deltas: SC003), which rolls nothing.
	at := after(*dayNext, "1h")
	requireBatchIsSequence(t, b, setup, []spendcap.BatchItem{
		item("a", q{}, ""), // fails first, and must not shift the keys of the others
		item("a", q{"t": 5}, ""),
		item("big", q{"t": 8}, "k"),
		item("c", q{"t": 0}, ""),
	}, at, after(at, "1h"), "a", "c", "big")
	h, err := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: batchPrefix + "a", At: at})
	if err != nil || len(h) != 1 || h[0].Usage["t"] != 7 {
		t.Fatalf("history of a: %v %v, want the closed day with t=7", h, err)
	}
	requireState(t, b, batchPrefix+"a", at, q{"t": 5}, nil, 0, 0)
}

func batchRefusedWhole(t *testing.T, b spendcap.Backend) {
	mustCreate(t, b, spendcap.CreateBudgetParams{BudgetID: "a", At: day0})
	before := snapshot(t, b, "a", day0)
	br := batcher(t, b)
	_, err := br.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{At: day0})
	requireCode(t, err, "SC002", "items")
	many := make([]spendcap.BatchItem, spendcap.MaxBatchItems+1)
	for i := range many {
		many[i] = item("a", q{"t": 1}, "")
	}
	_, err = br.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: many, At: day0})
	requireCode(t, err, "SC002", "items")
	if after := snapshot(t, b, "a", day0); after != before {
		t.Fatalf("a refused batch wrote:\n%s\n%s", before, after)
	}
	res, err := br.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: many[:spendcap.MaxBatchItems], At: day0})
	if err != nil || len(res) != spendcap.MaxBatchItems {
		t.Fatalf("a batch of %d: %d results, %v", spendcap.MaxBatchItems, len(res), err)
	}
	requireState(t, b, "a", day0, q{"t": spendcap.MaxBatchItems}, nil, 0, 0)
}

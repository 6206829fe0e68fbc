package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/tests/conformance"
)

// drawBatch draws 1..6 report_usage items on ids.
func drawBatch(rt *rapid.T, ids []string, key func(string) string, also func() []string) []spendcap.BatchItem {
	items := make([]spendcap.BatchItem, rapid.IntRange(1, 6).Draw(rt, "batch items"))
	for i := range items {
		items[i] = spendcap.BatchItem{BudgetID: rapid.SampledFrom(ids).Draw(rt, "item budget"),
			Deltas: drawQuantities(rt, "item deltas", 0, 12), DedupKey: key("item key"), AlsoCharge: also()}
	}
	return items
}

func batchString(items []spendcap.BatchItem) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf("{%s %v %q %v}", it.BudgetID, it.Deltas, it.DedupKey, it.AlsoCharge)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// resultString is what must agree about one item's result: its outcome or its error's code and argument.
func resultString(o spendcap.Outcome, err error) string {
	if err != nil {
		return "error " + errKey(err)
	}
	return conformance.OutcomeString(o)
}

func resultsString(res []spendcap.BatchResult) string {
	parts := make([]string, len(res))
	for i, r := range res {
		parts[i] = resultString(r.Outcome, r.Err)
	}
	return strings.Join(parts, "\n")
}

// The batch half of the differential test: on each backend, budgets of one definition exist
// twice; a random program charges one copy call by call and the other in batches of the same
// items, with reservations, resets and time passing in between, and every item's result and every
// budget's status and history must agree.
func TestDifferentialBatchAgainstCallsPostgres(t *testing.T) {
	t.Parallel()
	differBatches(t, openPostgres(t))
}

func TestDifferentialBatchAgainstCallsValkey(t *testing.T) {
	t.Parallel()
	differBatches(t, openValkey(t))
}

func differBatches(t *testing.T, b spendcap.Backend) {
	br := b.(spendcap.BatchReporter)
	rapid.Check(t, func(rt *rapid.T) {
		run := fmt.Sprintf("r%d-", sequenceID.Add(1))
		seq, bat := run+"s.", run+"b."
		now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(
			time.Duration(rapid.Int64Range(0, 10*365*24*3600).Draw(rt, "start second")) * time.Second)
		names := []string{"x", "y", "team", "tag"}
		for _, name := range []string{"team", "tag", "x", "y"} {
			def := drawDefinition(rt, name, now)
			if (name == "x" || name == "y") && rapid.Bool().Draw(rt, "under team") {
				def.ParentID = "team"
			}
			for _, prefix := range []string{seq, bat} {
				p := def
				p.BudgetID = prefix + name
				if p.ParentID != "" {
					p.ParentID = prefix + p.ParentID
				}
				if _, err := b.CreateBudget(ctx, p); err != nil {
					rt.Fatalf("create %s: %v", p.BudgetID, err)
				}
			}
		}
		in := func(prefix string, ids []string) []string {
			var out []string
			for _, id := range ids {
				out = append(out, prefix+id)
			}
			return out
		}
		key := func(label string) string { return rapid.SampledFrom([]string{"", "k1", "k2"}).Draw(rt, label) }
		also := func() []string {
			return rapid.SampledFrom([][]string{nil, nil, {"tag"}, {"y"}, {"tag", "team"}, {"gone"}}).Draw(rt, "also_charge")
		}
		var log []string
		for step := rapid.IntRange(1, 12).Draw(rt, "steps"); step > 0; step-- {
			now = now.Add(rapid.SampledFrom(steps).Draw(rt, "step"))
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0: // a reservation on both copies, which may expire inside a later batch
				name := rapid.SampledFrom(names).Draw(rt, "reserve budget")
				amounts := drawQuantities(rt, "amounts", 1, 12)
				ttl := rapid.SampledFrom([]int32{1, 30, 600}).Draw(rt, "ttl")
				var r [2]string
				for i, prefix := range []string{seq, bat} {
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: prefix + name, ReservationID: "r", Amounts: amounts, TTLSeconds: ttl, At: now})
					r[i] = strings.ReplaceAll(resultString(o, err), prefix, "")
				}
				log = append(log, fmt.Sprintf("reserve %s %v ttl %d -> %s", name, amounts, ttl, r[0]))
				if r[0] != r[1] {
					rt.Fatalf("reserve differs: %s vs %s\n%s", r[0], r[1], strings.Join(log, "\n"))
				}
			case 1: // a manual reset on both copies
				name := rapid.SampledFrom(names).Draw(rt, "reset budget")
				for _, prefix := range []string{seq, bat} {
					if _, err := b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: prefix + name, At: now}); err != nil {
						rt.Fatalf("reset: %v", err)
					}
				}
				log = append(log, "reset "+name)
			default:
				items := drawBatch(rt, names, key, also)
				want := make([]string, len(items))
				batch := make([]spendcap.BatchItem, len(items))
				for i, it := range items {
					o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: seq + it.BudgetID, Deltas: it.Deltas,
						DedupKey: it.DedupKey, AlsoCharge: in(seq, it.AlsoCharge), At: now})
					want[i] = strings.ReplaceAll(resultString(o, err), seq, "")
					batch[i] = spendcap.BatchItem{BudgetID: bat + it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey, AlsoCharge: in(bat, it.AlsoCharge)}
				}
				res, err := br.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: batch, At: now})
				if err != nil {
					rt.Fatalf("batch: %v", err)
				}
				log = append(log, fmt.Sprintf("batch %s at %s", batchString(items), now.Format(time.RFC3339Nano)))
				for i, r := range res {
					if got := strings.ReplaceAll(resultString(r.Outcome, r.Err), bat, ""); got != want[i] {
						rt.Fatalf("item %d\n batch %s\n calls %s\n%s", i, got, want[i], strings.Join(log, "\n"))
					}
				}
			}
			for _, name := range names {
				var s [2]string
				for i, prefix := range []string{seq, bat} {
					st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: prefix + name, At: now})
					h, herr := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: prefix + name, At: now})
					s[i] = strings.ReplaceAll(conformance.StatusString(st)+" "+conformance.HistoryString(h)+fmt.Sprint(err, herr), prefix, "")
				}
				if s[0] != s[1] {
					rt.Fatalf("budget %s\n batches %s\n calls   %s\n%s", name, s[1], s[0], strings.Join(log, "\n"))
				}
			}
		}
	})
}

package conformance

import (
	"testing"

	"github.com/spendcap/spendcap"
)

func init() {
	register("CreateBudgetIfExistsKeepLeavesAnExistingBudgetAsItIs", ifExistsKeep)
	register("CreateBudgetIfExistsUpdateMakesItMatchAndKeepsUsageWindowAndHistory", ifExistsUpdate)
	register("CreateBudgetIfExistsUpdateMovesTheBudgetToItsNewParent", ifExistsUpdateParent)
	register("CreateBudgetIfExistsUpdateRefusesWhatSetLimitsCannotChange", ifExistsUpdateRefuses)
	register("CreateBudgetIfExistsTakesErrorKeepOrUpdate", ifExistsArgument)
}

func ifExistsKeep(t *testing.T, b spendcap.Backend) {
	def := spendcap.CreateBudgetParams{BudgetID: "k", HardLimits: q{"t": 100}, ResetEvery: "1 day", At: day0}
	mustCreate(t, b, def)
	must(b.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "k", HardLimits: q{"t": 150}, At: day0}))
	// The first definition again: an operator changed the limit, the deploy keeps it.
	def.IfExists = spendcap.IfExistsKeep
	before := snapshot(t, b, "k", day0)
	for _, p := range []spendcap.CreateBudgetParams{def, {BudgetID: "k", ResetEvery: "1 month", IfExists: spendcap.IfExistsKeep, At: day0}} {
		c, err := b.CreateBudget(ctx, p)
		if err != nil || c.Created || !c.WindowStart.Equal(dayStart) {
			t.Fatalf("keep: %+v %v", c, err)
		}
	}
	if after := snapshot(t, b, "k", day0); after != before {
		t.Fatalf("keep changed the budget:\n%s\n%s", before, after)
	}
	// Without the rule, the changed limit is a conflict.
	def.IfExists = ""
	_, err := b.CreateBudget(ctx, def)
	requireCode(t, err, "SC005", "budget_id: ")
}

func ifExistsUpdate(t *testing.T, b spendcap.Backend) {
	def := spendcap.CreateBudgetParams{BudgetID: "u", HardLimits: q{"t": 100}, ResetEvery: "1 day", At: day0}
	mustCreate(t, b, def)
	must(report(b, "u", q{"t": 30}, "", after(day0, "1m")))
	must(reset(b, "u", after(day0, "2m")))
	must(report(b, "u", q{"t": 20}, "", after(day0, "3m")))
	at := after(day0, "5m")
	upd := spendcap.CreateBudgetParams{BudgetID: "u", HardLimits: q{"t": 200, "img": 5}, SoftLimits: q{"t": 150}, ResetEvery: "1 day",
		Mode: spendcap.ModeObserve, AlertPercents: []int32{50, 90}, UsageSeries: spendcap.UsageSeriesHour, IfExists: spendcap.IfExistsUpdate, At: at}
	c, err := b.CreateBudget(ctx, upd)
	if err != nil || c.Created || !c.WindowStart.Equal(after(day0, "2m")) {
		t.Fatalf("update: %+v %v", c, err)
	}
	st := status(t, b, "u", at)
	if quantitiesString(st.HardLimits) != "{img:5 t:200}" || quantitiesString(st.SoftLimits) != "{t:150}" || st.Mode != spendcap.ModeObserve ||
		len(st.AlertPercents) != 2 || st.UsageSeries != spendcap.UsageSeriesHour || quantitiesString(st.Usage) != "{t:20}" || st.WindowSeq != 2 {
		t.Fatalf("after the update: %s alerts %v", StatusString(st), st.AlertPercents)
	}
	requireHistory(t, must(history(b, "u", 0, at)), nil, spendcap.HistoryWindow{WindowSeq: 1, WindowStart: dayStart,
		WindowEnd: after(day0, "2m"), Usage: q{"t": 30}, ClosedBy: spendcap.ClosedByManual})
	// The same definition again writes nothing (updated_at stays); fewer fields clear them.
	before := snapshot(t, b, "u", after(day0, "9m"))
	upd.At = after(day0, "9m")
	must(b.CreateBudget(ctx, upd))
	if got := snapshot(t, b, "u", after(day0, "9m")); got != before {
		t.Fatalf("an identical update wrote:\n%s\n%s", before, got)
	}
	def.IfExists, def.At = spendcap.IfExistsUpdate, after(day0, "10m")
	must(b.CreateBudget(ctx, def))
	st = status(t, b, "u", after(day0, "10m"))
	if quantitiesString(st.HardLimits) != "{t:100}" || len(st.SoftLimits) != 0 || st.Mode != spendcap.ModeEnforce ||
		st.AlertPercents != nil || st.UsageSeries != "" || quantitiesString(st.Usage) != "{t:20}" {
		t.Fatalf("back to the first definition: %s", StatusString(st))
	}
	// Limits below a soft limit are refused as set_limits refuses them, and nothing changes.
	before = snapshot(t, b, "u", after(day0, "10m"))
	_, err = b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "u", HardLimits: q{"t": 10}, SoftLimits: q{"t": 20}, ResetEvery: "1 day",
		IfExists: spendcap.IfExistsUpdate, At: after(day0, "10m")})
	requireCode(t, err, "SC002", "soft_limits: ")
	if got := snapshot(t, b, "u", after(day0, "10m")); got != before {
		t.Fatalf("a refused update wrote:\n%s\n%s", before, got)
	}
}

func ifExistsUpdateParent(t *testing.T, b spendcap.Backend) {
	daily(t, b, "org1", "", q{"t": 100})
	daily(t, b, "org2", "", q{"t": 100})
	daily(t, b, "key", "org1", nil)
	must(report(b, "key", q{"t": 10}, "", after(day0, "1m")))
	key := spendcap.CreateBudgetParams{BudgetID: "key", ParentID: "org2", ResetEvery: "1 day", IfExists: spendcap.IfExistsUpdate, At: after(day0, "2m")}
	must(b.CreateBudget(ctx, key))
	must(report(b, "key", q{"t": 5}, "", after(day0, "3m")))
	if o1, o2 := status(t, b, "org1", after(day0, "3m")), status(t, b, "org2", after(day0, "3m")); o1.Usage["t"] != 10 || o2.Usage["t"] != 5 {
		t.Fatalf("org1 %v org2 %v: the key's charges follow its new parent", o1.Usage, o2.Usage)
	}
	if st := status(t, b, "key", after(day0, "3m")); st.ParentID != "org2" || st.Usage["t"] != 15 {
		t.Fatalf("key: %s", StatusString(st))
	}
	// Without a parent: detached. A budget with children cannot move, as set_parent says.
	key.ParentID, key.At = "", after(day0, "4m")
	must(b.CreateBudget(ctx, key))
	if st := status(t, b, "key", after(day0, "4m")); st.ParentID != "" {
		t.Fatalf("key still under %q", st.ParentID)
	}
	_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "org1", ParentID: "org2", HardLimits: q{"t": 100}, ResetEvery: "1 day",
		IfExists: spendcap.IfExistsUpdate, At: after(day0, "5m")})
	if err != nil {
		t.Fatalf("org1 has no children any more: %v", err)
	}
	_, err = b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "org2", ParentID: "key", HardLimits: q{"t": 100}, ResetEvery: "1 day",
		IfExists: spendcap.IfExistsUpdate, At: after(day0, "5m")})
	requireCode(t, err, "SC002", "budget_id: ")
}

func ifExistsUpdateRefuses(t *testing.T, b spendcap.Backend) {
	def := spendcap.CreateBudgetParams{BudgetID: "r", HardLimits: q{"t": 100}, ResetEvery: "1 day", ScopeType: "team", At: day0}
	mustCreate(t, b, def)
	before := snapshot(t, b, "r", day0)
	for name, change := range map[string]func(p *spendcap.CreateBudgetParams){
		"schedule":  func(p *spendcap.CreateBudgetParams) { p.ResetEvery = "1 month" },
		"time zone": func(p *spendcap.CreateBudgetParams) { p.ResetTimezone = "Asia/Kolkata" },
		"anchor":    func(p *spendcap.CreateBudgetParams) { p.ResetAnchor = ptr(after(dayStart, "6h")) },
		"dedup ttl": func(p *spendcap.CreateBudgetParams) { p.DedupTTL = 3600e9 },
		"scope":     func(p *spendcap.CreateBudgetParams) { p.ScopeType = "org" },
	} {
		p := def
		p.IfExists, p.HardLimits = spendcap.IfExistsUpdate, q{"t": 500}
		change(&p)
		_, err := b.CreateBudget(ctx, p)
		if err == nil {
			t.Fatalf("another %s: no error", name)
		}
		requireCode(t, err, "SC005", "budget_id: ")
	}
	if got := snapshot(t, b, "r", day0); got != before {
		t.Fatalf("a refused update wrote:\n%s\n%s", before, got)
	}
}

func ifExistsArgument(t *testing.T, b spendcap.Backend) {
	for _, bad := range []spendcap.IfExists{"replace", "UPDATE", "skip"} {
		_, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "x", IfExists: bad, At: day0})
		requireCode(t, err, "SC002", "if_exists: ")
	}
	if _, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "x", At: day0}); err == nil {
		t.Fatal("a refused create_budget created the budget")
	}
	// On a new budget every rule creates it.
	for i, rule := range []spendcap.IfExists{spendcap.IfExistsError, spendcap.IfExistsKeep, spendcap.IfExistsUpdate} {
		c, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "n" + itoa(i), IfExists: rule, At: day0})
		if err != nil || !c.Created {
			t.Fatalf("%s: %+v %v", rule, c, err)
		}
	}
}

package tests

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

func init() {
	listingScenarios["OrdersByIDOrByUtilisationReservationsIncluded"] = listingOrdersByIDOrByUtilisationReservationsIncluded
	listingScenarios["PagesWithTheCursorOfTheLastRow"] = listingPagesWithTheCursorOfTheLastRow
	listingScenarios["FiltersBySearchModeParentNearnessAndBreaches"] = listingFiltersBySearchModeParentNearnessAndBreaches
	listingScenarios["RowsCarryTheWindowTheParentAndTheChildren"] = listingRowsCarryTheWindowTheParentAndTheChildren
	listingScenarios["ReadsEachBudgetAsOfTheInstantAsked"] = listingReadsEachBudgetAsOfTheInstantAsked
	listingScenarios["RefusesBadArgumentsNamingThem"] = listingRefusesBadArgumentsNamingThem
	listingScenarios["ChildrenFollowMovesAndDeletions"] = listingChildrenFollowMovesAndDeletions
}

var listingT0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

type listingBackend interface {
	spendcap.Backend
	spendcap.Lister
}

// listingFixture creates, at listingT0 with daily windows:
//
//	acme               usd 470/1000 + 30 reserved       500‰
//	acme/team-a        usd 160/200 + 30, one refusal    950‰ (near, breached)
//	acme/team-a/key-1  usd 10/50 + 30 reserved (2 h)    800‰ (near: 80%)
//
// (a charge or reservation on a budget counts on its parents too).
//
//	alerted            usd 60/100, alerts at 50%        600‰ (near: its alert)
//	beta               tok 10/10, observe               1000‰ (near)
//	free               no hard limit                    none
//	zero               usd limit 0                      1000‰ (near)
func listingFixture(t *testing.T, b listingBackend) {
	t.Helper()
	for _, c := range []spendcap.CreateBudgetParams{
		{BudgetID: "acme", HardLimits: map[string]int64{"usd": 1000}},
		{BudgetID: "acme/team-a", ParentID: "acme", HardLimits: map[string]int64{"usd": 200}},
		{BudgetID: "acme/team-a/key-1", ParentID: "acme/team-a", HardLimits: map[string]int64{"usd": 50}},
		{BudgetID: "alerted", HardLimits: map[string]int64{"usd": 100}, AlertPercents: []int32{50, 90}},
		{BudgetID: "beta", HardLimits: map[string]int64{"tok": 10}, Mode: spendcap.ModeObserve},
		{BudgetID: "free", SoftLimits: map[string]int64{"usd": 10}},
		{BudgetID: "zero", HardLimits: map[string]int64{"usd": 0}},
	} {
		c.ResetEvery, c.At = "1 day", listingT0
		if _, err := b.CreateBudget(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		id string
		d  map[string]int64
	}{
		{"acme/team-a/key-1", map[string]int64{"usd": 10}},
		{"acme/team-a", map[string]int64{"usd": 150}},
		{"acme", map[string]int64{"usd": 310}},
		{"acme/team-a", map[string]int64{"usd": 50}}, // refused: 160+50 > 200
		{"alerted", map[string]int64{"usd": 60}},
		{"beta", map[string]int64{"tok": 10}},
		{"free", map[string]int64{"usd": 5}},
	} {
		if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: r.id, Deltas: r.d, At: listingT0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "acme/team-a/key-1", ReservationID: "r1",
		Amounts: map[string]int64{"usd": 30}, TTL: 2 * time.Hour, At: listingT0}); err != nil {
		t.Fatal(err)
	}
}

// listed renders a page: "id=utilisation" per row ("-" for none), then "| next" when there is one.
func listed(t *testing.T, b spendcap.Lister, p spendcap.ListBudgetsParams) (string, spendcap.BudgetPage) {
	t.Helper()
	page, err := b.ListBudgets(ctx, p)
	if err != nil {
		t.Fatalf("%+v: %v", p, err)
	}
	var parts []string
	for _, r := range page.Budgets {
		u := "-"
		if r.UtilisationPermille != nil {
			u = fmt.Sprint(*r.UtilisationPermille)
		}
		parts = append(parts, r.BudgetID+"="+u)
	}
	s := strings.Join(parts, " ")
	if page.Next != "" {
		s += " | " + page.Next
	}
	return s, page
}

// listingScenarios are the scenarios of ListBudgets, run on each backend and, one after the
// other, on a Valkey Cluster (TestValkeyClusterListsTheBudgetsOfEverySlot).
var listingScenarios = map[string]func(t *testing.T, b listingBackend){}

func TestListBudgetsOrdersByIDOrByUtilisationReservationsIncluded(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingOrdersByIDOrByUtilisationReservationsIncluded)
}

func listingOrdersByIDOrByUtilisationReservationsIncluded(t *testing.T, b listingBackend) {
	listingFixture(t, b)
	for _, c := range []struct {
		p    spendcap.ListBudgetsParams
		want string
	}{
		{spendcap.ListBudgetsParams{}, "acme=500 acme/team-a=950 acme/team-a/key-1=800 alerted=600 beta=1000 free=- zero=1000"},
		{spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation},
			"beta=1000 zero=1000 acme/team-a=950 acme/team-a/key-1=800 alerted=600 acme=500 free=-"},
	} {
		c.p.At = listingT0
		if got, _ := listed(t, b, c.p); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.p, got, c.want)
		}
	}
}

func TestListBudgetsPagesWithTheCursorOfTheLastRow(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingPagesWithTheCursorOfTheLastRow)
}

func listingPagesWithTheCursorOfTheLastRow(t *testing.T, b listingBackend) {
	listingFixture(t, b)
	for _, c := range []struct {
		order spendcap.ListOrder
		want  []string
	}{
		{spendcap.ListByUtilisation, []string{"beta=1000 zero=1000 | 1000:zero", "acme/team-a=950 acme/team-a/key-1=800 | 800:acme/team-a/key-1",
			"alerted=600 acme=500 | 500:acme", "free=-"}},
		{spendcap.ListByID, []string{"acme=500 acme/team-a=950 acme/team-a/key-1=800 | acme/team-a/key-1",
			"alerted=600 beta=1000 free=- | free", "zero=1000"}},
	} {
		p := spendcap.ListBudgetsParams{OrderBy: c.order, MaxRows: 2, At: listingT0}
		if c.order == spendcap.ListByID {
			p.MaxRows = 3
		}
		for i, want := range c.want {
			got, page := listed(t, b, p)
			if got != want {
				t.Errorf("%s page %d:\n got %s\nwant %s", c.order, i+1, got, want)
			}
			p.After = page.Next
		}
		if p.After != "" {
			t.Errorf("%s: the last page has a Next: %q", c.order, p.After)
		}
	}
}

func TestListBudgetsFiltersBySearchModeParentNearnessAndBreaches(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingFiltersBySearchModeParentNearnessAndBreaches)
}

func listingFiltersBySearchModeParentNearnessAndBreaches(t *testing.T, b listingBackend) {
	listingFixture(t, b)
	for _, c := range []struct {
		p    spendcap.ListBudgetsParams
		want string
	}{
		{spendcap.ListBudgetsParams{IDPrefix: "acme/"}, "acme/team-a=950 acme/team-a/key-1=800"},
		{spendcap.ListBudgetsParams{IDPrefix: "acme/", After: "acme/team-a"}, "acme/team-a/key-1=800"},
		{spendcap.ListBudgetsParams{IDContains: "e"}, "acme=500 acme/team-a=950 acme/team-a/key-1=800 alerted=600 beta=1000 free=- zero=1000"},
		{spendcap.ListBudgetsParams{IDContains: "ta", OrderBy: spendcap.ListByUtilisation}, "beta=1000"},
		{spendcap.ListBudgetsParams{Mode: spendcap.ModeObserve}, "beta=1000"},
		{spendcap.ListBudgetsParams{ParentID: "acme"}, "acme/team-a=950"},
		{spendcap.ListBudgetsParams{RootsOnly: true}, "acme=500 alerted=600 beta=1000 free=- zero=1000"},
		{spendcap.ListBudgetsParams{NearLimit: true, OrderBy: spendcap.ListByUtilisation},
			"beta=1000 zero=1000 acme/team-a=950 acme/team-a/key-1=800 alerted=600"},
		{spendcap.ListBudgetsParams{Breached: true}, "acme/team-a=950"},
		{spendcap.ListBudgetsParams{IDPrefix: "nothing"}, ""},
	} {
		c.p.At = listingT0
		if got, _ := listed(t, b, c.p); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.p, got, c.want)
		}
	}
}

func TestListBudgetsRowsCarryTheWindowTheParentAndTheChildren(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingRowsCarryTheWindowTheParentAndTheChildren)
}

func listingRowsCarryTheWindowTheParentAndTheChildren(t *testing.T, b listingBackend) {
	listingFixture(t, b)
	_, page := listed(t, b, spendcap.ListBudgetsParams{IDPrefix: "acme", At: listingT0})
	if len(page.Budgets) != 3 {
		t.Fatalf("got %d rows", len(page.Budgets))
	}
	acme, team, key := page.Budgets[0], page.Budgets[1], page.Budgets[2]
	day := listingT0.Truncate(24 * time.Hour)
	if acme.Children != 1 || team.Children != 1 || key.Children != 0 {
		t.Errorf("children: %d %d %d, want 1 1 0", acme.Children, team.Children, key.Children)
	}
	if team.ParentID != "acme" || acme.ParentID != "" || team.Mode != spendcap.ModeEnforce || team.ResetEvery != "1 day" {
		t.Errorf("team-a: %+v", team)
	}
	if !key.WindowStart.Equal(day) || key.NextResetAt == nil || !key.NextResetAt.Equal(day.Add(24*time.Hour)) {
		t.Errorf("key-1 window: %v .. %v", key.WindowStart, key.NextResetAt)
	}
	if key.Usage["usd"] != 10 || key.Reserved["usd"] != 30 || key.HardLimits["usd"] != 50 || !key.NearLimit {
		t.Errorf("key-1 figures: %+v", key)
	}
	if team.WindowBreachCount != 1 || acme.WindowBreachCount != 0 || acme.NearLimit {
		t.Errorf("breaches: team-a %d, acme %d; acme near %v", team.WindowBreachCount, acme.WindowBreachCount, acme.NearLimit)
	}
}

// A window that ended, or a reservation that expired, with no call since counts as the budget's
// next call would find it: the order is the current one, at any instant asked, in either direction.
func TestListBudgetsReadsEachBudgetAsOfTheInstantAsked(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingReadsEachBudgetAsOfTheInstantAsked)
}

func listingReadsEachBudgetAsOfTheInstantAsked(t *testing.T, b listingBackend) {
	listingFixture(t, b)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		// key-1's reservation (on its parents too) expired at +2 h.
		{listingT0.Add(3 * time.Hour), "beta=1000 zero=1000 acme/team-a=800 alerted=600 acme=470 acme/team-a/key-1=200 free=-"},
		// The next day: every window rolled.
		{listingT0.Add(25 * time.Hour), "zero=1000 acme=0 acme/team-a=0 acme/team-a/key-1=0 alerted=0 beta=0 free=-"},
		// And back: as of the first instant again.
		{listingT0, "beta=1000 zero=1000 acme/team-a=950 acme/team-a/key-1=800 alerted=600 acme=500 free=-"},
	} {
		if got, _ := listed(t, b, spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, At: c.at}); got != c.want {
			t.Errorf("at %v:\n got %s\nwant %s", c.at, got, c.want)
		}
	}
	// A charge raises the order at once; a deleted budget leaves it.
	if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "acme", Deltas: map[string]int64{"usd": 450}, At: listingT0}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "zero"}); err != nil {
		t.Fatal(err)
	}
	want := "beta=1000 acme=950 acme/team-a=950 acme/team-a/key-1=800 alerted=600 free=-"
	if got, _ := listed(t, b, spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, At: listingT0}); got != want {
		t.Errorf("after a charge and a delete:\n got %s\nwant %s", got, want)
	}
}

func TestListBudgetsRefusesBadArgumentsNamingThem(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingRefusesBadArgumentsNamingThem)
}

func listingRefusesBadArgumentsNamingThem(t *testing.T, b listingBackend) {
	for _, c := range []struct {
		p   spendcap.ListBudgetsParams
		arg string
	}{
		{spendcap.ListBudgetsParams{IDPrefix: "a{b"}, "id_prefix"},
		{spendcap.ListBudgetsParams{IDContains: "a b"}, "id_contains"},
		{spendcap.ListBudgetsParams{Mode: "loud"}, "mode"},
		{spendcap.ListBudgetsParams{ParentID: "p", RootsOnly: true}, "roots_only"},
		{spendcap.ListBudgetsParams{OrderBy: "size"}, "order_by"},
		{spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, After: "acme"}, "after"},
		{spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, After: "1000000:acme"}, "after"},
		{spendcap.ListBudgetsParams{MaxRows: 1001}, "max_rows"},
	} {
		_, err := b.ListBudgets(ctx, c.p)
		if !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), c.arg+":") {
			t.Errorf("%+v: %v, want SC002 naming %s", c.p, err, c.arg)
		}
	}
}

func TestListBudgetsChildrenFollowMovesAndDeletions(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, listingChildrenFollowMovesAndDeletions)
}

// A parent's children are the budgets whose parent it is now: set_parent moves one from a parent's
// list to another's, and a deleted child leaves it.
func listingChildrenFollowMovesAndDeletions(t *testing.T, b listingBackend) {
	for _, c := range []spendcap.CreateBudgetParams{
		{BudgetID: "org"}, {BudgetID: "org/x"},
		{BudgetID: "org/a", ParentID: "org", HardLimits: map[string]int64{"usd": 10}},
		{BudgetID: "org/b", ParentID: "org", HardLimits: map[string]int64{"usd": 10}},
		{BudgetID: "org/c", ParentID: "org", HardLimits: map[string]int64{"usd": 10}},
	} {
		c.At = listingT0
		if _, err := b.CreateBudget(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "org/c", Deltas: map[string]int64{"usd": 5}, At: listingT0}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: "org/b", ParentID: "org/x", At: listingT0}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "org/a", At: listingT0}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    spendcap.ListBudgetsParams
		want string
	}{
		{spendcap.ListBudgetsParams{ParentID: "org"}, "org/c=500"},
		{spendcap.ListBudgetsParams{ParentID: "org/x", OrderBy: spendcap.ListByUtilisation}, "org/b=0"},
		{spendcap.ListBudgetsParams{ParentID: "org/c"}, ""},
	} {
		c.p.At = listingT0
		if got, _ := listed(t, b, c.p); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.p, got, c.want)
		}
	}
}

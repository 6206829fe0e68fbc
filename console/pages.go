package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spendcap/spendcap"
)

// countCap bounds the counts the overview shows: past it, it says "1,000 or more" rather than
// reading every budget.
const countCap = 1000

type overviewPage struct {
	Common   common
	Top      []row
	Near     count
	Breached count
	Budgets  count
	// Events counts the events of the last 24 hours; NoEvents says why it could not.
	Events   count
	NoEvents string
	// Worker is nil when the console cannot read the worker's jobs.
	Worker *WorkerStatus
	Now    time.Time
}

// count is a number of budgets the overview read, At least when there were more than it read.
type count struct {
	N       int
	AtLeast bool
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	top, err := h.opts.Backend.ListBudgets(ctx, spendcap.ListBudgetsParams{OrderBy: spendcap.ListByUtilisation, MaxRows: 10})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := overviewPage{Common: h.common("Overview"), Top: rows(top.Budgets)}
	for _, c := range []struct {
		dst *count
		p   spendcap.ListBudgetsParams
	}{
		{&p.Budgets, spendcap.ListBudgetsParams{}},
		{&p.Near, spendcap.ListBudgetsParams{NearLimit: true}},
		{&p.Breached, spendcap.ListBudgetsParams{Breached: true}},
	} {
		c.p.MaxRows = countCap
		page, err := h.opts.Backend.ListBudgets(ctx, c.p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		*c.dst = count{N: len(page.Budgets), AtLeast: page.Next != ""}
	}
	p.Now = time.Now()
	var err2 error
	if p.Events, p.NoEvents, err2 = h.eventsSince(ctx, p.Now.Add(-24*time.Hour)); err2 != nil {
		h.fail(w, r, err2)
		return
	}
	if p.Worker, err2 = h.workerStatus(ctx); err2 != nil {
		h.fail(w, r, err2)
		return
	}
	h.render(w, r, "overview.html", p)
}

// row is one budget in a table of budgets.
type row struct {
	spendcap.BudgetListing
	// Dim is the dimension with the highest share of its hard limit ("" without one).
	Dim                   string
	Used, Limit, Reserved int64
}

func rows(ls []spendcap.BudgetListing) []row {
	out := make([]row, len(ls))
	for i, l := range ls {
		out[i] = row{BudgetListing: l}
		best := -1.0
		for _, d := range sortedKeys(l.HardLimits) {
			h := l.HardLimits[d]
			used := l.Usage[d] + l.Reserved[d]
			s := float64(used) / float64(max(h, 1))
			if h == 0 && used == 0 {
				s = 1
			}
			if s > best {
				best, out[i].Dim, out[i].Used, out[i].Limit, out[i].Reserved = s, d, l.Usage[d], h, l.Reserved[d]
			}
		}
	}
	return out
}

type budgetsPage struct {
	Common  common
	Query   budgetsQuery
	Rows    []row
	Next    string
	Parents []string // the chain of Query.Parent, root first, when listing its children
	Err     string
}

// budgetsQuery is the search of the budgets page, as its form sends it.
type budgetsQuery struct {
	Q        string // an id, or part of one
	Match    string // "prefix" (default) or "contains"
	Mode     string
	Near     bool
	Breached bool
	Order    string // "id" (default) or "utilisation"
	Parent   string
	Roots    bool
	After    string
}

func readBudgetsQuery(v url.Values) budgetsQuery {
	q := budgetsQuery{Q: strings.TrimSpace(v.Get("q")), Match: v.Get("match"), Mode: v.Get("mode"), Near: v.Get("near") == "1",
		Breached: v.Get("breached") == "1", Order: v.Get("order"), Parent: v.Get("parent"), Roots: v.Get("roots") == "1", After: v.Get("after")}
	if q.Match != "contains" {
		q.Match = "prefix"
	}
	if q.Order != "utilisation" {
		q.Order = "id"
	}
	return q
}

// URL is the budgets page for q, after cursor after ("" for the first page).
func (q budgetsQuery) URL(prefix, after string) string {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Q, "mode": q.Mode, "parent": q.Parent, "after": after} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Q != "" && q.Match == "contains" {
		v.Set("match", "contains")
	}
	if q.Order == "utilisation" {
		v.Set("order", "utilisation")
	}
	for k, on := range map[string]bool{"near": q.Near, "breached": q.Breached, "roots": q.Roots} {
		if on {
			v.Set(k, "1")
		}
	}
	if len(v) == 0 {
		return prefix + "/budgets"
	}
	return prefix + "/budgets?" + v.Encode()
}

func (h *Handler) budgets(w http.ResponseWriter, r *http.Request) {
	q := readBudgetsQuery(r.URL.Query())
	p := spendcap.ListBudgetsParams{Mode: spendcap.Mode(q.Mode), NearLimit: q.Near, Breached: q.Breached, ParentID: q.Parent,
		RootsOnly: q.Roots && q.Parent == "", OrderBy: spendcap.ListOrder(q.Order), After: q.After}
	if q.Match == "contains" {
		p.IDContains = q.Q
	} else {
		p.IDPrefix = q.Q
	}
	page := budgetsPage{Common: h.common("Budgets"), Query: q}
	res, err := h.opts.Backend.ListBudgets(r.Context(), p)
	switch {
	case err == nil:
		page.Rows, page.Next = rows(res.Budgets), res.Next
	case errorsIsInvalid(err):
		// A search the API refuses (a character ids cannot hold): say so on the page.
		page.Err = err.Error()
	default:
		h.fail(w, r, err)
		return
	}
	if q.Parent != "" {
		chain, err := h.chain(r, q.Parent)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		page.Parents = chain
	}
	h.render(w, r, "budgets.html", page)
}

// chain is budget id and its ancestors, root first.
func (h *Handler) chain(r *http.Request, id string) ([]string, error) {
	out := []string{id}
	for len(out) < 8 {
		st, err := h.opts.Backend.BudgetStatus(r.Context(), spendcap.BudgetStatusParams{BudgetID: out[len(out)-1]})
		if err != nil {
			return nil, err
		}
		if st.ParentID == "" {
			break
		}
		out = append(out, st.ParentID)
	}
	slices.Reverse(out)
	return out, nil
}

// budgetEvents is how many of its newest events a budget's page shows.
const budgetEvents = 10

type budgetPage struct {
	Common   common
	Status   spendcap.Status
	Listing  row
	Zone     *time.Location
	Dims     []dimension
	Parents  []string // root first, the budget's own parent last
	Children []row
	More     bool // more children than shown
	Charts   []chart
	Series   []seriesChart // none when the budget records no usage series
	Events   []eventView   // the newest
	Held     []spendcap.Reservation
	// Token is the admin forms' token; "" when the admin actions are off.
	Token string
	// Done names the admin action just applied.
	Done string
}

// dimension is one dimension of a budget's current window.
type dimension struct {
	Name                                    string
	Usage, Reserved                         int64
	Hard, Soft, Remaining                   *int64
	UsagePct, ReservedPct, SoftPct, Percent float64 // of the hard limit, for the bars
}

func (h *Handler) budget(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	st, err := h.opts.Backend.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p := budgetPage{Common: h.common("Budget"), Status: st, Zone: zone(st.ResetTimezone)}
	// Its own row (utilisation, children count) and its children's.
	self, err := h.opts.Backend.ListBudgets(ctx, spendcap.ListBudgetsParams{IDPrefix: id, MaxRows: 1})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(self.Budgets) == 1 && self.Budgets[0].BudgetID == id {
		p.Listing = rows(self.Budgets)[0]
	}
	// Most budgets have no children, and a parent filter reads every budget on Valkey: ask only
	// when the budget has some.
	if p.Listing.Children > 0 {
		kids, err := h.opts.Backend.ListBudgets(ctx, spendcap.ListBudgetsParams{ParentID: id, OrderBy: spendcap.ListByUtilisation, MaxRows: 100})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p.Children, p.More = rows(kids.Budgets), kids.Next != ""
	}
	if st.ParentID != "" {
		chain, err := h.chain(r, st.ParentID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p.Parents = chain
	}
	p.Dims = dimensions(st)
	hist, err := h.opts.Backend.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, MaxRows: 30})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Charts = historyCharts(st, hist)
	if st.UsageSeries != "" {
		buckets, err := h.opts.Backend.UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: id})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p.Series = seriesCharts(st, buckets, p.Zone)
	}
	es, err := h.opts.Backend.RecentEvents(ctx, spendcap.RecentEventsParams{BudgetID: id, MaxRows: budgetEvents})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Events = h.views(es)
	p.Held, err = h.opts.Backend.BudgetReservations(ctx, spendcap.BudgetReservationsParams{BudgetID: id})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Token = h.formToken(w, r)
	switch d := r.URL.Query().Get("done"); d {
	case actionLimits, actionMode, actionReset, actionCancel:
		p.Done = d
	}
	h.render(w, r, "budget.html", p)
}

func dimensions(st spendcap.Status) []dimension {
	names := map[string]bool{}
	for _, m := range []map[string]int64{st.HardLimits, st.SoftLimits, st.Usage, st.Reserved} {
		for d := range m {
			names[d] = true
		}
	}
	var out []dimension
	for _, d := range sortedKeys(names) {
		x := dimension{Name: d, Usage: st.Usage[d], Reserved: st.Reserved[d]}
		if v, ok := st.HardLimits[d]; ok {
			x.Hard = &v
			rem := st.Remaining[d]
			x.Remaining = &rem
			if v > 0 {
				x.Percent = 100 * float64(x.Usage+x.Reserved) / float64(v)
				x.UsagePct = min(100, 100*float64(x.Usage)/float64(v))
				x.ReservedPct = min(100-x.UsagePct, 100*float64(x.Reserved)/float64(v))
			}
		}
		if v, ok := st.SoftLimits[d]; ok {
			x.Soft = &v
			if x.Hard != nil && *x.Hard > 0 {
				x.SoftPct = min(100, 100*float64(v)/float64(*x.Hard))
			}
		}
		out = append(out, x)
	}
	return out
}

// zone is the budget's time zone for showing its window, UTC when Go cannot load it.
func zone(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	if name[0] == '+' || name[0] == '-' {
		if t, err := time.Parse("-07:00", name); err == nil {
			_, off := t.Zone()
			return time.FixedZone(name, off)
		}
		return time.UTC
	}
	if loc, err := time.LoadLocation(name); err == nil {
		return loc
	}
	return time.UTC
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(a, b) })
	return keys
}

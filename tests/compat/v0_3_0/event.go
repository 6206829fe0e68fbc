package v030

import "github.com/spendcap/spendcap"

// API is e as the Go API has it: absent fields are zero values.
func (e Event) API() spendcap.Event {
	return spendcap.Event{Source: spendcap.SourcePostgres, EventID: e.EventID, BudgetID: e.BudgetID, Kind: spendcap.EventKind(e.Kind),
		WindowSeq: e.WindowSeq, WindowStart: e.WindowStart, Dimension: deref(e.Dimension), Percent: deref(e.Percent),
		Usage: deref(e.Usage), LimitValue: deref(e.LimitValue), WindowUsage: e.WindowUsage,
		BreachCount: deref(e.BreachCount), SoftBreachCount: deref(e.SoftBreachCount), ClosedBy: spendcap.ClosedBy(deref(e.ClosedBy)),
		OccurredAt: e.OccurredAt}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

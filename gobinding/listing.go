package gobinding

import (
	"context"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/pgfn"
)

// ListBudgets implements spendcap.Lister with spendcap.list_budgets (a reader's function).
func (c *Client) ListBudgets(ctx context.Context, p spendcap.ListBudgetsParams) (spendcap.BudgetPage, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return spendcap.BudgetPage{}, err
	}
	args := pgfn.ListBudgetsParams{IDPrefix: nonEmpty(p.IDPrefix), IDContains: nonEmpty(p.IDContains), Mode: nonEmpty(string(p.Mode)),
		ParentID: nonEmpty(p.ParentID), OrderBy: nonEmpty(string(p.OrderBy)), After: nonEmpty(p.After), MaxRows: nonZero(maxRows), At: at(p.At)}
	if p.RootsOnly {
		args.RootsOnly = &p.RootsOnly
	}
	if p.NearLimit {
		args.NearLimit = &p.NearLimit
	}
	if p.Breached {
		args.Breached = &p.Breached
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.ListBudgetsRow, error) {
		return q.ListBudgets(ctx, args)
	})
	if err != nil {
		return spendcap.BudgetPage{}, err
	}
	page := spendcap.BudgetPage{Budgets: make([]spendcap.BudgetListing, len(rows))}
	for i, r := range rows {
		var u *int
		if r.UtilisationPermille != nil {
			v := int(*r.UtilisationPermille)
			u = &v
		}
		page.Budgets[i] = spendcap.BudgetListing{BudgetID: r.BudgetID, ParentID: deref(r.ParentID), Mode: spendcap.Mode(r.Mode),
			ResetEvery: deref(r.ResetEvery), WindowStart: r.WindowStart, NextResetAt: r.NextResetAt, HardLimits: r.HardLimits,
			SoftLimits: r.SoftLimits, Usage: r.Usage, Reserved: r.Reserved, AlertPercents: r.AlertPercents, UtilisationPermille: u,
			NearLimit: r.NearLimit, WindowBreachCount: r.WindowBreachCount, WindowSoftBreachCount: r.WindowSoftBreachCount,
			Children: r.Children, Cursor: r.Cursor}
	}
	page.Next = callargs.NextCursor(page.Budgets, maxRows)
	return page, nil
}

package spendcap

import (
	"context"
	"time"
)

// Operator is what operators, dashboards and the jobs worker call on either backend: the gauges
// of the budgets nearest their limits, and the audit. gobinding.Client and valkey.Client
// implement it.
type Operator interface {
	// BudgetGauges returns usage, hard limit and remaining of every dimension (hard-limited or
	// used) of the budgets p names and of the p.TopN budgets that used the largest share of a
	// hard limit, ordered by budget id, then dimension (byte order). Unknown ids are skipped.
	BudgetGauges(ctx context.Context, p BudgetGaugesParams) ([]BudgetGauge, error)
	// Audit checks every aggregate against the rows or keys it sums (docs/semantics.md#audit)
	// and, with p.Repair, corrects what it finds.
	Audit(ctx context.Context, p AuditParams) ([]AuditFinding, error)
}

// BudgetGaugesParams are the arguments of BudgetGauges.
type BudgetGaugesParams struct {
	// BudgetIDs are read whatever their usage: at most 1000.
	BudgetIDs []string
	// TopN (0..100) adds the budgets with the highest share of any hard limit used in their
	// current window (ties by id). It reads every budget: a table scan on PostgreSQL, a SCAN of
	// the keyspace on Valkey.
	TopN int
	// At is the instant (now when zero), as budget_status takes it.
	At time.Time
}

// BudgetGauge is one dimension of one budget as BudgetGauges reads it.
type BudgetGauge struct {
	BudgetID  string
	Dimension string
	// Usage is the current window's usage (0 when the dimension has none).
	Usage int64
	// HardLimit and Remaining (hard limit − usage − reserved) are nil for a dimension without
	// a hard limit.
	HardLimit *int64
	Remaining *int64
}

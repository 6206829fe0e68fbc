package spendcap

import (
	"context"
	"time"
)

// MaxBatchItems is how many items one ReportUsageBatch call takes at most.
const MaxBatchItems = 1000

// BatchReporter is implemented by backends that admit many reports in one call and one
// transaction (gobinding.Client on PostgreSQL, the Valkey library): report_usage_batch
// (docs/semantics.md#batches).
type BatchReporter interface {
	// ReportUsageBatch admits p.Items in order, in one transaction, exactly as if each had been
	// one ReportUsage call after the other, all at p.At. It returns one result per item, in
	// order. An item that fails has Err set (a *Error) and changed nothing; the others are not
	// disturbed. The error is for the whole call: a batch of 0 or more than MaxBatchItems items,
	// a bad At, or the connection.
	ReportUsageBatch(ctx context.Context, p ReportUsageBatchParams) ([]BatchResult, error)
}

// ReportUsageBatchParams are the arguments of ReportUsageBatch.
type ReportUsageBatchParams struct {
	Items []BatchItem
	// At is the instant of every item; zero means "now" on the backend's clock.
	At time.Time
}

// BatchItem is one report of a batch: the arguments of ReportUsage but At, which the batch holds.
type BatchItem struct {
	BudgetID   string
	Deltas     map[string]int64
	DedupKey   string
	AlsoCharge []string
}

// BatchResult is the result of one item of a batch: its outcome, or the error that made it change
// nothing.
type BatchResult struct {
	Outcome Outcome
	Err     error
}

// Item returns the batch item of p (p.At is the batch's).
func (p ReportUsageParams) Item() BatchItem {
	return BatchItem{BudgetID: p.BudgetID, Deltas: p.Deltas, DedupKey: p.DedupKey, AlsoCharge: p.AlsoCharge}
}

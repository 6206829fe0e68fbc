package gobinding

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spendcap/spendcap"
)

// Client is the PostgreSQL implementation of spendcap.Budgets on the generated bindings. Each
// call is one statement, so on a pgx.Tx it joins the caller's transaction.
type Client struct {
	q *Queries
}

var _ spendcap.Budgets = (*Client)(nil)

// NewClient returns a Client on db (a pool, a connection or a transaction).
func NewClient(db DBTX) *Client { return &Client{q: New(db)} }

// WithTx returns a Client whose calls run inside tx.
func (c *Client) WithTx(tx pgx.Tx) *Client { return &Client{q: c.q.WithTx(tx)} }

// Queries returns the generated bindings, which also hold the Postgres-only job functions
// (RollDueWindows, PurgeExpired).
func (c *Client) Queries() *Queries { return c.q }

// CreateBudget implements spendcap.Budgets.
func (c *Client) CreateBudget(ctx context.Context, p spendcap.CreateBudgetParams) (spendcap.Created, error) {
	r, err := c.q.CreateBudget(ctx, CreateBudgetParams{
		BudgetID: p.BudgetID, HardLimits: p.HardLimits, SoftLimits: p.SoftLimits,
		ResetEvery: nonEmpty(p.ResetEvery), ResetTimezone: nonEmpty(p.ResetTimezone), ResetAnchor: p.ResetAnchor,
		Mode: nonEmpty(string(p.Mode)), ScopeType: nonEmpty(p.ScopeType), ScopeID: nonEmpty(p.ScopeID),
		DedupTTLSeconds: nonZero(p.DedupTTLSeconds), At: at(p.At),
	})
	if err != nil {
		return spendcap.Created{}, err
	}
	return spendcap.Created{BudgetID: r.BudgetID, Created: r.Created, WindowStart: r.WindowStart, NextResetAt: r.NextResetAt}, nil
}

// SetLimits implements spendcap.Budgets.
func (c *Client) SetLimits(ctx context.Context, p spendcap.SetLimitsParams) (spendcap.Status, error) {
	r, err := c.q.SetLimits(ctx, SetLimitsParams{BudgetID: p.BudgetID, HardLimits: p.HardLimits, SoftLimits: p.SoftLimits,
		Mode: nonEmpty(string(p.Mode)), At: at(p.At)})
	if err != nil {
		return spendcap.Status{}, err
	}
	return status(r), nil
}

// DeleteBudget implements spendcap.Budgets.
func (c *Client) DeleteBudget(ctx context.Context, p spendcap.DeleteBudgetParams) (bool, error) {
	r, err := c.q.DeleteBudget(ctx, DeleteBudgetParams{BudgetID: p.BudgetID, At: at(p.At)})
	return r.Deleted, err
}

// ReportUsage implements spendcap.Budgets.
func (c *Client) ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error) {
	r, err := c.q.ReportUsage(ctx, ReportUsageParams{BudgetID: p.BudgetID, Deltas: orEmpty(p.Deltas), DedupKey: nonEmpty(p.DedupKey), At: at(p.At)})
	return usageOutcome(r), err
}

// CheckUsage implements spendcap.Budgets.
func (c *Client) CheckUsage(ctx context.Context, p spendcap.CheckUsageParams) (spendcap.Outcome, error) {
	r, err := c.q.CheckUsage(ctx, CheckUsageParams{BudgetID: p.BudgetID, Deltas: orEmpty(p.Deltas), At: at(p.At)})
	return usageOutcome(r), err
}

// RecordSpend implements spendcap.Budgets.
func (c *Client) RecordSpend(ctx context.Context, p spendcap.RecordSpendParams) (spendcap.Outcome, error) {
	r, err := c.q.RecordSpend(ctx, RecordSpendParams{BudgetID: p.BudgetID, ExecutionID: p.ExecutionID, Deltas: orEmpty(p.Deltas),
		IdempotencyKey: nonEmpty(p.IdempotencyKey), At: at(p.At)})
	return usageOutcome(r), err
}

// ReleaseSpend implements spendcap.Budgets.
func (c *Client) ReleaseSpend(ctx context.Context, p spendcap.ReleaseSpendParams) (map[string]int64, error) {
	r, err := c.q.ReleaseSpend(ctx, ReleaseSpendParams{BudgetID: p.BudgetID, ExecutionID: p.ExecutionID, At: at(p.At)})
	return r.Released, err
}

// Reserve implements spendcap.Budgets.
func (c *Client) Reserve(ctx context.Context, p spendcap.ReserveParams) (spendcap.Outcome, error) {
	r, err := c.q.Reserve(ctx, ReserveParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, Amounts: orEmpty(p.Amounts),
		TTLSeconds: nonZero(p.TTLSeconds), IdempotencyKey: nonEmpty(p.IdempotencyKey), At: at(p.At)})
	return spendcap.Outcome{Outcome: spendcap.OutcomeKind(r.Outcome), Applied: r.Applied, Dimension: deref(r.Dimension),
		Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: r.Replayed, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt, ExpiresAt: r.ExpiresAt}, err
}

// Settle implements spendcap.Budgets.
func (c *Client) Settle(ctx context.Context, p spendcap.SettleParams) (spendcap.Outcome, error) {
	r, err := c.q.Settle(ctx, SettleParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, Actual: orEmpty(p.Actual), At: at(p.At)})
	return usageOutcome(r), err
}

// CancelReservation implements spendcap.Budgets.
func (c *Client) CancelReservation(ctx context.Context, p spendcap.CancelReservationParams) (map[string]int64, error) {
	r, err := c.q.CancelReservation(ctx, CancelReservationParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, At: at(p.At)})
	return r.Released, err
}

// ResetBudget implements spendcap.Budgets.
func (c *Client) ResetBudget(ctx context.Context, p spendcap.ResetBudgetParams) (spendcap.Window, error) {
	r, err := c.q.ResetBudget(ctx, ResetBudgetParams{BudgetID: p.BudgetID, At: at(p.At)})
	return spendcap.Window{WindowSeq: r.WindowSeq, WindowStart: r.WindowStart, NextResetAt: r.NextResetAt}, err
}

// BudgetStatus implements spendcap.Budgets.
func (c *Client) BudgetStatus(ctx context.Context, p spendcap.BudgetStatusParams) (spendcap.Status, error) {
	r, err := c.q.BudgetStatus(ctx, BudgetStatusParams{BudgetID: p.BudgetID, At: at(p.At)})
	if err != nil {
		return spendcap.Status{}, err
	}
	return status(r), nil
}

// BudgetHistory implements spendcap.Budgets.
func (c *Client) BudgetHistory(ctx context.Context, p spendcap.BudgetHistoryParams) ([]spendcap.HistoryWindow, error) {
	rows, err := c.q.BudgetHistory(ctx, BudgetHistoryParams{BudgetID: p.BudgetID, MaxRows: nonZero(p.MaxRows), At: at(p.At)})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.HistoryWindow, len(rows))
	for i, r := range rows {
		out[i] = spendcap.HistoryWindow{WindowSeq: r.WindowSeq, WindowStart: r.WindowStart, WindowEnd: r.WindowEnd,
			Usage: r.Usage, BreachCount: r.BreachCount, SoftBreachCount: r.SoftBreachCount, ClosedBy: r.ClosedBy}
	}
	return out, nil
}

func usageOutcome(r UsageOutcome) spendcap.Outcome {
	return spendcap.Outcome{Outcome: spendcap.OutcomeKind(r.Outcome), Applied: r.Applied, Dimension: deref(r.Dimension),
		Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: r.Replayed, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt}
}

func status(r BudgetStatusResult) spendcap.Status {
	return spendcap.Status{
		BudgetID: r.BudgetID, HardLimits: r.HardLimits, SoftLimits: r.SoftLimits, ResetEvery: deref(r.ResetEvery),
		ResetTimezone: r.ResetTimezone, ResetAnchor: r.ResetAnchor, Mode: spendcap.Mode(r.Mode), ScopeType: deref(r.ScopeType),
		ScopeID: deref(r.ScopeID), DedupTTLSeconds: r.DedupTTLSeconds, WindowSeq: r.WindowSeq, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt, Usage: r.Usage, Reserved: r.Reserved, Remaining: r.Remaining, BreachCount: r.BreachCount,
		SoftBreachCount: r.SoftBreachCount, WindowBreachCount: r.WindowBreachCount, WindowSoftBreachCount: r.WindowSoftBreachCount,
		LastBreachAt: r.LastBreachAt, LastBreachDim: deref(r.LastBreachDim), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// at turns the API's zero time ("now") into an omitted argument, so the server's clock applies.
func at(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonZero(n int32) *int32 {
	if n == 0 {
		return nil
	}
	return &n
}

// orEmpty sends a nil map as {}: JSON null is not a quantities object.
func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

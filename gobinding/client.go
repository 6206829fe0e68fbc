package gobinding

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/pgfn"
)

// DBTX is what a Client runs on: *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Client is the PostgreSQL implementation of spendcap.Budgets and spendcap.Quotas. Each call is
// one statement, so on a pgx.Tx it joins the caller's transaction.
type Client struct {
	q *pgfn.Queries
	// pool, when the Client was made on one, gives WatchEvents its LISTEN connection.
	pool *pgxpool.Pool
	// savepoint, when set, is the transaction each call runs in a savepoint of (InSavepoint).
	savepoint pgx.Tx
}

var (
	_ spendcap.Budgets       = (*Client)(nil)
	_ spendcap.BatchReporter = (*Client)(nil)
)

// DefaultExecMode is the pgx execution mode of a Client's statements unless Options.ExecMode says
// otherwise, whatever the connection's own DefaultQueryExecMode is: the extended protocol in one
// round trip with no named prepared statement, which works on a direct connection and through a
// pooler in transaction mode (PgBouncer before 1.21 cannot keep prepared statements across
// transactions, and sends a describe and its execution to different server connections).
const DefaultExecMode = pgx.QueryExecModeExec

// Options configure NewClient. The zero Options take the defaults.
type Options struct {
	// ExecMode runs the Client's statements in another mode than DefaultExecMode (a pointer, since
	// pgx's zero mode is QueryExecModeCacheStatement). Every mode works on a direct connection;
	// behind PgBouncer in transaction mode, QueryExecModeCacheStatement needs PgBouncer 1.21 or
	// later with max_prepared_statements set, and QueryExecModeDescribeExec works only inside a
	// transaction.
	ExecMode *pgx.QueryExecMode
}

// NewClient returns a Client on db (a pool, a connection or a transaction).
func NewClient(db DBTX, opts Options) *Client {
	mode := DefaultExecMode
	if opts.ExecMode != nil {
		mode = *opts.ExecMode
	}
	pool, _ := db.(*pgxpool.Pool)
	return &Client{q: pgfn.New(db, mode), pool: pool}
}

// WithTx returns a Client whose calls run inside tx. As with any statement, an error aborts tx:
// Postgres refuses every later statement of tx (SQLSTATE 25P02) until it is rolled back. To keep
// tx usable after a refused or failed call, use InSavepoint.
func (c *Client) WithTx(tx pgx.Tx) *Client { return &Client{q: c.q.WithTx(tx)} }

// InSavepoint returns a Client whose calls each run in a savepoint of tx: a call that fails rolls
// back to its savepoint, leaving tx usable (and what earlier statements of tx did intact), and one
// that succeeds releases it, so its writes commit or roll back with tx. It costs two more round
// trips per call (SAVEPOINT, RELEASE) than WithTx.
func (c *Client) InSavepoint(tx pgx.Tx) *Client {
	return &Client{q: c.q.WithTx(tx), savepoint: tx}
}

// call runs f on the Client's queries, in a savepoint when the Client has one.
func call[T any](ctx context.Context, c *Client, f func(*pgfn.Queries) (T, error)) (T, error) {
	if c.savepoint == nil {
		return f(c.q)
	}
	var zero T
	sp, err := c.savepoint.Begin(ctx)
	if err != nil {
		return zero, err
	}
	res, err := f(c.q.WithTx(sp))
	if err != nil {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return zero, errors.Join(err, rbErr)
		}
		return zero, err
	}
	if err := sp.Commit(ctx); err != nil {
		return zero, err
	}
	return res, nil
}

// CreateBudget implements spendcap.Budgets.
func (c *Client) CreateBudget(ctx context.Context, p spendcap.CreateBudgetParams) (spendcap.CreateBudgetResult, error) {
	ttl, err := callargs.Seconds("dedup_ttl_seconds", p.DedupTTL)
	if err != nil {
		return spendcap.CreateBudgetResult{}, err
	}
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CreateBudgetRow, error) {
		return q.CreateBudget(ctx, pgfn.CreateBudgetParams{
			BudgetID: p.BudgetID, HardLimits: p.HardLimits, SoftLimits: p.SoftLimits,
			ResetEvery: nonEmpty(p.ResetEvery), ResetTimezone: nonEmpty(p.ResetTimezone), ResetAnchor: p.ResetAnchor,
			Mode: nonEmpty(string(p.Mode)), ScopeType: nonEmpty(p.ScopeType), ScopeID: nonEmpty(p.ScopeID),
			DedupTTLSeconds: nonZero(ttl), At: at(p.At), ParentID: nonEmpty(p.ParentID),
			AlertPercents: p.AlertPercents, UsageSeries: nonEmpty(p.UsageSeries), IfExists: nonEmpty(string(p.IfExists)),
		})
	})
	if err != nil {
		return spendcap.CreateBudgetResult{}, err
	}
	return spendcap.CreateBudgetResult{BudgetID: r.BudgetID, Created: r.Created, WindowStart: r.WindowStart, NextResetAt: r.NextResetAt}, nil
}

// SetLimits implements spendcap.Budgets.
func (c *Client) SetLimits(ctx context.Context, p spendcap.SetLimitsParams) (spendcap.Status, error) {
	l, err := callargs.SetLimits(p)
	if err != nil {
		return spendcap.Status{}, err
	}
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.SetLimitsRow, error) {
		return q.SetLimits(ctx, pgfn.SetLimitsParams{BudgetID: p.BudgetID, HardLimits: l.Hard, SoftLimits: l.Soft,
			Mode: nonEmpty(string(p.Mode)), At: at(p.At), AlertPercents: l.Alerts, UsageSeries: nonEmpty(l.Series)})
	})
	if err != nil {
		return spendcap.Status{}, err
	}
	return status(r), nil
}

// SetParent implements spendcap.Budgets.
func (c *Client) SetParent(ctx context.Context, p spendcap.SetParentParams) (spendcap.Status, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.SetParentRow, error) {
		return q.SetParent(ctx, pgfn.SetParentParams{BudgetID: p.BudgetID, ParentID: nonEmpty(p.ParentID), At: at(p.At)})
	})
	if err != nil {
		return spendcap.Status{}, err
	}
	return status(r), nil
}

// DeleteBudget implements spendcap.Budgets.
func (c *Client) DeleteBudget(ctx context.Context, p spendcap.DeleteBudgetParams) (bool, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.DeleteBudgetRow, error) {
		return q.DeleteBudget(ctx, pgfn.DeleteBudgetParams{BudgetID: p.BudgetID, At: at(p.At)})
	})
	return r.Deleted, err
}

// ReportUsage implements spendcap.Budgets.
func (c *Client) ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.ReportUsageRow, error) {
		return q.ReportUsage(ctx, pgfn.ReportUsageParams{BudgetID: p.BudgetID, Deltas: orEmpty(p.Deltas), DedupKey: nonEmpty(p.DedupKey), At: at(p.At),
			AlsoCharge: p.AlsoCharge})
	})
	return usageOutcome(r), err
}

// CheckUsage implements spendcap.Budgets.
func (c *Client) CheckUsage(ctx context.Context, p spendcap.CheckUsageParams) (spendcap.Outcome, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CheckUsageRow, error) {
		return q.CheckUsage(ctx, pgfn.CheckUsageParams{BudgetID: p.BudgetID, Deltas: orEmpty(p.Deltas), At: at(p.At), AlsoCharge: p.AlsoCharge})
	})
	return usageOutcome(r), err
}

// RecordSpend implements spendcap.Budgets.
func (c *Client) RecordSpend(ctx context.Context, p spendcap.RecordSpendParams) (spendcap.Outcome, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.RecordSpendRow, error) {
		return q.RecordSpend(ctx, pgfn.RecordSpendParams{BudgetID: p.BudgetID, ExecutionID: p.ExecutionID, Deltas: orEmpty(p.Deltas),
			IdempotencyKey: nonEmpty(p.IdempotencyKey), At: at(p.At), AlsoCharge: p.AlsoCharge})
	})
	return usageOutcome(r), err
}

// ReleaseSpend implements spendcap.Budgets.
func (c *Client) ReleaseSpend(ctx context.Context, p spendcap.ReleaseSpendParams) (map[string]int64, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.ReleaseSpendRow, error) {
		return q.ReleaseSpend(ctx, pgfn.ReleaseSpendParams{BudgetID: p.BudgetID, ExecutionID: p.ExecutionID, At: at(p.At)})
	})
	return r.Released, err
}

// Reserve implements spendcap.Budgets.
func (c *Client) Reserve(ctx context.Context, p spendcap.ReserveParams) (spendcap.Outcome, error) {
	ttl, err := callargs.Seconds("ttl_seconds", p.TTL)
	if err != nil {
		return spendcap.Outcome{}, err
	}
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.ReserveRow, error) {
		return q.Reserve(ctx, pgfn.ReserveParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, Amounts: orEmpty(p.Amounts),
			TTLSeconds: nonZero(ttl), IdempotencyKey: nonEmpty(p.IdempotencyKey), At: at(p.At), AlsoCharge: p.AlsoCharge})
	})
	return spendcap.Outcome{Kind: spendcap.OutcomeKind(r.Outcome), Applied: r.Applied, Dimension: deref(r.Dimension),
		Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: r.Replayed, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt, ExpiresAt: r.ExpiresAt, BreachBudgetID: deref(r.BreachBudgetID), Remaining: r.Remaining}, err
}

// Settle implements spendcap.Budgets.
func (c *Client) Settle(ctx context.Context, p spendcap.SettleParams) (spendcap.Outcome, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.SettleRow, error) {
		return q.Settle(ctx, pgfn.SettleParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, Actual: orEmpty(p.Actual), At: at(p.At)})
	})
	return usageOutcome(r), err
}

// CancelReservation implements spendcap.Budgets.
func (c *Client) CancelReservation(ctx context.Context, p spendcap.CancelReservationParams) (map[string]int64, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CancelReservationRow, error) {
		return q.CancelReservation(ctx, pgfn.CancelReservationParams{BudgetID: p.BudgetID, ReservationID: p.ReservationID, At: at(p.At)})
	})
	return r.Released, err
}

// ResetBudget implements spendcap.Budgets.
func (c *Client) ResetBudget(ctx context.Context, p spendcap.ResetBudgetParams) (spendcap.Window, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.ResetBudgetRow, error) {
		return q.ResetBudget(ctx, pgfn.ResetBudgetParams{BudgetID: p.BudgetID, At: at(p.At)})
	})
	return spendcap.Window{WindowSeq: r.WindowSeq, WindowStart: r.WindowStart, NextResetAt: r.NextResetAt}, err
}

// BudgetStatus implements spendcap.Budgets.
func (c *Client) BudgetStatus(ctx context.Context, p spendcap.BudgetStatusParams) (spendcap.Status, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.BudgetStatusRow, error) {
		return q.BudgetStatus(ctx, pgfn.BudgetStatusParams{BudgetID: p.BudgetID, At: at(p.At)})
	})
	if err != nil {
		return spendcap.Status{}, err
	}
	return status(r), nil
}

// BudgetHistory implements spendcap.Budgets.
func (c *Client) BudgetHistory(ctx context.Context, p spendcap.BudgetHistoryParams) ([]spendcap.HistoryWindow, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.BudgetHistoryRow, error) {
		return q.BudgetHistory(ctx, pgfn.BudgetHistoryParams{BudgetID: p.BudgetID, MaxRows: nonZero(maxRows), At: at(p.At)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.HistoryWindow, len(rows))
	for i, r := range rows {
		out[i] = spendcap.HistoryWindow{WindowSeq: r.WindowSeq, WindowStart: r.WindowStart, WindowEnd: r.WindowEnd,
			Usage: r.Usage, BreachCount: r.BreachCount, SoftBreachCount: r.SoftBreachCount, ClosedBy: spendcap.ClosedBy(r.ClosedBy)}
	}
	return out, nil
}

var _ spendcap.SeriesReader = (*Client)(nil)

// UsageSeries implements spendcap.SeriesReader.
func (c *Client) UsageSeries(ctx context.Context, p spendcap.UsageSeriesParams) ([]spendcap.UsageBucket, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.UsageSeriesRow, error) {
		return q.UsageSeries(ctx, pgfn.UsageSeriesParams{BudgetID: p.BudgetID, MaxRows: nonZero(maxRows), At: at(p.At)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.UsageBucket, len(rows))
	for i, r := range rows {
		out[i] = spendcap.UsageBucket{Start: r.BucketStart, End: r.BucketEnd, Usage: r.Usage}
	}
	return out, nil
}

var _ spendcap.ReservationLister = (*Client)(nil)

// BudgetReservations implements spendcap.ReservationLister.
func (c *Client) BudgetReservations(ctx context.Context, p spendcap.BudgetReservationsParams) ([]spendcap.Reservation, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.BudgetReservationsRow, error) {
		return q.BudgetReservations(ctx, pgfn.BudgetReservationsParams{BudgetID: p.BudgetID, MaxRows: nonZero(maxRows), At: at(p.At)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.Reservation, len(rows))
	for i, r := range rows {
		out[i] = spendcap.Reservation{ReservationID: r.ReservationID, NamedID: r.NamedID, Amounts: r.Amounts, ExpiresAt: r.ExpiresAt}
	}
	return out, nil
}

func usageOutcome(r pgfn.UsageOutcome) spendcap.Outcome {
	return spendcap.Outcome{Kind: spendcap.OutcomeKind(r.Outcome), Applied: r.Applied, Dimension: deref(r.Dimension),
		Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: r.Replayed, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt, BreachBudgetID: deref(r.BreachBudgetID), Remaining: r.Remaining}
}

func status(r pgfn.BudgetStatusResult) spendcap.Status {
	return spendcap.Status{
		BudgetID: r.BudgetID, ParentID: deref(r.ParentID), HardLimits: r.HardLimits, SoftLimits: r.SoftLimits, ResetEvery: deref(r.ResetEvery),
		ResetTimezone: r.ResetTimezone, ResetAnchor: r.ResetAnchor, Mode: spendcap.Mode(r.Mode), ScopeType: deref(r.ScopeType),
		ScopeID: deref(r.ScopeID), DedupTTL: time.Duration(r.DedupTTLSeconds) * time.Second, WindowSeq: r.WindowSeq, WindowStart: r.WindowStart,
		NextResetAt: r.NextResetAt, Usage: r.Usage, Reserved: r.Reserved, Remaining: r.Remaining, BreachCount: r.BreachCount,
		SoftBreachCount: r.SoftBreachCount, WindowBreachCount: r.WindowBreachCount, WindowSoftBreachCount: r.WindowSoftBreachCount,
		LastBreachAt: r.LastBreachAt, LastBreachDim: deref(r.LastBreachDim), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		AlertPercents: r.AlertPercents, UsageSeries: deref(r.UsageSeries),
	}
}

// EventsSince implements spendcap.EventSource: PostgreSQL keeps one sequence of events for every
// budget, so p.Group is not needed.
func (c *Client) EventsSince(ctx context.Context, p spendcap.EventsSinceParams) ([]spendcap.Event, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.EventsSinceRow, error) {
		return q.EventsSince(ctx, pgfn.EventsSinceParams{AfterID: &p.AfterID, MaxRows: nonZero(maxRows)})
	})
	return eventsOf(rows), err
}

var _ spendcap.EventLog = (*Client)(nil)

// RecentEvents implements spendcap.EventLog; p.Group is not needed.
func (c *Client) RecentEvents(ctx context.Context, p spendcap.RecentEventsParams) ([]spendcap.Event, error) {
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	var before *int64
	if p.BeforeID != 0 {
		before = &p.BeforeID
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.RecentEventsRow, error) {
		return q.RecentEvents(ctx, pgfn.RecentEventsParams{BudgetID: nonEmpty(p.BudgetID), Kind: nonEmpty(string(p.Kind)),
			BeforeID: before, MaxRows: nonZero(maxRows)})
	})
	return eventsOf(rows), err
}

// eventsOf is the API's form of the events rows read.
func eventsOf(rows []pgfn.Event) []spendcap.Event {
	out := make([]spendcap.Event, len(rows))
	for i, r := range rows {
		out[i] = r.API()
	}
	return out
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

// ReportUsageBatch implements spendcap.BatchReporter: one call of report_usage_batch.
func (c *Client) ReportUsageBatch(ctx context.Context, p spendcap.ReportUsageBatchParams) ([]spendcap.BatchResult, error) {
	items, err := batchItems(p.Items)
	if err != nil {
		return nil, err
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.ReportUsageBatchRow, error) {
		return q.ReportUsageBatch(ctx, pgfn.ReportUsageBatchParams{Items: items, At: at(p.At)})
	})
	if err != nil {
		return nil, err
	}
	if len(rows) != len(p.Items) {
		return nil, fmt.Errorf("report_usage_batch: %d rows for %d items", len(rows), len(p.Items))
	}
	out := make([]spendcap.BatchResult, len(rows))
	for i, r := range rows {
		if r.ErrorCode != nil {
			out[i].Err = callargs.BatchItemError("report_usage_batch", i, *r.ErrorCode, deref(r.ErrorMessage))
			continue
		}
		out[i].Outcome = spendcap.Outcome{Kind: spendcap.OutcomeKind(deref(r.Outcome)), Applied: deref(r.Applied),
			Dimension: deref(r.Dimension), Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: deref(r.Replayed),
			WindowStart: deref(r.WindowStart), NextResetAt: r.NextResetAt, BreachBudgetID: deref(r.BreachBudgetID),
			Remaining: r.Remaining}
	}
	return out, nil
}

// batchItem is the JSON of one item of report_usage_batch.
type batchItem struct {
	BudgetID   string           `json:"budget_id"`
	Deltas     map[string]int64 `json:"deltas"`
	DedupKey   string           `json:"dedup_key,omitempty"`
	AlsoCharge []string         `json:"also_charge,omitempty"`
}

// batchItems encodes items as report_usage_batch takes them.
func batchItems(items []spendcap.BatchItem) ([]byte, error) {
	js := make([]batchItem, len(items))
	for i, it := range items {
		js[i] = batchItem{BudgetID: it.BudgetID, Deltas: orEmpty(it.Deltas), DedupKey: it.DedupKey, AlsoCharge: it.AlsoCharge}
	}
	return json.Marshal(js)
}

package spendcap

import (
	"context"
	"time"
)

// Budgets is the budget API of docs/sql-api.md that every backend implements: gobinding.Client on
// PostgreSQL, and the Valkey library. Each method is one round trip. A zero At means "now" on the
// backend's clock; tests and log replays set it.
type Budgets interface {
	// CreateBudget creates a budget, or returns Created=false for an identical existing one.
	CreateBudget(ctx context.Context, p CreateBudgetParams) (CreateBudgetResult, error)
	// SetLimits replaces the limits, mode and alert percents that p sets or clears, keeping usage
	// and the window.
	SetLimits(ctx context.Context, p SetLimitsParams) (Status, error)
	// SetParent moves a budget without children under another parent, or detaches it.
	SetParent(ctx context.Context, p SetParentParams) (Status, error)
	// DeleteBudget removes a budget and everything it holds; false when there was none.
	DeleteBudget(ctx context.Context, p DeleteBudgetParams) (bool, error)
	// ReportUsage admits deltas into the current window.
	ReportUsage(ctx context.Context, p ReportUsageParams) (Outcome, error)
	// CheckUsage returns the outcome ReportUsage would have, writing nothing.
	CheckUsage(ctx context.Context, p CheckUsageParams) (Outcome, error)
	// RecordSpend admits deltas for an execution, recording them so ReleaseSpend can undo them.
	RecordSpend(ctx context.Context, p RecordSpendParams) (Outcome, error)
	// ReleaseSpend undoes what an execution recorded in the current window and returns it.
	ReleaseSpend(ctx context.Context, p ReleaseSpendParams) (map[string]int64, error)
	// Reserve admits amounts as a reservation that counts toward limits until settled or expired.
	Reserve(ctx context.Context, p ReserveParams) (Outcome, error)
	// Settle ends a reservation and applies the actual amounts, never refusing them.
	Settle(ctx context.Context, p SettleParams) (Outcome, error)
	// CancelReservation ends a reservation without spending and returns what it freed.
	CancelReservation(ctx context.Context, p CancelReservationParams) (map[string]int64, error)
	// ResetBudget closes the current window now, keeping the schedule.
	ResetBudget(ctx context.Context, p ResetBudgetParams) (Window, error)
	// BudgetStatus returns every field of a budget as of At, without writing.
	BudgetStatus(ctx context.Context, p BudgetStatusParams) (Status, error)
	// BudgetHistory returns closed windows, newest first.
	BudgetHistory(ctx context.Context, p BudgetHistoryParams) ([]HistoryWindow, error)
}

// Mode is a budget's enforcement mode.
type Mode string

// Modes.
const (
	// ModeEnforce refuses usage that would pass a hard limit.
	ModeEnforce Mode = "enforce"
	// ModeObserve applies it and reports the breach: a shadow roll-out of a new limit.
	ModeObserve Mode = "observe"
)

// ClosedBy is what closed a window.
type ClosedBy string

// What closes a window.
const (
	// ClosedBySchedule: the window's reset time passed (the next call, or the worker, rolled it).
	ClosedBySchedule ClosedBy = "schedule"
	// ClosedByManual: ResetBudget closed it.
	ClosedByManual ClosedBy = "manual"
)

// OutcomeKind is the result of an admission.
type OutcomeKind string

// Outcome kinds.
const (
	// OutcomeOK: within every limit.
	OutcomeOK OutcomeKind = "ok"
	// OutcomeSoftBreach: applied, past a soft limit.
	OutcomeSoftBreach OutcomeKind = "soft_breach"
	// OutcomeHardBreach: past a hard limit; applied only in observe mode.
	OutcomeHardBreach OutcomeKind = "hard_breach"
)

// Outcome is the result of ReportUsage, CheckUsage, RecordSpend, Reserve and Settle (docs/semantics.md#admission).
type Outcome struct {
	Kind OutcomeKind
	// Applied says whether the deltas were applied (false only for a hard breach in enforce mode).
	Applied bool
	// Dimension, Usage and LimitValue describe the breach: the dimension whose limit was crossed,
	// its usage (before the call when the call was refused, after it when applied) and that limit. For OutcomeOK the SQL
	// functions return NULL for all three and they are "", 0 and 0 here; tell the cases apart by
	// Kind (or Dimension), never by LimitValue, since 0 is a real limit.
	Dimension  string
	Usage      int64
	LimitValue int64
	// Replayed is true when a dedup or idempotency key returned a stored outcome.
	Replayed    bool
	WindowStart time.Time
	// NextResetAt is nil for a budget without reset period.
	NextResetAt *time.Time
	// ExpiresAt is the reservation's expiry (Reserve, when applied); nil otherwise.
	ExpiresAt *time.Time
	// BreachBudgetID is the budget of the reported breach, one of the charged set; "" for
	// OutcomeOK.
	BreachBudgetID string
	// Remaining is, for each dimension of the call's deltas that a budget of the charged set
	// hard-limits, the least that any of them has left (hard limit less usage and reserved), as
	// the call leaves them: what a gateway sends as its rate-limit headers, with no second call
	// (docs/semantics.md#remaining). A dimension no budget limits is absent. A replay returns the
	// stored outcome's, which is nil for an outcome stored before remaining existed.
	Remaining map[string]int64
}

// CreateBudgetParams are the arguments of CreateBudget. Zero values take the SQL defaults.
type CreateBudgetParams struct {
	BudgetID   string
	HardLimits map[string]int64
	SoftLimits map[string]int64
	// ResetEvery is "<n> <unit>" (e.g. "1 month"); empty for one window forever.
	ResetEvery string
	// ResetTimezone defaults to UTC.
	ResetTimezone string
	// ResetAnchor defaults to the start of the unit containing At.
	ResetAnchor *time.Time
	// Mode defaults to ModeEnforce.
	Mode      Mode
	ScopeType string
	ScopeID   string
	// DedupTTL is how long a dedup or idempotency key is remembered, in whole seconds: 24 hours
	// by default.
	DedupTTL time.Duration
	At       time.Time
	// ParentID names an existing budget whose chain this budget's charges count on too; empty for
	// none.
	ParentID string
	// AlertPercents are at most 10 ascending percents 1..1000 of every hard limit: a threshold
	// event when usage reaches one (docs/semantics.md#events); nil for none.
	AlertPercents []int32
	// UsageSeries records the budget's usage per hour (UsageSeriesHour) or per day
	// (UsageSeriesDay), read with UsageSeries (docs/semantics.md#usage-series); empty for none.
	UsageSeries string
	// IfExists says what to do when the budget exists: IfExistsError by default.
	IfExists IfExists
}

// IfExists is what CreateBudget does with a budget that exists (docs/semantics.md#budgets).
type IfExists string

// The rules of CreateBudgetParams.IfExists.
const (
	// IfExistsError returns Created = false when the budget's definition is identical, and
	// ErrBudgetConflict when it differs.
	IfExistsError IfExists = "error"
	// IfExistsKeep leaves an existing budget as it is and returns Created = false.
	IfExistsKeep IfExists = "keep"
	// IfExistsUpdate makes an existing budget match the call's limits, mode, alert percents,
	// usage series and parent as SetLimits and SetParent would (usage, window and history kept)
	// and returns Created = false: a deploy can provision its budgets declaratively. A different
	// schedule, time zone, anchor, dedup TTL or scope is still ErrBudgetConflict.
	IfExistsUpdate IfExists = "update"
)

// SetParentParams are the arguments of SetParent; an empty ParentID detaches the budget.
type SetParentParams struct {
	BudgetID string
	ParentID string
	At       time.Time
}

// CreateBudgetResult is the result of CreateBudget.
type CreateBudgetResult struct {
	BudgetID    string
	Created     bool
	WindowStart time.Time
	NextResetAt *time.Time
}

// SetLimitsParams are the arguments of SetLimits. A field that is empty (nil or of length 0) is
// left unchanged; one that is set replaces the budget's, whole. The Clear fields remove one
// (every hard limit, every soft limit, the alert percents, or the usage series); a Clear field
// with its field set is refused with ErrInvalidArgument.
type SetLimitsParams struct {
	BudgetID   string
	HardLimits map[string]int64
	SoftLimits map[string]int64
	Mode       Mode
	At         time.Time
	// AlertPercents replaces the alert percents.
	AlertPercents []int32
	// UsageSeries switches the budget's usage series to UsageSeriesHour or UsageSeriesDay. A
	// width other than the budget's starts a new series: the old one's buckets are deleted.
	UsageSeries string

	ClearHardLimits    bool
	ClearSoftLimits    bool
	ClearAlertPercents bool
	// ClearUsageSeries turns the usage series off and deletes its buckets.
	ClearUsageSeries bool
}

// DeleteBudgetParams are the arguments of DeleteBudget.
type DeleteBudgetParams struct {
	BudgetID string
	At       time.Time
}

// ReportUsageParams are the arguments of ReportUsage.
type ReportUsageParams struct {
	BudgetID string
	Deltas   map[string]int64
	// DedupKey makes retries safe; empty for none.
	DedupKey string
	At       time.Time
	// AlsoCharge names more budgets the call charges (tags, models): the set is BudgetID, these
	// and the ancestors of each, all or nothing.
	AlsoCharge []string
}

// CheckUsageParams are the arguments of CheckUsage.
type CheckUsageParams struct {
	BudgetID string
	Deltas   map[string]int64
	At       time.Time
	// AlsoCharge names more budgets the call charges (tags, models): the set is BudgetID, these
	// and the ancestors of each, all or nothing.
	AlsoCharge []string
}

// RecordSpendParams are the arguments of RecordSpend.
type RecordSpendParams struct {
	BudgetID       string
	ExecutionID    string
	Deltas         map[string]int64
	IdempotencyKey string
	At             time.Time
	// AlsoCharge names more budgets the call charges (tags, models): the set is BudgetID, these
	// and the ancestors of each, all or nothing.
	AlsoCharge []string
}

// ReleaseSpendParams are the arguments of ReleaseSpend.
type ReleaseSpendParams struct {
	BudgetID    string
	ExecutionID string
	At          time.Time
}

// ReserveParams are the arguments of Reserve.
type ReserveParams struct {
	BudgetID      string
	ReservationID string
	Amounts       map[string]int64
	// TTL is how long the reservation holds, in whole seconds: 5 minutes by default.
	TTL            time.Duration
	IdempotencyKey string
	At             time.Time
	// AlsoCharge names more budgets the call charges (tags, models): the set is BudgetID, these
	// and the ancestors of each, all or nothing.
	AlsoCharge []string
}

// SettleParams are the arguments of Settle. A nil Actual means nothing was spent.
type SettleParams struct {
	BudgetID      string
	ReservationID string
	Actual        map[string]int64
	At            time.Time
}

// CancelReservationParams are the arguments of CancelReservation.
type CancelReservationParams struct {
	BudgetID      string
	ReservationID string
	At            time.Time
}

// ResetBudgetParams are the arguments of ResetBudget.
type ResetBudgetParams struct {
	BudgetID string
	At       time.Time
}

// Window is the window a manual reset opened.
type Window struct {
	WindowSeq   int64
	WindowStart time.Time
	NextResetAt *time.Time
}

// BudgetStatusParams are the arguments of BudgetStatus.
type BudgetStatusParams struct {
	BudgetID string
	At       time.Time
}

// Status is every field of a budget (docs/semantics.md#budgets, #reading-a-budget). Empty strings and nil pointers stand for SQL
// nulls.
type Status struct {
	BudgetID              string
	ParentID              string // empty for a budget without a parent
	HardLimits            map[string]int64
	SoftLimits            map[string]int64
	ResetEvery            string
	ResetTimezone         string
	ResetAnchor           *time.Time
	Mode                  Mode
	ScopeType             string
	ScopeID               string
	DedupTTL              time.Duration
	WindowSeq             int64
	WindowStart           time.Time
	NextResetAt           *time.Time
	Usage                 map[string]int64
	Reserved              map[string]int64
	Remaining             map[string]int64
	BreachCount           int64
	SoftBreachCount       int64
	WindowBreachCount     int64
	WindowSoftBreachCount int64
	LastBreachAt          *time.Time
	LastBreachDim         string
	CreatedAt             time.Time
	UpdatedAt             time.Time
	AlertPercents         []int32 // nil when the budget raises no threshold events
	UsageSeries           string  // UsageSeriesHour, UsageSeriesDay, or empty for none
}

// BudgetHistoryParams are the arguments of BudgetHistory.
type BudgetHistoryParams struct {
	BudgetID string
	// MaxRows defaults to 100.
	MaxRows int
	At      time.Time
}

// HistoryWindow is one closed window.
type HistoryWindow struct {
	WindowSeq       int64
	WindowStart     time.Time
	WindowEnd       time.Time
	Usage           map[string]int64
	BreachCount     int64
	SoftBreachCount int64
	ClosedBy        ClosedBy
}

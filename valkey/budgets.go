package valkey

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
)

type outcomeReply struct {
	Outcome     string           `json:"outcome"`
	Applied     bool             `json:"applied"`
	Dimension   *string          `json:"dimension"`
	Usage       *int64           `json:"usage"`
	LimitValue  *int64           `json:"limit_value"`
	Replayed    bool             `json:"replayed"`
	WindowStart *int64           `json:"window_start"`
	NextResetAt *int64           `json:"next_reset_at"`
	ExpiresAt   *int64           `json:"expires_at"`
	BreachID    *string          `json:"breach_budget_id"`
	Remaining   map[string]int64 `json:"remaining"`
}

func (r outcomeReply) outcome() spendcap.Outcome {
	return spendcap.Outcome{Kind: spendcap.OutcomeKind(r.Outcome), Applied: r.Applied, Dimension: deref(r.Dimension),
		Usage: deref(r.Usage), LimitValue: deref(r.LimitValue), Replayed: r.Replayed, WindowStart: toTime(r.WindowStart),
		NextResetAt: toTimePtr(r.NextResetAt), ExpiresAt: toTimePtr(r.ExpiresAt), BreachBudgetID: deref(r.BreachID),
		Remaining: r.Remaining}
}

type statusReply struct {
	BudgetID              string           `json:"budget_id"`
	ParentID              *string          `json:"parent_id"`
	HardLimits            map[string]int64 `json:"hard_limits"`
	SoftLimits            map[string]int64 `json:"soft_limits"`
	ResetEvery            *string          `json:"reset_every"`
	ResetTimezone         string           `json:"reset_timezone"`
	ResetAnchor           *int64           `json:"reset_anchor"`
	Mode                  string           `json:"mode"`
	ScopeType             *string          `json:"scope_type"`
	ScopeID               *string          `json:"scope_id"`
	DedupTTLSeconds       int32            `json:"dedup_ttl_seconds"`
	WindowSeq             int64            `json:"window_seq"`
	WindowStart           *int64           `json:"window_start"`
	NextResetAt           *int64           `json:"next_reset_at"`
	Usage                 map[string]int64 `json:"usage"`
	Reserved              map[string]int64 `json:"reserved"`
	Remaining             map[string]int64 `json:"remaining"`
	BreachCount           int64            `json:"breach_count"`
	SoftBreachCount       int64            `json:"soft_breach_count"`
	WindowBreachCount     int64            `json:"window_breach_count"`
	WindowSoftBreachCount int64            `json:"window_soft_breach_count"`
	LastBreachAt          *int64           `json:"last_breach_at"`
	LastBreachDim         *string          `json:"last_breach_dim"`
	CreatedAt             *int64           `json:"created_at"`
	UpdatedAt             *int64           `json:"updated_at"`
	AlertPercents         []int32          `json:"alert_percents"`
	UsageSeries           *string          `json:"usage_series"`
}

func (r statusReply) status() spendcap.Status {
	return spendcap.Status{
		ParentID: deref(r.ParentID), BudgetID: r.BudgetID, HardLimits: orEmpty(r.HardLimits), SoftLimits: orEmpty(r.SoftLimits), ResetEvery: deref(r.ResetEvery),
		ResetTimezone: r.ResetTimezone, ResetAnchor: toTimePtr(r.ResetAnchor), Mode: spendcap.Mode(r.Mode),
		ScopeType: deref(r.ScopeType), ScopeID: deref(r.ScopeID), DedupTTL: time.Duration(r.DedupTTLSeconds) * time.Second, WindowSeq: r.WindowSeq,
		WindowStart: toTime(r.WindowStart), NextResetAt: toTimePtr(r.NextResetAt), Usage: orEmpty(r.Usage),
		Reserved: orEmpty(r.Reserved), Remaining: orEmpty(r.Remaining), BreachCount: r.BreachCount,
		SoftBreachCount: r.SoftBreachCount, WindowBreachCount: r.WindowBreachCount,
		WindowSoftBreachCount: r.WindowSoftBreachCount, LastBreachAt: toTimePtr(r.LastBreachAt),
		LastBreachDim: deref(r.LastBreachDim), CreatedAt: toTime(r.CreatedAt), UpdatedAt: toTime(r.UpdatedAt),
		AlertPercents: r.AlertPercents, UsageSeries: deref(r.UsageSeries),
	}
}

type releasedReply struct {
	Released map[string]int64 `json:"released"`
}

// CreateBudget implements spendcap.Budgets. For an IANA zone it sends the zone's offset table
// (docs/semantics.md#valkey), computed from Go's zone data from 1970 to 30 years after the creation instant.
func (c *Client) CreateBudget(ctx context.Context, p spendcap.CreateBudgetParams) (spendcap.CreateBudgetResult, error) {
	ttl, err := callargs.Seconds("dedup_ttl_seconds", p.DedupTTL)
	if err != nil {
		return spendcap.CreateBudgetResult{}, err
	}
	a := args{"budget_id": p.BudgetID}.obj("hard_limits", p.HardLimits).obj("soft_limits", p.SoftLimits).
		str("reset_every", p.ResetEvery).str("reset_timezone", p.ResetTimezone).str("mode", string(p.Mode)).
		str("scope_type", p.ScopeType).str("scope_id", p.ScopeID).num("dedup_ttl_seconds", ttl).
		str("usage_series", p.UsageSeries).str("if_exists", string(p.IfExists)).at(p.At)
	if p.ResetAnchor != nil {
		a["reset_anchor"] = p.ResetAnchor.UnixMilli()
	}
	if offsets := zoneOffsets(p.ResetTimezone, p.At); offsets != nil {
		a["tz_offsets"] = offsets
	}
	if p.AlertPercents != nil {
		a["alert_percents"] = p.AlertPercents
	}
	var r struct {
		BudgetID    string `json:"budget_id"`
		Created     bool   `json:"created"`
		WindowStart *int64 `json:"window_start"`
		NextResetAt *int64 `json:"next_reset_at"`
	}
	keys := []string{Key(p.BudgetID)}
	if p.ParentID != "" {
		a["parent_id"] = p.ParentID
		keys = append(keys, c.chainKeys(ctx, p.ParentID)...)
	}
	// An update may move the budget from its parent, whose children count it writes: its key
	// goes last, as for SetParent.
	if p.IfExists == spendcap.IfExistsUpdate {
		if old := c.parentOf(ctx, p.BudgetID); old != "" && old != p.ParentID {
			keys = append(keys, Key(old))
		}
	}
	if err := c.callKeys(ctx, "create_budget", keys, a, false, &r); err != nil {
		return spendcap.CreateBudgetResult{}, err
	}
	return spendcap.CreateBudgetResult{BudgetID: r.BudgetID, Created: r.Created, WindowStart: toTime(r.WindowStart), NextResetAt: toTimePtr(r.NextResetAt)}, nil
}

// SetLimits implements spendcap.Budgets.
func (c *Client) SetLimits(ctx context.Context, p spendcap.SetLimitsParams) (spendcap.Status, error) {
	l, err := callargs.SetLimits(p)
	if err != nil {
		return spendcap.Status{}, err
	}
	var r statusReply
	a := args{"budget_id": p.BudgetID}.obj("hard_limits", l.Hard).obj("soft_limits", l.Soft).str("mode", string(p.Mode)).
		str("usage_series", l.Series).at(p.At)
	if l.Alerts != nil {
		// An empty slice goes as [] (remove them), which encoding/json writes for a non-nil one.
		a["alert_percents"] = l.Alerts
	}
	if err := c.call(ctx, "set_limits", p.BudgetID, a, false, &r); err != nil {
		return spendcap.Status{}, err
	}
	return r.status(), nil
}

// SetParent implements spendcap.Budgets. The library reads the new parent's chain and writes the
// children counts of the old and the new parent, so the call passes all their keys: the budget,
// the new parent's chain nearest first, then the old parent.
func (c *Client) SetParent(ctx context.Context, p spendcap.SetParentParams) (spendcap.Status, error) {
	a := args{"budget_id": p.BudgetID}.at(p.At)
	keys := []string{Key(p.BudgetID)}
	if p.ParentID != "" {
		a["parent_id"] = p.ParentID
		keys = append(keys, c.chainKeys(ctx, p.ParentID)...)
	}
	if old := c.parentOf(ctx, p.BudgetID); old != "" {
		keys = append(keys, Key(old))
	}
	var r statusReply
	if err := c.callKeys(ctx, "set_parent", keys, a, false, &r); err != nil {
		return spendcap.Status{}, err
	}
	return r.status(), nil
}

// DeleteBudget implements spendcap.Budgets. The library names the other budgets it writes (the
// parent, whose children it counts, and the budgets of the sets the budget's reservations and
// ledger entries were charged on) as a set call does, and the client passes their keys.
func (c *Client) DeleteBudget(ctx context.Context, p spendcap.DeleteBudgetParams) (bool, error) {
	var r struct {
		Deleted bool `json:"deleted"`
	}
	err := c.setCall(ctx, "delete_budget", p.BudgetID, nil, args{"budget_id": p.BudgetID}.at(p.At), false, &r)
	return r.Deleted, err
}

// parentOf is the parent of budget id as its status says, or "" (none, or no such budget: the call
// that follows says which).
func (c *Client) parentOf(ctx context.Context, id string) string {
	var r statusReply
	if err := c.call(ctx, "budget_status", id, args{"budget_id": id}, true, &r); err != nil || r.ParentID == nil {
		return ""
	}
	return *r.ParentID
}

// chainKeys are the base keys of id and its ancestors, nearest first, as their statuses say: what
// a call that reads id's chain passes. It stops at a budget that does not exist (the library then
// names it) and after as many budgets as a chain may hold.
func (c *Client) chainKeys(ctx context.Context, id string) []string {
	var keys []string
	for len(keys) < maxDepth && id != "" {
		keys = append(keys, Key(id))
		id = c.parentOf(ctx, id)
	}
	return keys
}

// maxDepth is how many budgets a chain holds at most, the budget itself included (the library's
// MAX_DEPTH).
const maxDepth = 8

func (c *Client) outcome(ctx context.Context, name, budgetID string, also []string, a args, readonly bool) (spendcap.Outcome, error) {
	if len(also) > 0 {
		a["also_charge"] = also
	}
	return c.outcomeOf(ctx, name, budgetID, also, a, readonly)
}

// outcomeOf runs a call that answers an outcome with its arguments a (args or rawArgs).
func (c *Client) outcomeOf(ctx context.Context, name, budgetID string, also []string, a any, readonly bool) (spendcap.Outcome, error) {
	var r outcomeReply
	if err := c.setCall(ctx, name, budgetID, also, a, readonly, &r); err != nil && !errors.Is(err, ErrNotReplicated) {
		return spendcap.Outcome{}, err
	} else if err != nil {
		return r.outcome(), err // the write happened; its durability is unknown
	}
	return r.outcome(), nil
}

// ReportUsage implements spendcap.Budgets.
func (c *Client) ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error) {
	if a := quickReportArgs(p); a != nil {
		return c.outcomeOf(ctx, "report_usage", p.BudgetID, nil, a, false)
	}
	return c.outcome(ctx, "report_usage", p.BudgetID, p.AlsoCharge,
		args{"budget_id": p.BudgetID, "deltas": orEmpty(p.Deltas)}.str("dedup_key", p.DedupKey).at(p.At), false)
}

// CheckUsage implements spendcap.Budgets.
func (c *Client) CheckUsage(ctx context.Context, p spendcap.CheckUsageParams) (spendcap.Outcome, error) {
	return c.outcome(ctx, "check_usage", p.BudgetID, p.AlsoCharge, args{"budget_id": p.BudgetID, "deltas": orEmpty(p.Deltas)}.at(p.At), true)
}

// RecordSpend implements spendcap.Budgets.
func (c *Client) RecordSpend(ctx context.Context, p spendcap.RecordSpendParams) (spendcap.Outcome, error) {
	return c.outcome(ctx, "record_spend", p.BudgetID, p.AlsoCharge, args{"budget_id": p.BudgetID, "execution_id": p.ExecutionID,
		"deltas": orEmpty(p.Deltas)}.str("idempotency_key", p.IdempotencyKey).at(p.At), false)
}

// ReleaseSpend implements spendcap.Budgets.
func (c *Client) ReleaseSpend(ctx context.Context, p spendcap.ReleaseSpendParams) (map[string]int64, error) {
	var r releasedReply
	err := c.setCall(ctx, "release_spend", p.BudgetID, nil, args{"budget_id": p.BudgetID, "execution_id": p.ExecutionID}.at(p.At), false, &r)
	return orEmpty(r.Released), err
}

// Reserve implements spendcap.Budgets.
func (c *Client) Reserve(ctx context.Context, p spendcap.ReserveParams) (spendcap.Outcome, error) {
	ttl, err := callargs.Seconds("ttl_seconds", p.TTL)
	if err != nil {
		return spendcap.Outcome{}, err
	}
	return c.outcome(ctx, "reserve", p.BudgetID, p.AlsoCharge, args{"budget_id": p.BudgetID, "reservation_id": p.ReservationID,
		"amounts": orEmpty(p.Amounts)}.num("ttl_seconds", ttl).str("idempotency_key", p.IdempotencyKey).at(p.At), false)
}

// Settle implements spendcap.Budgets.
func (c *Client) Settle(ctx context.Context, p spendcap.SettleParams) (spendcap.Outcome, error) {
	return c.outcome(ctx, "settle", p.BudgetID, nil, args{"budget_id": p.BudgetID, "reservation_id": p.ReservationID,
		"actual": orEmpty(p.Actual)}.at(p.At), false)
}

// CancelReservation implements spendcap.Budgets.
func (c *Client) CancelReservation(ctx context.Context, p spendcap.CancelReservationParams) (map[string]int64, error) {
	var r releasedReply
	err := c.setCall(ctx, "cancel_reservation", p.BudgetID, nil, args{"budget_id": p.BudgetID, "reservation_id": p.ReservationID}.at(p.At), false, &r)
	return orEmpty(r.Released), err
}

// ResetBudget implements spendcap.Budgets.
func (c *Client) ResetBudget(ctx context.Context, p spendcap.ResetBudgetParams) (spendcap.Window, error) {
	var r struct {
		WindowSeq   int64  `json:"window_seq"`
		WindowStart *int64 `json:"window_start"`
		NextResetAt *int64 `json:"next_reset_at"`
	}
	if err := c.call(ctx, "reset_budget", p.BudgetID, args{"budget_id": p.BudgetID}.at(p.At), false, &r); err != nil {
		return spendcap.Window{}, err
	}
	return spendcap.Window{WindowSeq: r.WindowSeq, WindowStart: toTime(r.WindowStart), NextResetAt: toTimePtr(r.NextResetAt)}, nil
}

// BudgetStatus implements spendcap.Budgets.
func (c *Client) BudgetStatus(ctx context.Context, p spendcap.BudgetStatusParams) (spendcap.Status, error) {
	var r statusReply
	if err := c.call(ctx, "budget_status", p.BudgetID, args{"budget_id": p.BudgetID}.at(p.At), true, &r); err != nil {
		return spendcap.Status{}, err
	}
	return r.status(), nil
}

var _ spendcap.SeriesReader = (*Client)(nil)

// UsageSeries implements spendcap.SeriesReader.
func (c *Client) UsageSeries(ctx context.Context, p spendcap.UsageSeriesParams) ([]spendcap.UsageBucket, error) {
	var rows []struct {
		BucketStart *int64           `json:"bucket_start"`
		BucketEnd   *int64           `json:"bucket_end"`
		Usage       map[string]int64 `json:"usage"`
	}
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	if err := c.call(ctx, "usage_series", p.BudgetID, args{"budget_id": p.BudgetID}.num("max_rows", maxRows).at(p.At), true, &rows); err != nil {
		return nil, err
	}
	out := make([]spendcap.UsageBucket, len(rows))
	for i, r := range rows {
		out[i] = spendcap.UsageBucket{Start: toTime(r.BucketStart), End: toTime(r.BucketEnd), Usage: orEmpty(r.Usage)}
	}
	return out, nil
}

// BudgetHistory implements spendcap.Budgets.
func (c *Client) BudgetHistory(ctx context.Context, p spendcap.BudgetHistoryParams) ([]spendcap.HistoryWindow, error) {
	var rows []struct {
		WindowSeq       int64            `json:"window_seq"`
		WindowStart     *int64           `json:"window_start"`
		WindowEnd       *int64           `json:"window_end"`
		Usage           map[string]int64 `json:"usage"`
		BreachCount     int64            `json:"breach_count"`
		SoftBreachCount int64            `json:"soft_breach_count"`
		ClosedBy        string           `json:"closed_by"`
	}
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	if err := c.call(ctx, "budget_history", p.BudgetID, args{"budget_id": p.BudgetID}.num("max_rows", maxRows).at(p.At), true, &rows); err != nil {
		return nil, err
	}
	out := make([]spendcap.HistoryWindow, len(rows))
	for i, r := range rows {
		out[i] = spendcap.HistoryWindow{WindowSeq: r.WindowSeq, WindowStart: toTime(r.WindowStart), WindowEnd: toTime(r.WindowEnd),
			Usage: orEmpty(r.Usage), BreachCount: r.BreachCount, SoftBreachCount: r.SoftBreachCount, ClosedBy: spendcap.ClosedBy(r.ClosedBy)}
	}
	return out, nil
}

var _ spendcap.ReservationLister = (*Client)(nil)

// BudgetReservations implements spendcap.ReservationLister. It reads the budget's whole hash of
// reservations, sorted in the library.
func (c *Client) BudgetReservations(ctx context.Context, p spendcap.BudgetReservationsParams) ([]spendcap.Reservation, error) {
	var rows []struct {
		ReservationID string           `json:"reservation_id"`
		NamedID       string           `json:"named_id"`
		Amounts       map[string]int64 `json:"amounts"`
		ExpiresAt     *int64           `json:"expires_at"`
	}
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	if err := c.call(ctx, "budget_reservations", p.BudgetID, args{"budget_id": p.BudgetID}.num("max_rows", maxRows).at(p.At), true, &rows); err != nil {
		return nil, err
	}
	out := make([]spendcap.Reservation, len(rows))
	for i, r := range rows {
		out[i] = spendcap.Reservation{ReservationID: r.ReservationID, NamedID: r.NamedID, Amounts: orEmpty(r.Amounts), ExpiresAt: toTime(r.ExpiresAt)}
	}
	return out, nil
}

// zoneOffsets returns the offset table of an IANA zone for the library (docs/semantics.md#valkey): pairs of
// [from_ms, offset_seconds] from 1970 to the end of the year 30 years after at (now when zero).
// It returns nil for UTC, fixed offsets and names Go does not know (the library then refuses the
// zone).
func zoneOffsets(name string, at time.Time) [][2]int64 {
	if name == "" || name == "UTC" || name[0] == '+' || name[0] == '-' {
		return nil
	}
	if at.IsZero() {
		at = time.Now()
	}
	key := zoneKey{name, at.UTC().Year() + 31}
	if v, ok := zoneCache.Load(key); ok {
		return v.([][2]int64)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	until := time.Date(key.untilYear, 1, 1, 0, 0, 0, 0, time.UTC)
	t := time.Unix(0, 0).In(loc)
	_, off := t.Zone()
	out := [][2]int64{{t.UnixMilli(), int64(off)}}
	for {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.After(until) {
			break
		}
		if !end.After(t) {
			// Beyond the zone file's table Go computes zones a year at a time and may report the
			// year's end as a bound of no change: step over it.
			end = t.Add(time.Second)
		}
		if _, off := end.Zone(); int64(off) != out[len(out)-1][1] {
			out = append(out, [2]int64{end.UnixMilli(), int64(off)})
		}
		t = end
	}
	zoneCache.Store(key, out)
	return out
}

type zoneKey struct {
	name      string
	untilYear int
}

// zoneCache keeps computed tables: walking 60 years of zone bounds takes tens of milliseconds.
var zoneCache sync.Map

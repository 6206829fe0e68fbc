// Package conformance is the behavioural suite every spendcap backend must pass: each budget
// scenario of docs/semantics.md is written once against spendcap.Budgets and run on PostgreSQL (gobinding)
// and on Valkey (the Lua library), the way golang-migrate runs one suite over all its drivers.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

// Open returns a backend with no budgets and no policies, for one test.
type Open func(t *testing.T) spendcap.Backend

type scenario struct {
	name string
	fn   func(t *testing.T, b spendcap.Backend)
}

var scenarios []scenario

func register(name string, fn func(t *testing.T, b spendcap.Backend)) {
	scenarios = append(scenarios, scenario{name, fn})
}

// Run runs every scenario, in parallel, each on a fresh backend.
func Run(t *testing.T, open Open) {
	RunMatching(t, open, "")
}

// RunMatching runs the scenarios whose name contains substr ("" for all).
func RunMatching(t *testing.T, open Open, substr string) {
	RunSelected(t, open, func(name string) bool { return strings.Contains(name, substr) })
}

// RunSelected runs the scenarios whose name keep accepts.
func RunSelected(t *testing.T, open Open, keep func(name string) bool) {
	sorted := append([]scenario(nil), scenarios...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, s := range sorted {
		if !keep(s.name) {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.fn(t, open(t))
		})
	}
}

// Names lists the scenarios.
func Names() []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.name)
	}
	sort.Strings(out)
	return out
}

var ctx = context.Background()

var sentinels = map[string]error{
	"SC001": spendcap.ErrBudgetNotFound, "SC002": spendcap.ErrInvalidArgument, "SC003": spendcap.ErrIdempotencyConflict,
	"SC004": spendcap.ErrQuantityOutOfRange, "SC005": spendcap.ErrBudgetConflict, "SC006": spendcap.ErrPolicyNotFound,
	"SC007": spendcap.ErrReservationNotFound,
}

type q = map[string]int64

// A day-window budget created at noon on 2026-03-10 UTC: window [Mar 10, Mar 11).
var (
	day0     = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	dayStart = time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	dayNext  = ptr(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC))
)

func ptr[T any](v T) *T { return &v }

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func after(base time.Time, d string) time.Time {
	dur, err := time.ParseDuration(strings.ReplaceAll(d, " ", ""))
	if err != nil {
		panic(err)
	}
	return base.Add(dur)
}

func itoa(i int) string { return fmt.Sprint(i) }

// Outcome builders.

func ok(start time.Time, next *time.Time) spendcap.Outcome {
	return spendcap.Outcome{Kind: spendcap.OutcomeOK, Applied: true, WindowStart: start, NextResetAt: next}
}

func soft(start time.Time, next *time.Time, dim string, usage, limit int64) spendcap.Outcome {
	return spendcap.Outcome{Kind: spendcap.OutcomeSoftBreach, Applied: true, Dimension: dim, Usage: usage, LimitValue: limit, WindowStart: start, NextResetAt: next}
}

func hard(start time.Time, next *time.Time, dim string, usage, limit int64, applied bool) spendcap.Outcome {
	return spendcap.Outcome{Kind: spendcap.OutcomeHardBreach, Applied: applied, Dimension: dim, Usage: usage, LimitValue: limit, WindowStart: start, NextResetAt: next}
}

func replayed(o spendcap.Outcome) spendcap.Outcome { o.Replayed = true; return o }

// left is o with what remains (docs/semantics.md#remaining).
func left(o spendcap.Outcome, remaining q) spendcap.Outcome { o.Remaining = remaining; return o }

// in names the budget of a breach of a set (breach_budget_id).
func in(o spendcap.Outcome, budgetID string) spendcap.Outcome { o.BreachBudgetID = budgetID; return o }

func expiring(o spendcap.Outcome, at time.Time) spendcap.Outcome { o.ExpiresAt = &at; return o }

func fmtTime(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// OutcomeString renders an outcome for comparisons and messages.
func OutcomeString(o spendcap.Outcome) string {
	remaining := "nil"
	if o.Remaining != nil {
		remaining = quantitiesString(o.Remaining)
	}
	return fmt.Sprintf("{%s applied=%v dim=%q usage=%d limit=%d replayed=%v window=[%s, %s) expires=%s breach=%q remaining=%s}",
		o.Kind, o.Applied, o.Dimension, o.Usage, o.LimitValue, o.Replayed, fmtTime(&o.WindowStart), fmtTime(o.NextResetAt), fmtTime(o.ExpiresAt),
		o.BreachBudgetID, remaining)
}

// quantitiesString renders quantities as {dim:n ...}, dimensions in order.
func quantitiesString(x map[string]int64) string {
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, x[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// requireOutcome compares an outcome with want. A breach whose want names no budget (in) is a
// breach of a budget charged alone: it must name a budget, which only a set could make another.
func requireOutcome(t *testing.T, got spendcap.Outcome, err error, want spendcap.Outcome) {
	t.Helper()
	if err != nil {
		t.Fatalf("want %s, got error %v", OutcomeString(want), err)
	}
	if want.Kind != spendcap.OutcomeOK && want.BreachBudgetID == "" && got.BreachBudgetID != "" {
		want.BreachBudgetID = got.BreachBudgetID
	}
	// Scenarios about remaining say what they want; the others leave it out.
	if want.Remaining == nil {
		got.Remaining = nil
	}
	if OutcomeString(got) != OutcomeString(want) {
		t.Fatalf("outcome\n got %s\nwant %s", OutcomeString(got), OutcomeString(want))
	}
}

// requireCode asserts err carries a spendcap error code, matches its sentinel, and has a message starting
// with the argument it concerns.
func requireCode(t *testing.T, err error, code, arg string) {
	t.Helper()
	var e *spendcap.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want %s", err, code)
	}
	if e.Code != code || !strings.HasPrefix(e.Message, arg) || !errors.Is(err, sentinels[code]) {
		t.Fatalf("err = %s %q, want %s with a message starting %q", e.Code, e.Message, code, arg)
	}
}

// StatusString renders every field of a status.
func StatusString(s spendcap.Status) string {
	m := func(x map[string]int64) string {
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s:%d ", k, x[k])
		}
		return "{" + strings.TrimSpace(b.String()) + "}"
	}
	return fmt.Sprintf("id=%s parent=%q hard=%s soft=%s every=%q tz=%s anchor=%s mode=%s scope=%q/%q ttl=%v seq=%d window=[%s, %s) usage=%s reserved=%s remaining=%s breaches=%d/%d window=%d/%d last=%s %q created=%s updated=%s series=%q",
		s.BudgetID, s.ParentID, m(s.HardLimits), m(s.SoftLimits), s.ResetEvery, s.ResetTimezone, fmtTime(s.ResetAnchor), s.Mode, s.ScopeType, s.ScopeID,
		s.DedupTTL, s.WindowSeq, fmtTime(&s.WindowStart), fmtTime(s.NextResetAt), m(s.Usage), m(s.Reserved), m(s.Remaining),
		s.BreachCount, s.SoftBreachCount, s.WindowBreachCount, s.WindowSoftBreachCount, fmtTime(s.LastBreachAt), s.LastBreachDim,
		fmtTime(&s.CreatedAt), fmtTime(&s.UpdatedAt), s.UsageSeries)
}

// HistoryString renders closed windows.
func HistoryString(h []spendcap.HistoryWindow) string {
	var parts []string
	for _, w := range h {
		keys := make([]string, 0, len(w.Usage))
		for k := range w.Usage {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var u []string
		for _, k := range keys {
			u = append(u, fmt.Sprintf("%s:%d", k, w.Usage[k]))
		}
		parts = append(parts, fmt.Sprintf("{seq %d [%s, %s) usage {%s} breaches %d/%d %s}", w.WindowSeq, fmtTime(&w.WindowStart),
			fmtTime(&w.WindowEnd), strings.Join(u, " "), w.BreachCount, w.SoftBreachCount, w.ClosedBy))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func status(t *testing.T, b spendcap.Budgets, id string, at time.Time) spendcap.Status {
	t.Helper()
	st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id, At: at})
	if err != nil {
		t.Fatalf("budget_status(%s): %v", id, err)
	}
	return st
}

// requireState checks the status fields that admission changes.
func requireState(t *testing.T, b spendcap.Budgets, id string, at time.Time, usage, reserved q, breaches, softBreaches int64) spendcap.Status {
	t.Helper()
	st := status(t, b, id, at)
	if !maps.Equal(st.Usage, usage) || !maps.Equal(st.Reserved, reserved) || st.BreachCount != breaches || st.SoftBreachCount != softBreaches {
		t.Fatalf("state: usage %v reserved %v breaches %d soft %d; want usage %v reserved %v breaches %d soft %d",
			st.Usage, st.Reserved, st.BreachCount, st.SoftBreachCount, usage, reserved, breaches, softBreaches)
	}
	return st
}

// snapshot renders everything observable about a budget, to check that a failed call wrote nothing.
func snapshot(t *testing.T, b spendcap.Budgets, id string, at time.Time) string {
	t.Helper()
	st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id, At: at})
	if err != nil {
		return "error: " + err.Error()
	}
	h, err := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return StatusString(st) + " " + HistoryString(h)
}

func requireHistory(t *testing.T, got []spendcap.HistoryWindow, err error, want ...spendcap.HistoryWindow) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if HistoryString(got) != HistoryString(want) {
		t.Fatalf("history\n got %s\nwant %s", HistoryString(got), HistoryString(want))
	}
}

func requireReleased(t *testing.T, got map[string]int64, err error, want q) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
}

func mustCreate(t *testing.T, b spendcap.Budgets, p spendcap.CreateBudgetParams) spendcap.CreateBudgetResult {
	t.Helper()
	c, err := b.CreateBudget(ctx, p)
	if err != nil {
		t.Fatalf("create_budget(%s): %v", p.BudgetID, err)
	}
	return c
}

// Short call helpers, in the order of the SQL arguments.

func report(b spendcap.Budgets, id string, deltas q, key string, at time.Time) (spendcap.Outcome, error) {
	return b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: deltas, DedupKey: key, At: at})
}

func check(b spendcap.Budgets, id string, deltas q, at time.Time) (spendcap.Outcome, error) {
	return b.CheckUsage(ctx, spendcap.CheckUsageParams{BudgetID: id, Deltas: deltas, At: at})
}

func spend(b spendcap.Budgets, id, exec string, deltas q, key string, at time.Time) (spendcap.Outcome, error) {
	return b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: id, ExecutionID: exec, Deltas: deltas, IdempotencyKey: key, At: at})
}

func release(b spendcap.Budgets, id, exec string, at time.Time) (map[string]int64, error) {
	return b.ReleaseSpend(ctx, spendcap.ReleaseSpendParams{BudgetID: id, ExecutionID: exec, At: at})
}

func reserve(b spendcap.Budgets, id, rid string, amounts q, ttlSeconds int32, key string, at time.Time) (spendcap.Outcome, error) {
	return b.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: amounts, TTL: time.Duration(ttlSeconds) * time.Second, IdempotencyKey: key, At: at})
}

func settle(b spendcap.Budgets, id, rid string, actual q, at time.Time) (spendcap.Outcome, error) {
	return b.Settle(ctx, spendcap.SettleParams{BudgetID: id, ReservationID: rid, Actual: actual, At: at})
}

func cancel(b spendcap.Budgets, id, rid string, at time.Time) (map[string]int64, error) {
	return b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: id, ReservationID: rid, At: at})
}

func reset(b spendcap.Budgets, id string, at time.Time) (spendcap.Window, error) {
	return b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: id, At: at})
}

func history(b spendcap.Budgets, id string, maxRows int, at time.Time) ([]spendcap.HistoryWindow, error) {
	return b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, MaxRows: maxRows, At: at})
}

// must unwraps a setup call that cannot fail unless the backend is broken, which ends the run.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("setup call failed: %v", err))
	}
	return v
}

package tests

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/tests/conformance"
)

// The differential test runs random call sequences on both backends and requires identical
// results: every outcome, error code, status and history. `make test` runs 2,000 sequences;
// more with -rapid.checks=N (see TestMain).

var (
	zones   = []string{"UTC", "America/New_York", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe", "+05:45", "-03:30"}
	periods = []string{"", "1 second", "1 minute", "15 minutes", "1 hour", "7 hours", "1 day", "2 days", "1 week", "1 month", "3 months", "1 year"}
	dims    = []string{"a", "b", "Z"}
	steps   = []time.Duration{0, time.Millisecond, time.Second, 59 * time.Second, time.Minute, 17 * time.Minute, time.Hour,
		5 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour, 31 * 24 * time.Hour, 400 * 24 * time.Hour}
)

type differ struct {
	rt    *rapid.T
	a, b  spendcap.Backend
	names [2]string // of a and b, for messages
	log   []string
}

// errKey is what must agree about an error: the code and the argument the message names.
func errKey(err error) string {
	if err == nil {
		return ""
	}
	var e *spendcap.Error
	if !errors.As(err, &e) {
		return "unexpected: " + err.Error()
	}
	arg, _, _ := strings.Cut(e.Message, ":")
	return e.Code + " " + arg
}

func (d *differ) same(what string, call func(b spendcap.Backend) (string, error)) {
	d.rt.Helper()
	r1, e1 := call(d.a)
	r2, e2 := call(d.b)
	d.log = append(d.log, fmt.Sprintf("%s -> %s%s", what, r1, errKey(e1)))
	if strings.HasPrefix(errKey(e1), "unexpected") || strings.HasPrefix(errKey(e2), "unexpected") || errKey(e1) != errKey(e2) || r1 != r2 {
		d.rt.Fatalf("%s and %s differ on %s\n%s: %s %v\n%s: %s %v\nsequence so far:\n  %s", d.names[0], d.names[1], what,
			d.names[0], r1, e1, d.names[1], r2, e2, strings.Join(d.log, "\n  "))
	}
}

func drawQuantities(rt *rapid.T, label string, min int, maxValue int64) map[string]int64 {
	out := map[string]int64{}
	n := rapid.IntRange(min, len(dims)).Draw(rt, label+" dims")
	for _, i := range rapid.Permutation([]int{0, 1, 2}).Draw(rt, label+" order")[:n] {
		out[dims[i]] = rapid.Int64Range(0, maxValue).Draw(rt, label+" "+dims[i])
	}
	return out
}

func drawDefinition(rt *rapid.T, id string, now time.Time) spendcap.CreateBudgetParams {
	hard := drawQuantities(rt, "hard", 0, 30)
	soft := map[string]int64{}
	for d, h := range drawQuantities(rt, "soft", 0, 30) {
		if hv, ok := hard[d]; ok && h > hv {
			h = hv
		}
		soft[d] = h
	}
	p := spendcap.CreateBudgetParams{BudgetID: id, HardLimits: hard, SoftLimits: soft,
		ResetEvery: rapid.SampledFrom(periods).Draw(rt, "period"), ResetTimezone: rapid.SampledFrom(zones).Draw(rt, "zone"),
		Mode:     rapid.SampledFrom([]spendcap.Mode{spendcap.ModeEnforce, spendcap.ModeEnforce, spendcap.ModeObserve}).Draw(rt, "mode"),
		DedupTTL: rapid.SampledFrom([]time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour}).Draw(rt, "ttl"), At: now,
		UsageSeries: rapid.SampledFrom([]string{"", "", spendcap.UsageSeriesHour, spendcap.UsageSeriesDay}).Draw(rt, "usage series")}
	if p.ResetEvery != "" && rapid.IntRange(0, 3).Draw(rt, "explicit anchor") == 0 {
		anchor := now.Add(time.Duration(rapid.Int64Range(-90*24, 30*24).Draw(rt, "anchor hours")) * time.Hour).Add(
			time.Duration(rapid.Int64Range(0, 59).Draw(rt, "anchor minutes")) * time.Minute)
		p.ResetAnchor = &anchor
	}
	return p
}

func createdString(c spendcap.CreateBudgetResult) string {
	return fmt.Sprintf("created=%v [%s, %s)", c.Created, c.WindowStart.UTC().Format(time.RFC3339Nano), timeString(c.NextResetAt))
}

func timeString(t *time.Time) string {
	if t == nil {
		return "null"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func mapString(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

var sequenceID atomic.Int64

func TestDifferentialPostgresAgainstValkey(t *testing.T) {
	t.Parallel()
	differSequences(t, [2]string{"postgres", "valkey"}, openPostgres(t), openValkey(t))
}

// TestFastPathsAgreeWithTheGeneralPathOnPostgres runs the random sequences of the differential
// test on PostgreSQL twice, once as callers make the calls and once with every report (and every
// batch item, as a call of its own) sent down the general path, admit: a mistake that
// report_usage's fast paths and report_usage_batch's quick batch share shows as a difference,
// although PostgreSQL and Valkey agree.
func TestFastPathsAgreeWithTheGeneralPathOnPostgres(t *testing.T) {
	t.Parallel()
	differSequences(t, [2]string{"fast paths", "general path"}, openPostgres(t), &generalPath{Backend: openPostgres(t)})
}

// TestFastPathsAgreeWithTheGeneralPathOnValkey is the same on Valkey: fast_report and the batch's
// fast items against admit.
func TestFastPathsAgreeWithTheGeneralPathOnValkey(t *testing.T) {
	t.Parallel()
	differSequences(t, [2]string{"fast paths", "general path"}, openValkey(t), &generalPath{Backend: openValkey(t), valkey: true})
}

// generalPath is a backend whose reports all take the general path, with the same meaning: on
// PostgreSQL a non-null also_charge ({}, which names the budget alone) leaves the fast path; on
// Valkey a dedup key that no other call uses does (the fast path takes no key). A batch runs as
// its items one call after the other, which is what a batch means.
type generalPath struct {
	spendcap.Backend
	valkey bool
	keys   atomic.Int64
}

// ReportUsage sends the call down the general path.
func (g *generalPath) ReportUsage(ctx context.Context, p spendcap.ReportUsageParams) (spendcap.Outcome, error) {
	switch {
	case g.valkey && p.DedupKey == "":
		p.DedupKey = fmt.Sprintf("general-path-%d", g.keys.Add(1))
	case !g.valkey && p.AlsoCharge == nil:
		p.AlsoCharge = []string{}
	}
	return g.Backend.ReportUsage(ctx, p)
}

// ListBudgets lists the wrapped backend's budgets.
func (g *generalPath) ListBudgets(ctx context.Context, p spendcap.ListBudgetsParams) (spendcap.BudgetPage, error) {
	return g.Backend.(spendcap.Lister).ListBudgets(ctx, p)
}

// BudgetReservations lists the wrapped backend's reservations.
func (g *generalPath) BudgetReservations(ctx context.Context, p spendcap.BudgetReservationsParams) ([]spendcap.Reservation, error) {
	return g.Backend.(spendcap.ReservationLister).BudgetReservations(ctx, p)
}

// RecentEvents reads the wrapped backend's events.
func (g *generalPath) RecentEvents(ctx context.Context, p spendcap.RecentEventsParams) ([]spendcap.Event, error) {
	return g.Backend.(spendcap.EventLog).RecentEvents(ctx, p)
}

// UsageSeries reads the wrapped backend's usage series.
func (g *generalPath) UsageSeries(ctx context.Context, p spendcap.UsageSeriesParams) ([]spendcap.UsageBucket, error) {
	return g.Backend.(spendcap.SeriesReader).UsageSeries(ctx, p)
}

// ReportUsageBatch makes the items calls of their own, down the general path.
func (g *generalPath) ReportUsageBatch(ctx context.Context, p spendcap.ReportUsageBatchParams) ([]spendcap.BatchResult, error) {
	res := make([]spendcap.BatchResult, len(p.Items))
	for i, it := range p.Items {
		o, err := g.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey,
			AlsoCharge: it.AlsoCharge, At: p.At})
		res[i] = spendcap.BatchResult{Outcome: o, Err: err}
	}
	return res, nil
}

// differSequences runs random call sequences on a and b, each against a store of its own, and
// requires identical results.
func differSequences(t *testing.T, names [2]string, a, b spendcap.Backend) {
	rapid.Check(t, func(rt *rapid.T) {
		d := &differ{rt: rt, a: a, b: b, names: names}
		prefix := fmt.Sprintf("s%d-", sequenceID.Add(1))
		now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(
			time.Duration(rapid.Int64Range(0, 10*365*24*3600).Draw(rt, "start second")) * time.Second)
		// Budget sets: team is the parent of x and y when drawn so, tag is charged through
		// also_charge; any budget may be named by a call, moved by set_parent or deleted.
		team, tag := prefix+"team", prefix+"tag"
		ids := []string{prefix + "x", prefix + "y", team, tag}
		parentOf := func(id string) string {
			if (id == ids[0] || id == ids[1]) && rapid.Bool().Draw(rt, "under team") {
				return team
			}
			return ""
		}
		defs := map[string]spendcap.CreateBudgetParams{}
		for _, id := range []string{team, tag, ids[0], ids[1]} {
			defs[id] = drawDefinition(rt, id, now)
			p := defs[id]
			p.ParentID = parentOf(id)
			defs[id] = p
			d.same("create "+id, func(b spendcap.Backend) (string, error) {
				c, err := b.CreateBudget(ctx, p)
				return createdString(c), err
			})
		}
		also := func() []string {
			return rapid.SampledFrom([][]string{nil, nil, {tag}, {ids[1]}, {tag, team}}).Draw(rt, "also_charge")
		}
		pid, pid2 := prefix+"q", prefix+"q2"
		drawPolicy := func(id string, at time.Time) spendcap.CreateQuotaPolicyParams {
			p := spendcap.CreateQuotaPolicyParams{PolicyID: id, MaxConcurrent: rapid.Int32Range(0, 3).Draw(rt, "max concurrent"),
				LeaseTTL: rapid.SampledFrom([]time.Duration{0, time.Second, 30 * time.Second, time.Hour}).Draw(rt, "lease"), At: at}
			if rapid.Bool().Draw(rt, "rate limited") {
				p.Window = rapid.SampledFrom([]time.Duration{time.Second, time.Minute, time.Hour}).Draw(rt, "window")
				p.MaxRequests = rapid.Int32Range(0, 4).Draw(rt, "max requests")
			}
			return p
		}
		policyDef := drawPolicy(pid, now)
		d.same("create_quota_policy", func(b spendcap.Backend) (string, error) {
			r, err := b.CreateQuotaPolicy(ctx, policyDef)
			return fmt.Sprintf("%+v", r), err
		})
		policy2 := drawPolicy(pid2, now)
		d.same("create_quota_policy 2", func(b spendcap.Backend) (string, error) {
			r, err := b.CreateQuotaPolicy(ctx, policy2)
			return fmt.Sprintf("%+v", r), err
		})
		alsoPolicies := func() []string {
			return rapid.SampledFrom([][]string{nil, {pid2}}).Draw(rt, "also_policies")
		}
		key := func(label string) string { return rapid.SampledFrom([]string{"", "k1", "k2", "k3"}).Draw(rt, label) }
		n := rapid.IntRange(1, 30).Draw(rt, "calls")
		for i := 0; i < n; i++ {
			now = now.Add(rapid.SampledFrom(steps).Draw(rt, "step"))
			at := now
			if rapid.IntRange(0, 9).Draw(rt, "at in the past") == 0 {
				at = now.Add(-rapid.SampledFrom(steps).Draw(rt, "back"))
			}
			id := rapid.SampledFrom(ids).Draw(rt, "budget")
			exec := rapid.SampledFrom([]string{"e1", "e2"}).Draw(rt, "execution")
			rid := rapid.SampledFrom([]string{"r1", "r2", "r3"}).Draw(rt, "reservation")
			holder := rapid.SampledFrom([]string{"h1", "h2", "h3", "h4"}).Draw(rt, "holder")
			switch op := rapid.IntRange(0, 21).Draw(rt, "op"); op {
			case 14, 15, 16:
				ap := alsoPolicies()
				d.same(fmt.Sprintf("acquire_quota %s %v at %s", holder, ap, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					r, err := b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: pid, HolderID: holder, At: at, AlsoPolicies: ap})
					return fmt.Sprintf("%+v", r), err
				})
			case 17:
				ap := alsoPolicies()
				d.same(fmt.Sprintf("renew_quota %s %v at %s", holder, ap, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					r, err := b.RenewQuota(ctx, spendcap.RenewQuotaParams{PolicyID: pid, HolderID: holder, At: at, AlsoPolicies: ap})
					return r.UTC().Format(time.RFC3339Nano), err
				})
			case 18:
				ap := alsoPolicies()
				d.same(fmt.Sprintf("release_quota %s %v at %s", holder, ap, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					r, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: pid, HolderID: holder, At: at, AlsoPolicies: ap})
					return fmt.Sprint(r), err
				})
			case 20:
				parent := rapid.SampledFrom([]string{"", team, tag, ids[0]}).Draw(rt, "new parent")
				d.same(fmt.Sprintf("set_parent %s %q at %s", id, parent, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					st, err := b.SetParent(ctx, spendcap.SetParentParams{BudgetID: id, ParentID: parent, At: at})
					if err == nil {
						p := defs[id]
						p.ParentID = parent
						defs[id] = p
					}
					return conformance.StatusString(st), err
				})
			case 19:
				if rapid.IntRange(0, 4).Draw(rt, "recreate policy") == 0 {
					d.same("delete_quota_policy", func(b spendcap.Backend) (string, error) {
						r, err := b.DeleteQuotaPolicy(ctx, spendcap.DeleteQuotaPolicyParams{PolicyID: pid})
						return fmt.Sprint(r), err
					})
					policyDef = drawPolicy(pid, at)
				}
				p := policyDef
				if rapid.IntRange(0, 3).Draw(rt, "other policy definition") == 0 {
					p = drawPolicy(pid, at)
				}
				d.same(fmt.Sprintf("create_quota_policy %+v", p), func(b spendcap.Backend) (string, error) {
					r, err := b.CreateQuotaPolicy(ctx, p)
					return fmt.Sprintf("%+v", r), err
				})
			case 0, 1, 2:
				deltas, k, more := drawQuantities(rt, "deltas", 0, 12), key("key"), also()
				d.same(fmt.Sprintf("report_usage %s %v %q %v at %s", id, deltas, k, more, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: deltas, DedupKey: k, At: at, AlsoCharge: more})
					return conformance.OutcomeString(o), err
				})
			case 21:
				items := drawBatch(rt, ids, key, also)
				d.same(fmt.Sprintf("report_usage_batch %s at %s", batchString(items), at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					res, err := b.(spendcap.BatchReporter).ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: items, At: at})
					return resultsString(res), err
				})
			case 3:
				deltas, more := drawQuantities(rt, "deltas", 1, 12), also()
				d.same(fmt.Sprintf("check_usage %s %v %v at %s", id, deltas, more, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.CheckUsage(ctx, spendcap.CheckUsageParams{BudgetID: id, Deltas: deltas, At: at, AlsoCharge: more})
					return conformance.OutcomeString(o), err
				})
			case 4, 5:
				deltas, k, more := drawQuantities(rt, "deltas", 1, 12), key("key"), also()
				d.same(fmt.Sprintf("record_spend %s %s %v %q %v at %s", id, exec, deltas, k, more, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: id, ExecutionID: exec, Deltas: deltas, IdempotencyKey: k, At: at, AlsoCharge: more})
					return conformance.OutcomeString(o), err
				})
			case 6:
				d.same(fmt.Sprintf("release_spend %s %s at %s", id, exec, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					r, err := b.ReleaseSpend(ctx, spendcap.ReleaseSpendParams{BudgetID: id, ExecutionID: exec, At: at})
					return mapString(r), err
				})
			case 7, 8:
				amounts, k, more := drawQuantities(rt, "amounts", 1, 12), key("key"), also()
				ttl := rapid.SampledFrom([]time.Duration{time.Second, 30 * time.Second, 10 * time.Minute, 24 * time.Hour}).Draw(rt, "reservation ttl")
				d.same(fmt.Sprintf("reserve %s %s %v ttl %v %q %v at %s", id, rid, amounts, ttl, k, more, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: amounts, TTL: ttl, IdempotencyKey: k, At: at, AlsoCharge: more})
					return conformance.OutcomeString(o), err
				})
			case 9:
				actual := drawQuantities(rt, "actual", 0, 15)
				d.same(fmt.Sprintf("settle %s %s %v at %s", id, rid, actual, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.Settle(ctx, spendcap.SettleParams{BudgetID: id, ReservationID: rid, Actual: actual, At: at})
					return conformance.OutcomeString(o), err
				})
			case 10:
				d.same(fmt.Sprintf("cancel_reservation %s %s at %s", id, rid, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					r, err := b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: id, ReservationID: rid, At: at})
					return mapString(r), err
				})
			case 11:
				d.same(fmt.Sprintf("reset_budget %s at %s", id, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					w, err := b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: id, At: at})
					return fmt.Sprintf("seq %d [%s, %s)", w.WindowSeq, w.WindowStart.UTC().Format(time.RFC3339Nano), timeString(w.NextResetAt)), err
				})
			case 12:
				p := spendcap.SetLimitsParams{BudgetID: id, At: at}
				// An empty draw clears the field (an empty map alone would leave it as it is).
				if rapid.Bool().Draw(rt, "new hard") {
					p.HardLimits = drawQuantities(rt, "hard", 0, 30)
					p.ClearHardLimits = len(p.HardLimits) == 0
				}
				if rapid.Bool().Draw(rt, "new soft") {
					p.SoftLimits = drawQuantities(rt, "soft", 0, 30)
					p.ClearSoftLimits = len(p.SoftLimits) == 0
				}
				if rapid.Bool().Draw(rt, "new mode") {
					p.Mode = rapid.SampledFrom([]spendcap.Mode{spendcap.ModeEnforce, spendcap.ModeObserve}).Draw(rt, "mode")
				}
				switch rapid.IntRange(0, 5).Draw(rt, "new usage series") {
				case 0:
					p.UsageSeries = spendcap.UsageSeriesHour
				case 1:
					p.UsageSeries = spendcap.UsageSeriesDay
				case 2:
					p.ClearUsageSeries = true
				}
				d.same(fmt.Sprintf("set_limits %+v", p), func(b spendcap.Backend) (string, error) {
					st, err := b.SetLimits(ctx, p)
					return conformance.StatusString(st), err
				})
			case 13:
				switch rapid.IntRange(0, 3).Draw(rt, "lifecycle") {
				case 0: // create again: identical, or with another definition, under each if_exists rule
					p := defs[id]
					p.At = at
					if rapid.Bool().Draw(rt, "change definition") {
						p = drawDefinition(rt, id, at)
						p.ParentID = parentOf(id)
					}
					p.IfExists = rapid.SampledFrom([]spendcap.IfExists{"", spendcap.IfExistsKeep, spendcap.IfExistsUpdate}).Draw(rt, "if_exists")
					updated := false
					d.same(fmt.Sprintf("create again %s %+v", id, p), func(b spendcap.Backend) (string, error) {
						c, err := b.CreateBudget(ctx, p)
						updated = err == nil && p.IfExists == spendcap.IfExistsUpdate
						return createdString(c), err
					})
					if updated {
						p.IfExists = ""
						defs[id] = p
					}
				case 1: // delete and create anew
					deleted := false
					d.same("delete "+id, func(b spendcap.Backend) (string, error) {
						ok, err := b.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: id, At: at})
						deleted = ok
						return fmt.Sprint(ok), err
					})
					p := defs[id]
					if deleted {
						p = drawDefinition(rt, id, at)
						p.ParentID = parentOf(id)
						defs[id] = p
					}
					d.same("create "+id, func(b spendcap.Backend) (string, error) {
						c, err := b.CreateBudget(ctx, p)
						return createdString(c), err
					})
				case 2:
					maxRows := rapid.IntRange(1, 5).Draw(rt, "max rows")
					d.same(fmt.Sprintf("usage_series %s %d at %s", id, maxRows, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
						s, err := b.(spendcap.SeriesReader).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: id, MaxRows: maxRows, At: at})
						return conformance.SeriesString(s), err
					})
				default:
					maxRows := rapid.IntRange(1, 5).Draw(rt, "max rows")
					d.same(fmt.Sprintf("budget_history %s %d at %s", id, maxRows, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
						h, err := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, MaxRows: maxRows, At: at})
						return conformance.HistoryString(h), err
					})
				}
			}
			d.same(fmt.Sprintf("quota_status at %s", now.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
				st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: pid, At: now})
				return fmt.Sprintf("%+v", st), err
			})
			d.same(fmt.Sprintf("budget_status %s at %s", id, now.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
				st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id, At: now})
				return conformance.StatusString(st), err
			})
		}
		// Every writer keeps the listing's utilisation order: both list the same, and each row's
		// utilisation is the one its status gives. Once, at the end: a stored figure a writer got
		// wrong stays wrong until the budget's next full save, and a listing after each call (it
		// reads every budget's status) made the test a third slower.
		d.same(fmt.Sprintf("final list_budgets by utilisation at %s", now.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
			return listingChecked(rt, b, prefix, now)
		})
		d.same(fmt.Sprintf("quota_status 2 at %s", now.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
			st, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: pid2, At: now})
			return fmt.Sprintf("%+v", st), err
		})
		for _, id := range ids {
			d.same("final status "+id, func(b spendcap.Backend) (string, error) {
				st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id, At: now})
				return conformance.StatusString(st), err
			})
			d.same("final history "+id, func(b spendcap.Backend) (string, error) {
				h, err := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: id, At: now})
				return conformance.HistoryString(h), err
			})
			d.same("final usage_series "+id, func(b spendcap.Backend) (string, error) {
				s, err := b.(spendcap.SeriesReader).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: id, At: now})
				return conformance.SeriesString(s), err
			})
			// What the console reads: the live reservations held on it, its children, and its
			// events, newest first, by content (the backends count event ids apart).
			d.same("final reservations "+id, func(b spendcap.Backend) (string, error) {
				rs, err := b.(spendcap.ReservationLister).BudgetReservations(ctx, spendcap.BudgetReservationsParams{BudgetID: id, At: now})
				var out []string
				for _, r := range rs {
					out = append(out, fmt.Sprintf("%s/%s %v %d", r.NamedID, r.ReservationID, r.Amounts, r.ExpiresAt.UnixMilli()))
				}
				return strings.Join(out, ", "), err
			})
			d.same("final events "+id, func(b spendcap.Backend) (string, error) {
				es, err := b.(spendcap.EventLog).RecentEvents(ctx, spendcap.RecentEventsParams{BudgetID: id, MaxRows: 1000})
				var out []string
				for _, e := range es {
					out = append(out, fmt.Sprintf("%d %s %d %s %d %d/%d %v", e.OccurredAt.UnixMilli(), e.Kind, e.WindowSeq, e.Dimension, e.Percent,
						e.Usage, e.LimitValue, e.WindowUsage))
				}
				return strings.Join(out, "; "), err
			})
			if id != team {
				continue // only the team has children
			}
			d.same("final children "+id, func(b spendcap.Backend) (string, error) {
				page, err := b.(spendcap.Lister).ListBudgets(ctx, spendcap.ListBudgetsParams{ParentID: id, At: now})
				var out []string
				for _, r := range page.Budgets {
					out = append(out, r.BudgetID)
				}
				return strings.Join(out, " "), err
			})
		}
	})
}

// drawBatch draws 1..6 report_usage items on ids.
func drawBatch(rt *rapid.T, ids []string, key func(string) string, also func() []string) []spendcap.BatchItem {
	items := make([]spendcap.BatchItem, rapid.IntRange(1, 6).Draw(rt, "batch items"))
	for i := range items {
		items[i] = spendcap.BatchItem{BudgetID: rapid.SampledFrom(ids).Draw(rt, "item budget"),
			Deltas: drawQuantities(rt, "item deltas", 0, 12), DedupKey: key("item key"), AlsoCharge: also()}
	}
	return items
}

func batchString(items []spendcap.BatchItem) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = fmt.Sprintf("{%s %v %q %v}", it.BudgetID, it.Deltas, it.DedupKey, it.AlsoCharge)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// resultString is what must agree about one item's result: its outcome or its error's code and argument.
func resultString(o spendcap.Outcome, err error) string {
	if err != nil {
		return "error " + errKey(err)
	}
	return conformance.OutcomeString(o)
}

func resultsString(res []spendcap.BatchResult) string {
	parts := make([]string, len(res))
	for i, r := range res {
		parts[i] = resultString(r.Outcome, r.Err)
	}
	return strings.Join(parts, "\n")
}

// The batch half of the differential test: on each backend, budgets of one definition exist
// twice; a random program charges one copy call by call and the other in batches of the same
// items, with reservations, resets and time passing in between, and every item's result and every
// budget's status and history must agree.
func TestDifferentialBatchAgainstCallsPostgres(t *testing.T) {
	t.Parallel()
	differBatches(t, openPostgres(t))
}

func TestDifferentialBatchAgainstCallsValkey(t *testing.T) {
	t.Parallel()
	differBatches(t, openValkey(t))
}

func differBatches(t *testing.T, b spendcap.Backend) {
	br := b.(spendcap.BatchReporter)
	rapid.Check(t, func(rt *rapid.T) {
		run := fmt.Sprintf("r%d-", sequenceID.Add(1))
		seq, bat := run+"s.", run+"b."
		now := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(
			time.Duration(rapid.Int64Range(0, 10*365*24*3600).Draw(rt, "start second")) * time.Second)
		names := []string{"x", "y", "team", "tag"}
		for _, name := range []string{"team", "tag", "x", "y"} {
			def := drawDefinition(rt, name, now)
			if (name == "x" || name == "y") && rapid.Bool().Draw(rt, "under team") {
				def.ParentID = "team"
			}
			for _, prefix := range []string{seq, bat} {
				p := def
				p.BudgetID = prefix + name
				if p.ParentID != "" {
					p.ParentID = prefix + p.ParentID
				}
				if _, err := b.CreateBudget(ctx, p); err != nil {
					rt.Fatalf("create %s: %v", p.BudgetID, err)
				}
			}
		}
		in := func(prefix string, ids []string) []string {
			var out []string
			for _, id := range ids {
				out = append(out, prefix+id)
			}
			return out
		}
		key := func(label string) string { return rapid.SampledFrom([]string{"", "k1", "k2"}).Draw(rt, label) }
		also := func() []string {
			return rapid.SampledFrom([][]string{nil, nil, {"tag"}, {"y"}, {"tag", "team"}, {"gone"}}).Draw(rt, "also_charge")
		}
		var log []string
		for step := rapid.IntRange(1, 12).Draw(rt, "steps"); step > 0; step-- {
			now = now.Add(rapid.SampledFrom(steps).Draw(rt, "step"))
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0: // a reservation on both copies, which may expire inside a later batch
				name := rapid.SampledFrom(names).Draw(rt, "reserve budget")
				amounts := drawQuantities(rt, "amounts", 1, 12)
				ttl := rapid.SampledFrom([]time.Duration{time.Second, 30 * time.Second, 10 * time.Minute}).Draw(rt, "ttl")
				var r [2]string
				for i, prefix := range []string{seq, bat} {
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: prefix + name, ReservationID: "r", Amounts: amounts, TTL: ttl, At: now})
					r[i] = strings.ReplaceAll(resultString(o, err), prefix, "")
				}
				log = append(log, fmt.Sprintf("reserve %s %v ttl %v -> %s", name, amounts, ttl, r[0]))
				if r[0] != r[1] {
					rt.Fatalf("reserve differs: %s vs %s\n%s", r[0], r[1], strings.Join(log, "\n"))
				}
			case 1: // a manual reset on both copies
				name := rapid.SampledFrom(names).Draw(rt, "reset budget")
				for _, prefix := range []string{seq, bat} {
					if _, err := b.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: prefix + name, At: now}); err != nil {
						rt.Fatalf("reset: %v", err)
					}
				}
				log = append(log, "reset "+name)
			default:
				items := drawBatch(rt, names, key, also)
				want := make([]string, len(items))
				batch := make([]spendcap.BatchItem, len(items))
				for i, it := range items {
					o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: seq + it.BudgetID, Deltas: it.Deltas,
						DedupKey: it.DedupKey, AlsoCharge: in(seq, it.AlsoCharge), At: now})
					want[i] = strings.ReplaceAll(resultString(o, err), seq, "")
					batch[i] = spendcap.BatchItem{BudgetID: bat + it.BudgetID, Deltas: it.Deltas, DedupKey: it.DedupKey, AlsoCharge: in(bat, it.AlsoCharge)}
				}
				res, err := br.ReportUsageBatch(ctx, spendcap.ReportUsageBatchParams{Items: batch, At: now})
				if err != nil {
					rt.Fatalf("batch: %v", err)
				}
				log = append(log, fmt.Sprintf("batch %s at %s", batchString(items), now.Format(time.RFC3339Nano)))
				for i, r := range res {
					if got := strings.ReplaceAll(resultString(r.Outcome, r.Err), bat, ""); got != want[i] {
						rt.Fatalf("item %d\n batch %s\n calls %s\n%s", i, got, want[i], strings.Join(log, "\n"))
					}
				}
			}
			for _, name := range names {
				var s [2]string
				for i, prefix := range []string{seq, bat} {
					st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: prefix + name, At: now})
					h, herr := b.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: prefix + name, At: now})
					u, uerr := b.(spendcap.SeriesReader).UsageSeries(ctx, spendcap.UsageSeriesParams{BudgetID: prefix + name, At: now})
					s[i] = strings.ReplaceAll(conformance.StatusString(st)+" "+conformance.HistoryString(h)+" "+conformance.SeriesString(u)+
						fmt.Sprint(err, herr, uerr), prefix, "")
				}
				if s[0] != s[1] {
					rt.Fatalf("budget %s\n batches %s\n calls   %s\n%s", name, s[1], s[0], strings.Join(log, "\n"))
				}
			}
		}
	})
}

// listingChecked lists the budgets of prefix by utilisation as of now, fails rt when a row's
// utilisation is not what its status gives (the highest share of a hard limit that usage plus
// reserved takes, in thousandths rounded down) or the rows are out of order, and renders them.
func listingChecked(rt *rapid.T, b spendcap.Backend, prefix string, now time.Time) (string, error) {
	l, ok := b.(spendcap.Lister)
	if !ok {
		rt.Fatalf("%T lists no budgets", b)
	}
	page, err := l.ListBudgets(ctx, spendcap.ListBudgetsParams{IDPrefix: prefix, OrderBy: spendcap.ListByUtilisation, At: now})
	if err != nil {
		return "", err
	}
	var parts []string
	last := 1 << 30
	for _, r := range page.Budgets {
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: r.BudgetID, At: now})
		if err != nil {
			return "", err
		}
		want := -1
		for dim, h := range st.HardLimits {
			used := st.Usage[dim] + st.Reserved[dim]
			s := 1000
			switch {
			case h > 0:
				s = min(int(math.Floor(float64(used)/float64(h)*1000)), 999999)
			case used > 0:
				s = 999999
			}
			want = max(want, s)
		}
		got := -1
		if r.UtilisationPermille != nil {
			got = *r.UtilisationPermille
		}
		if got != want || got > last {
			rt.Fatalf("list_budgets: %s at %d‰ (after one at %d‰), its status gives %d‰: %+v", r.BudgetID, got, last, want, st)
		}
		last = got
		parts = append(parts, fmt.Sprintf("%s=%d", r.BudgetID, got))
	}
	return strings.Join(parts, " "), nil
}

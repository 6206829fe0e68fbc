package tests

import (
	"errors"
	"fmt"
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
	rt     *rapid.T
	pg, vk spendcap.Backend
	log    []string
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
	r1, e1 := call(d.pg)
	r2, e2 := call(d.vk)
	d.log = append(d.log, fmt.Sprintf("%s -> %s%s", what, r1, errKey(e1)))
	if strings.HasPrefix(errKey(e1), "unexpected") || strings.HasPrefix(errKey(e2), "unexpected") || errKey(e1) != errKey(e2) || r1 != r2 {
		d.rt.Fatalf("backends differ on %s\npostgres: %s %v\nvalkey:   %s %v\nsequence so far:\n  %s", what, r1, e1, r2, e2, strings.Join(d.log, "\n  "))
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
		Mode:            rapid.SampledFrom([]spendcap.Mode{spendcap.Enforce, spendcap.Enforce, spendcap.Observe}).Draw(rt, "mode"),
		DedupTTLSeconds: rapid.SampledFrom([]int32{1, 60, 3600, 86400}).Draw(rt, "ttl"), At: now}
	if p.ResetEvery != "" && rapid.IntRange(0, 3).Draw(rt, "explicit anchor") == 0 {
		anchor := now.Add(time.Duration(rapid.Int64Range(-90*24, 30*24).Draw(rt, "anchor hours")) * time.Hour).Add(
			time.Duration(rapid.Int64Range(0, 59).Draw(rt, "anchor minutes")) * time.Minute)
		p.ResetAnchor = &anchor
	}
	return p
}

func createdString(c spendcap.Created) string {
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
	pg, vk := openPostgres(t), openValkey(t)
	rapid.Check(t, func(rt *rapid.T) {
		d := &differ{rt: rt, pg: pg, vk: vk}
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
				LeaseSeconds: rapid.SampledFrom([]int32{0, 1, 30, 3600}).Draw(rt, "lease"), At: at}
			if rapid.Bool().Draw(rt, "rate limited") {
				p.WindowSeconds = rapid.SampledFrom([]int32{1, 60, 3600}).Draw(rt, "window")
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
				ttl := rapid.SampledFrom([]int32{1, 30, 600, 86400}).Draw(rt, "reservation ttl")
				d.same(fmt.Sprintf("reserve %s %s %v ttl %d %q %v at %s", id, rid, amounts, ttl, k, more, at.Format(time.RFC3339Nano)), func(b spendcap.Backend) (string, error) {
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: amounts, TTLSeconds: ttl, IdempotencyKey: k, At: at, AlsoCharge: more})
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
				if rapid.Bool().Draw(rt, "new hard") {
					p.HardLimits = drawQuantities(rt, "hard", 0, 30)
				}
				if rapid.Bool().Draw(rt, "new soft") {
					p.SoftLimits = drawQuantities(rt, "soft", 0, 30)
				}
				if rapid.Bool().Draw(rt, "new mode") {
					p.Mode = rapid.SampledFrom([]spendcap.Mode{spendcap.Enforce, spendcap.Observe}).Draw(rt, "mode")
				}
				d.same(fmt.Sprintf("set_limits %+v", p), func(b spendcap.Backend) (string, error) {
					st, err := b.SetLimits(ctx, p)
					return conformance.StatusString(st), err
				})
			case 13:
				switch rapid.IntRange(0, 2).Draw(rt, "lifecycle") {
				case 0: // create again: identical, or with another definition
					p := defs[id]
					p.At = at
					if rapid.Bool().Draw(rt, "change definition") {
						p = drawDefinition(rt, id, at)
						p.ParentID = parentOf(id)
					}
					d.same("create again "+id, func(b spendcap.Backend) (string, error) {
						c, err := b.CreateBudget(ctx, p)
						return createdString(c), err
					})
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
				default:
					maxRows := rapid.Int32Range(1, 5).Draw(rt, "max rows")
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
		}
	})
}

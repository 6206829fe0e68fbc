package valkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/valkeynodes"
)

var _ spendcap.Operator = (*Client)(nil)

// gaugeBatch is how many budget_status calls one pipeline of BudgetGauges' ranking sends.
const gaugeBatch = 500

// BudgetGauges implements spendcap.Operator with sc_budget_status: the budgets p names, read one
// by one, and for p.TopN a ranking of every budget of the deployment (a SCAN of every primary for
// base keys, then budget_status pipelined, gaugeBatch calls at a time), so TopN costs a pass over
// the keyspace as budget_gauges' top_n costs a scan of the budgets table on PostgreSQL. The
// ranking is PostgreSQL's: the highest share of any hard limit above 0 used in the current
// window, budgets whose hard limits are all 0 last, ties by id; budgets without hard limits are
// not ranked.
func (c *Client) BudgetGauges(ctx context.Context, p spendcap.BudgetGaugesParams) ([]spendcap.BudgetGauge, error) {
	if len(p.BudgetIDs) > 1000 {
		return nil, &spendcap.Error{Code: spendcap.CodeInvalidArgument, Message: "budget_ids: must be an array of at most 1000 ids"}
	}
	if p.TopN < 0 || p.TopN > 100 {
		return nil, &spendcap.Error{Code: spendcap.CodeInvalidArgument, Message: "top_n: must be 0..100"}
	}
	statuses := map[string]spendcap.Status{}
	err := budgetStatuses(ctx, c.rdb, p.BudgetIDs, p.At, func(st spendcap.Status) { statuses[st.BudgetID] = st })
	if err != nil {
		return nil, fmt.Errorf("valkey: budget gauges: %w", err)
	}
	if p.TopN > 0 {
		ranked, err := c.rankBudgets(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, st := range ranked {
			statuses[st.BudgetID] = st
		}
	}
	ids := make([]string, 0, len(statuses))
	for id := range statuses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []spendcap.BudgetGauge
	for _, id := range ids {
		st := statuses[id]
		dims := map[string]bool{}
		for d := range st.HardLimits {
			dims[d] = true
		}
		for d := range st.Usage {
			dims[d] = true
		}
		names := make([]string, 0, len(dims))
		for d := range dims {
			names = append(names, d)
		}
		sort.Strings(names)
		for _, d := range names {
			g := spendcap.BudgetGauge{BudgetID: id, Dimension: d, Usage: st.Usage[d]}
			if h, ok := st.HardLimits[d]; ok {
				r := st.Remaining[d]
				g.HardLimit, g.Remaining = &h, &r
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// rankBudgets returns the statuses of the p.TopN budgets that used the largest share of a hard
// limit.
func (c *Client) rankBudgets(ctx context.Context, p spendcap.BudgetGaugesParams) ([]spendcap.Status, error) {
	type ranked struct {
		st    spendcap.Status
		share float64 // -1: every hard limit is 0
	}
	var mu sync.Mutex
	var all []ranked
	err := valkeynodes.ForEachPrimary(ctx, c.rdb, func(ctx context.Context, n *redis.Client) error {
		ids, err := scanKeys(ctx, n, "sc:{*", budgetOfBaseKey)
		if err != nil {
			return err
		}
		return budgetStatuses(ctx, n, ids, p.At, func(st spendcap.Status) {
			// Only current windows rank (PostgreSQL: next_reset_at > at). A window that ended is
			// rolled by budget_status in its reply alone, so the reply's window starts after the
			// budget's last write: every write brings the window to its own instant first.
			if len(st.HardLimits) == 0 || st.WindowStart.After(st.UpdatedAt) {
				return
			}
			share := -1.0
			for d, h := range st.HardLimits {
				if h > 0 {
					share = max(share, float64(st.Usage[d])/float64(h))
				}
			}
			mu.Lock()
			all = append(all, ranked{st, share})
			mu.Unlock()
		})
	})
	if err != nil {
		return nil, fmt.Errorf("valkey: budget gauges: %w", err)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].share != all[j].share {
			return all[i].share > all[j].share
		}
		return all[i].st.BudgetID < all[j].st.BudgetID
	})
	out := make([]spendcap.Status, 0, min(p.TopN, len(all)))
	for _, r := range all[:min(p.TopN, len(all))] {
		out = append(out, r.st)
	}
	return out, nil
}

// budgetStatuses runs sc_budget_status at at on every budget of ids through n, pipelined
// (gaugeBatch calls at a time: 1000 named budgets are a few round trips, not 1000), and hands
// found the status of each budget that exists.
func budgetStatuses(ctx context.Context, n pipeliner, ids []string, at time.Time, found func(spendcap.Status)) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = Key(id)
	}
	return fcallEach(ctx, n, "sc_budget_status", keys, gaugeBatch, func(i int) ([]byte, error) {
		return encodeArgs(args{"budget_id": ids[i]}.at(at))
	}, func(cmd *redis.Cmd) error {
		st, ok, err := statusOf(cmd)
		if ok {
			found(st)
		}
		return err
	})
}

// statusOf reads a pipelined sc_budget_status reply: found is false for a budget that does not
// exist (unknown, or deleted since a scan), which is no error.
func statusOf(cmd *redis.Cmd) (st spendcap.Status, found bool, err error) {
	s, err := cmd.Text()
	if err != nil {
		if err = mapError(err); errors.Is(err, spendcap.ErrBudgetNotFound) {
			return st, false, nil
		}
		return st, false, fmt.Errorf("sc_budget_status: %w", err)
	}
	var r statusReply
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return st, false, fmt.Errorf("sc_budget_status reply: %w", err)
	}
	return r.status(), true, nil
}

// budgetOfBaseKey returns the id of the budget whose base key is key (Key's inverse), or false for
// any other key: a subkey (sc:{g}:r/rest), a stream, a quota policy's.
func budgetOfBaseKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "sc:{")
	if !ok {
		return "", false
	}
	tag, tail, ok := strings.Cut(rest, "}")
	if !ok || tag == "" || (tail != "" && tail[0] != '/') {
		return "", false
	}
	id := tag + tail
	if Key(id) != key {
		return "", false
	}
	return id, true
}

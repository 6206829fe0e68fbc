package gobinding

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/pgfn"
)

var _ spendcap.Operator = (*Client)(nil)

const (
	// defaultAuditBatch is AuditParams.BatchSize's default.
	defaultAuditBatch = 10000
	// maxAuditRounds bounds the repairing calls of one audit: each repairs up to a batch of
	// findings, so this is how many batches of corruption one run mends before it reports the rest.
	maxAuditRounds = 100
)

// BudgetGauges implements spendcap.Operator with spendcap.budget_gauges (a reader's function).
func (c *Client) BudgetGauges(ctx context.Context, p spendcap.BudgetGaugesParams) ([]spendcap.BudgetGauge, error) {
	top := int32(p.TopN)
	ids := p.BudgetIDs
	if ids == nil {
		ids = []string{}
	}
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.BudgetGaugesRow, error) {
		return q.BudgetGauges(ctx, pgfn.BudgetGaugesParams{BudgetIds: ids, TopN: &top, At: at(p.At)})
	})
	if err != nil {
		return nil, err
	}
	out := make([]spendcap.BudgetGauge, len(rows))
	for i, r := range rows {
		out[i] = spendcap.BudgetGauge{BudgetID: r.BudgetID, Dimension: r.Dimension, Usage: r.Usage, HardLimit: r.LimitValue, Remaining: r.Remaining}
	}
	return out, nil
}

// Audit implements spendcap.Operator with spendcap.audit over the whole database (an admin's
// function). Report only, it is one call that returns at most p.BatchSize findings. With
// p.Repair, it calls again while a call comes back full (each call is its own transaction and
// fixes what it returns), up to 100 calls, and returns every finding it repaired followed by the
// last call's.
func (c *Client) Audit(ctx context.Context, p spendcap.AuditParams) ([]spendcap.AuditFinding, error) {
	batch, err := callargs.Count("max_rows", cmp.Or(p.BatchSize, defaultAuditBatch))
	if err != nil {
		return nil, err
	}
	repair := p.Repair
	var all []spendcap.AuditFinding
	for round := 0; ; round++ {
		rs, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.AuditRow, error) {
			return q.Audit(ctx, pgfn.AuditParams{MaxRows: &batch, Repair: &repair})
		})
		if err != nil {
			return all, fmt.Errorf("audit: %w", err)
		}
		for _, r := range rs {
			all = append(all, spendcap.AuditFinding{BudgetID: deref(r.BudgetID), PolicyID: deref(r.PolicyID), Check: spendcap.AuditCheck(r.CheckName),
				Dimension: deref(r.Dimension), Expected: rawJSON(r.Expected), Found: rawJSON(r.Found), Repaired: r.Repaired})
		}
		if !repair || len(rs) < int(batch) || round+1 == maxAuditRounds {
			return all, nil
		}
	}
}

// rawJSON is a JSON value as text, or JSON null for none.
func rawJSON(s *string) json.RawMessage {
	if s == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(*s)
}

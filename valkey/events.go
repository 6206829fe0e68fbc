package valkey

import (
	"context"
	"errors"

	"github.com/spendcap/spendcap"
)

// EventsKey is the stream that holds the events of slot group group (the first segment of its
// budgets' ids), with its own sequence of event ids: sc:{group}:events.
func EventsKey(group string) string { return "sc:{" + group + "}:events" }

type eventReply struct {
	EventID         int64            `json:"event_id"`
	BudgetID        string           `json:"budget_id"`
	Kind            string           `json:"kind"`
	WindowSeq       int64            `json:"window_seq"`
	WindowStart     *int64           `json:"window_start"`
	Dimension       string           `json:"dimension"`
	Percent         int32            `json:"percent"`
	Usage           int64            `json:"usage"`
	LimitValue      int64            `json:"limit_value"`
	WindowUsage     map[string]int64 `json:"window_usage"`
	BreachCount     int64            `json:"breach_count"`
	SoftBreachCount int64            `json:"soft_breach_count"`
	ClosedBy        string           `json:"closed_by"`
	OccurredAt      *int64           `json:"occurred_at"`
}

// EventsSince implements spendcap.EventSource: the events of slot group p.Group, which it needs.
func (c *Client) EventsSince(ctx context.Context, p spendcap.EventsSinceParams) ([]spendcap.Event, error) {
	if p.Group == "" {
		return nil, errors.New("valkey: EventsSince needs the slot group (Valkey keeps one event sequence per group)")
	}
	a := args{"after_id": p.AfterID}.num("max_rows", p.MaxRows)
	var rs []eventReply
	if err := c.callKeys(ctx, "events_since", []string{EventsKey(p.Group)}, a, true, &rs); err != nil {
		return nil, err
	}
	out := make([]spendcap.Event, len(rs))
	for i, r := range rs {
		out[i] = spendcap.Event{EventID: r.EventID, BudgetID: r.BudgetID, Kind: r.Kind, WindowSeq: r.WindowSeq,
			WindowStart: toTime(r.WindowStart), Dimension: r.Dimension, Percent: r.Percent, Usage: r.Usage,
			LimitValue: r.LimitValue, WindowUsage: r.WindowUsage, BreachCount: r.BreachCount,
			SoftBreachCount: r.SoftBreachCount, ClosedBy: r.ClosedBy, OccurredAt: toTime(r.OccurredAt)}
	}
	return out, nil
}

package valkey

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/callargs"
	"github.com/spendcap/spendcap/internal/valkeynodes"
)

// EventsKey is the stream that holds the events of slot group group (the first segment of its
// budgets' ids), with its own sequence of event ids: sc:{group}:events.
func EventsKey(group string) string { return "sc:{" + group + "}:events" }

// eventSource is spendcap.Event.Source for the events of slot group group: "valkey:" and its
// stream key.
func eventSource(group string) string { return "valkey:" + EventsKey(group) }

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
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	a := args{"after_id": p.AfterID}.num("max_rows", maxRows)
	var rs []eventReply
	if err := c.callKeys(ctx, "events_since", []string{EventsKey(p.Group)}, a, true, &rs); err != nil {
		return nil, err
	}
	out := make([]spendcap.Event, len(rs))
	for i, r := range rs {
		out[i] = r.api(p.Group)
	}
	return out, nil
}

// api is the event of group's stream that r holds.
func (r eventReply) api(group string) spendcap.Event {
	return spendcap.Event{Source: eventSource(group), EventID: r.EventID, BudgetID: r.BudgetID, Kind: spendcap.EventKind(r.Kind), WindowSeq: r.WindowSeq,
		WindowStart: toTime(r.WindowStart), Dimension: r.Dimension, Percent: r.Percent, Usage: r.Usage,
		LimitValue: r.LimitValue, WindowUsage: r.WindowUsage, BreachCount: r.BreachCount,
		SoftBreachCount: r.SoftBreachCount, ClosedBy: spendcap.ClosedBy(r.ClosedBy), OccurredAt: toTime(r.OccurredAt)}
}

var _ spendcap.EventLog = (*Client)(nil)

// EventGroups lists, sorted, the slot groups that have an event stream, scanning every primary
// of rdb (SCAN with MATCH sc:{*}:events and TYPE stream: one pass over the keyspace).
func EventGroups(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	err := valkeynodes.ForEachPrimary(ctx, rdb, func(ctx context.Context, n *redis.Client) error {
		it := n.ScanType(ctx, 0, "sc:{*}:events", 1000, "stream").Iterator()
		for it.Next(ctx) {
			k := it.Val()
			if g := strings.TrimSuffix(strings.TrimPrefix(k, "sc:{"), "}:events"); EventsKey(g) == k {
				mu.Lock()
				seen[g] = true
				mu.Unlock()
			}
		}
		return it.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("valkey: scan for event streams: %w", err)
	}
	groups := make([]string, 0, len(seen))
	for g := range seen {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	return groups, nil
}

// EventGroups lists, sorted, the slot groups whose streams hold events (the package function
// EventGroups on the client's connection).
func (c *Client) EventGroups(ctx context.Context) ([]string, error) { return EventGroups(ctx, c.rdb) }

// GroupOf is the slot group of a budget id: its events are in the stream of that group
// (EventsKey). It is the hash tag of the budget's keys (Key).
func GroupOf(budgetID string) string {
	k := Key(budgetID)
	return k[strings.IndexByte(k, '{')+1 : strings.IndexByte(k, '}')]
}

// GroupOf is the package function GroupOf: the slot group whose stream holds the budget's
// events.
func (c *Client) GroupOf(budgetID string) string { return GroupOf(budgetID) }

// RecentEvents implements spendcap.EventLog on the stream of slot group p.Group, or of
// p.BudgetID's group when p.Group is empty. Each call of sc_recent_events examines at most 1000
// entries, so that a selective filter does not hold the server long: the client calls again
// until the page is full or the stream read.
func (c *Client) RecentEvents(ctx context.Context, p spendcap.RecentEventsParams) ([]spendcap.Event, error) {
	group := p.Group
	if group == "" && p.BudgetID != "" {
		group = GroupOf(p.BudgetID)
	}
	if group == "" {
		return nil, errors.New("valkey: RecentEvents needs the slot group or a budget id (Valkey keeps one event sequence per group)")
	}
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return nil, err
	}
	want := int(maxRows)
	if want == 0 {
		want = callargs.DefaultListRows
	}
	before := p.BeforeID
	var out []spendcap.Event
	for {
		rows := int32(want - len(out))
		if maxRows < 0 || maxRows > 1000 {
			rows = maxRows // for the library to refuse, naming max_rows
		}
		a := args{}.str("budget_id", p.BudgetID).str("kind", string(p.Kind)).num("max_rows", rows)
		if before != 0 {
			a["before_id"] = before
		}
		var r struct {
			Events []eventReply `json:"events"`
			Next   int64        `json:"next"`
			Done   bool         `json:"done"`
		}
		if err := c.callKeys(ctx, "recent_events", []string{EventsKey(group)}, a, true, &r); err != nil {
			return nil, err
		}
		for _, e := range r.Events {
			out = append(out, e.api(group))
		}
		if r.Done || len(out) >= want {
			return out, nil
		}
		before = r.Next
	}
}

var _ spendcap.EventWatcher = (*Client)(nil)

// WatchEvents implements spendcap.EventWatcher on the stream of slot group p.Group, which it
// needs. It reads with sc_events_since and, between reads, blocks on the stream (XREAD BLOCK
// for an entry past the last one handled) for p.PollInterval, at most a second, so that it
// returns within about a second of ctx ending. Stream ids are readable in order, so nothing is
// waited for twice.
func (c *Client) WatchEvents(ctx context.Context, p spendcap.WatchParams, handle func(spendcap.Event) error) error {
	if p.Group == "" {
		return errors.New("valkey: WatchEvents needs the slot group (Valkey keeps one event sequence per group)")
	}
	poll := p.PollInterval
	if poll <= 0 {
		poll = time.Second
	}
	after := p.AfterID
	for {
		for {
			es, err := c.EventsSince(ctx, spendcap.EventsSinceParams{Group: p.Group, AfterID: after, MaxRows: 1000})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			for _, e := range es {
				after = e.EventID
				if err := handle(e); err != nil {
					return err
				}
			}
			if len(es) < 1000 {
				break
			}
		}
		// Entry ids are <event_id>-1: wait for one past after-1. A blocked read does not see ctx
		// end, so it blocks for a second at most.
		err := c.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{EventsKey(p.Group), fmt.Sprintf("%d-1", after)},
			Count: 1, Block: min(poll, time.Second)}).Err()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, redis.Nil):
			// A failed wait is a poll: the next read says whether the server is gone.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(poll):
			}
		}
	}
}

// PurgeEventsParams are the arguments of PurgeEvents.
type PurgeEventsParams struct {
	// Group is the slot group whose stream is purged.
	Group string
	// ThroughID is the last event_id that may go: the stream's cursor, up to which the jobs
	// worker has handed the events to its delivery queue.
	ThroughID int64
	// MaxRows bounds the events one call deletes (1..100000; 0 means 10000).
	MaxRows int
	// At is the instant the retention counts back from (now when zero).
	At time.Time
}

// PurgeEvents runs sc_purge_events: from the oldest, it deletes the events of p.Group's stream
// with an event_id up to p.ThroughID that occurred 7 days or more before p.At (PostgreSQL's
// purge_expired keeps dispatched events as long), at most p.MaxRows, stopping at the first event
// that must stay, and returns how many it deleted. The jobs worker's purge job calls it for every
// stream, with the stream's cursor.
func (c *Client) PurgeEvents(ctx context.Context, p PurgeEventsParams) (int64, error) {
	if p.Group == "" {
		return 0, errors.New("valkey: PurgeEvents needs the slot group")
	}
	var r struct {
		Events int64 `json:"events"`
	}
	maxRows, err := callargs.Count("max_rows", p.MaxRows)
	if err != nil {
		return 0, err
	}
	a := args{"through_id": p.ThroughID}.num("max_rows", maxRows).at(p.At)
	if err := c.callKeys(ctx, "purge_events", []string{EventsKey(p.Group)}, a, false, &r); err != nil {
		return 0, err
	}
	return r.Events, nil
}

package spendcap

import (
	"context"
	"encoding/json"
	"time"
)

// EventKind is what an Event says happened.
type EventKind string

// Kinds of Event (docs/semantics.md#events).
const (
	// EventThreshold: usage reached one of the budget's alert percents of a hard limit.
	EventThreshold EventKind = "threshold"
	// EventHardBreach: a call passed a hard limit (refused in enforce mode).
	EventHardBreach EventKind = "hard_breach"
	// EventWindowClosed: a window closed, on schedule or by a reset.
	EventWindowClosed EventKind = "window_closed"
)

// Event is what a budget tells its readers, written by the call that caused it, in its
// transaction or FCALL (docs/semantics.md#events).
//
// Its JSON (the body of a webhook) has the snake_case field names of the json tags below (the
// columns of events_since), times in RFC 3339, and null for the fields that the kind does not use.
type Event struct {
	// Source is where EventID is counted: "postgres", or on Valkey "valkey:" and the slot group's
	// stream key (valkey:sc:{acme}:events). Receivers deduplicate by (Source, EventID).
	Source   string    `json:"source"`
	EventID  int64     `json:"event_id"`
	BudgetID string    `json:"budget_id"`
	Kind     EventKind `json:"kind"`
	// WindowSeq and WindowStart name the window; for window_closed, the window that closed.
	WindowSeq   int64     `json:"window_seq"`
	WindowStart time.Time `json:"window_start"`
	// Dimension, Usage and LimitValue: for threshold, the dimension, its usage after the call and
	// its hard limit; for hard_breach, the admission outcome's. Percent: threshold only.
	Dimension  string `json:"dimension"`
	Percent    int32  `json:"percent"`
	Usage      int64  `json:"usage"`
	LimitValue int64  `json:"limit_value"`
	// WindowUsage, BreachCount, SoftBreachCount and ClosedBy: window_closed only.
	WindowUsage     map[string]int64 `json:"window_usage"`
	BreachCount     int64            `json:"breach_count"`
	SoftBreachCount int64            `json:"soft_breach_count"`
	ClosedBy        ClosedBy         `json:"closed_by"`
	OccurredAt      time.Time        `json:"occurred_at"`
}

// SourcePostgres is Event.Source for the events of PostgreSQL.
const SourcePostgres = "postgres"

// MarshalJSON writes e with null for the fields its kind does not use.
func (e Event) MarshalJSON() ([]byte, error) {
	type fields struct {
		Source          string           `json:"source"`
		EventID         int64            `json:"event_id"`
		BudgetID        string           `json:"budget_id"`
		Kind            EventKind        `json:"kind"`
		WindowSeq       int64            `json:"window_seq"`
		WindowStart     time.Time        `json:"window_start"`
		Dimension       *string          `json:"dimension"`
		Percent         *int32           `json:"percent"`
		Usage           *int64           `json:"usage"`
		LimitValue      *int64           `json:"limit_value"`
		WindowUsage     map[string]int64 `json:"window_usage"`
		BreachCount     *int64           `json:"breach_count"`
		SoftBreachCount *int64           `json:"soft_breach_count"`
		ClosedBy        *ClosedBy        `json:"closed_by"`
		OccurredAt      time.Time        `json:"occurred_at"`
	}
	f := fields{Source: e.Source, EventID: e.EventID, BudgetID: e.BudgetID, Kind: e.Kind, WindowSeq: e.WindowSeq,
		WindowStart: e.WindowStart.UTC(), OccurredAt: e.OccurredAt.UTC()}
	switch e.Kind {
	case EventWindowClosed:
		f.WindowUsage, f.BreachCount, f.SoftBreachCount, f.ClosedBy = e.WindowUsage, &e.BreachCount, &e.SoftBreachCount, &e.ClosedBy
		if f.WindowUsage == nil {
			f.WindowUsage = map[string]int64{}
		}
	case EventThreshold:
		f.Dimension, f.Percent, f.Usage, f.LimitValue = &e.Dimension, &e.Percent, &e.Usage, &e.LimitValue
	default:
		f.Dimension, f.Usage, f.LimitValue = &e.Dimension, &e.Usage, &e.LimitValue
	}
	return json.Marshal(f)
}

// EventsSinceParams are the arguments of EventsSince.
type EventsSinceParams struct {
	// Group is the slot group whose events to read: the first segment of the budget ids
	// ("acme" for "acme/team/key"). Valkey keeps one sequence of event ids per group and needs
	// it; PostgreSQL keeps one for every budget and ignores it.
	Group string
	// AfterID: events with a larger event_id; 0 for the first.
	AfterID int64
	// MaxRows bounds the answer, 1..10000; 0 means 1000.
	MaxRows int
}

// EventSource reads events in event_id order. On Valkey a reader that asks again from the last
// EventID it got misses none. On PostgreSQL ids are taken as events are written, so a transaction
// that commits late can make an event readable after one with a larger id: a reader that must see
// every event asks again from a little before its last id and skips the ids it has seen
// (docs/semantics.md#events), lets an EventWatcher do that, or lets the jobs worker deliver them
// (webhooks).
type EventSource interface {
	EventsSince(ctx context.Context, p EventsSinceParams) ([]Event, error)
}

// WatchParams are the arguments of WatchEvents.
type WatchParams struct {
	// Group is the slot group to watch on Valkey (required there); PostgreSQL ignores it.
	Group string
	// AfterID: events with a larger event_id; 0 for every event still kept.
	AfterID int64
	// PollInterval is how often the watcher reads when nothing wakes it (notifications on
	// PostgreSQL, a blocking read of the stream on Valkey, wake it at once); 0 means one second.
	// Valkey waits a second at most.
	PollInterval time.Duration
	// GapTimeout (PostgreSQL) is how long an id below one already read is waited for: an event
	// whose transaction commits later than that after a larger id became readable is missed.
	// 0 means one minute.
	GapTimeout time.Duration
}

// EventWatcher hands events to in-process consumers as they are written.
type EventWatcher interface {
	// WatchEvents calls handle with every event after p.AfterID, once each, as they become
	// readable, in event_id order except for the late commits that PostgreSQL makes readable after
	// larger ids. It returns handle's first error, or ctx's error once ctx ends. A consumer that
	// must survive its own restart stores the last EventID it handled and passes it as AfterID.
	WatchEvents(ctx context.Context, p WatchParams, handle func(Event) error) error
}

// RecentEventsParams are the arguments of RecentEvents. Filters left at their zero value match
// every event.
type RecentEventsParams struct {
	// Group is the slot group whose events to read on Valkey (the first segment of the budget
	// ids); it may be left empty when BudgetID is set. PostgreSQL ignores it.
	Group string
	// BudgetID keeps the events of that budget.
	BudgetID string
	// Kind keeps the events of that kind.
	Kind EventKind
	// BeforeID: events with a smaller event_id (the last EventID of the previous page); 0 for
	// the newest.
	BeforeID int64
	// MaxRows bounds the answer, 1..1000; 0 means 50.
	MaxRows int
}

// EventLog reads the events still kept, newest first: what an operator looks at (the console's
// events), where an EventSource is what a consumer reads in order.
type EventLog interface {
	// RecentEvents returns the events that match p, newest first (largest EventID first). Pass
	// the last one's EventID as p.BeforeID for the next page.
	RecentEvents(ctx context.Context, p RecentEventsParams) ([]Event, error)
}

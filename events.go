package spendcap

import (
	"context"
	"time"
)

// Kinds of Event (docs/semantics.md#events).
const (
	EventThreshold    = "threshold"
	EventHardBreach   = "hard_breach"
	EventWindowClosed = "window_closed"
)

// Event is what a budget tells its readers, written by the call that caused it, in its
// transaction or FCALL (docs/semantics.md#events).
type Event struct {
	EventID  int64
	BudgetID string
	Kind     string
	// WindowSeq and WindowStart name the window; for window_closed, the window that closed.
	WindowSeq   int64
	WindowStart time.Time
	// Dimension, Usage and LimitValue: for threshold, the dimension, its usage after the call and
	// its hard limit; for hard_breach, the admission outcome's. Percent: threshold only.
	Dimension  string
	Percent    int32
	Usage      int64
	LimitValue int64
	// WindowUsage, BreachCount, SoftBreachCount and ClosedBy: window_closed only.
	WindowUsage     map[string]int64
	BreachCount     int64
	SoftBreachCount int64
	ClosedBy        string
	OccurredAt      time.Time
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
	MaxRows int32
}

// EventSource reads events in event_id order. A reader that asks again from the last EventID it
// got misses none: PostgreSQL's answer stops before an event that a transaction still running
// could precede with a smaller id.
type EventSource interface {
	EventsSince(ctx context.Context, p EventsSinceParams) ([]Event, error)
}

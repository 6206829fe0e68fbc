package console

import (
	"context"
	"sync"

	"github.com/spendcap/spendcap"
)

// feedBuffer is how many events a live feed may have waiting to be written before it is dropped
// (its browser reconnects and reads what it missed).
const feedBuffer = 256

// hub shares one watcher per slot group (one on PostgreSQL) among the live feeds open, so that a
// console mounted in a service holds one connection for its events however many pages are open.
type hub struct {
	watcher spendcap.EventWatcher
	source  spendcap.EventSource
	mu      sync.Mutex
	groups  map[string]*groupWatch
	failed  func(error)
}

// groupWatch is the watcher of one group and the feeds it hands events to.
type groupWatch struct {
	feeds  map[*feed]bool
	last   int64 // the largest event_id handed out
	cancel context.CancelFunc
}

// feed is one open live feed: the events of its groups arrive on ch; gone closes when the hub
// dropped it (too slow, or its group's watcher failed).
type feed struct {
	ch   chan groupEvent
	gone chan struct{}
	once sync.Once
}

type groupEvent struct {
	group string
	e     spendcap.Event
}

func newHub(w spendcap.EventWatcher, s spendcap.EventSource, failed func(error)) *hub {
	return &hub{watcher: w, source: s, groups: map[string]*groupWatch{}, failed: failed}
}

func newFeed() *feed { return &feed{ch: make(chan groupEvent, feedBuffer), gone: make(chan struct{})} }

func (f *feed) drop() { f.once.Do(func() { close(f.gone) }) }

// subscribe hands f the events of group after event after: those the group's watcher hands out
// from now on, and returned, those it handed out already past after (read again with
// EventsSince, at most 1000: a feed that missed more reloads its page).
func (h *hub) subscribe(ctx context.Context, group string, after int64, f *feed) ([]spendcap.Event, error) {
	h.mu.Lock()
	g := h.groups[group]
	if g == nil {
		wctx, cancel := context.WithCancel(context.Background())
		g = &groupWatch{feeds: map[*feed]bool{}, last: after, cancel: cancel}
		h.groups[group] = g
		go h.watch(wctx, group, g, after)
	}
	g.feeds[f] = true
	last := g.last
	h.mu.Unlock()
	if after >= last {
		return nil, nil
	}
	es, err := h.source.EventsSince(ctx, spendcap.EventsSinceParams{Group: group, AfterID: after, MaxRows: 1000})
	if err != nil {
		return nil, err
	}
	var out []spendcap.Event
	for _, e := range es {
		if e.EventID <= last {
			out = append(out, e)
		}
	}
	return out, nil
}

// unsubscribe stops handing f the events of group, and stops the group's watcher when no feed
// is left.
func (h *hub) unsubscribe(group string, f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.groups[group]
	if g == nil {
		return
	}
	delete(g.feeds, f)
	if len(g.feeds) == 0 {
		g.cancel()
		delete(h.groups, group)
	}
}

// watch runs group's watcher until it is cancelled; a watcher that fails drops its feeds (their
// browsers reconnect, which starts a new one).
func (h *hub) watch(ctx context.Context, group string, g *groupWatch, after int64) {
	err := h.watcher.WatchEvents(ctx, spendcap.WatchParams{Group: group, AfterID: after}, func(e spendcap.Event) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		g.last = max(g.last, e.EventID)
		for f := range g.feeds {
			select {
			case f.ch <- groupEvent{group, e}:
			default:
				f.drop()
			}
		}
		return nil
	})
	if ctx.Err() != nil {
		return
	}
	h.failed(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range g.feeds {
		f.drop()
	}
	if h.groups[group] == g {
		delete(h.groups, group)
	}
}

package console

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spendcap/spendcap"
)

// eventRows is how many events a page of events shows.
const eventRows = 50

// maxGroups bounds the slot groups whose events one page of Valkey events reads, and that one
// live feed watches: past it, the page asks for a group.
const maxGroups = 20

// groupLister is a backend that keeps one sequence of events per slot group (Valkey) and can
// list the groups.
type groupLister interface {
	EventGroups(ctx context.Context) ([]string, error)
}

// eventsQuery is the filter of the events page and of its live feed, as the form sends it.
type eventsQuery struct {
	Budget string
	Kind   string
	Group  string // Valkey: one slot group; "" for every group (at most maxGroups)
	Before int64  // the page before this event_id (one group, or PostgreSQL)
}

func readEventsQuery(v url.Values) eventsQuery {
	q := eventsQuery{Budget: strings.TrimSpace(v.Get("budget")), Kind: v.Get("kind"), Group: strings.TrimSpace(v.Get("group"))}
	switch spendcap.EventKind(q.Kind) {
	case spendcap.EventThreshold, spendcap.EventHardBreach, spendcap.EventWindowClosed:
	default:
		q.Kind = ""
	}
	q.Before, _ = strconv.ParseInt(v.Get("before"), 10, 64)
	return q
}

// values is q as query parameters, without the page.
func (q eventsQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"budget": q.Budget, "kind": q.Kind, "group": q.Group} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// URL is the events page for q before event before (0: the newest).
func (q eventsQuery) URL(prefix string, before int64) string {
	v := q.values()
	if before != 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return prefix + "/events"
	}
	return prefix + "/events?" + v.Encode()
}

// streamURL is the live feed of q, handing out the events after the ids of after (by group).
func (q eventsQuery) streamURL(prefix string, after map[string]int64) string {
	v := q.values()
	v.Set("after", encodeAfter(after))
	return prefix + "/events/stream?" + v.Encode()
}

// encodeAfter writes the last event id read of each group: "group:id,group:id" ("":id on
// PostgreSQL, which has one sequence). It is also the SSE id a reconnecting browser sends back.
func encodeAfter(after map[string]int64) string {
	var parts []string
	for _, g := range sortedKeys(after) {
		parts = append(parts, url.QueryEscape(g)+":"+strconv.FormatInt(after[g], 10))
	}
	return strings.Join(parts, ",")
}

func decodeAfter(s string) (map[string]int64, bool) {
	out := map[string]int64{}
	for part := range strings.SplitSeq(s, ",") {
		g, id, ok := strings.Cut(part, ":")
		if !ok {
			return nil, false
		}
		group, err := url.QueryUnescape(g)
		n, err2 := strconv.ParseInt(id, 10, 64)
		if err != nil || err2 != nil || n < 0 {
			return nil, false
		}
		out[group] = n
	}
	return out, len(out) > 0 && len(out) <= maxGroups
}

type eventsPage struct {
	Common common
	Query  eventsQuery
	Events []eventView
	// Groups are the slot groups to choose from (Valkey); empty on PostgreSQL.
	Groups []string
	// TooMany: more groups than a page reads; choose one.
	TooMany bool
	// Older is the next page, when there may be one.
	Older  string
	Stream string
	Err    string
}

// eventView is one event as a table row shows it.
type eventView struct {
	spendcap.Event
	Prefix string
}

// Detail says what happened, in words.
func (e eventView) Detail() string {
	switch e.Kind {
	case spendcap.EventThreshold:
		return fmt.Sprintf("%s reached %d%% of its hard limit: %s of %s", e.Dimension, e.Percent, num(e.Usage), num(e.LimitValue))
	case spendcap.EventHardBreach:
		return fmt.Sprintf("a call past the hard limit of %s: %s of %s (the window's first)", e.Dimension, num(e.Usage), num(e.LimitValue))
	case spendcap.EventWindowClosed:
		var used []string
		for _, d := range sortedKeys(e.WindowUsage) {
			used = append(used, d+" "+num(e.WindowUsage[d]))
		}
		s := fmt.Sprintf("window %s closed by %s", num(e.WindowSeq), e.ClosedBy)
		if len(used) > 0 {
			s += ": used " + strings.Join(used, ", ")
		}
		if e.BreachCount > 0 {
			s += fmt.Sprintf("; %s refused", num(e.BreachCount))
		}
		return s
	}
	return ""
}

func (h *Handler) views(es []spendcap.Event) []eventView {
	out := make([]eventView, len(es))
	for i, e := range es {
		out[i] = eventView{Event: e, Prefix: h.opts.Prefix}
	}
	return out
}

// groups are the slot groups q reads: nil on PostgreSQL (one sequence), q's own group, the
// budget's group, or every group when there are at most maxGroups (tooMany otherwise).
func (h *Handler) groups(ctx context.Context, q eventsQuery) (groups []string, all []string, tooMany bool, err error) {
	gl, ok := h.opts.Backend.(groupLister)
	if !ok {
		return []string{""}, nil, false, nil
	}
	all, err = gl.EventGroups(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	switch {
	case q.Group != "":
		return []string{q.Group}, all, false, nil
	case q.Budget != "":
		if g, ok := h.opts.Backend.(interface{ GroupOf(string) string }); ok {
			return []string{g.GroupOf(q.Budget)}, all, false, nil
		}
	case len(all) > maxGroups:
		return nil, all, true, nil
	}
	return all, all, false, nil
}

// recent reads the newest events that match q before q.Before, from every group of groups,
// newest first, and the newest event id of each group whatever the filter (where a live feed
// starts).
func (h *Handler) recent(ctx context.Context, q eventsQuery, groups []string, rows int) ([]spendcap.Event, map[string]int64, error) {
	var out []spendcap.Event
	latest := map[string]int64{}
	for _, g := range groups {
		p := spendcap.RecentEventsParams{Group: g, BudgetID: q.Budget, Kind: spendcap.EventKind(q.Kind), BeforeID: q.Before, MaxRows: rows}
		es, err := h.opts.Backend.RecentEvents(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, es...)
		// The unfiltered newest page starts with it; any other takes one more read.
		newest := es[:min(len(es), 1)]
		if q.Budget != "" || q.Kind != "" || q.Before != 0 {
			if newest, err = h.opts.Backend.RecentEvents(ctx, spendcap.RecentEventsParams{Group: g, MaxRows: 1}); err != nil {
				return nil, nil, err
			}
		}
		latest[g] = 0
		if len(newest) == 1 {
			latest[g] = newest[0].EventID
		}
	}
	// Groups count their ids apart: merge by time.
	slices.SortStableFunc(out, func(a, b spendcap.Event) int {
		return cmp.Or(b.OccurredAt.Compare(a.OccurredAt), cmp.Compare(b.EventID, a.EventID))
	})
	if len(out) > rows {
		out = out[:rows]
	}
	return out, latest, nil
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := readEventsQuery(r.URL.Query())
	page := eventsPage{Common: h.common("Events"), Query: q}
	groups, all, tooMany, err := h.groups(ctx, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, ok := h.opts.Backend.(groupLister); ok {
		page.Groups = all
	}
	page.TooMany = tooMany
	if tooMany {
		h.render(w, r, "events.html", page)
		return
	}
	es, latest, err := h.recent(ctx, q, groups, eventRows)
	switch {
	case err == nil:
	case errorsIsInvalid(err):
		page.Err = err.Error()
		h.render(w, r, "events.html", page)
		return
	default:
		h.fail(w, r, err)
		return
	}
	page.Events = h.views(es)
	// Ids order one group only: pages go back within one (or on PostgreSQL).
	if len(groups) == 1 && len(es) == eventRows {
		page.Older = q.URL(h.opts.Prefix, es[len(es)-1].EventID)
	}
	if q.Before == 0 {
		page.Stream = q.streamURL(h.opts.Prefix, latest)
	}
	h.render(w, r, "events.html", page)
}

// maxFeeds bounds the live feeds one Handler serves at once.
const maxFeeds = 16

// heartbeat is how often an idle live feed writes a comment, so that a browser gone away is
// noticed and proxies keep the connection.
const heartbeat = 15 * time.Second

// eventStream is the live feed of the events page: Server-Sent Events, one "event" message per
// new event matching the filter, its data the table row to insert (rendered and escaped here, as
// the page's rows are). Each message's id is where the feed stands, so a browser that reconnects
// resumes there (Last-Event-ID).
func (h *Handler) eventStream(w http.ResponseWriter, r *http.Request) {
	q := readEventsQuery(r.URL.Query())
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = r.URL.Query().Get("after")
	}
	after, ok := decodeAfter(from)
	if !ok {
		http.Error(w, "after must be group:event_id pairs, at most 20", http.StatusBadRequest)
		return
	}
	if h.hub == nil {
		http.Error(w, "this backend has no live events", http.StatusNotImplemented)
		return
	}
	// Feeds share the hub's watchers; each still holds a request: a bounded number at once.
	select {
	case h.feeds <- struct{}{}:
		defer func() { <-h.feeds }()
	default:
		http.Error(w, "too many live feeds are open", http.StatusServiceUnavailable)
		return
	}
	f := newFeed()
	var backlog []groupEvent
	for g, id := range after {
		es, err := h.hub.subscribe(r.Context(), g, id, f)
		defer h.hub.unsubscribe(g, f)
		if err != nil {
			h.opts.Logger.Error("console: live events", "err", err)
			http.Error(w, "could not read the events", http.StatusInternalServerError)
			return
		}
		for _, e := range es {
			backlog = append(backlog, groupEvent{g, e})
		}
	}
	rc := http.NewResponseController(w)
	// A server's WriteTimeout would end the feed: it lives as long as the page.
	_ = rc.SetWriteDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	// seen holds the ids handed out at or below a group's position: PostgreSQL can make an id
	// below it readable later (a late commit), and the backlog and the watcher can both hold one.
	type handed struct {
		group string
		id    int64
	}
	seen := map[handed]bool{}
	start := maps.Clone(after) // the page (or the last message) showed these ids and those before
	send := func(it groupEvent) bool {
		key := handed{it.group, it.e.EventID}
		if seen[key] || it.e.EventID <= start[it.group] {
			return true
		}
		if len(seen) > 10000 {
			clear(seen)
		}
		seen[key] = true
		after[it.group] = max(after[it.group], it.e.EventID)
		if (q.Budget != "" && it.e.BudgetID != q.Budget) || (q.Kind != "" && string(it.e.Kind) != q.Kind) {
			return true
		}
		var b strings.Builder
		if err := h.pages.ExecuteTemplate(&b, "eventrow", h.views([]spendcap.Event{it.e})[0]); err != nil {
			h.opts.Logger.Error("console: live events", "err", err)
			return false
		}
		msg := "event: event\nid: " + encodeAfter(after) + "\n"
		for line := range strings.SplitSeq(b.String(), "\n") {
			msg += "data: " + line + "\n"
		}
		_, err := fmt.Fprint(w, msg+"\n")
		return err == nil && rc.Flush() == nil
	}
	for _, it := range backlog {
		if !send(it) {
			return
		}
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.gone:
			return // the browser reconnects from the last id it got
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": still here\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case it := <-f.ch:
			if !send(it) {
				return
			}
		}
	}
}

// eventsSince counts the events that occurred since t in every group, up to countCap ("" why not
// when there are more groups than a page reads).
func (h *Handler) eventsSince(ctx context.Context, t time.Time) (count, string, error) {
	groups, _, tooMany, err := h.groups(ctx, eventsQuery{})
	if err != nil || tooMany {
		return count{}, "more than 20 slot groups", err
	}
	var c count
	for _, g := range groups {
		before := int64(0)
		for c.N < countCap {
			es, err := h.opts.Backend.RecentEvents(ctx, spendcap.RecentEventsParams{Group: g, BeforeID: before, MaxRows: min(1000, countCap-c.N+1)})
			if err != nil {
				return c, "", err
			}
			for _, e := range es {
				if e.OccurredAt.Before(t) {
					es = nil
					break
				}
				if c.N == countCap {
					c.AtLeast = true
					break
				}
				c.N++
			}
			if len(es) == 0 || c.AtLeast {
				break
			}
			before = es[len(es)-1].EventID
		}
	}
	return c, "", nil
}

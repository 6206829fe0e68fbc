package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/eventstreams"
	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/internal/valkeynodes"
	"github.com/spendcap/spendcap/valkey"
)

// dispatchBatch bounds the events one dispatch transaction hands out.
const dispatchBatch = 1000

// dispatcher hands events to the delivery queue: every event once, in the transaction that marks
// it dispatched (PostgreSQL) or moves its stream's cursor past it (Valkey), so a worker stopped
// at any point loses none and enqueues none twice. It wakes on pg_notify('spendcap_events') and
// at every interval (which is also how often it looks at the Valkey streams).
type dispatcher struct {
	pool         *pgxpool.Pool
	river        *river.Client[pgx.Tx]
	vk           *valkey.Client
	interval     time.Duration
	scanInterval time.Duration
	m            *metrics
	log          *slog.Logger

	// groups are the slot groups with an event stream as the last scan found them; cursors the
	// last id this dispatcher knows enqueued in each (a cache of stream_cursors).
	groups   []string
	lastScan time.Time
	cursors  map[string]int64
	warned   map[string]bool

	// announced are the groups of streams created since the last dispatch, as the library
	// announced them (eventstreams.StreamsChannel): dispatched from the next interval on, not the next
	// scan's.
	mu        sync.Mutex
	announced []string
}

// watchGroups listens for new Valkey event streams until ctx ends, subscribing again after a
// second when the subscription fails; a stream announced meanwhile is found by the next scan,
// which a failure brings forward.
func (d *dispatcher) watchGroups(ctx context.Context) {
	for ctx.Err() == nil {
		ready := make(chan struct{})
		go func() {
			select {
			case <-ready:
				d.m.listening.Set(1)
			case <-ctx.Done():
			}
		}()
		err := eventstreams.WatchGroups(ctx, valkeynodes.ConnOf(d.vk), ready, func(g string) {
			d.mu.Lock()
			d.announced = append(d.announced, g)
			d.mu.Unlock()
		})
		d.m.listening.Set(0)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("listening for new Valkey event streams failed; they are found by the scan meanwhile", "err", err)
		d.mu.Lock()
		d.lastScan = time.Time{}
		d.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// run dispatches until ctx ends.
func (d *dispatcher) run(ctx context.Context) {
	var listen *pgxpool.Conn
	defer func() {
		if listen != nil {
			listen.Release()
		}
	}()
	if d.vk != nil {
		go d.watchGroups(ctx)
	}
	for ctx.Err() == nil {
		d.dispatchPostgres(ctx)
		if d.vk != nil {
			d.dispatchValkey(ctx)
		}
		if listen == nil {
			c, err := d.pool.Acquire(ctx)
			if err == nil {
				if _, err = c.Exec(ctx, "LISTEN spendcap_events"); err != nil {
					c.Release()
				} else {
					listen = c
				}
			}
			if err != nil && ctx.Err() == nil {
				d.log.Warn("cannot LISTEN spendcap_events; dispatching every interval", "err", err)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, d.interval)
		if listen != nil {
			_, err := listen.Conn().WaitForNotification(wctx)
			if err != nil && wctx.Err() == nil {
				// The connection broke: wait out the interval and listen again on another.
				d.log.Warn("LISTEN connection lost", "err", err)
				listen.Conn().PgConn().Close(context.Background())
				listen.Release()
				listen = nil
				<-wctx.Done()
			} else if err == nil {
				// One dispatch answers every notification already received.
				drained, stop := context.WithCancel(ctx)
				stop()
				for n, _ := listen.Conn().WaitForNotification(drained); n != nil; n, _ = listen.Conn().WaitForNotification(drained) {
				}
			}
		} else {
			<-wctx.Done()
		}
		cancel()
	}
}

// dispatchPostgres enqueues the deliveries of undispatched events, a batch per transaction, until
// none is left.
func (d *dispatcher) dispatchPostgres(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := d.inTx(ctx, func(tx pgx.Tx, q *pgfn.Queries) (int, error) {
			rows, err := q.DispatchEvents(ctx, pgfn.DispatchEventsParams{MaxRows: ptr(int32(dispatchBatch))})
			if err != nil || len(rows) == 0 {
				return 0, err
			}
			events := make([]spendcap.Event, len(rows))
			for i, r := range rows {
				events[i] = r.API()
			}
			return len(rows), d.enqueue(ctx, tx, q, events)
		})
		if err != nil {
			d.m.failures.WithLabelValues("dispatch").Inc()
			d.log.Error("dispatching events failed; trying again", "err", err)
			return
		}
		d.m.dispatched.WithLabelValues("postgres").Add(float64(n))
		if n < dispatchBatch {
			return
		}
	}
}

// dispatchValkey enqueues the deliveries of the events of every Valkey stream past its cursor.
func (d *dispatcher) dispatchValkey(ctx context.Context) {
	d.mu.Lock()
	announced, lastScan := d.announced, d.lastScan
	d.announced = nil
	d.mu.Unlock()
	if d.groups == nil || time.Since(lastScan) >= d.scanInterval {
		groups, err := eventstreams.Groups(ctx, valkeynodes.ConnOf(d.vk))
		if err != nil {
			d.m.failures.WithLabelValues("dispatch").Inc()
			d.log.Error("listing Valkey event streams failed", "err", err)
			return
		}
		d.mu.Lock()
		d.groups, d.lastScan = groups, time.Now()
		d.mu.Unlock()
	}
	for _, g := range announced {
		if i, found := slices.BinarySearch(d.groups, g); !found {
			d.groups = slices.Insert(d.groups, i, g)
		}
	}
	last, err := eventstreams.LastIDs(ctx, valkeynodes.ConnOf(d.vk), d.groups)
	if err != nil {
		d.m.failures.WithLabelValues("dispatch").Inc()
		d.log.Error("reading Valkey event ids failed", "err", err)
		return
	}
	for i, g := range d.groups {
		if last[i] == 0 {
			continue // no event yet (an announcement from another database of the server, say)
		}
		if c, ok := d.cursors[g]; ok && c >= last[i] {
			if c > last[i] && !d.warned[g] {
				d.warned[g] = true
				d.log.Warn("a Valkey event stream's last id is below its cursor: its server lost or replaced data, and events with ids up to the cursor are not delivered",
					"stream", valkey.EventsKey(g), "last_id", last[i], "cursor", c)
			}
			continue
		}
		if err := d.dispatchStream(ctx, g, last[i]); err != nil {
			d.m.failures.WithLabelValues("dispatch").Inc()
			d.log.Error("dispatching Valkey events failed; trying again", "stream", valkey.EventsKey(g), "err", err)
		}
	}
}

// dispatchStream enqueues the events of group g's stream past its cursor, up to last, a batch per
// transaction; the cursor's row lock makes dispatchers of several workers take turns.
func (d *dispatcher) dispatchStream(ctx context.Context, g string, last int64) error {
	stream := valkey.EventsKey(g)
	for ctx.Err() == nil {
		var cursor int64
		n, err := d.inTx(ctx, func(tx pgx.Tx, q *pgfn.Queries) (int, error) {
			c, err := q.StreamCursor(ctx, pgfn.StreamCursorParams{Stream: stream})
			if err != nil {
				return 0, err
			}
			cursor = c.LastID
			if cursor >= last {
				return 0, nil
			}
			events, err := d.vk.EventsSince(ctx, spendcap.EventsSinceParams{Group: g, AfterID: cursor, MaxRows: dispatchBatch})
			if err != nil || len(events) == 0 {
				return 0, err
			}
			if err := d.enqueue(ctx, tx, q, events); err != nil {
				return 0, err
			}
			cursor = events[len(events)-1].EventID
			_, err = q.AdvanceStreamCursor(ctx, pgfn.AdvanceStreamCursorParams{Stream: stream, LastID: cursor})
			return len(events), err
		})
		if err != nil {
			return err
		}
		d.cursors[g] = cursor
		d.m.dispatched.WithLabelValues("valkey").Add(float64(n))
		if n < dispatchBatch {
			return nil
		}
	}
	return ctx.Err()
}

// enqueue inserts in tx one delivery per event and webhook that takes its kind.
func (d *dispatcher) enqueue(ctx context.Context, tx pgx.Tx, q *pgfn.Queries, events []spendcap.Event) error {
	hooks, err := q.Webhooks(ctx, pgfn.WebhooksParams{})
	if err != nil || len(hooks) == 0 {
		return err
	}
	var jobs []river.InsertManyParams
	for _, e := range events {
		for _, h := range hooks {
			if h.Kinds == nil || slices.Contains(h.Kinds, string(e.Kind)) {
				jobs = append(jobs, river.InsertManyParams{Args: DeliverArgs{URL: h.URL, Event: e}})
			}
		}
	}
	if len(jobs) == 0 {
		return nil
	}
	_, err = d.river.InsertManyFastTx(ctx, tx, jobs)
	return err
}

// inTx runs fn in a transaction and commits it when fn succeeds.
func (d *dispatcher) inTx(ctx context.Context, fn func(pgx.Tx, *pgfn.Queries) (int, error)) (int, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	n, err := fn(tx, pgfn.New(tx, gobinding.DefaultExecMode))
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return n, nil
}

func ptr[T any](v T) *T { return &v }

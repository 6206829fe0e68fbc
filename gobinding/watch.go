package gobinding

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
)

// EventChannel is the channel PostgreSQL announces each committed event on (the payload is its
// event_id).
const EventChannel = "spendcap_events"

// maxGaps bounds the ids a watcher waits for (ids skipped by rolled-back transactions).
const maxGaps = 10000

var _ spendcap.EventWatcher = (*Client)(nil)

// WatchEvents implements spendcap.EventWatcher. On a Client made on a *pgxpool.Pool it LISTENs on
// EventChannel on one connection of the pool and reads with events_since on the others; LISTEN
// needs a session of its own, so the pool must connect to PostgreSQL directly or through a pooler
// in session mode (behind a transaction pooler no notification arrives and it reads every
// p.PollInterval). On any other Client it reads every p.PollInterval.
//
// Event ids are taken as events are written, so an id below the largest one read may still
// commit: WatchEvents remembers such gaps for p.GapTimeout and reads again from the oldest one at
// every wake-up, handing out what fills them.
func (c *Client) WatchEvents(ctx context.Context, p spendcap.WatchParams, handle func(spendcap.Event) error) error {
	poll := cmp.Or(p.PollInterval, time.Second)
	gapTimeout := cmp.Or(p.GapTimeout, time.Minute)
	var listen *pgxpool.Conn
	defer func() {
		if listen != nil {
			listen.Release()
		}
	}()
	after := p.AfterID
	gaps := map[int64]time.Time{} // id -> when it was found missing
	for {
		// LISTEN before reading, so that nothing committed after the read goes unannounced.
		if listen == nil && c.pool != nil {
			if conn, err := c.pool.Acquire(ctx); err == nil {
				if _, err := conn.Exec(ctx, "LISTEN "+EventChannel); err == nil {
					listen = conn
				} else {
					conn.Release()
				}
			}
		}
		from := after
		for id := range gaps {
			from = min(from, id-1)
		}
		for {
			es, err := c.EventsSince(ctx, spendcap.EventsSinceParams{AfterID: from, MaxRows: 1000})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("events_since: %w", err)
			}
			for _, e := range es {
				from = e.EventID
				if e.EventID <= after {
					if _, ok := gaps[e.EventID]; !ok {
						continue // handled already
					}
					delete(gaps, e.EventID)
				} else {
					now := time.Now()
					for id := max(after+1, e.EventID-maxGaps); id < e.EventID; id++ {
						gaps[id] = now
					}
					after = e.EventID
				}
				if err := handle(e); err != nil {
					return err
				}
			}
			if len(es) < 1000 {
				break
			}
		}
		for id, since := range gaps {
			if time.Since(since) > gapTimeout || len(gaps) > maxGaps {
				delete(gaps, id)
			}
		}
		if err := c.wait(ctx, &listen, poll); err != nil {
			return err
		}
	}
}

// wait returns after a notification (and those queued behind it), after poll, or when ctx ends
// (with its error). A broken LISTEN connection is dropped, to be replaced at the next read.
func (c *Client) wait(ctx context.Context, listen **pgxpool.Conn, poll time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, poll)
	defer cancel()
	if *listen == nil {
		<-wctx.Done()
		return ctx.Err()
	}
	conn := (*listen).Conn()
	_, err := conn.WaitForNotification(wctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && wctx.Err() == nil:
		(*listen).Conn().PgConn().Close(context.Background())
		(*listen).Release()
		*listen = nil
		return nil
	}
	drainNotifications(conn)
	return nil
}

// drainNotifications drops the notifications already received: one read answers them all.
func drainNotifications(conn interface {
	WaitForNotification(context.Context) (*pgconn.Notification, error)
}) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		// With ctx done, pgx answers from the notifications it holds and never waits.
		if n, _ := conn.WaitForNotification(done); n == nil {
			return
		}
	}
}

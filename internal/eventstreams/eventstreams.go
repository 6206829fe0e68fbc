// Package eventstreams finds the event streams of a Valkey deployment for the jobs worker, which
// dispatches their events to webhooks: the slot groups that have one (a scan), those created from
// now on (the library announces each), and the last event id of each. They read keys whose
// formats package valkey defines; the rest of the Valkey API has no use for them.
package eventstreams

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/valkey"
)

// Groups lists, sorted, the slot groups that have an event stream (valkey.EventGroups: one pass
// over each primary's keyspace).
func Groups(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	return valkey.EventGroups(ctx, rdb)
}

// StreamsChannel is the Pub/Sub channel on which the library publishes the key of each new event
// stream (sc:{g}:events) when it writes the stream's first event.
const StreamsChannel = "sc:events:streams"

// WatchGroups calls found with the slot group of each event stream created from now on, as the
// library announces it on StreamsChannel, until ctx ends (it returns ctx's error) or the
// subscription fails. It returns once subscribed: call it in a goroutine of its own, after ready
// is closed, streams created are announced. Pub/Sub is fire and forget: a stream created while
// nobody listened (or while the connection was being re-made) is found by Groups only.
func WatchGroups(ctx context.Context, rdb redis.UniversalClient, ready chan<- struct{}, found func(group string)) error {
	ps := rdb.Subscribe(ctx, StreamsChannel)
	defer ps.Close()
	// The first reply confirms the subscription: from then on no announcement is missed.
	if _, err := ps.Receive(ctx); err != nil {
		return fmt.Errorf("valkey: subscribe %s: %w", StreamsChannel, err)
	}
	if ready != nil {
		close(ready)
	}
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-ch:
			if !ok {
				return fmt.Errorf("valkey: subscription to %s closed", StreamsChannel)
			}
			if g, ok := groupOfStream(m.Payload); ok {
				found(g)
			}
		}
	}
}

// groupOfStream is valkey.EventsKey's inverse.
func groupOfStream(key string) (string, bool) {
	g, ok := strings.CutPrefix(key, "sc:{")
	if ok {
		g, ok = strings.CutSuffix(g, "}:events")
	}
	return g, ok && valkey.EventsKey(g) == key
}

// LastIDs returns the last event_id given out in each of groups (0 for a group with none), in
// one pipeline: a reader polls it to learn which streams have events it has not read.
func LastIDs(ctx context.Context, rdb redis.UniversalClient, groups []string) ([]int64, error) {
	cmds := make([]*redis.StringCmd, len(groups))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range groups {
			cmds[i] = p.Get(ctx, valkey.EventsKey(g)+":id")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("valkey: last event ids: %w", err)
	}
	ids := make([]int64, len(groups))
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("valkey: last event id of %s: %w", groups[i], err)
		}
		ids[i] = n
	}
	return ids, nil
}

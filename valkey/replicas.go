package valkey

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/valkeynodes"
)

// DefaultReplicaTimeout is how long a write waits for Options.MinReplicas replicas by default.
const DefaultReplicaTimeout = 100 * time.Millisecond

// ErrNotReplicated matches the error a write returns, with its result, when fewer replicas than
// Options.MinReplicas confirmed it in time: the write happened on the primary, and whether it
// survives a failover is unknown. A retry with the same dedup or idempotency key after a failover
// tells: it replays the outcome when the write survived and counts it again when it did not.
var ErrNotReplicated = errors.New("valkey: written on the primary; fewer replicas than Options.MinReplicas confirmed it in time")

// ReplicationError is the error of a write that fewer replicas than wanted confirmed. It matches
// ErrNotReplicated.
type ReplicationError struct {
	// Confirmed is how many replicas confirmed the write (WAIT's answer); Wanted is MinReplicas.
	Confirmed, Wanted int
	// Waited is false when the client did not wait, because too few replicas confirmed an
	// earlier write (after a failover, until a replica attaches again and confirms one).
	Waited bool
}

func (e *ReplicationError) Error() string {
	if !e.Waited {
		return fmt.Sprintf("%v (not waited for: fewer than %d replicas confirmed the writes before)", ErrNotReplicated, e.Wanted)
	}
	return fmt.Sprintf("%v (%d of %d)", ErrNotReplicated, e.Confirmed, e.Wanted)
}

// Is makes errors.Is(err, ErrNotReplicated) hold.
func (e *ReplicationError) Is(target error) bool { return target == ErrNotReplicated }

// replicaProbeInterval is how often, while too few replicas confirm writes, one write waits for
// them again to see whether they are back.
const replicaProbeInterval = time.Second

// replication is what a Client waits for after each write.
type replication struct {
	wanted  int
	timeout time.Duration
	// short is set when the last wait found fewer replicas than wanted. Writes then skip WAIT,
	// which would stall each of them for the whole timeout (after a failover the new primary has
	// no replica at all), and ask ROLE instead, in the same round trip. Once ROLE shows enough
	// replicas attached, one write a replicaProbeInterval waits again, and a wait that they
	// confirm ends the state.
	short atomic.Bool
	// attached is the number of replicas the last ROLE showed; lastProbe when a write last
	// waited (UnixNano).
	attached  atomic.Int64
	lastProbe atomic.Int64
}

// waitNow says whether this write waits for replicas.
func (r *replication) waitNow() bool {
	if !r.short.Load() {
		return true
	}
	if r.attached.Load() < int64(r.wanted) {
		return false
	}
	last, now := r.lastProbe.Load(), time.Now().UnixNano()
	return now-last >= int64(replicaProbeInterval) && r.lastProbe.CompareAndSwap(last, now)
}

// fcall runs FCALL (or FCALL_RO) of function name with keys and args. A write on a Client with
// MinReplicas sends WAIT after it on the same connection, in the same round trip, and returns a
// *ReplicationError (after the FCALL's own reply) when too few replicas confirmed it.
func (c *Client) fcall(ctx context.Context, name string, keys []string, readonly bool, args ...any) (*redis.Cmd, error) {
	if readonly {
		return c.rdb.FCallRO(ctx, name, keys, args...), nil
	}
	if c.repl == nil || c.repl.wanted <= 0 {
		cmd := c.rdb.FCall(ctx, name, keys, args...)
		c.noteFailover(cmd.Err())
		return cmd, nil
	}
	var conn pipeliner = c.rdb
	if cc, ok := c.rdb.(*redis.ClusterClient); ok && len(keys) > 0 {
		// WAIT must follow the write on the connection that made it: the key's primary.
		node, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd, nil
		}
		conn = node
	}
	var cmd *redis.Cmd
	var wait *redis.Cmd
	var role *redis.Cmd
	short := !c.repl.waitNow()
	_, _ = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = p.FCall(ctx, name, keys, args...)
		if short {
			role = p.Do(ctx, "ROLE")
		} else {
			wait = p.Do(ctx, "WAIT", c.repl.wanted, c.repl.timeout.Milliseconds())
		}
		return nil
	})
	c.noteFailover(cmd.Err())
	if cmd.Err() != nil {
		return cmd, nil // refused before it wrote (a spendcap error) or not sent at all
	}
	if short {
		c.repl.attached.Store(int64(attachedReplicas(role)))
		return cmd, &ReplicationError{Wanted: c.repl.wanted}
	}
	n, err := wait.Int64()
	if err != nil {
		return cmd, fmt.Errorf("%w: WAIT: %v", ErrNotReplicated, err)
	}
	if int(n) < c.repl.wanted {
		c.repl.lastProbe.Store(time.Now().UnixNano())
		c.repl.short.Store(true)
		return cmd, &ReplicationError{Confirmed: int(n), Wanted: c.repl.wanted, Waited: true}
	}
	c.repl.short.Store(false)
	return cmd, nil
}

// attachedReplicas reads the number of replicas from a primary's ROLE reply (["master", offset,
// [[ip, port, offset], ...]]); 0 when it is not a primary's.
func attachedReplicas(role *redis.Cmd) int {
	v, err := role.Slice()
	if err != nil || len(v) < 3 || v[0] != "master" {
		return 0
	}
	replicas, _ := v[2].([]any)
	return len(replicas)
}

// noteFailover remembers an error that says the server the client wrote to is no longer the
// primary it was (a demoted primary's READONLY, a dead one's connection error): the next write
// that succeeds checks the settings of the primary it reached.
func (c *Client) noteFailover(err error) {
	if err == nil {
		if c.recheck.CompareAndSwap(true, false) {
			go c.checkPrimaries()
		}
		return
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		if strings.HasPrefix(rerr.Error(), "READONLY") {
			c.recheck.Store(true)
		}
		return
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		c.recheck.Store(true) // a connection error
	}
}

// checkPrimaries runs NewClient's settings checks on the primaries the client reaches now, after a
// failover: a refusal becomes an error in the log, since calls are already flowing.
func (c *Client) checkPrimaries() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := valkeynodes.ForEachPrimary(ctx, c.rdb, func(ctx context.Context, n *redis.Client) error {
		return checkServer(ctx, n, c.opts)
	})
	if err != nil {
		c.opts.logger().Error("valkey: the primary reached after a failover fails a settings check", "err", err)
	}
}

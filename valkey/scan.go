package valkey

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// scanKeys SCANs node n for keys matching match and returns, each once and in scan order, what
// keep makes of those it keeps: the operator calls (Audit, BudgetGauges' ranking) walk every
// primary's keyspace this way.
func scanKeys(ctx context.Context, n *redis.Client, match string, keep func(key string) (string, bool)) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	it := n.Scan(ctx, 0, match, 1000).Iterator()
	for it.Next(ctx) {
		if k, ok := keep(it.Val()); ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	return out, nil
}

// pipeliner is a *redis.Client (one node) or any redis.UniversalClient (a cluster client routes
// each call of a pipeline to its key's node).
type pipeliner interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// fcallEach runs FCALL fn on n once per key of keys (the key its only one, payload(i) the
// arguments of keys[i]), size calls to a pipeline so that none holds the server long, and hands
// each reply to reply in order: every reply carries its own error (an error reply, or the
// connection's), for reply to judge.
func fcallEach(ctx context.Context, n pipeliner, fn string, keys []string, size int, payload func(i int) ([]byte, error),
	reply func(cmd *redis.Cmd) error) error {
	for from := 0; from < len(keys); from += size {
		batch := keys[from:min(from+size, len(keys))]
		args := make([][]byte, len(batch))
		for i := range batch {
			a, err := payload(from + i)
			if err != nil {
				return err
			}
			args[i] = a
		}
		cmds := make([]*redis.Cmd, len(batch))
		_, _ = n.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.FCall(ctx, fn, []string{k}, args[i])
			}
			return nil
		})
		for _, cmd := range cmds {
			if err := reply(cmd); err != nil {
				return err
			}
		}
	}
	return nil
}

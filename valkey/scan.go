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

// fcallEach runs FCALL fn on node n once per key of keys (the key its only one), size calls to a
// pipeline so that none holds the server long, and hands each reply to reply in
// order: every reply carries its own error (an error reply, or the connection's), for reply to
// judge.
func fcallEach(ctx context.Context, n *redis.Client, fn string, keys []string, size int, payload func(key string) ([]byte, error),
	reply func(cmd *redis.Cmd) error) error {
	for len(keys) > 0 {
		batch := keys[:min(size, len(keys))]
		keys = keys[len(batch):]
		args := make([][]byte, len(batch))
		for i, k := range batch {
			a, err := payload(k)
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

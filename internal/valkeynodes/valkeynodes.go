// Package valkeynodes reaches each primary of a Valkey deployment: the one server of a
// *redis.Client, or every master of a *redis.ClusterClient. Package valkey and the jobs worker
// both walk primaries (settings checks, scans, the library's loading).
package valkeynodes

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ForEachPrimary calls fn on every primary of rdb (concurrently on a cluster) and returns the
// first error.
func ForEachPrimary(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	default:
		return fmt.Errorf("valkey: unsupported client %T: use *redis.Client or *redis.ClusterClient", rdb)
	}
}

// ConnOf returns the go-redis client that a *valkey.Client runs on, for the jobs worker, which
// reads the event streams with it (internal/eventstreams). Package valkey sets it in its init, so
// that Client needs no exported method for it; it panics on anything but a *valkey.Client.
var ConnOf func(client any) redis.UniversalClient

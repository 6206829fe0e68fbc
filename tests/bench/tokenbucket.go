package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// tokenBucketLibrary is baseline C: the Lua token-bucket limiter a well-known API gateway runs on
// Valkey, reduced to what it does per call (TIME, HMGET of 2 hash fields, the refill and the
// comparison, HSET of 2 fields, EXPIRE) with numeric ARGV, as a function of a library of its own
// loaded next to spendcap's. It is the per-call floor of a useful limiter on the same server with
// the same client settings; it keeps no windows, limits per dimension, reservations or keys.
const tokenBucketLibrary = `#!lua name=bench_token_bucket
redis.register_function('bench_token_bucket', function(keys, argv)
    local rate, capacity, requested = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local v = redis.call('HMGET', keys[1], 'tokens', 'ts')
    local tokens, ts = tonumber(v[1]) or capacity, tonumber(v[2]) or now
    tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
    local allowed = tokens >= requested
    if allowed then
        tokens = tokens - requested
    end
    redis.call('HSET', keys[1], 'tokens', tokens, 'ts', now)
    redis.call('EXPIRE', keys[1], math.ceil(capacity / rate) * 2)
    if allowed then
        return 1
    end
    return 0
end)
`

// loadTokenBucket loads baseline C's library.
func loadTokenBucket(ctx context.Context, rdb *redis.Client) error {
	return rdb.FunctionLoadReplace(ctx, tokenBucketLibrary).Err()
}

// tokenBucket is one call of baseline C on key: a bucket refilled at a million tokens a second
// holding a billion, so every call is allowed, as every benchmarked report applies.
func tokenBucket(ctx context.Context, rdb *redis.Client, key string) error {
	return rdb.FCall(ctx, "bench_token_bucket", []string{key}, 1000000, 1000000000, 1).Err()
}

// serverMicros is the server's time per FCALL (INFO commandstats, usec_per_call) since the last
// CONFIG RESETSTAT: a function's own cost, the commands it runs included, without the client's
// or the network's.
func serverMicros(ctx context.Context, rdb *redis.Client) (float64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_fcall:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
				return strconv.ParseFloat(v, 64)
			}
		}
	}
	return 0, fmt.Errorf("no cmdstat_fcall in INFO commandstats")
}

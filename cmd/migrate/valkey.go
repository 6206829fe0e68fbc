package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/valkey"
)

// valkeyLoad puts the library on every primary whose copy differs.
func valkeyLoad(o options, stdout, stderr io.Writer, logger *slog.Logger) int {
	url := o.valkeyURL
	if url == "" {
		url = os.Getenv("VALKEY_URL")
	}
	if url == "" {
		fmt.Fprintln(stderr, "migrate: valkey-load needs --valkey-url or $VALKEY_URL (see migrate -h)")
		return exitUsage
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fail(stderr, fmt.Errorf("valkey url: %w", err))
	}
	var rdb redis.UniversalClient
	if o.valkeyCluster {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{opts.Addr}, Username: opts.Username,
			Password: opts.Password, TLSConfig: opts.TLSConfig})
	} else {
		rdb = redis.NewClient(opts)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	loaded, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{AllowReplay: o.allowReplay})
	if err != nil {
		return fail(stderr, err)
	}
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{SkipLoad: true, Logger: logger}); err != nil {
		logger.Warn("the library is loaded, but clients will refuse this server", "err", err)
	}
	logger.Info("valkey library", "loaded_on", loaded, "duration", time.Since(start))
	out := output{w: stdout, json: o.format == "json"}
	text := fmt.Sprintf("valkey: library %s loaded on %d primaries (the others had it), replays %s\n",
		valkey.LibraryName, loaded, map[bool]string{false: "refused", true: "allowed"}[o.allowReplay])
	out.print(map[string]any{"library": valkey.LibraryName, "loaded": loaded, "allow_replay": o.allowReplay,
		"duration_ms": time.Since(start).Milliseconds()}, text)
	return exitOK
}

// auditValkey runs the Valkey audit on the deployment of --valkey-url.
func auditValkey(ctx context.Context, o options, logger *slog.Logger) ([]spendcap.AuditFinding, error) {
	opts, err := redis.ParseURL(o.valkeyURL)
	if err != nil {
		return nil, fmt.Errorf("valkey url: %w", err)
	}
	var rdb redis.UniversalClient
	if o.valkeyCluster {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{opts.Addr}, Username: opts.Username,
			Password: opts.Password, TLSConfig: opts.TLSConfig})
	} else {
		rdb = redis.NewClient(opts)
	}
	defer rdb.Close()
	// The audit needs the library, not the settings that protect writers (those are checked and
	// reported by valkey-load).
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{SkipLoad: true, AllowEviction: true, AllowVolatile: true, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("valkey: %w", err)
	}
	return vk.Audit(ctx, spendcap.AuditParams{Repair: o.repair})
}

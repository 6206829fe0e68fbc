package jobs_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/internal/jobs"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// valkey.NewClient checks the eviction policy and the append-only file once, at start; the worker reads
// them again on an interval, so a CONFIG SET made later shows in its metrics and its log.
func TestTheWorkerSeesAValkeySettingChangedAtRunTime(t *testing.T) {
	t.Parallel()
	// A server of its own: the CONFIG SET below would refuse other tests' clients.
	srv, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{Durable: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	vk, err := valkey.NewClient(ctx, rdb, valkey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	w := startWorker(t, testenv.Pool(t), jobs.Config{Valkey: vk, ValkeySettingsInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ok := func(setting string) float64 {
		return metric(t, w, `spendcap_valkey_setting_ok{addr="`+srv.Addr+`",setting="`+setting+`"}`)
	}
	eventually(t, "the settings read", 10*time.Second, func() bool {
		return ok("maxmemory-policy") == 1 && ok("appendonly") == 1 && ok("appendfsync") == 1
	})
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "appendfsync", "everysec").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change seen", 10*time.Second, func() bool {
		return ok("maxmemory-policy") == 0 && ok("appendfsync") == 0 && ok("appendonly") == 1
	})
	for _, want := range []string{"maxmemory-policy must be noeviction", "appendfsync everysec"} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("the warning %q logged %d times, want once:\n%s", want, n, logs.String())
		}
	}
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fix seen", 10*time.Second, func() bool { return ok("maxmemory-policy") == 1 })
	if !strings.Contains(logs.String(), `msg="Valkey setting fixed" component=valkey_settings addr=`+srv.Addr+` setting=maxmemory-policy`) {
		t.Errorf("no note of the fix:\n%s", logs.String())
	}
}

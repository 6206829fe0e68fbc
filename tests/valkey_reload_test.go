package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/valkey"
)

// Loading the library again while 32 clients call (what `migrate valkey-load` does at a deploy,
// and at a rollback to the previous release's library) fails no call and loses nothing: Valkey
// runs FUNCTION LOAD REPLACE between two calls, never during one.
func TestValkeyLibraryReloadUnderLoadFailsNoCall(t *testing.T) {
	t.Parallel()
	srv, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.PoolSize = 40
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	client, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	budgets := []string{"r0", "r1", "r2", "r3"}
	for _, b := range budgets {
		if _, err := client.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: b, HardLimits: map[string]int64{"tokens": 1 << 50}}); err != nil {
			t.Fatal(err)
		}
	}
	previous, err := os.ReadFile(filepath.Join(releasesDir, frozenReleases(t)[len(frozenReleases(t))-1].Name, "spendcap.lua"))
	if err != nil {
		t.Fatal(err)
	}

	var acked [4]atomic.Int64
	var calls atomic.Int64
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				b := i % len(budgets)
				p := spendcap.ReportUsageParams{BudgetID: budgets[b], Deltas: map[string]int64{"tokens": 1}, DedupKey: fmt.Sprintf("c%d-%d", i, n)}
				for {
					_, err := client.ReportUsage(ctx, p)
					if err == nil {
						break
					}
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					if len(errs) > 100 {
						return
					}
				}
				acked[b].Add(1)
				calls.Add(1)
			}
		}()
	}
	// Each load replaces the library: every other load is the previous release's library (whose
	// settings are the defaults), the others this tree's with replays allowed.
	loads := 0
	for i := 0; i < 10; i++ {
		time.Sleep(30 * time.Millisecond)
		if i%2 == 1 {
			if err := rdb.FunctionLoadReplace(ctx, string(previous)).Err(); err != nil {
				t.Fatal(err)
			}
			loads++
			continue
		}
		n, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{AllowReplay: true})
		if err != nil {
			t.Fatal(err)
		}
		loads += n
	}
	time.Sleep(30 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d calls while the library was loaded %d times", calls.Load(), loads)
	if loads != 10 {
		t.Errorf("the library was loaded %d times, want a real replacement each time", loads)
	}
	for _, e := range errs {
		t.Errorf("a call failed during a reload: %s", e)
	}
	for i, b := range budgets {
		st, err := client.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: b})
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Usage["tokens"]; got != acked[i].Load() {
			t.Errorf("budget %s counts %d tokens, the clients were acknowledged %d", b, got, acked[i].Load())
		}
	}
	findings, err := client.Audit(ctx, spendcap.AuditParams{})
	if err != nil || len(findings) > 0 {
		t.Errorf("audit after the reloads: %v, %v", findings, err)
	}
}

package valkey_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

// ownServer starts a Valkey of this test's own, for tests that change server-wide state.
func ownServer(t *testing.T) *redis.Client {
	t.Helper()
	v, err := localserver.StartValkey(ctx, localserver.ValkeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	c := redis.NewClient(&redis.Options{Addr: v.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestNewLoadsTheLibraryOnlyWhenTheServerCopyDiffers(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	if n, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{}); err != nil || n != 1 {
		t.Fatalf("first load: %d, %v", n, err)
	}
	if n, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{}); err != nil || n != 0 {
		t.Fatalf("second load: %d, %v; want 0 (the server has this version)", n, err)
	}
	// An older library of the same name is replaced.
	old := "#!lua name=spendcap\nredis.register_function('sc_budget_status', function() return 'old' end)\n"
	if err := rdb.FunctionLoadReplace(ctx, old).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	libs, err := rdb.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "spendcap", WithCode: true}).Result()
	if err != nil || len(libs) != 1 || libs[0].Code != valkey.Library {
		t.Errorf("after NewClient: %d libraries, err %v; want the embedded one", len(libs), err)
	}
	// Read-only calls are flagged no-writes, so FCALL_RO accepts them.
	for _, f := range libs[0].Functions {
		ro := f.Name == "sc_budget_status" || f.Name == "sc_check_usage" || f.Name == "sc_budget_history" || f.Name == "sc_quota_status" ||
			f.Name == "sc_events_since" || f.Name == "sc_recent_events" || f.Name == "sc_budget_reservations" || f.Name == "sc_list_quota_policies" ||
			f.Name == "sc_usage_series"
		if ro != (len(f.Flags) == 1 && f.Flags[0] == "no-writes") {
			t.Errorf("%s flags %v", f.Name, f.Flags)
		}
	}
}

func TestNewRefusesAServerThatCouldEvictBudgetKeys(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if !errors.Is(err, valkey.ErrEvictionPolicy) || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Errorf("NewClient on allkeys-lru: %v, want ErrEvictionPolicy naming the policy", err)
	}
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowEviction: true, AllowVolatile: true}); err != nil {
		t.Errorf("NewClient with AllowEviction: %v", err)
	}
}

func TestErrorRepliesMapToSentinels(t *testing.T) {
	t.Parallel()
	c, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "nope"})
	var e *spendcap.Error
	var re redis.Error
	if !errors.Is(err, spendcap.ErrBudgetNotFound) || !errors.As(err, &e) || e.Code != "SC001" ||
		e.Message != `budget_id: budget "nope" not found` || !errors.As(err, &re) {
		t.Errorf("err = %v (%T), want SC001 mapped, unwrapping to the redis error", err, err)
	}
}

// Lua's JSON encoder writes '/' as '\/'; messages name ids as PostgreSQL's do, slashes and all.
func TestMessagesNameIDsWithSlashesAsWritten(t *testing.T) {
	t.Parallel()
	c, err := valkey.NewClient(ctx, testenv.Valkey(t), valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: `acme/a\/b`})
	var e *spendcap.Error
	if !errors.As(err, &e) || e.Message != `budget_id: budget "acme/a\\/b" not found` {
		t.Errorf("err = %v, want the id as a JSON string without escaped slashes", err)
	}
}

func TestTheBaseKeyMustMatchTheBudget(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	err := rdb.FCall(ctx, "sc_create_budget", []string{"sc:{other}"}, `{"budget_id": "b1"}`).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "SC002 budget_id: ") {
		t.Errorf("create with the key of another budget: %v", err)
	}
}

func TestBaseKeysHashOnTheFirstSegmentOfTheID(t *testing.T) {
	for id, want := range map[string]string{
		"b1":                "sc:{b1}",
		"acme/team-1":       "sc:{acme}/team-1",
		"acme/team-1/key-7": "sc:{acme}/team-1/key-7",
		"acme/":             "sc:{acme}/",
		"/x":                "sc:{/x}", // an empty tag is no tag: the whole id is
		"//x":               "sc:{/}/x",
		"/":                 "sc:{/}",
	} {
		if got := valkey.Key(id); got != want {
			t.Errorf("Key(%q) = %q, want %q", id, got, want)
		}
		if got, want := valkey.PolicyKey(id), "sc:q:"+strings.TrimPrefix(want, "sc:"); got != want {
			t.Errorf("PolicyKey(%q) = %q, want %q", id, got, want)
		}
	}
}

// The library places keys by the same rule as Key, and a budget's own keys never collide with
// another budget's: g/a's reservations are not budget g/a:r.
func TestBudgetsWithSlashesInTheirIDsKeepTheirKeysApart(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g/a", "g/a:r", "g/a:l", "g/a:h", "/x", "g"} {
		if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, HardLimits: map[string]int64{"t": 100}, ResetEvery: "1 hour"}); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
	}
	if _, err := c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "g/a", ReservationID: "r1", Amounts: map[string]int64{"t": 10}, TTL: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "g/a", ExecutionID: "e1", Deltas: map[string]int64{"t": 5}, IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "g/a"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g/a:r", "g/a:l", "g/a:h", "/x", "g"} {
		st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		if err != nil || len(st.Usage) != 0 || len(st.Reserved) != 0 {
			t.Errorf("budget %s after calls on g/a: %+v, %v; want untouched", id, st, err)
		}
	}
	if st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "g/a"}); err != nil || st.Reserved["t"] != 10 {
		t.Errorf("g/a: %+v, %v; want 10 reserved", st, err)
	}
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		// The listing index is the server's (one per slot on a cluster), not a budget's.
		if !strings.HasPrefix(k, "sc:{g}") && !strings.HasPrefix(k, "sc:{/x}") && !strings.HasPrefix(k, "sc:ix:") {
			t.Errorf("key %q is not under the first segment of its budget's id", k)
		}
	}
	if err := rdb.FCall(ctx, "sc_budget_status", []string{"sc:{g/a}"}, `{"budget_id":"g/a"}`).Err(); err == nil || !strings.HasPrefix(err.Error(), "SC002 budget_id: the key must be sc:{g}/a") {
		t.Errorf("FCALL on the key of the old placement: %v, want SC002 naming the key", err)
	}
}

func TestReadmeFCallExample(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FCall(ctx, "sc_create_budget", []string{"sc:{b1}"}, `{"budget_id":"b1","hard_limits":{"tokens":100}}`).Err(); err != nil {
		t.Fatal(err)
	}
	reply, err := rdb.FCall(ctx, "sc_report_usage", []string{"sc:{b1}"}, `{"budget_id":"b1","deltas":{"tokens":5}}`).Text()
	if err != nil || !strings.Contains(reply, `"outcome":"ok"`) || !strings.Contains(reply, `"applied":true`) {
		t.Errorf("FCALL sc_report_usage = %s, %v", reply, err)
	}
}

// Valkey has no purge job: every acquire trims its policy's sorted sets to the window and the
// live leases, so they stay bounded however long a policy lives.
func TestQuotaSortedSetsStayBoundedByTheWindow(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t) // replays allowed: the acquisitions are in the past
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "p", Window: 10 * time.Second, LeaseTTL: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 50; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "p", HolderID: fmt.Sprintf("h%d", i), At: at}); err != nil {
			t.Fatal(err)
		}
		entries, _ := rdb.ZCard(ctx, valkey.PolicyKey("p")+":w").Result()
		leases, _ := rdb.ZCard(ctx, valkey.PolicyKey("p")+":l").Result()
		if entries > 10 || leases > 5 {
			t.Fatalf("after %d acquisitions one second apart: %d window entries, %d leases; want at most 10 and 5", i+1, entries, leases)
		}
	}
}

// Versions before 2026-11 stored the budget as a JSON string, versions before 2026-12 as a
// MessagePack string; this one stores a HASH and must go on serving budgets stored either old way,
// through the fast path and the general one, storing each as a HASH on its next write.
func TestBudgetsStoredAsStringsByEarlierVersionsStillServe(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	legacy := func(id string, usage int64, msgpack bool) {
		doc := fmt.Sprintf(`{"id":%q,"hard":{"tokens":9007199254740991},"soft":{},"every":null,"n":null,"unit":null,"tz":"UTC",`+
			`"anchor":null,"mode":"enforce","scope_type":null,"scope_id":null,"ttl":86400,"created":1795639445177,`+
			`"updated":1795639445177,"seq":1,"k":-1,"ws":1795639445177,"nr":null,"usage":{"tokens":%d},"reserved":{},`+
			`"rexp":null,"bc":0,"sbc":0,"wbc":0,"wsbc":0,"lba":null,"lbd":null,"gen":"1795639445.177118","nc":0}`, id, usage)
		if !msgpack {
			if err := rdb.Set(ctx, valkey.Key(id), doc, 0).Err(); err != nil {
				t.Fatal(err)
			}
			return
		}
		// As the MessagePack versions packed it: absent fields for nulls.
		const pack = `local d = cjson.decode(ARGV[1]) for k, v in pairs(d) do if v == cjson.null then d[k] = nil end end
			redis.call('SET', KEYS[1], cmsgpack.pack(d))`
		if err := rdb.Eval(ctx, pack, []string{valkey.Key(id)}, doc).Err(); err != nil && err != redis.Nil {
			t.Fatal(err)
		}
	}
	for _, msgpack := range []bool{false, true} {
		fast, general := fmt.Sprintf("fast-%v", msgpack), fmt.Sprintf("general-%v", msgpack)
		legacy(fast, 9007199254740000, msgpack)
		legacy(general, 5, msgpack)
		if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: fast, Deltas: map[string]int64{"tokens": 991}}); err != nil || o.Kind != spendcap.OutcomeOK {
			t.Fatalf("report on %s: %+v, %v", fast, o, err)
		}
		if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: general, Deltas: map[string]int64{"tokens": 1}, DedupKey: "k"}); err != nil || o.Kind != spendcap.OutcomeOK {
			t.Fatalf("keyed report on %s: %+v, %v", general, o, err)
		}
		for id, want := range map[string]int64{fast: 9007199254740991, general: 6} {
			st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
			if err != nil || st.Usage["tokens"] != want || st.WindowSeq != 1 || st.HardLimits["tokens"] != 9007199254740991 ||
				st.CreatedAt.UnixMilli() != 1795639445177 {
				t.Errorf("%s after a report: %+v, %v; want usage %d", id, st, err, want)
			}
			if typ, err := rdb.Type(ctx, valkey.Key(id)).Result(); err != nil || typ != "hash" {
				t.Errorf("%s is stored as a %s after a write (%v), want a hash", id, typ, err)
			}
		}
		// Stored anew, the fast path takes it, and leaves what is past the largest quantity to the
		// general path; usage still adds up exactly.
		if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: general, Deltas: map[string]int64{"tokens": 4}}); err != nil || o.Kind != spendcap.OutcomeOK {
			t.Fatalf("second report on %s: %+v, %v", general, o, err)
		}
		if _, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: fast, Deltas: map[string]int64{"tokens": 1}}); !errors.Is(err, spendcap.ErrQuantityOutOfRange) {
			t.Fatalf("report past the largest quantity on %s: %v, want ErrQuantityOutOfRange", fast, err)
		}
		if st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: general}); err != nil || st.Usage["tokens"] != 10 {
			t.Errorf("%s after a second report: %+v, %v; want usage 10", general, st, err)
		}
	}
}

func TestNewWarnsNamingTheVersionOfAServerOlderThanTheMinimum(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	version, old := testenv.ValkeyVersion(t, rdb)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{Logger: logger, AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "valkey-server "+version+" is older than "+valkey.MinServerVersion)
	if old != warned {
		t.Errorf("server %s (minimum %s): old = %v but warned = %v; logs:\n%s", version, valkey.MinServerVersion, old, warned, logs.String())
	}
}

func TestNewRefusesAServerWithoutAnAppendOnlyFile(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t) // appendonly no
	_, err := valkey.NewClient(ctx, rdb, valkey.Options{})
	if !errors.Is(err, valkey.ErrNotDurable) || !strings.Contains(err.Error(), `"no"`) {
		t.Errorf("NewClient on appendonly no: %v, want ErrNotDurable naming the setting", err)
	}
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Errorf("NewClient with AllowVolatile: %v", err)
	}
}

func TestNewWarnsOnAnFsyncPolicyThatCanLoseAcknowledgedUsage(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		policy string
		warned bool
	}{{"everysec", true}, {"no", true}, {"always", false}} {
		if err := rdb.ConfigSet(ctx, "appendfsync", tc.policy).Err(); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		if _, err := valkey.NewClient(ctx, rdb, valkey.Options{Logger: logger}); err != nil {
			t.Fatalf("appendfsync %s: %v", tc.policy, err)
		}
		warned := strings.Contains(logs.String(), "appendfsync "+tc.policy)
		if warned != tc.warned {
			t.Errorf("appendfsync %s: warned = %v, want %v; logs:\n%s", tc.policy, warned, tc.warned, logs.String())
		}
	}
}

func TestAFutureAtMsIsRefusedUnlessTheLibraryAllowsReplays(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t) // the replay setting is server-wide
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	// The window ends 12 hours from now (an anchor ahead), far past the 5 s the server allows:
	// with midnight's default anchor the test failed when run in the last seconds of a UTC day.
	anchor := time.Now().Add(12 * time.Hour)
	if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: map[string]int64{"t": 100}, ResetEvery: "1 day",
		ResetAnchor: &anchor}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 100}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// The budget is full; its next window must not open early for a caller.
	_, err = c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 100}, At: *st.NextResetAt})
	var e *spendcap.Error
	if !errors.Is(err, spendcap.ErrInvalidArgument) || !errors.As(err, &e) || !strings.HasPrefix(e.Message, "at_ms: is later than the server clock") {
		t.Fatalf("report at next_reset_at: %v, want SC002 at_ms", err)
	}
	if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 1}, At: time.Now().Add(-time.Hour)}); err != nil || o.Kind != spendcap.OutcomeHardBreach {
		t.Errorf("a past at: %+v, %v; want a hard breach (accepted, counted in the current window)", o, err)
	}
	// Nor may a caller end another holder's live lease.
	if _, err := c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "qp1", MaxConcurrent: 1, LeaseTTL: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp1", HolderID: "owner"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp1", HolderID: "attacker", At: time.Now().Add(2 * time.Minute)}); !errors.Is(err, spendcap.ErrInvalidArgument) {
		t.Errorf("acquire 2 minutes ahead: %v, want SC002", err)
	}
	if qs, err := c.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "qp1"}); err != nil || len(qs.Holders) != 1 || qs.Holders[0] != "owner" {
		t.Errorf("holders after the refused call: %+v, %v; want [owner]", qs, err)
	}
	// Nor acquire in the past, where the entry would count against nobody else's window; a clock a
	// second behind is not a replay.
	if _, err := c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "qp2", Window: 60 * time.Second, MaxRequests: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp2", HolderID: "owner"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp2", HolderID: "attacker", At: time.Now().Add(-2 * time.Minute)}); !errors.Is(err, spendcap.ErrInvalidArgument) || !errors.As(err, &e) || !strings.HasPrefix(e.Message, "at_ms: is earlier than the server clock") {
		t.Errorf("acquire 2 minutes behind: %v, want SC002 at_ms", err)
	}
	if qs, err := c.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "qp2"}); err != nil || qs.InWindow != 1 {
		t.Errorf("in_window after the refused call: %+v, %v; want 1", qs, err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp2", HolderID: "late", At: time.Now().Add(-time.Second)}); err != nil {
		t.Errorf("acquire a second behind: %v", err)
	}
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		t.Fatal(err)
	}
	if o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 100}, At: *st.NextResetAt}); err != nil || o.Kind != spendcap.OutcomeOK {
		t.Errorf("with replays allowed: %+v, %v; want ok in the next window", o, err)
	}
	if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "qp2", HolderID: "replay", At: time.Now().Add(-2 * time.Minute)}); err != nil {
		t.Errorf("with replays allowed, acquire 2 minutes behind: %v; want an answer", err)
	}
}

func TestLibrarySourceChangesOnlyTheReplaySetting(t *testing.T) {
	if valkey.LibrarySource(valkey.LibrarySettings{}) != valkey.Library {
		t.Error("default settings must load Library unchanged")
	}
	on := valkey.LibrarySource(valkey.LibrarySettings{AllowReplay: true})
	if strings.Count(valkey.Library, "\nlocal ALLOW_REPLAY = false\n") != 1 || on != strings.Replace(valkey.Library, "ALLOW_REPLAY = false", "ALLOW_REPLAY = true", 1) {
		t.Error("AllowReplay must rewrite exactly the one settings line")
	}
}

// Hostile instants once kept the single-threaded server busy until FUNCTION KILL, and quantities
// past the range failed after writes; now each is SC002, at once, and nothing changes.
func TestHostileInstantsAndQuantitiesAreSC002AndWriteNothing(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t) // replays allowed, which is server-wide: the checks below hold even then
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FCall(ctx, "sc_create_budget", []string{"sc:{b}"}, `{"budget_id":"b","hard_limits":{"t":100},"reset_every":"1 day"}`).Err(); err != nil {
		t.Fatal(err)
	}
	before, _ := rdb.Dump(ctx, "sc:{b}").Result()
	calls := []string{}
	for _, at := range []string{"1e25", "2e19", "9e299", "-1", "253402300800000", "1.5"} {
		for _, fn := range []string{"report_usage", "record_spend", "reserve", "budget_status", "budget_history", "reset_budget", "settle"} {
			calls = append(calls, fn+` {"budget_id":"b","deltas":{"t":1},"amounts":{"t":1},"execution_id":"e","reservation_id":"r","idempotency_key":"k","dedup_key":"k","at_ms":`+at+`}`)
		}
	}
	for _, anchor := range []string{"-1", "253402300800000", "1e25"} {
		calls = append(calls, `create_budget {"budget_id":"b","reset_every":"1 day","reset_anchor":`+anchor+`}`)
	}
	for _, d := range []string{`1e19`, `-1e19`, `9223372036854775808`, `null`} {
		calls = append(calls, `report_usage {"budget_id":"b","deltas":{"t":`+d+`,"u":1e15},"dedup_key":"k"}`, `reserve {"budget_id":"b","reservation_id":"r","amounts":{"t":`+d+`}}`)
	}
	for _, c := range calls {
		fn, args, _ := strings.Cut(c, " ")
		start := time.Now()
		err := rdb.FCall(ctx, "sc_"+fn, []string{"sc:{b}"}, args).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "SC002 ") || time.Since(start) > time.Second {
			t.Errorf("%s: %v after %v, want SC002 at once", c, err, time.Since(start))
		}
	}
	after, _ := rdb.Dump(ctx, "sc:{b}").Result()
	keys, _ := rdb.Keys(ctx, "sc:{*").Result() // the budget, and no key of its own besides
	if after != before || len(keys) != 1 {
		t.Errorf("refused calls changed the data: keys %v, budget changed = %v", keys, after != before)
	}
}

// Parents on Valkey (docs/semantics.md#budget-sets): the keys of a call name the chain it reads.
func TestParentsKeepTheirChildrenCountAndRefuseWhatSQLRefuses(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	call := func(fn string, args string, ids ...string) error {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = valkey.Key(id)
		}
		return rdb.FCall(ctx, "sc_"+fn, keys, args).Err()
	}
	code := func(err error) string {
		if err == nil {
			return ""
		}
		c, _, _ := strings.Cut(err.Error(), " ")
		return c
	}
	steps := []struct {
		fn, args string
		ids      []string
		want     string
	}{
		{"create_budget", `{"budget_id":"key","parent_id":"team"}`, []string{"key", "team"}, "SC001"},
		{"create_budget", `{"budget_id":"org"}`, []string{"org"}, ""},
		{"create_budget", `{"budget_id":"team","parent_id":"org"}`, []string{"team", "org"}, ""},
		{"create_budget", `{"budget_id":"key","parent_id":"team"}`, []string{"key", "team"}, "SC002"}, // the chain's keys are missing org
		{"create_budget", `{"budget_id":"key","parent_id":"team"}`, []string{"key", "team", "org"}, ""},
		{"create_budget", `{"budget_id":"key","parent_id":"team"}`, []string{"key", "team", "org"}, ""}, // identical
		{"create_budget", `{"budget_id":"key"}`, []string{"key"}, "SC005"},
		{"create_budget", `{"budget_id":"x","parent_id":"x"}`, []string{"x", "x"}, "SC002"},
		{"create_budget", `{"budget_id":"org","parent_id":"key"}`, []string{"org", "key", "team", "org"}, "SC002"}, // a cycle
		{"delete_budget", `{"budget_id":"team"}`, []string{"team", "org"}, "SC002"},
		{"set_parent", `{"budget_id":"team","parent_id":null}`, []string{"team", "org"}, "SC002"}, // has children
		{"create_budget", `{"budget_id":"team-b","parent_id":"org"}`, []string{"team-b", "org"}, ""},
		{"set_parent", `{"budget_id":"key","parent_id":"team-b"}`, []string{"key", "team-b", "org", "team"}, ""},
		{"delete_budget", `{"budget_id":"team"}`, []string{"team", "org"}, ""}, // no children left
		{"delete_budget", `{"budget_id":"org"}`, []string{"org"}, "SC002"},
		{"delete_budget", `{"budget_id":"key"}`, []string{"key", "team-b"}, ""},
		{"delete_budget", `{"budget_id":"team-b"}`, []string{"team-b", "org"}, ""},
		{"delete_budget", `{"budget_id":"org"}`, []string{"org"}, ""},
	}
	for i, s := range steps {
		if got := code(call(s.fn, s.args, s.ids...)); got != s.want {
			t.Errorf("step %d %s %s keys %v: %q, want %q", i, s.fn, s.args, s.ids, got, s.want)
		}
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		keys, _ := rdb.Keys(ctx, "*").Result()
		t.Errorf("keys left after every budget was deleted: %v", keys)
	}
}

// sc_list_budgets reads only a listing index, and sc_index_budget only a budget: other keys are
// SC002 naming them, before anything is read or written.
func TestListingCallsRefuseKeysThatAreNotTheirs(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	if _, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fn   string
		keys []string
	}{
		{"sc_list_budgets", []string{"sc:{b}", "sc:ix:util"}},
		{"sc_list_budgets", []string{"sc:ix:ids", "sc:ix:{abc}:util"}},
		{"sc_list_budgets", []string{"sc:ix:{a}:ids", "sc:ix:{a}:util"}},
		{"sc_list_budgets", []string{"sc:ix:ids"}},
		{"sc_index_budget", []string{"sc:ix:ids"}},
	} {
		err := rdb.FCall(ctx, c.fn, c.keys, `{}`).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "SC002 keys: ") {
			t.Errorf("%s %v: %v, want SC002 keys", c.fn, c.keys, err)
		}
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Errorf("refused calls wrote %d keys", n)
	}
}

// Policies created before their listing index existed are listed once the library is loaded
// again; their other keys (window, leases, counter) are left alone.
func TestLoadListsThePoliciesCreatedBeforeTheIndex(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a:n", "b/rpm"} {
		if _, err := c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: id, Window: time.Minute, MaxRequests: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: id, HolderID: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	// As an older version left them: no index, and another library loaded.
	if err := rdb.Del(ctx, "sc:ix:q").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FunctionLoadReplace(ctx, "#!lua name=spendcap\nredis.register_function('sc_budget_status', function() return 'old' end)\n").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{}); err != nil || n != 1 {
		t.Fatalf("load: %d, %v", n, err)
	}
	page, err := c.ListQuotaPolicies(ctx, spendcap.ListQuotaPoliciesParams{})
	if err != nil || len(page.Policies) != 2 || page.Policies[0].PolicyID != "a:n" || page.Policies[1].PolicyID != "b/rpm" ||
		page.Policies[0].InWindow != 1 {
		t.Errorf("after the load: %+v, %v", page.Policies, err)
	}
	if n, err := rdb.ZCard(ctx, "sc:ix:q").Result(); err != nil || n != 2 {
		t.Errorf("the index holds %d entries (%v), want 2", n, err)
	}
}

// A parent's children are listed from its children set; budgets stored before the set existed
// are put in it when the library is loaded again.
func TestLoadPutsChildrenInTheirParentsSet(t *testing.T) {
	t.Parallel()
	rdb := ownServer(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []spendcap.CreateBudgetParams{{BudgetID: "org"}, {BudgetID: "org/a", ParentID: "org"}, {BudgetID: "org/b", ParentID: "org"}} {
		if _, err := c.CreateBudget(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	children := func() string {
		t.Helper()
		page, err := c.ListBudgets(ctx, spendcap.ListBudgetsParams{ParentID: "org"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range page.Budgets {
			ids = append(ids, b.BudgetID)
		}
		return strings.Join(ids, " ")
	}
	if got := children(); got != "org/a org/b" {
		t.Fatalf("org's children: %q", got)
	}
	// As an older version left them: no set, and another library loaded.
	if err := rdb.Del(ctx, "sc:{org}:k").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.FunctionLoadReplace(ctx, "#!lua name=spendcap\nredis.register_function('sc_budget_status', function() return 'old' end)\n").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := valkey.Load(ctx, rdb, valkey.LibrarySettings{}); err != nil {
		t.Fatal(err)
	}
	if got := children(); got != "org/a org/b" {
		t.Errorf("org's children after the load: %q", got)
	}
}

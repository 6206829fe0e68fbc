package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

// vkAudit runs the Valkey audit and prints each finding as the SQL tests do.
func vkAudit(t *testing.T, c *valkey.Client, repair bool) []string {
	t.Helper()
	fs, err := c.Audit(ctx, spendcap.AuditParams{Repair: repair})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		s := fmt.Sprintf("%s%s %s", f.BudgetID, f.PolicyID, f.Check)
		if f.Dimension != "" {
			s += "/" + f.Dimension
		}
		s += fmt.Sprintf(" %s -> %s", f.Expected, f.Found)
		if f.Repaired {
			s += " repaired"
		}
		out[i] = s
	}
	return out
}

// vkBusy fills a Valkey database like auditBusyDatabase: a set, live and expired reservations,
// spends, a release and quota leases.
func vkBusy(t *testing.T, c *valkey.Client) {
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "org", HardLimits: map[string]int64{"tokens": 100000}}))
	must(c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "org/team", HardLimits: map[string]int64{"tokens": 10000, "usd": 500}, ParentID: "org"}))
	must(c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "org/solo", HardLimits: map[string]int64{"tokens": 1000}, ResetEvery: "1 day"}))
	must(c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "org/team", Deltas: map[string]int64{"tokens": 40}}))
	must(c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "org/team", ReservationID: "r1", Amounts: map[string]int64{"tokens": 30, "usd": 2}, TTL: 3600 * time.Second}))
	must(c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "org/solo", ReservationID: "r2", Amounts: map[string]int64{"tokens": 5}, TTL: 7200 * time.Second}))
	must(c.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "org/solo", ExecutionID: "x1", Deltas: map[string]int64{"tokens": 12}}))
	must(c.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "org/team", ExecutionID: "x2", Deltas: map[string]int64{"usd": 3}}))
	must(c.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "api", Window: 60 * time.Second, MaxRequests: 100, MaxConcurrent: 10}))
	must(c.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "api", HolderID: "h1"}))
}

// vkCorrupt changes fields of a stored budget behind the library's back: cmd (HSET or HDEL) on
// the budget's HASH with fields and values args.
func vkCorrupt(t *testing.T, rdb *redis.Client, cmd, id string, args ...string) {
	t.Helper()
	do := []any{cmd, valkey.Key(id)}
	for _, a := range args {
		do = append(do, a)
	}
	if n, err := rdb.Do(ctx, do...).Int(); err != nil || n != 1 && cmd == "HDEL" {
		t.Fatalf("%v: %d, %v", do, n, err)
	}
}

func TestValkeyAuditOfABusyDatabaseFindsNothing(t *testing.T) {
	t.Parallel()
	rdb := testenv.Valkey(t)
	c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}) // the library is server-wide: load it as the other tests do
	if err != nil {
		t.Fatal(err)
	}
	vkBusy(t, c)
	if got := vkAudit(t, c, false); len(got) != 0 {
		t.Errorf("findings: %q", got)
	}
	if got := vkAudit(t, c, true); len(got) != 0 {
		t.Errorf("repair of a clean database: %q", got)
	}
}

// As on PostgreSQL: the audit names each corruption, a report leaves it, a repair fixes it, and
// the next audit is clean.
func TestValkeyAuditNamesEachCorruptionAndRepairFixesIt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		corrupt func(t *testing.T, rdb *redis.Client)
		want    []string
	}{
		{"reserved", func(t *testing.T, rdb *redis.Client) {
			vkCorrupt(t, rdb, "HSET", "org/team", "r:tokens", "999")
		}, []string{`org/team reserved {"tokens":30,"usd":2} -> {"tokens":999,"usd":2}`}},
		{"reservations expiry", func(t *testing.T, rdb *redis.Client) {
			vkCorrupt(t, rdb, "HDEL", "org/solo", "rexp")
		}, []string{`org/solo reservations_expire_at <r2> -> null`}},
		{"usage below the ledger", func(t *testing.T, rdb *redis.Client) {
			vkCorrupt(t, rdb, "HSET", "org/solo", "u:tokens", "3")
		}, []string{`org/solo ledger/tokens 12 -> 3`}},
		{"parent gone", func(t *testing.T, rdb *redis.Client) {
			vkCorrupt(t, rdb, "HSET", "org/solo", "p", "org/gone")
		}, []string{`org/solo parent null -> "org/gone"`}},
		{"stored utilisation", func(t *testing.T, rdb *redis.Client) {
			vkCorrupt(t, rdb, "HSET", "org/solo", "ut", "999")
		}, []string{`org/solo utilisation 17 -> null`}},
		{"missing from the listing index", func(t *testing.T, rdb *redis.Client) {
			if err := rdb.ZRem(ctx, "sc:ix:ids", "org/team").Err(); err != nil {
				t.Fatal(err)
			}
		}, []string{`org/team utilisation 10 -> null`}},
		{"keys of a deleted budget and policy", func(t *testing.T, rdb *redis.Client) {
			if err := rdb.Del(ctx, valkey.Key("org/solo"), valkey.PolicyKey("api")).Err(); err != nil {
				t.Fatal(err)
			}
		}, []string{`org/solo orphan_reservations 0 -> 1`, `org/solo orphan_spend_ledger 0 -> 1`,
			`api orphan_quota_counter 0 -> 1`, `api orphan_quota_leases 0 -> 1`, `api orphan_quota_window 0 -> 1`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb := testenv.Valkey(t)
			c, err := valkey.NewClient(ctx, rdb, valkey.Options{AllowVolatile: true, AllowReplay: true}) // the library is server-wide: load it as the other tests do
			if err != nil {
				t.Fatal(err)
			}
			vkBusy(t, c)
			tc.corrupt(t, rdb)
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				if strings.Contains(w, "<r2>") {
					raw, err := rdb.HGet(ctx, "sc:{org}:r/solo", "r2").Result()
					if err != nil {
						t.Fatal(err)
					}
					exp := raw[strings.Index(raw, `"exp":`)+6:]
					exp = exp[:strings.IndexAny(exp, ",}")]
					w = strings.ReplaceAll(w, "<r2>", exp)
				}
				want[i] = w
			}
			sortStrings := func(s []string) string { return strings.Join(s, "\n") }
			if got := vkAudit(t, c, false); sortStrings(got) != sortStrings(want) {
				t.Errorf("report:\n%s\nwant:\n%s", sortStrings(got), sortStrings(want))
			}
			if got := vkAudit(t, c, false); len(got) != len(want) {
				t.Errorf("a report changed something: %q", got)
			}
			repaired := make([]string, len(want))
			for i, w := range want {
				repaired[i] = w + " repaired"
			}
			if got := vkAudit(t, c, true); sortStrings(got) != sortStrings(repaired) {
				t.Errorf("repair:\n%s\nwant:\n%s", sortStrings(got), sortStrings(repaired))
			}
			if got := vkAudit(t, c, false); len(got) != 0 {
				t.Errorf("after the repair: %q", got)
			}
		})
	}
}

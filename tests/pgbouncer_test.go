package tests

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/tests/conformance"
)

// execModes are every pgx query execution mode, by name.
var execModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"CacheStatement", pgx.QueryExecModeCacheStatement},
	{"CacheDescribe", pgx.QueryExecModeCacheDescribe},
	{"DescribeExec", pgx.QueryExecModeDescribeExec},
	{"Exec", pgx.QueryExecModeExec},
	{"SimpleProtocol", pgx.QueryExecModeSimpleProtocol},
}

// poolerSlice is one or two conformance scenarios of every area: admission, errors, creation,
// limits, keys, reservations, spend, quotas, calendars and history.
var poolerSlice = []string{
	"ReportUsageWithinLimitsIsOK", "HardBreachInEnforceModeAppliesNothingAndCounts",
	"AdmissionRejectsInvalidArgumentsWritingNothing", "UnknownBudgetFailsClosedForEveryCall",
	"CreateBudgetStoresEveryField", "SetLimitsReplacesGivenLimitsKeepingUsage",
	"DeleteBudgetRemovesEverythingAndIsFalseWhenAbsent", "RepeatedKeyReplaysTheStoredOutcomeAndChangesNothing",
	"SettleAppliesActualAmountsAndNeverRefuses", "RecordSpendAdmitsAndReleaseSpendUndoesIt",
	"QuotaConcurrencyCapWithLeasesExpiring", "QuotaStatusListsLiveHolders",
	"MonthlyFromJan31InNewYorkCrossesBothDSTChanges", "HistoryIsNewestFirstAndLimitedByMaxRows",
}

func inPoolerSlice(name string) bool { return slices.Contains(poolerSlice, name) }

// poolWithMode opens a pool on url whose connections default to mode.
func poolWithMode(t *testing.T, url string, mode pgx.QueryExecMode) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = mode
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Behind PgBouncer in transaction mode a client's consecutive statements run on different server
// connections, so named prepared statements (pgx's default) and a describe sent apart from its
// execution break. The binding's own execution mode works whatever the connection's default is.
func TestConformanceThroughPgBouncerInTransactionModeForEveryConnectionExecMode(t *testing.T) {
	t.Parallel()
	for _, m := range execModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			conformance.RunSelected(t, func(t *testing.T) spendcap.Backend {
				return gobinding.NewClient(poolWithMode(t, testenv.ThroughPgBouncer(t, testenv.NewDatabase(t)), m.mode), gobinding.Options{})
			}, inPoolerSlice)
		})
	}
}

// Every execution mode a user may choose for the binding's statements encodes every argument,
// the simple protocol (which has no parameter types) included.
func TestConformanceOnADirectConnectionInEveryBindingExecMode(t *testing.T) {
	t.Parallel()
	for _, m := range execModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			conformance.RunSelected(t, func(t *testing.T) spendcap.Backend {
				return gobinding.NewClient(testenv.Pool(t), gobinding.Options{ExecMode: &m.mode})
			}, inPoolerSlice)
		})
	}
}

// Inside a transaction PgBouncer keeps one server connection, so WithTx works there in the binding
// execution modes that prepare nothing beyond the transaction, and the transaction's usage commits
// or rolls back as a whole. QueryExecModeCacheStatement is left out: its named statements outlive
// the transaction, which PgBouncer before 1.21 (Debian 12 has 1.18) cannot follow.
func TestWithTxThroughPgBouncerInEveryBindingExecModeThatPreparesNothingAcrossTransactions(t *testing.T) {
	t.Parallel()
	for _, m := range execModes {
		if m.mode == pgx.QueryExecModeCacheStatement {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			pool := poolWithMode(t, testenv.ThroughPgBouncer(t, testenv.NewDatabase(t)), pgx.QueryExecModeExec)
			// Setup and the final read run outside any transaction, in the binding's default mode
			// (DescribeExec works only inside one).
			outside := gobinding.NewClient(pool, gobinding.Options{})
			c := gobinding.NewClient(pool, gobinding.Options{ExecMode: &m.mode})
			if _, err := outside.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: map[string]int64{"t": 10}}); err != nil {
				t.Fatal(err)
			}
			for _, commit := range []bool{false, true} {
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 3; i++ {
					if o, err := c.WithTx(tx).ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 1}}); err != nil || !o.Applied {
						t.Fatalf("report in tx: %+v, %v", o, err)
					}
				}
				if commit {
					err = tx.Commit(ctx)
				} else {
					err = tx.Rollback(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			st, err := outside.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
			if err != nil || st.Usage["t"] != 3 {
				t.Errorf("usage after a rolled back and a committed transaction: %v, %v; want 3", st.Usage, err)
			}
		})
	}
}

package gobinding_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/pgfn"
	"github.com/spendcap/spendcap/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var ctx = context.Background()

func newClient(t *testing.T) *gobinding.Client {
	t.Helper()
	return gobinding.NewClient(testenv.Pool(t), gobinding.Options{})
}

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestEveryBudgetCallThroughTheGoAPI(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	c := gobinding.NewClient(db, gobinding.Options{})
	jobs := pgfn.New(db, gobinding.DefaultExecMode) // the worker's calls
	anchor := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	created, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{
		BudgetID: "b1", HardLimits: map[string]int64{"tokens": 100}, SoftLimits: map[string]int64{"tokens": 50},
		ResetEvery: "1 month", ResetTimezone: "UTC", ResetAnchor: &anchor, Mode: spendcap.ModeEnforce,
		ScopeType: "tenant", ScopeID: "t1", DedupTTL: 600 * time.Second, At: t0,
	})
	next := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if err != nil || !created.Created || !created.WindowStart.Equal(anchor) || !created.NextResetAt.Equal(next) {
		t.Fatalf("CreateBudget = %+v, %v", created, err)
	}
	o, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1", Deltas: map[string]int64{"tokens": 60}, DedupKey: "k", At: t0})
	if err != nil || o.Kind != spendcap.OutcomeSoftBreach || !o.Applied || o.Dimension != "tokens" || o.Usage != 60 || o.LimitValue != 50 || o.Replayed {
		t.Errorf("ReportUsage = %+v, %v", o, err)
	}
	o, err = c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1", Deltas: map[string]int64{"tokens": 60}, DedupKey: "k", At: t0})
	if err != nil || !o.Replayed {
		t.Errorf("ReportUsage replay = %+v, %v", o, err)
	}
	o, err = c.CheckUsage(ctx, spendcap.CheckUsageParams{BudgetID: "b1", Deltas: map[string]int64{"tokens": 41}, At: t0})
	if err != nil || o.Kind != spendcap.OutcomeHardBreach || o.Applied || o.Usage != 60 || o.LimitValue != 100 {
		t.Errorf("CheckUsage = %+v, %v", o, err)
	}
	o, err = c.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "b1", ExecutionID: "e1", Deltas: map[string]int64{"usd": 3}, At: t0})
	if err != nil || o.Kind != spendcap.OutcomeOK || o.Dimension != "" || o.NextResetAt == nil || !o.NextResetAt.Equal(next) {
		t.Errorf("RecordSpend = %+v, %v", o, err)
	}
	rel, err := c.ReleaseSpend(ctx, spendcap.ReleaseSpendParams{BudgetID: "b1", ExecutionID: "e1", At: t0})
	if err != nil || !maps.Equal(rel, map[string]int64{"usd": 3}) {
		t.Errorf("ReleaseSpend = %v, %v", rel, err)
	}
	o, err = c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "b1", ReservationID: "r1", Amounts: map[string]int64{"tokens": 20}, TTL: 60 * time.Second, At: t0})
	if err != nil || o.ExpiresAt == nil || !o.ExpiresAt.Equal(t0.Add(time.Minute)) || o.Kind != spendcap.OutcomeSoftBreach {
		t.Errorf("Reserve = %+v, %v", o, err)
	}
	o, err = c.Settle(ctx, spendcap.SettleParams{BudgetID: "b1", ReservationID: "r1", Actual: map[string]int64{"tokens": 10}, At: t0})
	if err != nil || o.Kind != spendcap.OutcomeSoftBreach || o.Usage != 70 || o.ExpiresAt != nil {
		t.Errorf("Settle = %+v, %v", o, err)
	}
	if _, err := c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "b1", ReservationID: "r2", Amounts: map[string]int64{"tokens": 1}, At: t0}); err != nil {
		t.Fatal(err)
	}
	rel, err = c.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: "b1", ReservationID: "r2", At: t0})
	if err != nil || !maps.Equal(rel, map[string]int64{"tokens": 1}) {
		t.Errorf("CancelReservation = %v, %v", rel, err)
	}
	// A nil Actual settles for nothing.
	if _, err := c.Reserve(ctx, spendcap.ReserveParams{BudgetID: "b1", ReservationID: "r3", Amounts: map[string]int64{"tokens": 1}, At: t0}); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Settle(ctx, spendcap.SettleParams{BudgetID: "b1", ReservationID: "r3", At: t0}); err != nil || o.Kind != spendcap.OutcomeOK {
		t.Errorf("Settle with nil Actual = %+v, %v", o, err)
	}
	st, err := c.SetLimits(ctx, spendcap.SetLimitsParams{BudgetID: "b1", Mode: spendcap.ModeObserve, At: t0})
	if err != nil || st.Mode != spendcap.ModeObserve || st.HardLimits["tokens"] != 100 {
		t.Errorf("SetLimits = %+v, %v", st, err)
	}
	w, err := c.ResetBudget(ctx, spendcap.ResetBudgetParams{BudgetID: "b1", At: t0.Add(time.Hour)})
	if err != nil || w.WindowSeq != 2 || !w.WindowStart.Equal(t0.Add(time.Hour)) || !w.NextResetAt.Equal(next) {
		t.Errorf("ResetBudget = %+v, %v", w, err)
	}
	st, err = c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b1", At: t0.Add(time.Hour)})
	if err != nil || st.ResetEvery != "1 month" || st.ScopeType != "tenant" || st.ScopeID != "t1" || st.DedupTTL != 600*time.Second ||
		st.WindowSeq != 2 || len(st.Usage) != 0 || st.SoftBreachCount != 5 || st.LastBreachDim != "" || st.LastBreachAt != nil ||
		!st.CreatedAt.Equal(t0) || !st.UpdatedAt.Equal(t0.Add(time.Hour)) || st.Remaining["tokens"] != 100 {
		t.Errorf("BudgetStatus = %+v, %v", st, err)
	}
	h, err := c.BudgetHistory(ctx, spendcap.BudgetHistoryParams{BudgetID: "b1", MaxRows: 5, At: t0.Add(time.Hour)})
	if err != nil || len(h) != 1 || h[0].ClosedBy != spendcap.ClosedByManual || h[0].Usage["tokens"] != 70 || h[0].SoftBreachCount != 5 {
		t.Errorf("BudgetHistory = %+v, %v", h, err)
	}
	roll, err := jobs.RollDueWindows(ctx, pgfn.RollDueWindowsParams{At: &next})
	if err != nil || roll.Rolled != 1 {
		t.Errorf("RollDueWindows = %+v, %v", roll, err)
	}
	purged, err := jobs.PurgeExpired(ctx, pgfn.PurgeExpiredParams{})
	if err != nil || purged.DedupKeys != 1 {
		t.Errorf("PurgeExpired = %+v, %v", purged, err)
	}
	deleted, err := c.DeleteBudget(ctx, spendcap.DeleteBudgetParams{BudgetID: "b1"})
	if err != nil || !deleted {
		t.Errorf("DeleteBudget = %v, %v", deleted, err)
	}
}

func TestZeroAtUsesTheServerClock(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	before := time.Now().Add(-time.Minute)
	if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b1"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b1"})
	if err != nil || st.CreatedAt.Before(before) || st.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Errorf("created_at %v, %v; want about now", st.CreatedAt, err)
	}
}

func TestEveryErrorCodeMapsToItsSentinel(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	c := gobinding.NewClient(db, gobinding.Options{})
	jobs := pgfn.New(db, gobinding.DefaultExecMode)
	if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b1", HardLimits: map[string]int64{"t": 1}, At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1", Deltas: map[string]int64{"big": spendcap.MaxQuantity}, DedupKey: "k", At: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		code string
		want error
		call func() error
	}{
		{"SC001", spendcap.ErrBudgetNotFound, func() error {
			_, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "nope"})
			return err
		}},
		{"SC002", spendcap.ErrInvalidArgument, func() error {
			_, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1"})
			return err
		}},
		{"SC003", spendcap.ErrIdempotencyConflict, func() error {
			_, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1", Deltas: map[string]int64{"t": 1}, DedupKey: "k", At: t0})
			return err
		}},
		{"SC004", spendcap.ErrQuantityOutOfRange, func() error {
			_, err := c.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b1", Deltas: map[string]int64{"big": 1}, At: t0})
			return err
		}},
		{"SC005", spendcap.ErrBudgetConflict, func() error {
			_, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b1", At: t0})
			return err
		}},
		{"SC007", spendcap.ErrReservationNotFound, func() error {
			_, err := c.Settle(ctx, spendcap.SettleParams{BudgetID: "b1", ReservationID: "nope", At: t0})
			return err
		}},
	} {
		err := tc.call()
		var se *spendcap.Error
		var pgErr *pgconn.PgError
		if !errors.Is(err, tc.want) || !errors.As(err, &se) || se.Code != tc.code || se.Message == "" || !errors.As(err, &pgErr) {
			t.Errorf("%s: err = %v (%T); want errors.Is %v, a *spendcap.Error with the message, unwrapping to *pgconn.PgError", tc.code, err, err, tc.want)
		}
	}
	// Errors without a spendcap error code are passed through untouched.
	_, err := jobs.RollDueWindows(ctx, pgfn.RollDueWindowsParams{MaxRows: ptr(int32(0))})
	if !errors.Is(err, spendcap.ErrInvalidArgument) {
		t.Errorf("roll with max_rows 0: %v", err)
	}
}

func TestGeneratedSignaturesMatchTheDatabase(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	rows, err := db.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'spendcap' ORDER BY p.proname`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		got = append(got, s)
	}
	if len(got) != len(pgfn.Signatures) {
		t.Fatalf("database has %v, bindings have %v: run make generate", got, pgfn.Signatures)
	}
	for i := range got {
		if got[i] != pgfn.Signatures[i] {
			t.Errorf("database %s, bindings %s: run make generate", got[i], pgfn.Signatures[i])
		}
	}
}

func ptr[T any](v T) *T { return &v }

// WithTx: a failed call aborts the caller's transaction, as any failed statement does.
func TestAFailedCallWithTxAbortsTheTransaction(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := gobinding.NewClient(db, gobinding.Options{}).WithTx(tx).ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "missing", Deltas: map[string]int64{"t": 1}}); !errors.Is(err, spendcap.ErrBudgetNotFound) {
		t.Fatalf("report on a missing budget: %v", err)
	}
	var pgErr *pgconn.PgError
	if _, err := tx.Exec(ctx, `SELECT 1`); !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
		t.Errorf("next statement: %v; want 25P02 (transaction aborted)", err)
	}
}

// InSavepoint: a failed call leaves the transaction usable; successful calls commit or roll back
// with it.
func TestInSavepointKeepsTheTransactionAfterAFailedCall(t *testing.T) {
	t.Parallel()
	db := testenv.Pool(t)
	c := gobinding.NewClient(db, gobinding.Options{})
	if _, err := c.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "b", HardLimits: map[string]int64{"t": 10}}); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		tx, err := db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) }) // after a failure, give the connection back
		sc := c.InSavepoint(tx)
		if o, err := sc.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"t": 4}}); err != nil || !o.Applied {
			t.Fatalf("first report: %+v, %v", o, err)
		}
		if _, err := sc.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "b", Deltas: map[string]int64{"": 1}}); !errors.Is(err, spendcap.ErrInvalidArgument) {
			t.Fatalf("invalid report: %v", err)
		}
		if _, err := sc.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "missing", Deltas: map[string]int64{"t": 1}}); !errors.Is(err, spendcap.ErrBudgetNotFound) {
			t.Fatalf("report on a missing budget: %v", err)
		}
		st, err := sc.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
		if err != nil || st.Usage["t"] != 4 {
			t.Fatalf("status inside the transaction after two failed calls: %v, %v; want 4", st.Usage, err)
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
	st, err := c.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "b"})
	if err != nil || st.Usage["t"] != 4 {
		t.Errorf("usage after a rolled back and a committed transaction: %v, %v; want 4", st.Usage, err)
	}
}

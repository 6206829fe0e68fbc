package tests

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

// gatedBatches counts the batch calls a Batcher makes, and holds each one until the test lets it
// go when gate is set.
type gatedBatches struct {
	spendcap.BatchBackend
	calls, items atomic.Int64
	gate         chan struct{}
	mu           sync.Mutex
	ats          map[time.Time][]string // per batch At, the dedup keys of its items
}

func (g *gatedBatches) ReportUsageBatch(ctx context.Context, p spendcap.ReportUsageBatchParams) ([]spendcap.BatchResult, error) {
	g.calls.Add(1)
	g.items.Add(int64(len(p.Items)))
	g.mu.Lock()
	if g.ats != nil {
		for _, it := range p.Items {
			g.ats[p.At] = append(g.ats[p.At], it.DedupKey)
		}
	}
	g.mu.Unlock()
	if g.gate != nil {
		<-g.gate
	}
	return g.BatchBackend.ReportUsageBatch(ctx, p)
}

func eachBackend(t *testing.T, f func(t *testing.T, b spendcap.BatchBackend)) {
	for name, open := range map[string]func(*testing.T) spendcap.Backend{"postgres": openPostgres, "valkey": openValkey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, open(t).(spendcap.BatchBackend))
		})
	}
}

var batcherT0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestBatcherCoalescesConcurrentReportsAndEachCallerGetsItsOwnOutcome(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.BatchBackend) {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "hot", HardLimits: map[string]int64{"t": 1000}}); err != nil {
			t.Fatal(err)
		}
		g := &gatedBatches{BatchBackend: b, gate: make(chan struct{})}
		bt := spendcap.NewBatcher(g, spendcap.BatcherOptions{MaxInFlight: 1})
		defer bt.Close()
		const workers, each = 64, 20
		var started sync.WaitGroup
		started.Add(workers)
		var applied, refused, notFound atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if i == 0 {
						started.Done()
					}
					id := "hot"
					if w == 0 && i%5 == 0 {
						id = "missing" // fails alone, inside batches with the others
					}
					o, err := bt.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: map[string]int64{"t": 1},
						DedupKey: fmt.Sprintf("w%d-%d", w, i)})
					switch {
					case id == "missing" && errors.Is(err, spendcap.ErrBudgetNotFound):
						notFound.Add(1)
					case err != nil:
						errs <- err
					case o.Applied:
						applied.Add(1)
					case o.Kind == spendcap.OutcomeHardBreach:
						refused.Add(1)
					default:
						errs <- fmt.Errorf("unexpected outcome %+v", o)
					}
				}
			}()
		}
		// The first batch waits until every worker has sent its first report, which then queue up.
		started.Wait()
		close(g.gate)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		reports := int64(workers*each) - notFound.Load()
		if notFound.Load() != each/5 || applied.Load() != 1000 || refused.Load() != reports-1000 {
			t.Fatalf("applied %d, refused %d, not found %d of %d reports", applied.Load(), refused.Load(), notFound.Load(), workers*each)
		}
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "hot"})
		if err != nil || st.Usage["t"] != 1000 || st.BreachCount != reports-1000 {
			t.Fatalf("status %+v, %v", st, err)
		}
		if g.items.Load() != workers*each || g.calls.Load()*4 > workers*each {
			t.Fatalf("%d reports in %d batch calls: want them coalesced", g.items.Load(), g.calls.Load())
		}
	})
}

func TestBatcherCallerWhoseContextEndsKeepsItsReportAndARetryReplaysIt(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.BatchBackend) {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "a"}); err != nil {
			t.Fatal(err)
		}
		g := &gatedBatches{BatchBackend: b, gate: make(chan struct{})}
		bt := spendcap.NewBatcher(g, spendcap.BatcherOptions{})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := bt.ReportUsage(cctx, spendcap.ReportUsageParams{BudgetID: "a", Deltas: map[string]int64{"t": 5}, DedupKey: "req-1"})
			done <- err
		}()
		for g.calls.Load() == 0 { // the report is in a batch call, held at the gate
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller got %v, want context.Canceled at once", err)
		}
		close(g.gate)
		bt.Close() // waits for the batch call
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "a"})
		if err != nil || st.Usage["t"] != 5 {
			t.Fatalf("after the cancelled report: %v %v, want it applied once", st.Usage, err)
		}
		// The caller retries with its key: the stored outcome comes back, nothing is charged again.
		bt = spendcap.NewBatcher(b, spendcap.BatcherOptions{})
		defer bt.Close()
		o, err := bt.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a", Deltas: map[string]int64{"t": 5}, DedupKey: "req-1"})
		if err != nil || !o.Replayed || !o.Applied {
			t.Fatalf("retry: %+v %v, want the replayed outcome", o, err)
		}
		st, err = b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "a"})
		if err != nil || st.Usage["t"] != 5 {
			t.Fatalf("after the retry: %v %v, want 5", st.Usage, err)
		}
	})
}

func TestBatcherBatchesOnlyReportsOfTheSameInstant(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.BatchBackend) {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "a", At: batcherT0}); err != nil {
			t.Fatal(err)
		}
		g := &gatedBatches{BatchBackend: b, gate: make(chan struct{}), ats: map[time.Time][]string{}}
		bt := spendcap.NewBatcher(g, spendcap.BatcherOptions{MaxInFlight: 1})
		defer bt.Close()
		var wg, started sync.WaitGroup
		started.Add(40)
		for i := range 40 {
			at := batcherT0.Add(time.Duration(i%2) * time.Minute)
			wg.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				o, err := bt.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a", Deltas: map[string]int64{"t": 1},
					DedupKey: fmt.Sprintf("%d-%d", i%2, i), At: at})
				if err != nil || !o.Applied {
					t.Errorf("report at %s: %+v %v", at, o, err)
				}
			}()
		}
		started.Wait()
		close(g.gate)
		wg.Wait()
		g.mu.Lock()
		defer g.mu.Unlock()
		for at, keys := range g.ats {
			for _, k := range keys {
				if want := fmt.Sprint(int(at.Sub(batcherT0) / time.Minute)); k[:1] != want {
					t.Fatalf("a batch at %s holds report %s of another instant", at, k)
				}
			}
		}
		if len(g.ats) != 2 {
			t.Fatalf("batches at %d instants, want 2", len(g.ats))
		}
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "a", At: batcherT0.Add(time.Minute)})
		if err != nil || st.Usage["t"] != 40 {
			t.Fatalf("status %v %v, want 40", st.Usage, err)
		}
	})
}

func TestBatcherAppliesExactlyTheReportsItAcknowledgesAcrossClose(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b spendcap.BatchBackend) {
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "a"}); err != nil {
			t.Fatal(err)
		}
		g := &gatedBatches{BatchBackend: b, gate: make(chan struct{})}
		bt := spendcap.NewBatcher(g, spendcap.BatcherOptions{MaxBatch: 7, MaxInFlight: 1})
		var wg, started sync.WaitGroup
		var acked, closed atomic.Int64
		started.Add(50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				_, err := bt.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a", Deltas: map[string]int64{"t": 1}})
				switch {
				case err == nil:
					acked.Add(1)
				case errors.Is(err, spendcap.ErrBatcherClosed):
					closed.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		started.Wait()
		// Close while the first batch is held and the rest are queued: Close sends what is queued.
		closeDone := make(chan struct{})
		go func() { bt.Close(); close(closeDone) }()
		close(g.gate)
		<-closeDone
		wg.Wait()
		if _, err := bt.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "a", Deltas: map[string]int64{"t": 1}}); !errors.Is(err, spendcap.ErrBatcherClosed) {
			t.Fatalf("after Close: %v, want ErrBatcherClosed", err)
		}
		// Every other method goes straight to the backend.
		st, err := bt.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "a"})
		if err != nil || st.Usage["t"] != acked.Load() || acked.Load()+closed.Load() != 50 || acked.Load() == 0 {
			t.Fatalf("usage %v %v: want the %d acknowledged reports (%d refused as closed)", st.Usage, err, acked.Load(), closed.Load())
		}
	})
}

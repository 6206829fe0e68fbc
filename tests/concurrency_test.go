package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestSixtyFourClientsNeverOverspendOnePostgresBudget(t *testing.T) {
	t.Parallel()
	hammer(t, gobinding.NewClient(testenv.PoolFor(t, testenv.NewDatabase(t)+"&pool_max_conns=70")))
}

func TestSixtyFourClientsNeverOverspendOneValkeyBudget(t *testing.T) {
	t.Parallel()
	opts := testenv.Valkey(t).Options()
	opts.PoolSize = 70
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := valkey.New(context.Background(), rdb, valkey.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hammer(t, c)
}

// hammer runs 64 goroutines against one hard-limited budget with reports, spends, releases,
// reservations, settlements and cancellations, retrying each keyed call with its key. Usage
// never passes the limit, the applied deltas add up to the final usage, and no error reaches a
// caller (no deadlock, no serialization failure).
func hammer(t *testing.T, b spendcap.Budgets) {
	const (
		limit   = 3000
		clients = 64
		rounds  = 25
	)
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "hot", HardLimits: q{"t": limit}}); err != nil {
		t.Fatal(err)
	}
	var applied atomic.Int64 // every applied delta, released amounts subtracted
	var refused atomic.Int64
	var failures sync.Map
	fail := func(op string, err error) {
		var e *spendcap.Error
		if errors.As(err, &e) {
			failures.Store(op+" "+e.Code+" "+e.Message, true)
		} else {
			failures.Store(op+" "+err.Error(), true)
		}
	}
	stop := make(chan struct{})
	var observer sync.WaitGroup
	var maxSeen atomic.Int64
	observer.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "hot"})
			if err != nil {
				fail("status", err)
				return
			}
			if seen := st.Usage["t"] + st.Reserved["t"]; seen > maxSeen.Load() {
				maxSeen.Store(seen)
			}
		}
	})

	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for r := 0; r < rounds; r++ {
				n := int64(1 + rng.IntN(9))
				key := fmt.Sprintf("c%d-r%d", c, r)
				switch rng.IntN(4) {
				case 0: // report, then a retry with the same key
					for try := 0; try < 2; try++ {
						o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "hot", Deltas: q{"t": n}, DedupKey: key})
						if err != nil {
							fail("report_usage", err)
							break
						}
						if o.Replayed != (try == 1) {
							fail("report_usage", fmt.Errorf("try %d replayed=%v", try, o.Replayed))
						}
						if try == 0 && o.Applied {
							applied.Add(n)
						} else if try == 0 {
							refused.Add(1)
						}
					}
				case 1: // spend twice with the key, sometimes release
					exec := fmt.Sprintf("e%d-%d", c, r)
					for try := 0; try < 2; try++ {
						o, err := b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: "hot", ExecutionID: exec, Deltas: q{"t": n}, IdempotencyKey: key})
						if err != nil {
							fail("record_spend", err)
							break
						}
						if try == 0 && o.Applied {
							applied.Add(n)
						}
					}
					if rng.IntN(2) == 0 {
						rel, err := b.ReleaseSpend(ctx, spendcap.ReleaseSpendParams{BudgetID: "hot", ExecutionID: exec})
						if err != nil {
							fail("release_spend", err)
						}
						applied.Add(-rel["t"])
					}
				default: // reserve (retried with its key), then settle for at most the reservation, or cancel
					rid := fmt.Sprintf("r%d-%d", c, r)
					var o spendcap.Outcome
					var err error
					for try := 0; try < 2; try++ {
						if o, err = b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "hot", ReservationID: rid, Amounts: q{"t": n}, TTLSeconds: 600, IdempotencyKey: key}); err != nil {
							fail("reserve", err)
						}
					}
					if err != nil || !o.Applied {
						continue
					}
					if rng.IntN(3) == 0 {
						if _, err := b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: "hot", ReservationID: rid}); err != nil {
							fail("cancel_reservation", err)
						}
						continue
					}
					actual := int64(rng.IntN(int(n) + 1))
					so, err := b.Settle(ctx, spendcap.SettleParams{BudgetID: "hot", ReservationID: rid, Actual: q{"t": actual}})
					if err != nil {
						fail("settle", err)
						continue
					}
					if so.Outcome == spendcap.HardBreach {
						fail("settle", fmt.Errorf("settling within the reservation breached: %+v", so))
					}
					applied.Add(actual)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	observer.Wait()

	failures.Range(func(k, _ any) bool {
		t.Errorf("a caller saw: %v", k)
		return true
	})
	st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "hot"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Usage["t"] != applied.Load() {
		t.Errorf("final usage %d, but the applied deltas add up to %d", st.Usage["t"], applied.Load())
	}
	if st.Usage["t"] > limit || maxSeen.Load() > limit {
		t.Errorf("usage %d (max usage+reserved seen %d) passed the limit %d", st.Usage["t"], maxSeen.Load(), limit)
	}
	if len(st.Reserved) != 0 {
		t.Errorf("reservations left: %v", st.Reserved)
	}
	if refused.Load() == 0 {
		t.Errorf("no call was refused: the test never reached the limit")
	}
	t.Logf("final usage %d of %d, %d reports refused, max usage+reserved seen %d", st.Usage["t"], limit, refused.Load(), maxSeen.Load())
}

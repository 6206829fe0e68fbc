package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spendcap/spendcap/internal/testenv"
)

// TestSixtyFourClientsNeverOverspendOneBudget hammers one hard-limited budget from 64 goroutines
// with reports, spends, releases, reservations, settlements and cancellations, retrying each keyed
// call with its key. Usage never passes the limit, the applied deltas add up to the final usage,
// and no deadlock or serialization failure reaches a caller.
func TestSixtyFourClientsNeverOverspendOneBudget(t *testing.T) {
	t.Parallel()
	const (
		limit   = 3000
		clients = 64
		rounds  = 25
	)
	db := testenv.PoolFor(t, testenv.NewDatabase(t)+"&pool_max_conns=70")
	mustCreate(t, db, "budget_id", "hot", "hard_limits", fmt.Sprintf(`{"t": %d}`, limit))

	var applied atomic.Int64 // the sum of every applied delta, released amounts subtracted
	var refused atomic.Int64
	var failures sync.Map
	fail := func(op string, err error) {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			failures.Store(op+" "+pgErr.Code+" "+pgErr.Message, true)
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
			st, err := budgetStatus(db, "hot", nil)
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
				deltas := fmt.Sprintf(`{"t": %d}`, n)
				key := fmt.Sprintf("c%d-r%d", c, r)
				switch rng.IntN(4) {
				case 0: // report, then a retry with the same key
					for try := 0; try < 2; try++ {
						o, err := reportUsage(db, "hot", deltas, key, zeroTime)
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
						o, err := recordSpend(db, "hot", exec, deltas, key, zeroTime)
						if err != nil {
							fail("record_spend", err)
							break
						}
						if try == 0 && o.Applied {
							applied.Add(n)
						}
					}
					if rng.IntN(2) == 0 {
						rel, err := releaseSpend(db, "hot", exec, zeroTime)
						if err != nil {
							fail("release_spend", err)
						}
						applied.Add(-rel["t"])
					}
				default: // reserve (retried with its key), then settle for at most the reservation or cancel
					rid := fmt.Sprintf("r%d-%d", c, r)
					var o outcome
					var err error
					for try := 0; try < 2; try++ {
						if o, err = reserve(db, "hot", rid, deltas, 600, key, zeroTime); err != nil {
							fail("reserve", err)
						}
					}
					if err != nil || !o.Applied {
						continue
					}
					if rng.IntN(3) == 0 {
						if _, err := cancelReservation(db, "hot", rid, zeroTime); err != nil {
							fail("cancel_reservation", err)
						}
						continue
					}
					actual := int64(rng.IntN(int(n) + 1))
					so, err := settle(db, "hot", rid, fmt.Sprintf(`{"t": %d}`, actual), zeroTime)
					if err != nil {
						fail("settle", err)
						continue
					}
					if so.Outcome == "hard_breach" {
						fail("settle", fmt.Errorf("settling within the reservation breached: %v", so))
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
	st := mustStatus(t, db, "hot", nil)
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

package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spendcap/spendcap"
)

func TestSixtyFourClientsNeverOverspendAnyLevelOfAPostgresTree(t *testing.T) {
	t.Parallel()
	hammerTree(t, racingPostgres(t))
}

func TestSixtyFourClientsNeverOverspendAnyLevelOfAValkeyTree(t *testing.T) {
	t.Parallel()
	hammerTree(t, racingValkey(t))
}

// hammerTree runs 64 goroutines charging 16 keys under 4 teams under one organisation, every
// level hard-limited, with reports, spends, releases, reservations, settlements and cancellations
// (keyed calls retried with their keys). No level ever passes its limit, every level's usage is
// the sum of what was applied to the keys below it, and no error reaches a caller: sets that
// overlap lock in one order, so nothing deadlocks.
func hammerTree(t *testing.T, b spendcap.Budgets) {
	const (
		clients     = 64
		rounds      = 25
		keys, teams = 16, 4
	)
	// Limits that each level reaches: the keys of team 0 fill first, team 1 fills before its
	// keys, and teams 2 and 3 have room until the organisation is full.
	org := "acme"
	team := func(i int) string { return fmt.Sprintf("acme/team-%d", i) }
	key := func(i int) string { return fmt.Sprintf("acme/key-%02d", i) }
	teamLimits := [teams]int64{1000, 450, 2000, 2000}
	limits := map[string]int64{}
	create := func(id, parent string, limit int64) {
		limits[id] = limit
		if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: id, ParentID: parent, HardLimits: q{"t": limit}}); err != nil {
			t.Fatal(err)
		}
	}
	create(org, "", 2000)
	for i := 0; i < teams; i++ {
		create(team(i), org, teamLimits[i])
	}
	for i := 0; i < keys; i++ {
		limit := int64(1000)
		if i%teams == 0 {
			limit = 90
		}
		create(key(i), team(i%teams), limit)
	}

	var applied [keys]atomic.Int64 // per key: applied deltas, released amounts subtracted
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
	var over sync.Map
	observer.Go(func() {
		ids := append([]string{org}, team(0), team(1), team(2), team(3), key(0), key(5))
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, id := range ids {
				st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
				if err != nil {
					fail("status", err)
					return
				}
				if seen := st.Usage["t"] + st.Reserved["t"]; seen > limits[id] {
					over.Store(fmt.Sprintf("%s usage+reserved %d > %d", id, seen, limits[id]), true)
				}
			}
		}
	})

	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for r := 0; r < rounds; r++ {
				k := rng.IntN(keys)
				id, n := key(k), int64(1+rng.IntN(9))
				dk := fmt.Sprintf("c%d-r%d", c, r)
				switch rng.IntN(4) {
				case 0, 1: // report, then a retry with the same key
					for try := 0; try < 2; try++ {
						o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: id, Deltas: q{"t": n}, DedupKey: dk})
						if err != nil {
							fail("report_usage", err)
							break
						}
						if o.Replayed != (try == 1) {
							fail("report_usage", fmt.Errorf("try %d replayed=%v", try, o.Replayed))
						}
						if try == 0 && o.Applied {
							applied[k].Add(n)
						} else if try == 0 {
							refused.Add(1)
						}
					}
				case 2: // spend with the key, sometimes release
					exec := "e-" + dk
					o, err := b.RecordSpend(ctx, spendcap.RecordSpendParams{BudgetID: id, ExecutionID: exec, Deltas: q{"t": n}, IdempotencyKey: dk})
					if err != nil {
						fail("record_spend", err)
						continue
					}
					if o.Applied {
						applied[k].Add(n)
					}
					if rng.IntN(2) == 0 {
						rel, err := b.ReleaseSpend(ctx, spendcap.ReleaseSpendParams{BudgetID: id, ExecutionID: exec})
						if err != nil {
							fail("release_spend", err)
						}
						applied[k].Add(-rel["t"])
					}
				default: // reserve, then settle for at most the reservation, or cancel
					rid := "r-" + dk
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: q{"t": n}, TTLSeconds: 600, IdempotencyKey: dk})
					if err != nil {
						fail("reserve", err)
						continue
					}
					if !o.Applied {
						continue
					}
					if rng.IntN(3) == 0 {
						if _, err := b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: id, ReservationID: rid}); err != nil {
							fail("cancel_reservation", err)
						}
						continue
					}
					actual := int64(rng.IntN(int(n) + 1))
					if _, err := b.Settle(ctx, spendcap.SettleParams{BudgetID: id, ReservationID: rid, Actual: q{"t": actual}}); err != nil {
						fail("settle", err)
						continue
					}
					applied[k].Add(actual)
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
	over.Range(func(k, _ any) bool {
		t.Errorf("seen: %v", k)
		return true
	})
	want := map[string]int64{}
	for i := 0; i < keys; i++ {
		a := applied[i].Load()
		want[key(i)] += a
		want[team(i%teams)] += a
		want[org] += a
	}
	for id, w := range want {
		st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id})
		if err != nil {
			t.Fatal(err)
		}
		if st.Usage["t"] != w {
			t.Errorf("%s: usage %d, but what was applied below it adds up to %d", id, st.Usage["t"], w)
		}
		if st.Usage["t"] > limits[id] {
			t.Errorf("%s: usage %d passed the limit %d", id, st.Usage["t"], limits[id])
		}
		if len(st.Reserved) != 0 {
			t.Errorf("%s: reservations left: %v", id, st.Reserved)
		}
	}
	// Each level refused something: the test reached every kind of limit.
	for _, id := range []string{key(0), team(1), org} {
		if st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: id}); err != nil || st.BreachCount == 0 {
			t.Errorf("%s refused nothing (%v): the test did not reach its limit", id, err)
		}
	}
	t.Logf("org usage %d of %d, %d reports refused", want[org], limits[org], refused.Load())
}

package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/testenv"
	"github.com/spendcap/spendcap/valkey"
)

func TestSixtyFourClientsNeverOverspendOnePostgresBudget(t *testing.T) {
	t.Parallel()
	hammer(t, racingPostgres(t))
}

func TestSixtyFourClientsNeverOverspendOneValkeyBudget(t *testing.T) {
	t.Parallel()
	hammer(t, racingValkey(t))
}

// racingPostgres and racingValkey open backends with a connection for each of 64 clients.
func racingPostgres(t *testing.T) spendcap.Backend {
	return gobinding.NewClient(testenv.PoolFor(t, testenv.NewDatabase(t)+"&pool_max_conns=70"), gobinding.Options{})
}

func racingValkey(t *testing.T) spendcap.Backend {
	opts := testenv.Valkey(t).Options()
	opts.PoolSize = 70
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := valkey.NewClient(context.Background(), rdb, valkey.Options{AllowVolatile: true, AllowReplay: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
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
						if o, err = b.Reserve(ctx, spendcap.ReserveParams{BudgetID: "hot", ReservationID: rid, Amounts: q{"t": n}, TTL: 600 * time.Second, IdempotencyKey: key}); err != nil {
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
					if so.Kind == spendcap.OutcomeHardBreach {
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

func TestSixtyFourClientsRespectOnePostgresQuota(t *testing.T) {
	t.Parallel()
	hammerQuota(t, racingPostgres(t))
}

func TestSixtyFourClientsRespectOneValkeyQuota(t *testing.T) {
	t.Parallel()
	hammerQuota(t, racingValkey(t))
}

// hammerQuota races 64 clients for two policies: one of at most 5 concurrent holders (each holds
// its slot a moment), one of 40 admissions per ten minutes. Held slots never exceed 5, admissions
// never exceed 40.
func hammerQuota(t *testing.T, b spendcap.Backend) {
	const maxConcurrent, maxRequests = 5, 40
	if _, err := b.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "slots", MaxConcurrent: maxConcurrent, LeaseTTL: 600 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateQuotaPolicy(ctx, spendcap.CreateQuotaPolicyParams{PolicyID: "rate", Window: 600 * time.Second, MaxRequests: maxRequests}); err != nil {
		t.Fatal(err)
	}
	var held, maxHeld, slotRefusals, admissions atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 64; c++ {
		wg.Go(func() {
			for i := 0; i < 15; i++ {
				holder := fmt.Sprintf("c%d-%d", c, i)
				a, err := b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "slots", HolderID: holder})
				if err != nil {
					t.Error(err)
					return
				}
				if a.Admitted {
					if n := held.Add(1); n > maxHeld.Load() {
						maxHeld.Store(n)
					}
					if a.Active > maxConcurrent {
						t.Errorf("admitted with %+v", a)
					}
					time.Sleep(time.Millisecond)
					held.Add(-1)
					if ok, err := b.ReleaseQuota(ctx, spendcap.ReleaseQuotaParams{PolicyID: "slots", HolderID: holder}); err != nil || !ok {
						t.Errorf("release %s: %v %v", holder, ok, err)
					}
				} else if a.Reason != spendcap.QuotaReasonConcurrencyLimited || a.RetryAfter <= 0 {
					t.Errorf("refusal %+v", a)
				} else {
					slotRefusals.Add(1)
				}
				r, err := b.AcquireQuota(ctx, spendcap.AcquireQuotaParams{PolicyID: "rate", HolderID: holder})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Admitted {
					admissions.Add(1)
				}
				if r.InWindow > maxRequests {
					t.Errorf("rate policy: %+v", r)
				}
			}
		})
	}
	wg.Wait()
	slots, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "slots"})
	if err != nil {
		t.Fatal(err)
	}
	rate, err := b.QuotaStatus(ctx, spendcap.QuotaStatusParams{PolicyID: "rate"})
	if err != nil {
		t.Fatal(err)
	}
	if maxHeld.Load() > maxConcurrent || slots.Active != 0 || slotRefusals.Load() == 0 {
		t.Errorf("slots: at most %d held at once, %d active at the end, %d refusals; want at most %d, 0, some",
			maxHeld.Load(), slots.Active, slotRefusals.Load(), maxConcurrent)
	}
	if admissions.Load() != maxRequests || rate.InWindow != maxRequests {
		t.Errorf("rate: %d admitted (window %d), want %d", admissions.Load(), rate.InWindow, maxRequests)
	}
	t.Logf("slots: at most %d held at once, %d refusals; rate: %d admitted", maxHeld.Load(), slotRefusals.Load(), admissions.Load())
}

func TestConcurrentRetriesOfOneKeyApplyOnceOnPostgres(t *testing.T) {
	t.Parallel()
	retryStorm(t, racingPostgres(t))
}

func TestConcurrentRetriesOfOneKeyApplyOnceOnValkey(t *testing.T) {
	t.Parallel()
	retryStorm(t, racingValkey(t))
}

// retryStorm sends each keyed report from 16 clients at once, as a caller that retries before its
// first attempt has answered would: exactly one of them applies, the others replay its outcome.
func retryStorm(t *testing.T, b spendcap.Budgets) {
	const (
		clients = 16
		keys    = 40
	)
	if _, err := b.CreateBudget(ctx, spendcap.CreateBudgetParams{BudgetID: "storm", HardLimits: q{"t": 1000}}); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < keys; k++ {
		var fresh atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := 0; c < clients; c++ {
			wg.Go(func() {
				<-start
				o, err := b.ReportUsage(ctx, spendcap.ReportUsageParams{BudgetID: "storm", Deltas: q{"t": 3}, DedupKey: fmt.Sprintf("k%d", k)})
				if err != nil {
					t.Errorf("key %d: %v", k, err)
					return
				}
				if o.Kind != spendcap.OutcomeOK || !o.Applied {
					t.Errorf("key %d: %+v", k, o)
				}
				if !o.Replayed {
					fresh.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("key %d: %d of %d concurrent calls applied, want 1", k, fresh.Load(), clients)
		}
	}
	st, err := b.BudgetStatus(ctx, spendcap.BudgetStatusParams{BudgetID: "storm"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Usage["t"] != 3*keys {
		t.Errorf("usage %d, want %d", st.Usage["t"], 3*keys)
	}
}

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
					o, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: id, ReservationID: rid, Amounts: q{"t": n}, TTL: 600 * time.Second, IdempotencyKey: dk})
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

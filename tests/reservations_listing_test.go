package tests

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spendcap/spendcap"
)

type reservationsBackend interface {
	spendcap.Backend
	spendcap.ReservationLister
}

var reservationsT0 = time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)

// held renders the live reservations of a budget: "named/ref amounts +minutes to expiry" each.
func held(t *testing.T, b spendcap.ReservationLister, id string, at time.Time, maxRows int) string {
	t.Helper()
	rs, err := b.BudgetReservations(ctx, spendcap.BudgetReservationsParams{BudgetID: id, At: at, MaxRows: maxRows})
	if err != nil {
		t.Fatalf("BudgetReservations(%s): %v", id, err)
	}
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%s/%s %v +%dm", r.NamedID, r.ReservationID, r.Amounts, int(r.ExpiresAt.Sub(reservationsT0).Minutes())))
	}
	return strings.Join(s, ", ")
}

// A parent lists the reservations made on it and on its children, soonest to expire first, with
// the budget each was made on; expired, settled and cancelled ones are gone.
func TestBudgetReservationsListTheLiveOnesSoonestFirst(t *testing.T) {
	t.Parallel()
	eachBackendAs(t, func(t *testing.T, b reservationsBackend) {
		for _, c := range []spendcap.CreateBudgetParams{
			{BudgetID: "org", HardLimits: map[string]int64{"usd": 1000}},
			{BudgetID: "org/key", ParentID: "org", HardLimits: map[string]int64{"usd": 100}},
		} {
			c.At = reservationsT0
			if _, err := b.CreateBudget(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range []struct {
			id, ref string
			usd     int64
			ttl     time.Duration
		}{{"org/key", "r1", 10, 30 * time.Minute}, {"org", "r4", 20, 10 * time.Minute}, {"org/key", "r3", 5, 10 * time.Minute},
			{"org", "gone", 1, 60 * time.Minute}} {
			if _, err := b.Reserve(ctx, spendcap.ReserveParams{BudgetID: r.id, ReservationID: r.ref, Amounts: map[string]int64{"usd": r.usd},
				TTL: r.ttl, At: reservationsT0}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: "org", ReservationID: "gone", At: reservationsT0}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			id   string
			at   time.Duration
			max  int
			want string
		}{
			{"org", 0, 0, "org/r4 map[usd:20] +10m, org/key/r3 map[usd:5] +10m, org/key/r1 map[usd:10] +30m"},
			{"org", 0, 2, "org/r4 map[usd:20] +10m, org/key/r3 map[usd:5] +10m"},
			{"org/key", 0, 0, "org/key/r3 map[usd:5] +10m, org/key/r1 map[usd:10] +30m"},
			{"org", 10 * time.Minute, 0, "org/key/r1 map[usd:10] +30m"}, // expired at its instant
			{"org/key", time.Hour, 0, ""},
		} {
			if got := held(t, b, c.id, reservationsT0.Add(c.at), c.max); got != c.want {
				t.Errorf("%s at +%v (max %d):\n got %s\nwant %s", c.id, c.at, c.max, got, c.want)
			}
		}
		// Cancelled on the budget it names, a child's reservation leaves the parent's list too.
		if _, err := b.CancelReservation(ctx, spendcap.CancelReservationParams{BudgetID: "org/key", ReservationID: "r1", At: reservationsT0}); err != nil {
			t.Fatal(err)
		}
		if got := held(t, b, "org", reservationsT0, 0); got != "org/r4 map[usd:20] +10m, org/key/r3 map[usd:5] +10m" {
			t.Errorf("org after r1's cancellation: %s", got)
		}
		_, err := b.BudgetReservations(ctx, spendcap.BudgetReservationsParams{BudgetID: "nobody"})
		if !errors.Is(err, spendcap.ErrBudgetNotFound) {
			t.Errorf("an unknown budget: %v, want SC003", err)
		}
		for _, n := range []int{-1, 1001} {
			_, err := b.BudgetReservations(ctx, spendcap.BudgetReservationsParams{BudgetID: "org", MaxRows: n})
			if !errors.Is(err, spendcap.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_rows") {
				t.Errorf("max_rows %d: %v, want SC002 naming max_rows", n, err)
			}
		}
	})
}

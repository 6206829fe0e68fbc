package spendcap

import (
	"context"
	"time"
)

// Lister pages through budgets: what the console's budget screens and dashboards read. Both
// clients implement it.
type Lister interface {
	// ListBudgets returns a page of the budgets that match p, as of p.At (windows rolled
	// without writing, as BudgetStatus reads them), in the order p.OrderBy names. Pass the
	// page's Next as p.After for the next page; an empty Next means there is none.
	ListBudgets(ctx context.Context, p ListBudgetsParams) (BudgetPage, error)
}

// ListOrder is the order of a ListBudgets page.
type ListOrder string

// The orders of ListBudgets.
const (
	// ListByID orders budgets by id, byte by byte.
	ListByID ListOrder = "id"
	// ListByUtilisation orders budgets by utilisation, highest first (budgets without a hard
	// limit last), then by id.
	ListByUtilisation ListOrder = "utilisation"
)

// ListBudgetsParams are the arguments of ListBudgets. Every filter left at its zero value
// matches every budget; the filters that are set must all match.
type ListBudgetsParams struct {
	// IDPrefix keeps the budgets whose id starts with it.
	IDPrefix string
	// IDContains keeps the budgets whose id contains it.
	IDContains string
	// Mode keeps the budgets of that mode.
	Mode Mode
	// ParentID keeps the children of that budget.
	ParentID string
	// RootsOnly keeps the budgets without a parent.
	RootsOnly bool
	// NearLimit keeps the budgets whose utilisation reached their lowest alert percent or 80%,
	// whichever is lower.
	NearLimit bool
	// Breached keeps the budgets that refused a call in their current window (a hard breach).
	Breached bool
	// OrderBy defaults to ListByID.
	OrderBy ListOrder
	// After is the Next of the previous page (a cursor of the same order), empty for the first.
	After string
	// MaxRows (1..1000) defaults to 50.
	MaxRows int
	At      time.Time
}

// BudgetPage is one page of ListBudgets.
type BudgetPage struct {
	Budgets []BudgetListing
	// Next is the cursor to pass as After for the next page: empty when this page was not full.
	Next string
}

// BudgetListing is one budget as ListBudgets lists it: its current window's figures.
type BudgetListing struct {
	BudgetID    string
	ParentID    string // empty for a budget without a parent
	Mode        Mode
	ResetEvery  string // empty for one window forever
	WindowStart time.Time
	NextResetAt *time.Time
	HardLimits  map[string]int64
	SoftLimits  map[string]int64
	Usage       map[string]int64
	Reserved    map[string]int64
	// AlertPercents is nil when the budget raises no threshold events.
	AlertPercents []int32
	// UtilisationPermille is the highest share of any hard limit that usage plus reserved
	// takes, in thousandths rounded down (1000 is a limit reached; at most 999999); nil for a
	// budget without a hard limit. A hard limit of 0 counts 1000 while nothing is used.
	UtilisationPermille *int
	// NearLimit: UtilisationPermille reached the lowest alert percent or 80%.
	NearLimit             bool
	WindowBreachCount     int64
	WindowSoftBreachCount int64
	// Children counts the budgets whose parent this budget is.
	Children int64
	// Cursor is this row's position in its order (what Next holds for the last row).
	Cursor string
}

// ReservationLister lists the reservations live on a budget: the console's budget page, and
// whoever must find a reservation to cancel.
type ReservationLister interface {
	// BudgetReservations returns the reservations live on p.BudgetID at p.At, soonest to expire
	// first (then by NamedID and ReservationID, byte order). ErrBudgetNotFound for an unknown
	// budget.
	BudgetReservations(ctx context.Context, p BudgetReservationsParams) ([]Reservation, error)
}

// BudgetReservationsParams are the arguments of BudgetReservations.
type BudgetReservationsParams struct {
	BudgetID string
	// MaxRows bounds the answer, 1..1000; 0 means 100.
	MaxRows int
	// At is the instant (now when zero): reservations expired by then are not listed.
	At time.Time
}

// Reservation is one live reservation held on a budget.
type Reservation struct {
	ReservationID string
	// NamedID is the budget the reservation was made on: the budget listed, or a child or a
	// set's named budget that charged it too. Settle and CancelReservation take NamedID.
	NamedID   string
	Amounts   map[string]int64
	ExpiresAt time.Time
}

// Package callargs holds what both clients do alike around a call: they turn the Go arguments
// into the functions' (durations into whole seconds, counts into integers, SetLimits' clear
// fields into the empty values that clear) and a failed batch item into its error. Argument errors
// are *spendcap.Error with the code SC002 and the name of the function argument, as the
// functions' own are, and nothing has been sent.
package callargs

import (
	"fmt"
	"math"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/errcode"
)

// Seconds is d in whole seconds for the argument name: 0 for 0 (the function's default).
func Seconds(name string, d time.Duration) (int32, error) {
	if d%time.Second != 0 {
		return 0, invalid(name, fmt.Sprintf("must be a whole number of seconds, not %v", d))
	}
	s := d / time.Second
	if s > math.MaxInt32 || s < math.MinInt32 {
		return 0, invalid(name, fmt.Sprintf("%v is out of range", d))
	}
	return int32(s), nil
}

// Count is a count argument (max_rows, a batch size) as the functions' integer: 0 stays 0 (their
// default), anything else is sent for them to judge, except what an integer cannot hold.
func Count(name string, n int) (int32, error) {
	if n > math.MaxInt32 || n < math.MinInt32 {
		return 0, invalid(name, fmt.Sprintf("%d is out of range", n))
	}
	return int32(n), nil
}

// QuotaPolicy is CreateQuotaPolicy's durations in seconds: window_seconds and lease_seconds.
func QuotaPolicy(p spendcap.CreateQuotaPolicyParams) (window, lease int32, err error) {
	if window, err = Seconds("window_seconds", p.Window); err != nil {
		return 0, 0, err
	}
	lease, err = Seconds("lease_seconds", p.LeaseTTL)
	return window, lease, err
}

// Limits are SetLimits' arguments as the functions take them: nil leaves a field unchanged, an
// empty map or slice clears it; Series is "" (unchanged), a width, or "off".
type Limits struct {
	Hard, Soft map[string]int64
	Alerts     []int32
	Series     string
}

// SetLimits reads p's limits and clear fields, refusing a field both set and cleared.
func SetLimits(p spendcap.SetLimitsParams) (Limits, error) {
	var l Limits
	if err := cleared("hard_limits", len(p.HardLimits), p.ClearHardLimits); err != nil {
		return l, err
	}
	if err := cleared("soft_limits", len(p.SoftLimits), p.ClearSoftLimits); err != nil {
		return l, err
	}
	if err := cleared("alert_percents", len(p.AlertPercents), p.ClearAlertPercents); err != nil {
		return l, err
	}
	if len(p.HardLimits) > 0 || p.ClearHardLimits {
		l.Hard = p.HardLimits
		if l.Hard == nil {
			l.Hard = map[string]int64{}
		}
	}
	if len(p.SoftLimits) > 0 || p.ClearSoftLimits {
		l.Soft = p.SoftLimits
		if l.Soft == nil {
			l.Soft = map[string]int64{}
		}
	}
	if len(p.AlertPercents) > 0 || p.ClearAlertPercents {
		l.Alerts = p.AlertPercents
		if l.Alerts == nil {
			l.Alerts = []int32{}
		}
	}
	if err := cleared("usage_series", len(p.UsageSeries), p.ClearUsageSeries); err != nil {
		return l, err
	}
	l.Series = p.UsageSeries
	if p.ClearUsageSeries {
		l.Series = "off"
	}
	return l, nil
}

// cleared refuses a field of n elements that is also cleared.
func cleared(name string, n int, clear bool) error {
	if n > 0 && clear {
		return invalid(name, "set and cleared in one call")
	}
	return nil
}

// BatchItemError is the error of item i of the batch call fn, which failed with code and message:
// a *spendcap.Error for a spendcap code, else an error naming the call and the item.
func BatchItemError(fn string, i int, code, message string) error {
	if !errcode.Known(code) {
		return fmt.Errorf("%s item %d: %s %s", fn, i, code, message)
	}
	return &spendcap.Error{Code: code, Message: message}
}

func invalid(name, msg string) error {
	return &spendcap.Error{Code: spendcap.CodeInvalidArgument, Message: name + ": " + msg}
}

// DefaultListRows is the page size of ListBudgets when MaxRows is 0 (SQL: list_budgets' default).
const DefaultListRows = 50

// NextCursor is the Next of a ListBudgets page of rows asked for with maxRows (0: the default):
// the last row's cursor when the page is full, else empty (there is nothing after it).
func NextCursor(rows []spendcap.BudgetListing, maxRows int32) string {
	if maxRows == 0 {
		maxRows = DefaultListRows
	}
	if len(rows) == 0 || len(rows) < int(maxRows) {
		return ""
	}
	return rows[len(rows)-1].Cursor
}

// NextPolicy is the Next of a page of ListQuotaPolicies asked for maxRows rows (0: the default
// 50): the last id when the page is full, else "".
func NextPolicy(rows []spendcap.QuotaStatus, maxRows int32) string {
	if maxRows == 0 {
		maxRows = DefaultListRows
	}
	if len(rows) == 0 || len(rows) < int(maxRows) {
		return ""
	}
	return rows[len(rows)-1].PolicyID
}
